//! A shard: one per core, the sole owner of its queues and sessions.
//!
//! State is `!Send` (`Rc`, `RefCell`); other shards reach it only through
//! [`mesh::ShardMsg`] batches. Work for the local shard goes through its own
//! outbox too, so a handler never re-enters another (a publish that routes
//! to a local queue is enqueued after the session's read is processed, not
//! in the middle of it).
//!
//! Shard 0 is also the metadata coordinator (see `coordinator`).

mod coordinator;
pub mod mesh;
pub mod placement;

use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use glommio::channels::channel_mesh::Senders;
use rustc_hash::FxHashMap;
use tracing::{debug, warn};

use self::mesh::{CallReq, CallResp, GotMessage, SettleHow, ShardMsg};
use crate::config::Config;
use crate::exchange::{QueueId, QueueRef, Targets};
use crate::local::{slot, Gate, Latch, Notify, Reply, Slot};
use crate::message::{DeathReason, Message};
use crate::meta::{Meta, MetaOp, QueueDef, SessionId};
use crate::net::session::Session;
use crate::queue::{Accepted, ConsumerSpec, Queue, QueuedMsg, Sink};

/// Outbox size (messages) above which publishing sessions wait.
const OUTBOX_HIGH_WATER: usize = 64 * 1024;

/// Milliseconds since the Unix epoch: the clock of queues (TTL, x-death).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

struct Outbox {
    items: RefCell<Vec<ShardMsg>>,
    /// Set when items go from none to some.
    ready: Notify,
    /// Set when the sender task has taken the items.
    room: Notify,
}

/// One shard.
pub struct Shard {
    /// This shard's index (its mesh peer id).
    pub id: u16,
    /// Number of shards.
    pub count: u16,
    /// Configuration.
    pub config: Rc<Config>,
    /// Replicated metadata.
    pub meta: RefCell<Meta>,
    queues: RefCell<FxHashMap<QueueId, Queue>>,
    sessions: RefCell<FxHashMap<SessionId, Rc<Session>>>,
    /// Sessions with output to flush after the current batch.
    dirty: RefCell<Vec<Rc<Session>>>,
    outboxes: Vec<Outbox>,
    calls: RefCell<FxHashMap<u64, Reply<CallResp>>>,
    next_call: Cell<u64>,
    next_session: Cell<u64>,
    next_consumer: Cell<u64>,
    next_queue: Cell<u64>,
    timers: RefCell<BinaryHeap<Reverse<(u64, QueueId)>>>,
    scheduled: RefCell<FxHashMap<QueueId, u64>>,
    timer_wake: Notify,
    /// Sessions live on this shard.
    pub gate: Gate,
    /// Set when the shard starts shutting down.
    pub stopping: Latch,
    shutdown_done: Cell<u16>,
    /// Set when the shard must exit.
    pub exit: Latch,
    senders: Option<Senders<Vec<ShardMsg>>>,
}

impl Shard {
    /// A shard with empty state.
    pub fn new(
        id: u16,
        count: u16,
        config: Rc<Config>,
        senders: Option<Senders<Vec<ShardMsg>>>,
    ) -> Shard {
        let meta = Meta::new(config.vhosts.iter().map(String::as_str));
        let base = (id as u64) << 48;
        Shard {
            id,
            count,
            config,
            meta: RefCell::new(meta),
            queues: RefCell::default(),
            sessions: RefCell::default(),
            dirty: RefCell::default(),
            outboxes: (0..count)
                .map(|_| Outbox {
                    items: RefCell::new(Vec::new()),
                    ready: Notify::new(),
                    room: Notify::new(),
                })
                .collect(),
            calls: RefCell::default(),
            next_call: Cell::new(1),
            next_session: Cell::new(base + 1),
            next_consumer: Cell::new(base + 1),
            next_queue: Cell::new(now_ms() << 16),
            timers: RefCell::default(),
            scheduled: RefCell::default(),
            timer_wake: Notify::new(),
            gate: Gate::new(),
            stopping: Latch::new(),
            shutdown_done: Cell::new(0),
            exit: Latch::new(),
            senders,
        }
    }

    /// The shard a session lives on.
    pub fn shard_of(session: SessionId) -> u16 {
        (session >> 48) as u16
    }

    /// A new server-wide session id.
    pub fn new_session_id(&self) -> SessionId {
        let id = self.next_session.get();
        self.next_session.set(id + 1);
        id
    }

    /// A new server-wide consumer id.
    pub fn new_consumer_id(&self) -> u64 {
        let id = self.next_consumer.get();
        self.next_consumer.set(id + 1);
        id
    }

    /// True once shutdown began.
    pub fn is_stopping(&self) -> bool {
        self.stopping.is_set()
    }

    /// Registers a session.
    pub fn add_session(&self, s: Rc<Session>) {
        self.sessions.borrow_mut().insert(s.id, s);
    }

    /// Forgets a session.
    pub fn remove_session(&self, id: SessionId) {
        self.sessions.borrow_mut().remove(&id);
    }

    fn session(&self, id: SessionId) -> Option<Rc<Session>> {
        self.sessions.borrow().get(&id).cloned()
    }

    /// Marks a session as having output to flush at the end of the batch.
    pub fn mark_dirty(&self, s: &Rc<Session>) {
        self.dirty.borrow_mut().push(s.clone());
    }

    /// Flushes sessions that got output while handling a batch.
    pub fn flush_dirty(&self) {
        let dirty = std::mem::take(&mut *self.dirty.borrow_mut());
        for s in dirty {
            s.flush();
        }
    }

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
                req,
            },
        );
        answer
    }

    /// Sends a request to shard `to` and waits for the answer.
    pub async fn call(&self, to: u16, req: CallReq) -> CallResp {
        self.start_call(to, req).await.unwrap_or_else(|| {
            CallResp::Refused(crate::error::Refusal::new(
                ringmq_protocol::ErrorCode::ConnectionForced,
                "broker is shutting down",
            ))
        })
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

    /// Handles a batch from `from` and flushes the sessions it touched.
    pub fn handle_batch(self: &Rc<Self>, from: u16, batch: Vec<ShardMsg>) {
        for m in batch {
            self.handle(from, m);
        }
        self.flush_dirty();
    }

    fn handle(self: &Rc<Self>, _from: u16, msg: ShardMsg) {
        let now = now_ms();
        match msg {
            ShardMsg::Enqueue {
                queue,
                msg,
                confirm,
            } => {
                let accepted = self.with_queue(queue, now, |q, sink| q.publish(msg, now, sink));
                if let Some(c) = confirm {
                    let nack = accepted == Some(Accepted::Rejected);
                    self.post(
                        Shard::shard_of(c.session),
                        ShardMsg::Confirmed { confirm: c, nack },
                    );
                }
            }
            ShardMsg::Confirmed { confirm, nack } => {
                if let Some(s) = self.session(confirm.session) {
                    s.confirmed(confirm.channel, confirm.seq, nack);
                    self.mark_dirty(&s);
                }
            }
            ShardMsg::Deliver {
                session,
                consumer,
                queue,
                id,
                redelivered,
                no_ack,
                msg,
            } => {
                let taken = match self.session(session) {
                    Some(s) => {
                        let taken = s.deliver(consumer, queue, id, redelivered, no_ack, msg);
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
            ShardMsg::DropConsumer { queue, consumer } => self.drop_consumer(queue, consumer, now),
            ShardMsg::ServerCancel { session, consumer } => {
                if let Some(s) = self.session(session) {
                    s.server_cancel(consumer);
                    self.mark_dirty(&s);
                }
            }
            ShardMsg::Call { from, call, req } => self.handle_call(from, call, req, now),
            ShardMsg::Reply { call, resp } => {
                if let Some(r) = self.calls.borrow_mut().remove(&call) {
                    r.send(resp);
                }
            }
            ShardMsg::Shutdown => self.begin_shutdown(),
            ShardMsg::ShutdownDone => {
                let done = self.shutdown_done.get() + 1;
                self.shutdown_done.set(done);
                if done == self.count {
                    for to in 0..self.count {
                        self.post(to, ShardMsg::Exit);
                    }
                }
            }
            ShardMsg::Exit => self.exit.set(),
        }
    }

    /// Runs `f` on an owned queue with a sink, then reschedules its timer.
    fn with_queue<R>(
        &self,
        id: QueueId,
        now: u64,
        f: impl FnOnce(&mut Queue, &mut ShardSink<'_>) -> R,
    ) -> Option<R> {
        let mut queues = self.queues.borrow_mut();
        let q = queues.get_mut(&id)?;
        let vhost = q.vhost.clone();
        let mut sink = ShardSink {
            shard: self,
            vhost: &vhost,
        };
        let r = f(q, &mut sink);
        let deadline = q.next_deadline();
        drop(queues);
        if let Some(t) = deadline {
            self.schedule(id, t.max(now));
        }
        Some(r)
    }

    fn drop_consumer(self: &Rc<Self>, queue: QueueId, consumer: u64, now: u64) {
        let auto = self.with_queue(queue, now, |q, _| q.remove_consumer(consumer, now));
        if auto == Some(true) {
            self.drop_queue_later(queue);
        }
    }

    /// Asks the coordinator to delete an owned queue (auto-delete,
    /// x-expires).
    fn drop_queue_later(self: &Rc<Self>, id: QueueId) {
        let Some(vhost) = self.queues.borrow().get(&id).map(|q| q.vhost.clone()) else {
            return;
        };
        let me = self.clone();
        glommio::spawn_local(async move {
            me.call(0, CallReq::DropQueue { vhost, id }).await;
        })
        .detach();
    }

    fn reply(&self, to: u16, call: u64, resp: CallResp) {
        self.post(to, ShardMsg::Reply { call, resp });
    }

    fn handle_call(self: &Rc<Self>, from: u16, call: u64, req: CallReq, now: u64) {
        use crate::error::Refusal;
        let gone = || {
            CallResp::Refused(Refusal::new(
                ringmq_protocol::ErrorCode::NotFound,
                "queue was deleted",
            ))
        };
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
                .with_queue(queue, now, |q, _| {
                    if if_unused && q.consumer_count() > 0 {
                        CallResp::Refused(Refusal::new(
                            ringmq_protocol::ErrorCode::PreconditionFailed,
                            format_args!("queue '{}' in vhost '{}' in use", q.def.name, q.vhost),
                        ))
                    } else if if_empty && !q.is_empty() {
                        CallResp::Refused(Refusal::new(
                            ringmq_protocol::ErrorCode::PreconditionFailed,
                            format_args!("queue '{}' in vhost '{}' not empty", q.def.name, q.vhost),
                        ))
                    } else {
                        CallResp::Done
                    }
                })
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
            } => self
                .with_queue(queue, now, |q, sink| {
                    CallResp::Got(q.get(session, no_ack, now, sink).map(|(qm, remaining)| {
                        GotMessage {
                            id: qm.id,
                            redelivered: qm.redelivered,
                            remaining: remaining as u32,
                            msg: qm.msg,
                        }
                    }))
                })
                .unwrap_or_else(gone),
            CallReq::Purge { queue } => self
                .with_queue(queue, now, |q, sink| CallResp::Count(q.purge(sink) as u32))
                .unwrap_or(CallResp::Count(0)),
            coordinated => {
                let me = self.clone();
                glommio::spawn_local(async move {
                    let resp = me.coordinate(coordinated).await;
                    me.reply(from, call, resp);
                })
                .detach();
                return;
            }
        };
        self.reply(from, call, resp);
    }

    /// Applies a metadata op to this shard's replica, creating or deleting
    /// the queue state it owns. Returns the messages deleted with a queue.
    fn apply_meta(&self, op: &MetaOp, now: u64) -> Option<u32> {
        let mut deleted = None;
        if let MetaOp::DeleteQueue { id, .. } = op {
            let removed = self.queues.borrow_mut().remove(id);
            if let Some(mut q) = removed {
                let vhost = q.vhost.clone();
                let mut sink = ShardSink {
                    shard: self,
                    vhost: &vhost,
                };
                let (n, consumers) = q.delete(&mut sink);
                for c in consumers {
                    self.post(
                        c.shard,
                        ShardMsg::ServerCancel {
                            session: c.session,
                            consumer: c.id,
                        },
                    );
                }
                self.scheduled.borrow_mut().remove(id);
                deleted = Some(n as u32);
            }
        }
        self.meta.borrow_mut().apply(op);
        if let MetaOp::DeclareQueue { vhost, def } = op {
            if def.shard == self.id {
                let q = Queue::new(def.clone(), vhost, now);
                let deadline = q.next_deadline();
                self.queues.borrow_mut().insert(def.id, q);
                if let Some(t) = deadline {
                    self.schedule(def.id, t);
                }
            }
        }
        deleted
    }

    /// Arranges for the timer task to look at `queue` at time `at`.
    pub fn schedule(&self, queue: QueueId, at: u64) {
        let mut scheduled = self.scheduled.borrow_mut();
        if scheduled.get(&queue).is_some_and(|&t| t <= at) {
            return;
        }
        scheduled.insert(queue, at);
        let mut timers = self.timers.borrow_mut();
        let earliest = timers.peek().map(|Reverse((t, _))| *t);
        timers.push(Reverse((at, queue)));
        if earliest.is_none_or(|e| at < e) {
            self.timer_wake.notify();
        }
    }

    /// Expires messages and unused queues when their time comes.
    pub async fn run_timers(self: Rc<Self>) {
        loop {
            let next = self.timers.borrow().peek().map(|Reverse((t, _))| *t);
            let now = now_ms();
            match next {
                None => self.timer_wake.wait().await,
                Some(t) if t > now => {
                    let sleep = glommio::timer::sleep(Duration::from_millis(t - now));
                    futures_lite::future::or(sleep, self.timer_wake.wait()).await;
                }
                Some(_) => {
                    let Some(Reverse((at, id))) = self.timers.borrow_mut().pop() else {
                        continue;
                    };
                    {
                        let mut scheduled = self.scheduled.borrow_mut();
                        if scheduled.get(&id) != Some(&at) {
                            continue; // superseded by an earlier schedule
                        }
                        scheduled.remove(&id);
                    }
                    let expired = self.with_queue(id, now, |q, sink| {
                        q.expire(now, sink);
                        q.dispatch(now, sink);
                        q.is_expired(now)
                    });
                    if expired == Some(true) {
                        self.drop_queue_later(id);
                    }
                    self.flush_dirty();
                }
            }
        }
    }

    /// Stops accepting and closes sessions; reports to shard 0 when done.
    pub fn begin_shutdown(self: &Rc<Self>) {
        if self.stopping.is_set() {
            return;
        }
        self.stopping.set();
        let me = self.clone();
        glommio::spawn_local(async move {
            me.gate.closed().await;
            me.post(0, ShardMsg::ShutdownDone);
        })
        .detach();
    }

    /// Broadcasts shutdown to every shard (shard 0 does this on a signal).
    pub fn shutdown_all(&self) {
        for to in 0..self.count {
            self.post(to, ShardMsg::Shutdown);
        }
    }

    /// True when persistent messages on durable queues go to a log (the
    /// durability seam: until the segment log exists, nothing is logged).
    pub fn persists(&self) -> bool {
        false
    }

    /// Number of queues this shard owns.
    pub fn owned_queues(&self) -> usize {
        self.queues.borrow().len()
    }

    /// A new queue id (coordinator only).
    fn new_queue_id(&self) -> QueueId {
        let id = self.next_queue.get();
        self.next_queue.set(id + 1);
        QueueId(id)
    }

    /// Posts `msg` to every target queue. Queues for which `needs_reply`
    /// holds answer with a confirm; returns how many.
    pub fn enqueue_all(
        &self,
        targets: &Targets,
        msg: Message,
        confirm: Option<mesh::ConfirmRef>,
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

/// Carries out a queue's effects on this shard.
struct ShardSink<'a> {
    shard: &'a Shard,
    vhost: &'a str,
}

impl Sink for ShardSink<'_> {
    fn deliver(&mut self, queue: QueueId, consumer: &ConsumerSpec, qm: &QueuedMsg) {
        self.shard.post(
            consumer.shard,
            ShardMsg::Deliver {
                session: consumer.session,
                consumer: consumer.id,
                queue: QueueRef {
                    id: queue,
                    shard: self.shard.id,
                },
                id: qm.id,
                redelivered: qm.redelivered,
                no_ack: consumer.no_ack,
                msg: qm.msg.clone(),
            },
        );
    }

    fn dead_letter(&mut self, queue: &QueueDef, mut msg: Message, reason: DeathReason) {
        let Some(dlx) = queue.args.dead_letter_exchange.as_deref() else {
            return;
        };
        let routing_key = queue
            .args
            .dead_letter_routing_key
            .clone()
            .unwrap_or_else(|| msg.routing_key.as_str().to_owned());
        msg.exchange = dlx.into();
        msg.routing_key = routing_key.as_str().into();
        let meta = self.shard.meta.borrow();
        let Some(v) = meta.vhost(self.vhost) else {
            return;
        };
        let Some(x) = v.exchange(dlx) else {
            return; // a missing DLX drops the message, as in RabbitMQ
        };
        let mut targets = Targets::default();
        v.route(x, &routing_key, msg.headers(), &mut targets);
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

    fn settled(&mut self, _queue: QueueId, _qm: &QueuedMsg) {
        // Durability seam: the segment log records settlements here.
    }
}

struct Deaths {
    queues: Vec<String>,
    rejected: bool,
}

fn death_queues(msg: &Message) -> Deaths {
    use ringmq_protocol::FieldValue;
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
