//! Outboxes: one per destination shard, this one included, so local and
//! remote work follow one ordered path. `post` queues a message; the
//! outbox task sends the whole vector over the mesh (or handles it here for
//! the local shard). Requests that expect an answer (`call`) carry an id
//! that the reply fills.

use std::rc::Rc;

use ringmq_protocol::{ErrorCode, Refusal};
use ringmq_rt::local::{slot, Slot};
use tracing::{debug, warn};

use super::mesh::{CallReq, CallResp, ConfirmRef, ShardMsg};
use super::Shard;
use crate::exchange::{QueueRef, Targets};
use crate::message::Message;

/// Outbox size (messages) above which publishing sessions wait.
const OUTBOX_HIGH_WATER: usize = 64 * 1024;

impl Shard {
    /// Queues a message for shard `to` (possibly this one).
    pub fn post(&self, to: u16, msg: ShardMsg) {
        let Some(out) = self.outboxes.get(usize::from(to)) else {
            warn!(to, "message for a shard that does not exist dropped");
            return;
        };
        let mut items = out.items.borrow_mut();
        items.push(msg);
        if items.len() == 1 {
            out.ready.notify();
        }
    }

    /// Waits until no outbox is above its high-water mark (publisher
    /// backpressure).
    pub async fn wait_for_room(&self) {
        for out in &self.outboxes {
            while out.items.borrow().len() > OUTBOX_HIGH_WATER {
                out.room.wait().await;
            }
        }
    }

    /// Sends a request to shard `to` now; the slot resolves with the
    /// answer (`None` if the shard dropped it while shutting down).
    pub fn start_call(&self, to: u16, req: CallReq) -> Slot<CallResp> {
        let call = self.next_call.get();
        self.next_call.set(call + 1);
        let (reply, answer) = slot();
        self.calls.borrow_mut().insert(call, reply);
        self.post(
            to,
            ShardMsg::Call {
                from: self.id,
                call,
                req: Box::new(req),
            },
        );
        answer
    }

    /// Sends a request to shard `to` and waits for the answer.
    pub async fn call(&self, to: u16, req: CallReq) -> CallResp {
        self.start_call(to, req).await.unwrap_or_else(|| {
            CallResp::Refused(Refusal::new(
                ErrorCode::ConnectionForced,
                "broker is shutting down",
            ))
        })
    }

    /// Answers a call from shard `to`.
    pub(super) fn reply(&self, to: u16, call: u64, resp: CallResp) {
        let resp = Box::new(resp);
        self.post(to, ShardMsg::Reply { call, resp });
    }

    /// Fills the slot of a call this shard made.
    pub(super) fn answered(&self, call: u64, resp: CallResp) {
        if let Some(r) = self.calls.borrow_mut().remove(&call) {
            r.send(resp);
        }
    }

    /// Drives the outbox for peer `to`: batches go over the mesh, or are
    /// handled here for the local shard.
    pub async fn run_outbox(self: Rc<Self>, to: u16) {
        let out = &self.outboxes[usize::from(to)];
        loop {
            out.ready.wait().await;
            loop {
                let batch = std::mem::take(&mut *out.items.borrow_mut());
                if batch.is_empty() {
                    break;
                }
                out.room.notify();
                if to == self.id {
                    self.handle_batch(to, batch);
                } else if let Some(senders) = &self.senders {
                    if senders.send_to(usize::from(to), batch).await.is_err() {
                        debug!(to, "mesh peer gone; batch dropped");
                    }
                }
            }
        }
    }

    /// Posts `msg` to the direct reply-to consumers among the targets, on
    /// their sessions' shards. A name naming a shard that does not exist
    /// (forged) reaches nobody.
    pub fn deliver_replies(&self, targets: &Targets, msg: &Message) {
        for to in &targets.replies {
            let shard = Shard::shard_of(to.session);
            if shard < self.count {
                let msg = msg.clone();
                self.post(shard, ShardMsg::DeliverReply { to: *to, msg });
            }
        }
    }

    /// Posts `msg` to every target queue. Queues for which `needs_reply`
    /// holds answer with a confirm; returns how many.
    pub fn enqueue_all(
        &self,
        targets: &Targets,
        msg: Message,
        confirm: Option<ConfirmRef>,
        needs_reply: impl Fn(&QueueRef) -> bool,
    ) -> u32 {
        let mut waiting = 0;
        let mut msg = Some(msg);
        let n = targets.queues.len();
        for (i, q) in targets.queues.iter().enumerate() {
            let c = if confirm.is_some() && needs_reply(q) {
                waiting += 1;
                confirm
            } else {
                None
            };
            let m = if i + 1 == n { msg.take() } else { msg.clone() };
            let Some(m) = m else { break };
            self.post(
                q.shard,
                ShardMsg::Enqueue {
                    queue: q.id,
                    msg: m,
                    confirm: c,
                },
            );
        }
        waiting
    }
}
