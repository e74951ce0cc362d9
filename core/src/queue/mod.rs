//! The queue state machine: ready messages, unacknowledged deliveries and
//! consumers. Pure: the owning shard calls it with events and carries out
//! the effects it reports through a [`Sink`] (deliveries to sessions,
//! dead-lettering, settlement records for the log). No sockets, files or
//! timers inside; time comes in as milliseconds on the shard's clock.
//!
//! # Invariants
//! - Ready messages are kept in id order per priority level; a requeued
//!   message goes back to its original position (as RabbitMQ does).
//! - A consumer is sent at most `credit` deliveries; its session grants
//!   credit (prefetch, socket drain), so the queue never floods a session.
//! - A *gated* consumer (its channel has a shared prefetch limit, `basic.qos`
//!   with `global`) also needs a permit per delivery. Its session leases
//!   permits when the queue asks ([`Sink::demand`], once, while messages are
//!   ready and it has credit but no permits); permits it cannot use, because
//!   nothing is ready or it is not the single active consumer, go back at
//!   once ([`Sink::unused`]). A consumer never holds more permits than
//!   credit, so permits sit idle only while a head message is paged in.
//! - Every message leaves the queue exactly once through `Sink::settled`
//!   (ack, no-ack delivery, drop, expiry, purge, dead-lettering, delete).

pub mod args;
pub mod flow;
mod gate;
mod policy;
mod settle;
pub mod stats;
mod storage;

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

use ringmq_protocol::ErrorCode;

use self::args::Overflow;
use self::gate::Gate;
use crate::exchange::QueueId;
use crate::log::LogLoc;
use crate::message::{DeathReason, Message};
use crate::meta::{QueueDef, SessionId};
use ringmq_protocol::Refusal;

/// Position of a message in its queue, increasing with publish order.
pub type MsgId = u64;

/// Persisted messages of a queue in one segment: id, record location,
/// delivered before.
pub type Persisted = Vec<(MsgId, LogLoc, bool)>;

/// Server-wide id of a consumer.
pub type ConsumerId = u64;

/// A message in a queue.
#[derive(Debug, Clone)]
pub struct QueuedMsg {
    /// Position in the queue.
    pub id: MsgId,
    /// The message.
    pub msg: Message,
    /// When it expires, ms on the shard clock.
    pub expires_at: Option<u64>,
    /// Its enqueue record, for a persistent message in a durable queue.
    pub loc: Option<LogLoc>,
    /// The body is in memory (a persisted message past the memory budget
    /// keeps only `loc` until it is paged in).
    pub resident: bool,
    /// Body length, also while the body is paged out.
    pub size: u32,
    /// `loc` is an `Enqueue` record that recovery restores (a persistent
    /// message in a durable queue), not a paged-out transient copy.
    pub durable: bool,
    /// The priority property, kept while the message is paged out.
    pub priority: u8,
    /// Times it came back to the queue unsettled, saturating (a quorum
    /// queue's delivery count, against `x-delivery-limit`); above 0 it is
    /// redelivered. A byte keeps an entry within 64 bytes.
    pub returns: u8,
}

impl QueuedMsg {
    /// Delivered before: it came back to the queue, or recovery found it
    /// delivered.
    pub fn redelivered(&self) -> bool {
        self.returns > 0
    }
}

/// Who a consumer is and how it consumes.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumerSpec {
    /// Server-wide id.
    pub id: ConsumerId,
    /// Shard of the consumer's session.
    pub shard: u16,
    /// The consumer's session.
    pub session: SessionId,
    /// Deliveries need no ack.
    pub no_ack: bool,
    /// The only consumer of the queue.
    pub exclusive: bool,
    /// `no_local` as asked; ignored, as RabbitMQ does (it does not
    /// implement it: a consumer gets its own connection's messages too).
    pub no_local: bool,
    /// `x-priority`: higher goes first while it has credit.
    pub priority: i32,
    /// Its channel has a shared prefetch limit: each delivery also needs a
    /// permit from the session (see the invariants above).
    pub gated: bool,
    /// No prefetch limit: its credit is only its session's socket window,
    /// so a backlog in front of it means the broker, not the client, is
    /// behind (see `flow.rs`).
    pub window: bool,
}

#[derive(Debug)]
struct Consumer {
    spec: ConsumerSpec,
    credit: u32,
    /// When it last got credit, ms (a window consumer whose socket stopped
    /// draining no longer holds its queue in flow).
    credited_at: u64,
    /// Permits of a gated consumer.
    gate: Option<Gate>,
}

impl Consumer {
    /// It may take a delivery now.
    fn ready(&self) -> bool {
        self.credit > 0 && self.gate.as_ref().is_none_or(|g| g.permits > 0)
    }
}

#[derive(Debug)]
struct Unacked {
    qm: QueuedMsg,
    /// Consumer it went to, or the session for `basic.get`.
    owner: Owner,
}

/// Who holds an unacknowledged delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// A consumer.
    Consumer(ConsumerId),
    /// A `basic.get` by this session.
    Get(SessionId),
}

/// Where the queue's effects go.
pub trait Sink {
    /// Send `qm` to `consumer`.
    fn deliver(&mut self, queue: QueueId, consumer: &ConsumerSpec, qm: &QueuedMsg);
    /// Dead-letter `msg` (the queue already recorded the death in it).
    fn dead_letter(&mut self, queue: &QueueDef, msg: Message, reason: DeathReason);
    /// `qm` left the queue for good.
    fn settled(&mut self, queue: QueueId, qm: &QueuedMsg);
    /// Make `qm` durable if it must be (persistent message, durable
    /// queue): log it and set `qm.loc`, possibly dropping its body from
    /// memory. False when it cannot be made durable (the publish is then
    /// refused).
    fn persist(&mut self, _queue: &QueueDef, _qm: &mut QueuedMsg) -> bool {
        true
    }
    /// A persisted message was delivered to a consumer that will ack it.
    fn delivered(&mut self, _queue: QueueId, _qm: &QueuedMsg) {}
    /// The head message is not in memory: read it back, then dispatch.
    fn page_in(&mut self, _queue: QueueId) {}
    /// Keep `qm` only in the log from now on (writing it there first if
    /// it is not yet): false when it cannot be.
    fn page_out(&mut self, _queue: &QueueDef, _qm: &mut QueuedMsg) -> bool {
        false
    }
    /// A gated consumer needs permits: up to `want` deliveries are ready
    /// for it (at most its credit).
    fn demand(&mut self, queue: QueueId, consumer: &ConsumerSpec, want: u32);
    /// A gated consumer gives back permits it cannot use now.
    fn unused(&mut self, queue: QueueId, consumer: &ConsumerSpec, permits: u32);
    /// The queue enters flow (`on`: publishers routing to it should pause
    /// reading) or leaves it.
    fn flow(&mut self, _queue: QueueId, _on: bool) {}
    /// Dead-letter `qm`, whose parts are only in the log: read it back,
    /// record the death, route it, then settle it. Without a log there is
    /// nothing to read: it is settled (dropped).
    fn dead_letter_stored(&mut self, queue: &QueueDef, qm: QueuedMsg, _reason: DeathReason) {
        self.settled(queue.id, &qm);
    }
}

/// What became of a publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// Enqueued (possibly delivered at once).
    Yes,
    /// Refused: the queue is full and overflows with `reject-publish`.
    Rejected,
}

/// One queue.
#[derive(Debug)]
pub struct Queue {
    /// Definition (name, arguments…).
    pub def: QueueDef,
    /// Virtual host, for texts.
    pub vhost: String,
    /// Ready messages, one deque per priority level (index = priority).
    ready: Vec<VecDeque<QueuedMsg>>,
    ready_count: usize,
    ready_bytes: u64,
    /// Of the ready messages: body bytes in memory, and how many are
    /// durable (for the management API, kept as they change so reading
    /// them never walks the queue).
    ready_resident_bytes: u64,
    ready_durable: u64,
    unacked: FxHashMap<MsgId, Unacked>,
    consumers: Vec<Consumer>,
    /// How many of the consumers are gated.
    gated: usize,
    cursor: usize,
    next_id: MsgId,
    /// Last time it was used (consumer, get, declare), for `x-expires`.
    last_used: u64,
    had_consumer: bool,
    /// Counts for the management API (`stats.rs`).
    counters: ringmq_mgmt::view::MessageCounters,
    /// Publish-to-delivery and publish-to-confirm latencies.
    pub latency: crate::shard::latency::QueueLatency,
    /// Publisher flow control (`flow.rs`).
    flow: flow::Flow,
}

/// What `basic.get` found.
#[derive(Debug)]
pub enum Got {
    /// The head message and how many are left.
    Message(QueuedMsg, usize),
    /// Nothing ready.
    Empty,
    /// The head's body is only in the log: page it in, then ask again.
    Paged,
}

impl Got {
    /// The message, if one was taken.
    pub fn into_message(self) -> Option<(QueuedMsg, usize)> {
        match self {
            Got::Message(qm, left) => Some((qm, left)),
            Got::Empty | Got::Paged => None,
        }
    }
}

impl Queue {
    /// An empty queue.
    pub fn new(def: QueueDef, vhost: &str, now: u64) -> Queue {
        let levels = usize::from(def.args.max_priority.unwrap_or(0)) + 1;
        Queue {
            def,
            vhost: vhost.to_owned(),
            ready: (0..levels).map(|_| VecDeque::new()).collect(),
            ready_count: 0,
            ready_bytes: 0,
            ready_resident_bytes: 0,
            ready_durable: 0,
            unacked: FxHashMap::default(),
            consumers: Vec::new(),
            gated: 0,
            cursor: 0,
            next_id: 1,
            last_used: now,
            had_consumer: false,
            counters: Default::default(),
            latency: Default::default(),
            flow: flow::Flow::default(),
        }
    }

    /// The queue's id.
    pub fn id(&self) -> QueueId {
        self.def.id
    }

    /// Ready messages.
    pub fn len(&self) -> usize {
        self.ready_count
    }

    /// No ready messages.
    pub fn is_empty(&self) -> bool {
        self.ready_count == 0
    }

    /// Delivered, not yet settled.
    pub fn unacked_len(&self) -> usize {
        self.unacked.len()
    }

    /// Active consumers.
    pub fn consumer_count(&self) -> usize {
        self.consumers.len()
    }

    /// Records use (declare, get), for `x-expires`.
    pub fn touch(&mut self, now: u64) {
        self.last_used = now;
    }

    fn level(&self, priority: u8) -> usize {
        match self.def.args.max_priority {
            None => 0,
            Some(max) => usize::from(priority.min(max)),
        }
    }

    fn push_ready(&mut self, qm: QueuedMsg) {
        let level = self.level(qm.priority);
        self.ready_bytes += u64::from(qm.size);
        self.ready_count += 1;
        self.count_ready(&qm, true);
        let dq = &mut self.ready[level];
        if dq.back().is_none_or(|b| b.id < qm.id) {
            dq.push_back(qm);
        } else {
            let at = dq.partition_point(|m| m.id < qm.id);
            dq.insert(at, qm);
        }
    }

    fn pop_ready(&mut self) -> Option<QueuedMsg> {
        let qm = self.ready.iter_mut().rev().find_map(VecDeque::pop_front)?;
        self.ready_count -= 1;
        self.ready_bytes -= u64::from(qm.size);
        self.count_ready(&qm, false);
        Some(qm)
    }

    fn peek_ready(&self) -> Option<&QueuedMsg> {
        self.ready.iter().rev().find_map(VecDeque::front)
    }

    fn over_limit(&self, extra_msgs: usize, extra_bytes: u64) -> bool {
        let a = &self.def.args;
        a.max_length
            .is_some_and(|m| (self.ready_count + extra_msgs) as u64 > m)
            || a.max_length_bytes
                .is_some_and(|m| self.ready_bytes + extra_bytes > m)
    }

    /// Enqueues a published message and delivers what it can.
    pub fn publish(&mut self, mut msg: Message, now: u64, sink: &mut impl Sink) -> Accepted {
        let ttl = match (
            self.def.args.message_ttl,
            msg.expiration_ms().ok().flatten(),
        ) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let bytes = msg.body_len() as u64;
        if self.over_limit(1, bytes) {
            match self.def.args.overflow {
                Overflow::RejectPublish => return Accepted::Rejected,
                Overflow::RejectPublishDlx => {
                    if self.def.args.dead_letter_exchange.is_some() {
                        crate::message::record_death(
                            &mut msg,
                            &self.def.name,
                            DeathReason::MaxLen,
                            now / 1000,
                        );
                        sink.dead_letter(&self.def, msg, DeathReason::MaxLen);
                    }
                    return Accepted::Rejected;
                }
                Overflow::DropHead => {}
            }
        }
        let priority = msg.priority();
        let mut qm = QueuedMsg {
            id: self.next_id,
            msg,
            expires_at: ttl.map(|t| now.saturating_add(t)),
            loc: None,
            resident: true,
            size: bytes as u32,
            durable: false,
            priority,
            returns: 0,
        };
        if !sink.persist(&self.def, &mut qm) {
            return Accepted::Rejected;
        }
        self.next_id += 1;
        self.counters.published += 1;
        self.push_ready(qm);
        // Drop from the head until within limits (a single message larger
        // than x-max-length-bytes drops itself, as in RabbitMQ).
        while self.over_limit(0, 0) {
            let Some(head) = self.pop_ready() else { break };
            self.dead_letter_or_drop(head, DeathReason::MaxLen, now, sink);
        }
        self.dispatch(now, sink);
        Accepted::Yes
    }

    fn dead_letter_or_drop(
        &mut self,
        qm: QueuedMsg,
        reason: DeathReason,
        now: u64,
        sink: &mut impl Sink,
    ) {
        if self.def.args.dead_letter_exchange.is_none() {
            sink.settled(self.def.id, &qm);
        } else if qm.resident {
            sink.settled(self.def.id, &qm);
            let mut msg = qm.msg;
            crate::message::record_death(&mut msg, &self.def.name, reason, now / 1000);
            sink.dead_letter(&self.def, msg, reason);
        } else {
            sink.dead_letter_stored(&self.def, qm, reason);
        }
    }

    /// Picks the consumer for the next delivery: highest priority with
    /// credit, round-robin among equals; with single-active-consumer only
    /// the first consumer.
    fn pick(&mut self) -> Option<usize> {
        let n = self.consumers.len();
        if n == 0 {
            return None;
        }
        if self.def.args.single_active_consumer {
            return self.consumers[0].ready().then_some(0);
        }
        let eligible = Consumer::ready;
        let best = self
            .consumers
            .iter()
            .filter(|c| eligible(c))
            .map(|c| c.spec.priority)
            .max()?;
        for step in 0..n {
            let i = (self.cursor + step) % n;
            let c = &self.consumers[i];
            if c.spec.priority == best && eligible(c) {
                self.cursor = (i + 1) % n;
                return Some(i);
            }
        }
        None
    }

    /// Delivers ready messages to consumers with credit; expires messages
    /// found expired at the head. Gated consumers then ask for permits, or
    /// give back those they cannot use.
    pub fn dispatch(&mut self, now: u64, sink: &mut impl Sink) {
        self.deliver_ready(now, sink);
        self.balance_permits(sink);
        self.check_flow(now, sink);
    }

    fn deliver_ready(&mut self, now: u64, sink: &mut impl Sink) {
        if self.consumers.is_empty() {
            return;
        }
        let now_us = crate::shard::latency::now_us();
        loop {
            let Some(head) = self.peek_ready() else {
                return;
            };
            if head.expires_at.is_some_and(|t| t <= now) && !self.ttl_zero_deliverable(head, now) {
                if let Some(qm) = self.pop_ready() {
                    self.dead_letter_or_drop(qm, DeathReason::Expired, now, sink);
                }
                continue;
            }
            if !head.resident {
                sink.page_in(self.def.id);
                return;
            }
            let Some(i) = self.pick() else {
                return;
            };
            let Some(mut qm) = self.pop_ready() else {
                return;
            };
            self.stamp_delivery_count(&mut qm, false);
            let consumer = &mut self.consumers[i];
            consumer.credit -= 1;
            if let Some(g) = &mut consumer.gate {
                g.permits -= 1;
            }
            stats::taken(&mut self.counters, &qm, consumer.spec.no_ack, false);
            self.latency.deliver.record(qm.msg.published_us, now_us);
            sink.deliver(self.def.id, &consumer.spec, &qm);
            if consumer.spec.no_ack {
                sink.settled(self.def.id, &qm);
            } else {
                sink.delivered(self.def.id, &qm);
                let owner = Owner::Consumer(consumer.spec.id);
                self.unacked.insert(qm.id, Unacked { qm, owner });
            }
        }
    }

    /// A message published with TTL 0 may still go to a consumer that is
    /// ready at the moment it arrives (RabbitMQ's "immediate-like" TTL 0).
    fn ttl_zero_deliverable(&self, head: &QueuedMsg, now: u64) -> bool {
        head.expires_at == Some(now)
            && !head.redelivered()
            && self.consumers.iter().any(Consumer::ready)
    }

    /// Adds a consumer with initial credit.
    ///
    /// # Errors
    /// 403 when the queue has an exclusive consumer, or when an exclusive
    /// consumer is asked for a queue that has consumers.
    pub fn add_consumer(
        &mut self,
        spec: ConsumerSpec,
        credit: u32,
        now: u64,
        sink: &mut impl Sink,
    ) -> Result<(), Refusal> {
        if self.consumers.iter().any(|c| c.spec.exclusive)
            || (spec.exclusive && !self.consumers.is_empty())
        {
            return Err(Refusal::new(
                ErrorCode::AccessRefused,
                format_args!(
                    "queue '{}' in vhost '{}' in exclusive use",
                    self.def.name, self.vhost
                ),
            ));
        }
        let gate = spec.gated.then(Gate::default);
        self.gated += usize::from(gate.is_some());
        self.consumers.push(Consumer {
            spec,
            credit,
            gate,
            credited_at: now,
        });
        self.had_consumer = true;
        self.last_used = now;
        self.dispatch(now, sink);
        Ok(())
    }

    /// Removes a consumer. Its unacked deliveries stay with its channel.
    /// Returns true when the queue should now be auto-deleted.
    pub fn remove_consumer(&mut self, id: ConsumerId, now: u64, sink: &mut impl Sink) -> bool {
        if let Some(at) = self.consumers.iter().position(|c| c.spec.id == id) {
            let c = self.consumers.remove(at);
            self.gated -= usize::from(c.gate.is_some());
            if self.cursor > at {
                self.cursor -= 1;
            }
            if self.cursor >= self.consumers.len() {
                self.cursor = 0;
            }
        }
        self.last_used = now;
        self.check_flow(now, sink);
        self.def.auto_delete && self.had_consumer && self.consumers.is_empty()
    }

    /// Gives a consumer more credit and delivers.
    pub fn add_credit(&mut self, id: ConsumerId, credit: u32, now: u64, sink: &mut impl Sink) {
        if let Some(c) = self.consumers.iter_mut().find(|c| c.spec.id == id) {
            c.credit = c.credit.saturating_add(credit);
            c.credited_at = now;
            self.dispatch(now, sink);
        }
    }

    /// Takes the head message for `basic.get`. Returns it with the number of
    /// messages left.
    pub fn get(&mut self, session: SessionId, no_ack: bool, now: u64, sink: &mut impl Sink) -> Got {
        self.last_used = now;
        self.expire(now, sink);
        // Checked after expiry: the head that is taken must be in memory.
        if !self.head_resident() {
            return Got::Paged;
        }
        let Some(mut qm) = self.pop_ready() else {
            return Got::Empty;
        };
        self.stamp_delivery_count(&mut qm, true);
        stats::taken(&mut self.counters, &qm, no_ack, true);
        let now_us = crate::shard::latency::now_us();
        self.latency.deliver.record(qm.msg.published_us, now_us);
        if no_ack {
            sink.settled(self.def.id, &qm);
        } else {
            sink.delivered(self.def.id, &qm);
            self.unacked.insert(
                qm.id,
                Unacked {
                    qm: qm.clone(),
                    owner: Owner::Get(session),
                },
            );
        }
        self.balance_permits(sink);
        Got::Message(qm, self.ready_count)
    }

    /// Removes every ready message; returns how many.
    pub fn purge(&mut self, sink: &mut impl Sink) -> usize {
        let n = self.ready_count;
        for level in &mut self.ready {
            for qm in level.drain(..) {
                sink.settled(self.def.id, &qm);
            }
        }
        self.ready_count = 0;
        self.ready_bytes = 0;
        self.ready_resident_bytes = 0;
        self.ready_durable = 0;
        self.balance_permits(sink);
        self.end_flow(sink);
        n
    }

    /// Deletes the queue's contents (ready and unacked). Returns the number
    /// of ready messages and the consumers that must be told.
    pub fn delete(&mut self, sink: &mut impl Sink) -> (usize, Vec<ConsumerSpec>) {
        let n = self.purge(sink);
        for (_, u) in self.unacked.drain() {
            sink.settled(self.def.id, &u.qm);
        }
        let consumers = self.consumers.drain(..).map(|c| c.spec).collect();
        self.gated = 0;
        self.end_flow(sink);
        (n, consumers)
    }

    /// Expires messages at the head whose time has come.
    pub fn expire(&mut self, now: u64, sink: &mut impl Sink) {
        while let Some(head) = self.peek_ready() {
            if !head
                .expires_at
                .is_some_and(|t| t < now || (t == now && !self.ttl_zero_deliverable(head, now)))
            {
                break;
            }
            if let Some(qm) = self.pop_ready() {
                self.dead_letter_or_drop(qm, DeathReason::Expired, now, sink);
            }
        }
        self.balance_permits(sink);
    }

    /// The next time something in the queue expires (a head message, or the
    /// queue itself under `x-expires`), ms on the shard clock.
    pub fn next_deadline(&self) -> Option<u64> {
        let msg = self
            .ready
            .iter()
            .filter_map(|l| l.front()?.expires_at)
            .min();
        let queue = self
            .def
            .args
            .expires
            .filter(|_| self.consumers.is_empty())
            .map(|e| self.last_used.saturating_add(e));
        [msg, queue, self.flow_deadline()]
            .into_iter()
            .flatten()
            .min()
    }

    /// True when `x-expires` says the unused queue must go.
    pub fn is_expired(&self, now: u64) -> bool {
        self.consumers.is_empty()
            && self
                .def
                .args
                .expires
                .is_some_and(|e| now >= self.last_used.saturating_add(e))
    }
}

#[cfg(test)]
mod tests;
