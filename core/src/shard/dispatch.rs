//! Handling what arrives at a shard: each `ShardMsg` of a batch goes to one
//! small handler; calls to a queue's owner are answered here, metadata
//! changes are handed to the coordinator.

use std::rc::Rc;

use ringmq_protocol::{ErrorCode, Refusal};

use super::clients::Delivery;
use super::mesh::{CallReq, CallResp, ConfirmRef, GotMessage, SettleHow, ShardMsg};
use super::{now_ms, Shard};
use crate::exchange::QueueId;
use crate::message::Message;
use crate::meta::SessionId;
use crate::queue::{Accepted, Got, Queue};

/// Page-ins a `basic.get` tries before it gives up on a head it cannot
/// read back.
const GET_PAGE_IN_TRIES: usize = 4;

impl Shard {
    /// Handles a batch from `from` and flushes the sessions it touched.
    pub fn handle_batch(self: &Rc<Self>, from: u16, batch: Vec<ShardMsg>) {
        let _ = from;
        // One clock read per batch: TTLs have millisecond resolution.
        let now = now_ms();
        for m in batch {
            self.handle(now, m);
        }
        self.start_page_ins();
        self.flush_dirty();
    }

    fn handle(self: &Rc<Self>, now: u64, msg: ShardMsg) {
        // Streams take what is theirs (`streams.rs`).
        let Some(msg) = self.stream_msg(now, msg) else {
            return;
        };
        match msg {
            ShardMsg::Enqueue {
                queue,
                msg,
                confirm,
            } => self.enqueue(queue, msg, confirm, now),
            ShardMsg::Confirmed { confirm, nack } => {
                if let Some(s) = self.session(confirm.session) {
                    s.confirmed(confirm.channel, confirm.seq, nack);
                    self.mark_dirty(&s);
                }
            }
            ShardMsg::Deliver { session, delivery } => self.deliver(session, delivery),
            ShardMsg::DeliverReply { to, msg } => {
                if let Some(s) = self.session(to.session) {
                    if s.deliver_reply(&to, msg) {
                        self.mark_dirty(&s);
                    }
                }
            }
            ShardMsg::Settle {
                queue,
                id,
                how,
                credit,
            } => {
                self.with_queue(queue, now, |q, sink| {
                    match how {
                        SettleHow::Ack => q.ack(id, sink),
                        SettleHow::Requeue => q.reject(id, true, now, sink),
                        SettleHow::Discard => q.reject(id, false, now, sink),
                    };
                    if let Some(c) = credit {
                        q.add_credit(c, 1, now, sink);
                    }
                });
            }
            ShardMsg::Requeue { queue, ids } => {
                self.with_queue(queue, now, |q, sink| q.requeue(ids, now, sink));
            }
            ShardMsg::Credit {
                queue,
                consumer,
                credit,
            } => {
                self.with_queue(queue, now, |q, sink| {
                    q.add_credit(consumer, credit, now, sink)
                });
            }
            ShardMsg::Gate { queue, consumer } => {
                self.with_queue(queue, now, |q, sink| q.gate(consumer, now, sink));
            }
            ShardMsg::Permits {
                queue,
                consumer,
                permits,
            } => {
                self.with_queue(queue, now, |q, sink| {
                    q.add_permits(consumer, permits, now, sink)
                });
            }
            ShardMsg::Demand {
                session,
                consumer,
                want,
            } => {
                if let Some(s) = self.session(session) {
                    s.demand(consumer, want);
                }
            }
            ShardMsg::Unused {
                session,
                consumer,
                permits,
            } => {
                if let Some(s) = self.session(session) {
                    s.unused(consumer, permits);
                }
            }
            ShardMsg::DropConsumer { queue, consumer } => self.drop_consumer(queue, consumer, now),
            ShardMsg::ServerCancel { session, consumer } => {
                if let Some(s) = self.session(session) {
                    s.server_cancel(consumer);
                    self.mark_dirty(&s);
                }
            }
            ShardMsg::Call { from, call, req } => self.handle_call(from, call, *req, now),
            ShardMsg::Reply { call, resp } => self.answered(call, *resp),
            ShardMsg::Shutdown => self.begin_shutdown(),
            ShardMsg::ShutdownDone => self.shutdown_done(),
            ShardMsg::Exit => self.exit.set(),
            ShardMsg::Alarm { source, reason } => self.set_alarm(source, reason),
            ShardMsg::QueueFlow { queue, on } => self.set_queue_flow(queue, on),
        }
    }

    /// A routed message for an owned queue; its confirm (if any) is sent
    /// now, or once its record is durable.
    fn enqueue(&self, queue: QueueId, msg: Message, confirm: Option<ConfirmRef>, now: u64) {
        let published_us = msg.published_us;
        let done = self.with_queue(queue, now, |q, sink| {
            (q.publish(msg, now, sink), sink.last_loc)
        });
        let Some(c) = confirm else { return };
        match done {
            Some((Accepted::Yes, Some((loc, id)))) => {
                self.confirm_when_durable(loc, c, (queue, id), published_us);
            }
            Some((Accepted::Rejected, _)) => self.confirm(c, true),
            _ => self.confirm(c, false),
        }
    }

    /// Tells the publisher's shard that a queue answered for `c`.
    pub(super) fn confirm(&self, c: ConfirmRef, nack: bool) {
        self.post(
            Shard::shard_of(c.session),
            ShardMsg::Confirmed { confirm: c, nack },
        );
    }

    /// A delivery for a session of this shard; a consumer that is gone
    /// gives the message back to its queue.
    fn deliver(&self, session: SessionId, d: Delivery) {
        let (queue, id, no_ack) = (d.queue, d.id, d.no_ack);
        let taken = match self.session(session) {
            Some(s) => {
                let taken = s.deliver(d);
                self.mark_dirty(&s);
                taken
            }
            None => false,
        };
        if !taken && !no_ack {
            self.post(
                queue.shard,
                ShardMsg::Settle {
                    queue: queue.id,
                    id,
                    how: SettleHow::Requeue,
                    credit: None,
                },
            );
        }
    }

    fn handle_call(self: &Rc<Self>, from: u16, call: u64, req: CallReq, now: u64) {
        let resp = match req {
            CallReq::Apply(op) => CallResp::Applied {
                deleted: self.apply_meta(&op, now),
            },
            CallReq::Counts { queue } => self
                .with_queue(queue, now, |q, _| {
                    q.touch(now);
                    CallResp::Counts {
                        messages: q.len() as u32,
                        consumers: q.consumer_count() as u32,
                    }
                })
                .unwrap_or_else(gone),
            CallReq::CheckDelete {
                queue,
                if_unused,
                if_empty,
            } => self
                .with_queue(queue, now, |q, _| check_delete(q, if_unused, if_empty))
                .unwrap_or(CallResp::Done),
            CallReq::Consume { queue, spec } => self
                .with_queue(queue, now, |q, sink| {
                    match q.add_consumer(spec, 0, now, sink) {
                        Ok(()) => CallResp::Done,
                        Err(r) => CallResp::Refused(r),
                    }
                })
                .unwrap_or_else(gone),
            CallReq::Cancel { queue, consumer } => {
                self.drop_consumer(queue, consumer, now);
                CallResp::Done
            }
            CallReq::Get {
                queue,
                session,
                no_ack,
            } => return self.get_then_reply(from, call, queue, session, no_ack, now),
            CallReq::Purge { queue } => self
                .with_queue(queue, now, |q, sink| CallResp::Count(q.purge(sink) as u32))
                .unwrap_or(CallResp::Count(0)),
            CallReq::HasReplyConsumer(to) => match self.session(to.session) {
                Some(s) if s.has_reply_consumer(&to) => CallResp::Done,
                _ => gone(),
            },
            coordinated => {
                let me = self.clone();
                let ticket = self.meta_ticket();
                glommio::spawn_local(async move {
                    let resp = me.coordinate(coordinated, ticket).await;
                    me.reply(from, call, resp);
                })
                .detach();
                return;
            }
        };
        self.reply(from, call, resp);
    }

    /// `basic.get`: answers at once when the head is in memory, else after
    /// reading it back from the log.
    fn get_then_reply(
        self: &Rc<Self>,
        from: u16,
        call: u64,
        queue: QueueId,
        session: SessionId,
        no_ack: bool,
        now: u64,
    ) {
        if let Some(resp) = self.get(queue, session, no_ack, now) {
            self.reply(from, call, resp);
            return;
        }
        let me = self.clone();
        glommio::spawn_local(async move {
            let mut resp = None;
            // Expiry may uncover another paged-out head between a page-in
            // and the get: look again, a few times.
            for _ in 0..GET_PAGE_IN_TRIES {
                if !me.page_in(queue).await {
                    break;
                }
                resp = me.get(queue, session, no_ack, now_ms());
                if resp.is_some() {
                    break;
                }
            }
            let resp = resp.unwrap_or_else(|| {
                CallResp::Refused(Refusal::new(
                    ErrorCode::InternalError,
                    "the message at the head of the queue cannot be read from the log",
                ))
            });
            me.reply(from, call, resp);
            me.flush_dirty();
        })
        .detach();
    }

    /// `basic.get` on an owned queue; `None` when the head must be paged in
    /// first.
    fn get(&self, queue: QueueId, session: SessionId, no_ack: bool, now: u64) -> Option<CallResp> {
        let got = self.with_queue(queue, now, |q, sink| q.get(session, no_ack, now, sink));
        match got {
            None => Some(gone()),
            Some(Got::Paged) => None,
            Some(Got::Empty) => Some(CallResp::Got(None)),
            Some(Got::Message(qm, remaining)) => Some(CallResp::Got(Some(GotMessage {
                id: qm.id,
                redelivered: qm.redelivered(),
                remaining: remaining as u32,
                msg: qm.msg,
            }))),
        }
    }
}

/// The answer about a queue that no longer exists.
fn gone() -> CallResp {
    CallResp::Refused(Refusal::new(ErrorCode::NotFound, "queue was deleted"))
}

/// Checks a conditional queue delete against the queue's state.
fn check_delete(q: &Queue, if_unused: bool, if_empty: bool) -> CallResp {
    let refuse = |what: &str| {
        CallResp::Refused(Refusal::new(
            ErrorCode::PreconditionFailed,
            format_args!("queue '{}' in vhost '{}' {what}", q.def.name, q.vhost),
        ))
    };
    if if_unused && q.consumer_count() > 0 {
        refuse("in use")
    } else if if_empty && !q.is_empty() {
        refuse("not empty")
    } else {
        CallResp::Done
    }
}
