//! Paging: reading back from the log the bodies of persistent messages
//! that were dropped from memory past the memory budget, when they reach
//! the head of their queue.

use std::rc::Rc;

use tracing::error;

use super::{now_ms, Shard};
use crate::exchange::QueueId;
use crate::log::record::Record;

impl Shard {
    /// Starts page-in tasks for queues whose head is not in memory.
    pub(super) fn start_page_ins(self: &Rc<Self>) {
        let wanted = std::mem::take(&mut *self.want_page_in.borrow_mut());
        for id in wanted {
            if self.paging.borrow_mut().insert(id) {
                let me = self.clone();
                glommio::spawn_local(async move {
                    me.page_in(id).await;
                    me.paging.borrow_mut().remove(&id);
                })
                .detach();
            }
        }
    }

    /// Reads back the bodies of the next non-resident messages of a queue,
    /// then dispatches. False when the head could not be read back.
    pub(crate) async fn page_in(self: &Rc<Self>, id: QueueId) -> bool {
        const BATCH: usize = 256;
        let Some(log) = self.log() else { return false };
        loop {
            let wanted = match self.queues.borrow().get(&id) {
                Some(q) => q.paged_head(BATCH),
                None => return true,
            };
            if wanted.is_empty() {
                break;
            }
            let mut filled_any = false;
            for (msg_id, loc) in wanted {
                let bytes = match log.read(loc).await {
                    Ok(bytes) => bytes,
                    Err(e) => {
                        error!(queue = %id, error = %e, "page-in failed");
                        return false;
                    }
                };
                let body = match Record::decode(&bytes) {
                    Ok((Record::Enqueue { body, .. }, _)) => bytes.slice_ref(body),
                    _ => {
                        error!(queue = %id, msg = msg_id, "paged-out record does not decode");
                        continue;
                    }
                };
                let len = body.len() as u64;
                let filled = self
                    .queues
                    .borrow_mut()
                    .get_mut(&id)
                    .is_some_and(|q| q.fill(msg_id, body));
                if filled {
                    self.resident.set(self.resident.get() + len);
                }
                // Read back (or settled meanwhile): progress either way.
                filled_any = true;
            }
            if !filled_any {
                // Nothing could be read back: asking again would spin.
                return false;
            }
            let now = now_ms();
            self.with_queue(id, now, |q, sink| q.dispatch(now, sink));
            self.flush_dirty();
            let head_ok = self
                .queues
                .borrow()
                .get(&id)
                .is_none_or(|q| q.head_resident());
            if head_ok {
                return true;
            }
        }
        true
    }
}
