//! The queues' effects carried out on this shard ([`Sink`]): deliveries
//! posted to the consumers' shards, dead-lettering through the local
//! metadata replica, and the log records of persistent messages.

use std::rc::Rc;
use std::sync::Arc;

use ringmq_protocol::FieldValue;

use super::clients::Delivery;
use super::mesh::ShardMsg;
use super::Shard;
use crate::exchange::sender_selected::header_keys;
use crate::exchange::{QueueId, QueueRef, Targets};
use crate::log::record::Record;
use crate::log::LogLoc;
use crate::message::{DeathReason, Message};
use crate::meta::QueueDef;
use crate::queue::Queue;
use crate::queue::{ConsumerSpec, QueuedMsg, Sink};

impl Shard {
    /// Runs `f` on an owned queue with a sink, then reschedules its timer.
    pub(super) fn with_queue<R>(
        &self,
        id: QueueId,
        now: u64,
        f: impl FnOnce(&mut Queue, &mut ShardSink<'_>) -> R,
    ) -> Option<R> {
        let mut queues = self.queues.borrow_mut();
        let q = queues.get_mut(&id)?;
        let vhost = q.vhost.clone();
        let mut sink = ShardSink::new(self, &vhost);
        let r = f(q, &mut sink);
        let deadline = q.next_deadline();
        drop(queues);
        if sink.page_in {
            self.want_page_in.borrow_mut().push(id);
        }
        if let Some(t) = deadline {
            self.schedule(id, t.max(now));
        }
        Some(r)
    }

    /// Deletes the state of a queue this shard owns: its messages leave
    /// with one `QueueDeleted` record, its consumers are cancelled.
    pub(super) fn delete_owned_queue(&self, id: QueueId) -> Option<u32> {
        let mut q = self.queues.borrow_mut().remove(&id)?;
        let vhost = q.vhost.clone();
        let mut sink = ShardSink::new(self, &vhost);
        sink.bulk_delete = true;
        let (n, consumers) = q.delete(&mut sink);
        if let Some(log) = self.log() {
            log.append(&Record::QueueDeleted { queue: id.0 });
        }
        for c in consumers {
            self.post(
                c.shard,
                ShardMsg::ServerCancel {
                    session: c.session,
                    consumer: c.id,
                },
            );
        }
        self.scheduled.borrow_mut().remove(&id);
        Some(n as u32)
    }
}

/// Carries out a queue's effects on this shard.
pub(super) struct ShardSink<'a> {
    shard: &'a Shard,
    vhost: &'a str,
    /// The record and id of the last message persisted (for its confirm).
    pub last_loc: Option<(LogLoc, u64)>,
    /// A queue's head needs paging in.
    pub page_in: bool,
    /// Deleting a whole queue: one QueueDeleted record instead of a
    /// settle per message.
    pub bulk_delete: bool,
}

impl<'a> ShardSink<'a> {
    pub fn new(shard: &'a Shard, vhost: &'a str) -> ShardSink<'a> {
        ShardSink {
            shard,
            vhost,
            last_loc: None,
            page_in: false,
            bulk_delete: false,
        }
    }
}

impl ShardSink<'_> {
    /// Counts a message that stays in memory against the shard's budget,
    /// keeping only its own bytes, not the frame it came in.
    fn keep_resident(&mut self, qm: &mut QueuedMsg) {
        self.shard
            .resident
            .set(self.shard.resident.get() + u64::from(qm.size));
        if qm.durable {
            qm.msg.detach();
        }
    }

    /// A message's properties as stored: messages of one dense publish
    /// share them, so they are encoded once.
    fn encoded_props(&self, msg: &Message) -> Rc<Vec<u8>> {
        let Some(p) = &msg.props else {
            return Rc::new(Vec::new());
        };
        let mut cache = self.shard.props_cache.borrow_mut();
        match &*cache {
            Some((cached, bytes)) if Arc::ptr_eq(cached, p) => bytes.clone(),
            _ => {
                let bytes = Rc::new(p.to_flatbuffer());
                *cache = Some((p.clone(), bytes.clone()));
                bytes
            }
        }
    }
}

impl Sink for ShardSink<'_> {
    fn flow(&mut self, queue: QueueId, on: bool) {
        self.shard.broadcast_queue_flow(queue, on);
    }

    fn deliver(&mut self, queue: QueueId, consumer: &ConsumerSpec, qm: &QueuedMsg) {
        self.shard.post(
            consumer.shard,
            ShardMsg::Deliver {
                session: consumer.session,
                delivery: Delivery {
                    consumer: consumer.id,
                    queue: QueueRef {
                        id: queue,
                        shard: self.shard.id,
                    },
                    id: qm.id,
                    redelivered: qm.redelivered(),
                    no_ack: consumer.no_ack,
                    msg: qm.msg.clone(),
                },
            },
        );
    }

    fn demand(&mut self, _queue: QueueId, consumer: &ConsumerSpec, want: u32) {
        let msg = ShardMsg::Demand {
            session: consumer.session,
            consumer: consumer.id,
            want,
        };
        self.shard.post(consumer.shard, msg);
    }

    fn unused(&mut self, _queue: QueueId, consumer: &ConsumerSpec, permits: u32) {
        let msg = ShardMsg::Unused {
            session: consumer.session,
            consumer: consumer.id,
            permits,
        };
        self.shard.post(consumer.shard, msg);
    }

    fn dead_letter(&mut self, queue: &QueueDef, mut msg: Message, reason: DeathReason) {
        let Some(dlx) = queue.args.dead_letter_exchange.as_deref() else {
            return;
        };
        // As RabbitMQ: with `x-dead-letter-routing-key` the message goes
        // with that key only and loses its CC header; otherwise the keys
        // its CC header names route it too (sender-selected distribution).
        let dlrk = queue.args.dead_letter_routing_key.as_deref();
        let cc = match dlrk {
            Some(_) => Vec::new(),
            None => header_keys(msg.headers()),
        };
        let routing_key = dlrk.unwrap_or(msg.routing_key.as_str()).to_owned();
        msg.update(|p| {
            p.exchange = dlx.into();
            p.routing_key = routing_key.as_str().into();
            if dlrk.is_some() && p.headers().is_some_and(|h| h.get("CC").is_some()) {
                if let Some(h) = p.props_mut().headers.as_mut() {
                    h.0.retain(|(k, _)| k != "CC");
                }
            }
        });
        let meta = self.shard.meta.borrow();
        let Some(v) = meta.vhost(self.vhost) else {
            return;
        };
        let Some(x) = v.exchange(dlx) else {
            return; // a missing DLX drops the message, as in RabbitMQ
        };
        let mut targets = Targets::default();
        v.route_with_cc(x, &routing_key, &cc, msg.headers(), &mut targets);
        // Cycle protection: without a rejection in the history, a message
        // never re-enters a queue it already died in.
        let deaths = death_queues(&msg);
        if reason != DeathReason::Rejected && !deaths.rejected {
            targets.queues.retain(|t| {
                v.queue_by_id(t.id)
                    .is_none_or(|d| !deaths.queues.contains(&d.name))
            });
        }
        drop(meta);
        // A reply name through the default exchange reaches its consumer,
        // as in RabbitMQ.
        self.shard.deliver_replies(&targets, &msg);
        for t in &targets.queues {
            self.shard.post(
                t.shard,
                ShardMsg::Enqueue {
                    queue: t.id,
                    msg: msg.clone(),
                    confirm: None,
                },
            );
        }
    }

    fn settled(&mut self, queue: QueueId, qm: &QueuedMsg) {
        if qm.resident {
            self.shard
                .resident
                .set(self.shard.resident.get().saturating_sub(u64::from(qm.size)));
        }
        let Some(loc) = qm.loc else { return };
        let Some(log) = self.shard.log() else { return };
        // A paged-out transient copy is never recovered: releasing it is
        // enough.
        if qm.durable && !self.bulk_delete {
            // Written when the disk allows: a failing log keeps it and
            // retries, and keeps the alarm up meanwhile.
            log.append(&Record::Settle {
                queue: queue.0,
                id: qm.id,
            });
        }
        log.release(loc);
    }

    fn persist(&mut self, queue: &QueueDef, qm: &mut QueuedMsg) -> bool {
        self.last_loc = None;
        let durable = queue.durable && qm.msg.is_persistent();
        let size = u64::from(qm.size);
        let over = self.shard.resident.get() + size > self.shard.resources.page_out_above;
        let log = match self.shard.log() {
            // Paging out to a failing disk would only move the bytes into
            // the log's retry buffer: kept in memory instead.
            Some(log) if durable || (over && log.failing().is_none()) => log,
            // In memory only: a transient message under the budget, or no
            // log at all.
            _ => {
                self.keep_resident(qm);
                return true;
            }
        };
        let props = self.encoded_props(&qm.msg);
        let rec = enqueue_record(queue.id.0, qm, &props, !durable);
        let loc = log.append(&rec);
        qm.loc = Some(loc);
        qm.durable = durable;
        if durable {
            // Its confirm waits for this record to be on disk.
            self.last_loc = Some((loc, qm.id));
        }
        if over {
            // Only in the log until it is about to be delivered; the log
            // keeps the bytes until they are durable, so it can always be
            // read back.
            qm.msg = Message::paged_out();
            qm.resident = false;
        } else {
            self.keep_resident(qm);
        }
        true
    }

    fn delivered(&mut self, queue: QueueId, qm: &QueuedMsg) {
        if qm.loc.is_none() || !qm.durable {
            return;
        }
        if let Some(log) = self.shard.log() {
            log.append(&Record::Delivered {
                queue: queue.0,
                id: qm.id,
            });
        }
    }

    fn page_in(&mut self, _queue: QueueId) {
        self.page_in = true;
    }

    fn page_out(&mut self, queue: &QueueDef, qm: &mut QueuedMsg) -> bool {
        if !qm.resident {
            return false;
        }
        if qm.loc.is_none() {
            let Some(log) = self.shard.log().filter(|l| l.failing().is_none()) else {
                return false;
            };
            let props = self.encoded_props(&qm.msg);
            let rec = enqueue_record(queue.id.0, qm, &props, true);
            qm.loc = Some(log.append(&rec));
        }
        qm.msg = Message::paged_out();
        qm.resident = false;
        self.shard
            .resident
            .set(self.shard.resident.get().saturating_sub(u64::from(qm.size)));
        true
    }

    fn dead_letter_stored(&mut self, queue: &QueueDef, qm: QueuedMsg, reason: DeathReason) {
        if self.shard.log().is_none() {
            self.settled(queue.id, &qm);
            return;
        }
        self.shard.want_dead_letter.borrow_mut().push_back((
            queue.clone(),
            self.vhost.to_owned(),
            qm,
            reason,
        ));
    }
}

struct Deaths {
    queues: Vec<String>,
    rejected: bool,
}

fn death_queues(msg: &Message) -> Deaths {
    let mut d = Deaths {
        queues: Vec::new(),
        rejected: false,
    };
    if let Some(FieldValue::Array(items)) = msg.headers().and_then(|h| h.get("x-death")) {
        for item in items {
            if let FieldValue::Table(t) = item {
                if let Some(q) = t.get("queue").and_then(FieldValue::as_str) {
                    d.queues.push(q.to_owned());
                }
                if t.get("reason").and_then(FieldValue::as_str) == Some("rejected") {
                    d.rejected = true;
                }
            }
        }
    }
    d
}

/// The log record of a queued message (`transient`: a PagedOut record,
/// not recovered).
fn enqueue_record<'a>(
    queue: u64,
    qm: &'a QueuedMsg,
    props: &'a [u8],
    transient: bool,
) -> Record<'a> {
    Record::Enqueue {
        queue,
        id: qm.id,
        expires_at: qm.expires_at.unwrap_or(0),
        exchange: qm.msg.exchange.as_str(),
        routing_key: qm.msg.routing_key.as_str(),
        props,
        body: &qm.msg.body,
        transient,
    }
}
