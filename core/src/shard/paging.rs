//! Paging: reading back from the log the bodies of persistent messages
//! that were dropped from memory past the memory budget, when they reach
//! the head of their queue.

use std::rc::Rc;

use tracing::error;

use super::sink::ShardSink;
use super::{now_ms, Shard};
use crate::exchange::QueueId;
use crate::log::record::Record;
use crate::message::{record_death, DeathReason, Message};
use crate::meta::QueueDef;
use crate::queue::{QueuedMsg, Sink as _};

impl Shard {
    /// Starts page-in tasks for queues whose head is not in memory, and
    /// the read-back of paged-out messages to dead-letter.
    pub(super) fn start_page_ins(self: &Rc<Self>) {
        if !self.want_dead_letter.borrow().is_empty() && !self.dead_lettering.replace(true) {
            glommio::spawn_local(self.clone().dead_letter_stored()).detach();
        }
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

    /// Dead-letters the paged-out messages waiting for it, in order.
    async fn dead_letter_stored(self: Rc<Self>) {
        loop {
            let next = self.want_dead_letter.borrow_mut().pop_front();
            let Some((def, vhost, qm, reason)) = next else {
                self.dead_lettering.set(false);
                return;
            };
            self.dead_letter_from_log(def, vhost, qm, reason).await;
        }
    }

    /// Reads a paged-out message back, dead-letters it, then settles it
    /// (its record stays live until it has been read).
    async fn dead_letter_from_log(
        self: &Rc<Self>,
        def: QueueDef,
        vhost: String,
        qm: QueuedMsg,
        reason: DeathReason,
    ) {
        let msg = match (self.log(), qm.loc) {
            (Some(log), Some(loc)) => match log.read(loc).await {
                Ok(bytes) => stored_message(&bytes, Stored::Queue),
                Err(e) => {
                    error!(queue = %def.name, error = %e, "cannot read a message to dead-letter");
                    None
                }
            },
            _ => None,
        };
        let mut sink = ShardSink::new(self, &vhost);
        if let Some(mut msg) = msg {
            record_death(&mut msg, &def.name, reason, now_ms() / 1000);
            sink.dead_letter(&def, msg, reason);
        }
        sink.settled(def.id, &qm);
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
            let locs: Vec<_> = wanted.iter().map(|&(_, loc)| loc).collect();
            let records = match log.read_many(&locs).await {
                Ok(records) => records,
                Err(e) => {
                    error!(queue = %id, error = %e, "page-in failed");
                    return false;
                }
            };
            for ((msg_id, _), bytes) in wanted.into_iter().zip(records) {
                let Some(msg) = stored_message(&bytes, Stored::Queue) else {
                    error!(queue = %id, msg = msg_id, "paged-out record does not decode");
                    continue;
                };
                let len = msg.body.len() as u64;
                let filled = self
                    .queues
                    .borrow_mut()
                    .get_mut(&id)
                    .is_some_and(|q| q.fill(msg_id, msg));
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
            self.start_page_ins();
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

/// The kind of record a read must find.
pub(super) enum Stored {
    /// A queue's message: an `Enqueue` record.
    Queue,
    /// A stream's message: a `StreamAppend` record.
    Stream,
}

/// The message a record of kind `kind` holds (its body a slice of
/// `bytes`); `None` when the bytes are another record or do not decode.
pub(super) fn stored_message(bytes: &bytes::Bytes, kind: Stored) -> Option<Message> {
    let (exchange, routing_key, props, body) = match (Record::decode(bytes), kind) {
        (
            Ok((
                Record::Enqueue {
                    exchange,
                    routing_key,
                    props,
                    body,
                    ..
                },
                _,
            )),
            Stored::Queue,
        )
        | (
            Ok((
                Record::StreamAppend {
                    exchange,
                    routing_key,
                    props,
                    body,
                    ..
                },
                _,
            )),
            Stored::Stream,
        ) => (exchange, routing_key, props, body),
        _ => return None,
    };
    Some(Message::from_stored(
        exchange,
        routing_key,
        props,
        bytes.slice_ref(body),
    ))
}
