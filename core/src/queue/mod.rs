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
//! - Every message leaves the queue exactly once through `Sink::settled`
//!   (ack, no-ack delivery, drop, expiry, purge, dead-lettering, delete).

pub mod args;

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

use ringmq_protocol::ErrorCode;

use self::args::Overflow;
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
    /// Delivered before (set when requeued).
    pub redelivered: bool,
    /// When it expires, ms on the shard clock.
    pub expires_at: Option<u64>,
    /// Its enqueue record, for a persistent message in a durable queue.
    pub loc: Option<LogLoc>,
    /// The body is in memory (a persisted message past the memory budget
    /// keeps only `loc` until it is paged in).
    pub resident: bool,
    /// Body length, also while the body is paged out.
    pub size: u32,
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
}

#[derive(Debug)]
struct Consumer {
    spec: ConsumerSpec,
    credit: u32,
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
    unacked: FxHashMap<MsgId, Unacked>,
    consumers: Vec<Consumer>,
    cursor: usize,
    next_id: MsgId,
    /// Last time it was used (consumer, get, declare), for `x-expires`.
    last_used: u64,
    had_consumer: bool,
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
            unacked: FxHashMap::default(),
            consumers: Vec::new(),
            cursor: 0,
            next_id: 1,
            last_used: now,
            had_consumer: false,
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

    fn level(&self, msg: &Message) -> usize {
        match self.def.args.max_priority {
            None => 0,
            Some(max) => usize::from(msg.priority().min(max)),
        }
    }

    fn push_ready(&mut self, qm: QueuedMsg) {
        let level = self.level(&qm.msg);
        self.ready_bytes += u64::from(qm.size);
        self.ready_count += 1;
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
        let mut qm = QueuedMsg {
            id: self.next_id,
            msg,
            redelivered: false,
            expires_at: ttl.map(|t| now.saturating_add(t)),
            loc: None,
            resident: true,
            size: bytes as u32,
        };
        if !sink.persist(&self.def, &mut qm) {
            return Accepted::Rejected;
        }
        self.next_id += 1;
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
        sink.settled(self.def.id, &qm);
        if self.def.args.dead_letter_exchange.is_some() {
            let mut msg = qm.msg;
            crate::message::record_death(&mut msg, &self.def.name, reason, now / 1000);
            sink.dead_letter(&self.def, msg, reason);
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
            return (self.consumers[0].credit > 0).then_some(0);
        }
        let eligible = |c: &Consumer| c.credit > 0;
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
    /// found expired at the head.
    pub fn dispatch(&mut self, now: u64, sink: &mut impl Sink) {
        if self.consumers.is_empty() {
            return;
        }
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
            let Some(qm) = self.pop_ready() else { return };
            let consumer = &mut self.consumers[i];
            consumer.credit -= 1;
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
            && !head.redelivered
            && self.consumers.iter().any(|c| c.credit > 0)
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
        self.consumers.push(Consumer { spec, credit });
        self.had_consumer = true;
        self.last_used = now;
        self.dispatch(now, sink);
        Ok(())
    }

    /// Removes a consumer. Its unacked deliveries stay with its channel.
    /// Returns true when the queue should now be auto-deleted.
    pub fn remove_consumer(&mut self, id: ConsumerId, now: u64) -> bool {
        if let Some(at) = self.consumers.iter().position(|c| c.spec.id == id) {
            self.consumers.remove(at);
            if self.cursor > at {
                self.cursor -= 1;
            }
            if self.cursor >= self.consumers.len() {
                self.cursor = 0;
            }
        }
        self.last_used = now;
        self.def.auto_delete && self.had_consumer && self.consumers.is_empty()
    }

    /// Gives a consumer more credit and delivers.
    pub fn add_credit(&mut self, id: ConsumerId, credit: u32, now: u64, sink: &mut impl Sink) {
        if let Some(c) = self.consumers.iter_mut().find(|c| c.spec.id == id) {
            c.credit = c.credit.saturating_add(credit);
            self.dispatch(now, sink);
        }
    }

    /// Takes the head message for `basic.get`. Returns it with the number of
    /// messages left.
    pub fn get(
        &mut self,
        session: SessionId,
        no_ack: bool,
        now: u64,
        sink: &mut impl Sink,
    ) -> Option<(QueuedMsg, usize)> {
        self.last_used = now;
        self.expire(now, sink);
        let qm = self.pop_ready()?;
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
        Some((qm, self.ready_count))
    }

    /// Settles a delivery positively. Returns false if it was not unacked.
    pub fn ack(&mut self, id: MsgId, sink: &mut impl Sink) -> bool {
        match self.unacked.remove(&id) {
            Some(u) => {
                sink.settled(self.def.id, &u.qm);
                true
            }
            None => false,
        }
    }

    /// Settles a delivery negatively: back to the queue at its original
    /// position (redelivered) or dead-lettered/dropped.
    pub fn reject(&mut self, id: MsgId, requeue: bool, now: u64, sink: &mut impl Sink) -> bool {
        let Some(u) = self.unacked.remove(&id) else {
            return false;
        };
        let mut qm = u.qm;
        if requeue {
            qm.redelivered = true;
            self.push_ready(qm);
            self.dispatch(now, sink);
        } else {
            self.dead_letter_or_drop(qm, DeathReason::Rejected, now, sink);
        }
        true
    }

    /// Requeues every listed delivery (channel closed, recover), keeping
    /// queue order.
    pub fn requeue(
        &mut self,
        ids: impl IntoIterator<Item = MsgId>,
        now: u64,
        sink: &mut impl Sink,
    ) {
        for id in ids {
            if let Some(u) = self.unacked.remove(&id) {
                let mut qm = u.qm;
                qm.redelivered = true;
                self.push_ready(qm);
            }
        }
        self.dispatch(now, sink);
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
        match (msg, queue) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
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

    /// Removes a message that could not be made durable (its publisher was
    /// nacked), wherever it is, without settling it through the sink.
    pub fn discard(&mut self, id: MsgId) -> bool {
        if self.unacked.remove(&id).is_some() {
            return true;
        }
        for level in &mut self.ready {
            let at = level.partition_point(|m| m.id < id);
            if level.get(at).is_some_and(|m| m.id == id) {
                if let Some(qm) = level.remove(at) {
                    self.ready_count -= 1;
                    self.ready_bytes -= u64::from(qm.size);
                }
                return true;
            }
        }
        false
    }

    /// True when the next message `get` would take is in memory (or there
    /// is none).
    pub fn head_resident(&self) -> bool {
        self.peek_ready().is_none_or(|m| m.resident)
    }

    /// Up to `n` messages near the head that are not in memory, in
    /// delivery order, with their log locations.
    pub fn paged_head(&self, n: usize) -> Vec<(MsgId, LogLoc)> {
        let mut out = Vec::new();
        for level in self.ready.iter().rev() {
            for m in level {
                if out.len() >= n {
                    return out;
                }
                if let (false, Some(loc)) = (m.resident, m.loc) {
                    out.push((m.id, loc));
                }
            }
        }
        out
    }

    /// Puts a paged-in message's body back. Returns false if the message
    /// is no longer ready (or was in memory already).
    pub fn fill(&mut self, id: MsgId, body: bytes::Bytes) -> bool {
        for level in &mut self.ready {
            let at = level.partition_point(|m| m.id < id);
            if let Some(m) = level.get_mut(at).filter(|m| m.id == id && !m.resident) {
                m.msg.body = body;
                m.resident = true;
                return true;
            }
        }
        false
    }

    /// Restores messages recovered from the log (in id order).
    pub fn restore(&mut self, msgs: impl IntoIterator<Item = QueuedMsg>) {
        for qm in msgs {
            self.next_id = self.next_id.max(qm.id + 1);
            self.push_ready(qm);
        }
    }

    /// Persisted messages (ready or unacked) whose record is in segment
    /// `seq`: id, location, and whether it was delivered.
    pub fn persisted_in(&self, seq: u32) -> Persisted {
        let ready = self.ready.iter().flatten().map(|m| (m, m.redelivered));
        let unacked = self.unacked.values().map(|u| (&u.qm, true));
        ready
            .chain(unacked)
            .filter_map(|(m, delivered)| {
                m.loc.filter(|l| l.seq == seq).map(|l| (m.id, l, delivered))
            })
            .collect()
    }

    /// Moves a persisted message's record (compaction). False if the
    /// message is gone or its record moved already.
    pub fn relocate(&mut self, id: MsgId, from: LogLoc, to: LogLoc) -> bool {
        if let Some(u) = self.unacked.get_mut(&id) {
            if u.qm.loc == Some(from) {
                u.qm.loc = Some(to);
                return true;
            }
            return false;
        }
        for level in &mut self.ready {
            let at = level.partition_point(|m| m.id < id);
            if let Some(m) = level
                .get_mut(at)
                .filter(|m| m.id == id && m.loc == Some(from))
            {
                m.loc = Some(to);
                return true;
            }
        }
        false
    }

    /// The unacked deliveries held by `owner`.
    pub fn unacked_of(&self, owner: Owner) -> Vec<MsgId> {
        let mut ids: Vec<MsgId> = self
            .unacked
            .iter()
            .filter(|(_, u)| u.owner == owner)
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::args::QueueArgs;
    use super::*;
    use crate::message::Text;
    use bytes::Bytes;
    use ringmq_protocol::{FieldTable, Properties};
    use std::sync::Arc;

    #[derive(Default)]
    struct Rec {
        delivered: Vec<(ConsumerId, MsgId, bool, String)>,
        dead: Vec<(String, DeathReason)>,
        settled: Vec<MsgId>,
    }

    impl Sink for Rec {
        fn deliver(&mut self, _q: QueueId, c: &ConsumerSpec, qm: &QueuedMsg) {
            let body = String::from_utf8_lossy(&qm.msg.body).into_owned();
            self.delivered.push((c.id, qm.id, qm.redelivered, body));
        }
        fn dead_letter(&mut self, _q: &QueueDef, msg: Message, reason: DeathReason) {
            self.dead
                .push((String::from_utf8_lossy(&msg.body).into_owned(), reason));
        }
        fn settled(&mut self, _q: QueueId, qm: &QueuedMsg) {
            self.settled.push(qm.id);
        }
    }

    fn queue(args: QueueArgs) -> Queue {
        Queue::new(
            QueueDef {
                id: QueueId(1),
                name: "q".into(),
                shard: 0,
                durable: false,
                auto_delete: false,
                exclusive_owner: None,
                arguments: FieldTable::new(),
                args,
            },
            "/",
            0,
        )
    }

    fn msg(body: &str) -> Message {
        Message {
            exchange: Text::default(),
            routing_key: Text::new("q"),
            props: None,
            body: Bytes::copy_from_slice(body.as_bytes()),
            publisher: 99,
        }
    }

    fn consumer(id: ConsumerId, no_ack: bool) -> ConsumerSpec {
        ConsumerSpec {
            id,
            shard: 0,
            session: id,
            no_ack,
            exclusive: false,
            no_local: false,
            priority: 0,
        }
    }

    fn bodies(rec: &Rec) -> Vec<(ConsumerId, String)> {
        rec.delivered.iter().map(|d| (d.0, d.3.clone())).collect()
    }

    #[test]
    fn round_robin_among_consumers_with_credit() {
        let mut q = queue(QueueArgs::default());
        let mut rec = Rec::default();
        q.add_consumer(consumer(1, false), 10, 0, &mut rec).unwrap();
        q.add_consumer(consumer(2, false), 10, 0, &mut rec).unwrap();
        for b in ["a", "b", "c", "d"] {
            q.publish(msg(b), 0, &mut rec);
        }
        assert_eq!(
            bodies(&rec),
            vec![
                (1, "a".into()),
                (2, "b".into()),
                (1, "c".into()),
                (2, "d".into())
            ]
        );
    }

    #[test]
    fn prefetch_one_gives_fair_dispatch() {
        let mut q = queue(QueueArgs::default());
        let mut rec = Rec::default();
        q.add_consumer(consumer(1, false), 1, 0, &mut rec).unwrap();
        q.add_consumer(consumer(2, false), 1, 0, &mut rec).unwrap();
        for b in ["a", "b", "c", "d"] {
            q.publish(msg(b), 0, &mut rec);
        }
        assert_eq!(rec.delivered.len(), 2);
        // Consumer 2 acks and gets credit back; consumer 1 is slow.
        let id_b = rec.delivered[1].1;
        assert!(q.ack(id_b, &mut rec));
        q.add_credit(2, 1, 0, &mut rec);
        assert_eq!(bodies(&rec)[2], (2, "c".into()));
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn requeue_keeps_original_order_and_sets_redelivered() {
        let mut q = queue(QueueArgs::default());
        let mut rec = Rec::default();
        for b in ["1", "2", "3", "4", "5"] {
            q.publish(msg(b), 0, &mut rec);
        }
        let mut got = Vec::new();
        while let Some((qm, _)) = q.get(7, false, 0, &mut rec) {
            got.push(qm.id);
        }
        assert_eq!(got.len(), 5);
        // Requeue in a scrambled order: the queue order is restored.
        q.requeue([got[3], got[0], got[4], got[1], got[2]], 0, &mut rec);
        let mut again = Vec::new();
        while let Some((qm, _)) = q.get(7, true, 0, &mut rec) {
            assert!(qm.redelivered);
            again.push(String::from_utf8_lossy(&qm.msg.body).into_owned());
        }
        assert_eq!(again, ["1", "2", "3", "4", "5"]);
    }

    #[test]
    fn reject_without_requeue_dead_letters_when_configured() {
        let mut q = queue(QueueArgs {
            dead_letter_exchange: Some("dlx".into()),
            ..QueueArgs::default()
        });
        let mut rec = Rec::default();
        q.publish(msg("x"), 0, &mut rec);
        let (qm, left) = q.get(7, false, 0, &mut rec).unwrap();
        assert_eq!(left, 0);
        assert!(q.reject(qm.id, false, 0, &mut rec));
        assert_eq!(rec.dead, vec![("x".into(), DeathReason::Rejected)]);
        assert!(!q.ack(qm.id, &mut rec), "settled once");
    }

    #[test]
    fn ttl_expires_at_head_and_dead_letters() {
        let mut q = queue(QueueArgs {
            message_ttl: Some(100),
            dead_letter_exchange: Some("dlx".into()),
            ..QueueArgs::default()
        });
        let mut rec = Rec::default();
        q.publish(msg("a"), 0, &mut rec);
        q.publish(msg("b"), 50, &mut rec);
        assert_eq!(q.next_deadline(), Some(100));
        q.expire(120, &mut rec);
        assert_eq!(rec.dead, vec![("a".into(), DeathReason::Expired)]);
        assert_eq!(q.len(), 1);
        q.expire(151, &mut rec);
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn per_message_ttl_uses_the_smaller() {
        let mut q = queue(QueueArgs {
            message_ttl: Some(1000),
            ..QueueArgs::default()
        });
        let mut rec = Rec::default();
        let mut m = msg("a");
        m.props = Some(Arc::new(Properties {
            expiration: Some("10".into()),
            ..Properties::default()
        }));
        q.publish(m, 0, &mut rec);
        assert_eq!(q.next_deadline(), Some(10));
    }

    #[test]
    fn max_length_drop_head_and_reject_publish() {
        let mut q = queue(QueueArgs {
            max_length: Some(2),
            ..QueueArgs::default()
        });
        let mut rec = Rec::default();
        for b in ["a", "b", "c"] {
            assert_eq!(q.publish(msg(b), 0, &mut rec), Accepted::Yes);
        }
        assert_eq!(q.len(), 2);
        assert_eq!(
            q.get(1, true, 0, &mut rec).unwrap().0.msg.body,
            Bytes::from_static(b"b")
        );

        let mut q = queue(QueueArgs {
            max_length: Some(1),
            overflow: Overflow::RejectPublish,
            ..QueueArgs::default()
        });
        assert_eq!(q.publish(msg("a"), 0, &mut rec), Accepted::Yes);
        assert_eq!(q.publish(msg("b"), 0, &mut rec), Accepted::Rejected);
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn priorities_deliver_highest_first() {
        let mut q = queue(QueueArgs {
            max_priority: Some(5),
            ..QueueArgs::default()
        });
        let mut rec = Rec::default();
        for (b, p) in [("low", 1), ("high", 9), ("mid", 3)] {
            let mut m = msg(b);
            m.props = Some(Arc::new(Properties {
                priority: Some(p),
                ..Properties::default()
            }));
            q.publish(m, 0, &mut rec);
        }
        let order: Vec<String> = std::iter::from_fn(|| q.get(1, true, 0, &mut rec))
            .map(|(qm, _)| String::from_utf8_lossy(&qm.msg.body).into_owned())
            .collect();
        assert_eq!(order, ["high", "mid", "low"]);
    }

    #[test]
    fn exclusive_consumer_and_auto_delete() {
        let mut q = queue(QueueArgs::default());
        q.def.auto_delete = true;
        let mut rec = Rec::default();
        let mut c = consumer(1, true);
        c.exclusive = true;
        q.add_consumer(c, 5, 0, &mut rec).unwrap();
        let err = q
            .add_consumer(consumer(2, true), 5, 0, &mut rec)
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::AccessRefused);
        assert!(q.remove_consumer(1, 0), "last consumer gone: auto-delete");
    }

    #[test]
    fn no_ack_deliveries_settle_immediately() {
        let mut q = queue(QueueArgs::default());
        let mut rec = Rec::default();
        q.add_consumer(consumer(1, true), 2, 0, &mut rec).unwrap();
        for b in ["a", "b", "c"] {
            q.publish(msg(b), 0, &mut rec);
        }
        assert_eq!(rec.delivered.len(), 2, "credit bounds deliveries");
        assert_eq!(rec.settled.len(), 2);
        assert_eq!(q.unacked_len(), 0);
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn x_expires_deadline() {
        let mut q = queue(QueueArgs {
            expires: Some(1000),
            ..QueueArgs::default()
        });
        assert_eq!(q.next_deadline(), Some(1000));
        assert!(!q.is_expired(999));
        assert!(q.is_expired(1000));
        q.touch(500);
        assert!(!q.is_expired(1000));
    }
}
