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
use tracing::{debug, error, warn};

use self::mesh::{CallReq, CallResp, ConfirmRef, GotMessage, SettleHow, ShardMsg};
use crate::config::Config;
use crate::exchange::{QueueId, QueueRef, Targets};
use crate::log::meta_store::MetaStore;
use crate::log::record::Record;
use crate::log::{Log, LogError, LogLoc, Pos};
use crate::message::{DeathReason, Message};
use crate::meta::{Meta, MetaOp, QueueDef, SessionId};
use crate::net::session::Session;
use crate::queue::{Accepted, ConsumerSpec, Queue, QueuedMsg, Sink};
use ringmq_rt::local::{slot, Gate, Latch, Notify, Reply, Slot};

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
    /// This shard's segment log (None: nothing is persisted).
    log: RefCell<Option<Rc<Log>>>,
    /// The metadata store (coordinator only).
    pub(crate) meta_store: RefCell<Option<Rc<MetaStore>>>,
    /// Confirms waiting for the log to commit up to their record.
    durable_waiters: RefCell<std::collections::VecDeque<(Pos, ConfirmRef, QueueId, u64)>>,
    /// Bytes of persistent bodies in memory (against the memory budget).
    resident: Cell<u64>,
    /// Queues with a page-in task running, and queues that want one.
    paging: RefCell<rustc_hash::FxHashSet<QueueId>>,
    want_page_in: RefCell<Vec<QueueId>>,
    /// A storage alarm is raised (a log failed): publishers are told.
    pub alarm: RefCell<Option<String>>,
    /// Metadata request tickets handed out and done (coordinator), and the
    /// wake-up for the next turn.
    meta_next: Cell<u64>,
    meta_done: Cell<u64>,
    meta_turn: Notify,
    /// The last persisted message's properties and their encoding.
    props_cache: RefCell<Option<EncodedProps>>,
}

/// Properties shared by many messages (one `Arc`) and their record encoding.
type EncodedProps = (
    std::sync::Arc<ringmq_protocol::Properties>,
    std::rc::Rc<Vec<u8>>,
);

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
            log: RefCell::new(None),
            meta_store: RefCell::new(None),
            durable_waiters: RefCell::default(),
            resident: Cell::new(0),
            paging: RefCell::default(),
            want_page_in: RefCell::default(),
            alarm: RefCell::new(None),
            meta_next: Cell::new(0),
            meta_done: Cell::new(0),
            meta_turn: Notify::new(),
            props_cache: RefCell::new(None),
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
            CallResp::Refused(ringmq_protocol::Refusal::new(
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
        match msg {
            ShardMsg::Enqueue {
                queue,
                msg,
                confirm,
            } => {
                let done = self.with_queue(queue, now, |q, sink| {
                    (q.publish(msg, now, sink), sink.last_loc)
                });
                if let Some(c) = confirm {
                    let to = Shard::shard_of(c.session);
                    match done {
                        Some((Accepted::Yes, Some((loc, id)))) => {
                            self.confirm_when_durable(loc, c, queue, id)
                        }
                        Some((Accepted::Rejected, _)) => self.post(
                            to,
                            ShardMsg::Confirmed {
                                confirm: c,
                                nack: true,
                            },
                        ),
                        _ => self.post(
                            to,
                            ShardMsg::Confirmed {
                                confirm: c,
                                nack: false,
                            },
                        ),
                    }
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
            ShardMsg::Apply(op) => {
                self.apply_meta(&op, now);
            }
            ShardMsg::Alarm { reason } => {
                if self.alarm.borrow().is_none() {
                    error!(reason = %reason, "storage alarm: publishers are blocked");
                    *self.alarm.borrow_mut() = Some(reason.clone());
                    let sessions: Vec<Rc<Session>> =
                        self.sessions.borrow().values().cloned().collect();
                    for s in sessions {
                        s.blocked(&reason);
                        self.mark_dirty(&s);
                    }
                }
            }
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
        use ringmq_protocol::Refusal;
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
            } => {
                let resident = self.queues.borrow().get(&queue).map(Queue::head_resident);
                if resident == Some(false) {
                    // The head message is only in the log: read it first.
                    let me = self.clone();
                    glommio::spawn_local(async move {
                        me.page_in(queue).await;
                        let now = now_ms();
                        let resp = me.get(queue, session, no_ack, now);
                        me.reply(from, call, resp);
                        me.flush_dirty();
                    })
                    .detach();
                    return;
                }
                self.get(queue, session, no_ack, now)
            }
            CallReq::Purge { queue } => self
                .with_queue(queue, now, |q, sink| CallResp::Count(q.purge(sink) as u32))
                .unwrap_or(CallResp::Count(0)),
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

    fn get(&self, queue: QueueId, session: SessionId, no_ack: bool, now: u64) -> CallResp {
        self.with_queue(queue, now, |q, sink| {
            CallResp::Got(
                q.get(session, no_ack, now, sink)
                    .map(|(qm, remaining)| GotMessage {
                        id: qm.id,
                        redelivered: qm.redelivered,
                        remaining: remaining as u32,
                        msg: qm.msg,
                    }),
            )
        })
        .unwrap_or_else(|| {
            CallResp::Refused(ringmq_protocol::Refusal::new(
                ringmq_protocol::ErrorCode::NotFound,
                "queue was deleted",
            ))
        })
    }

    /// Applies a metadata op to this shard's replica, creating or deleting
    /// the queue state it owns. Returns the messages deleted with a queue.
    pub(crate) fn apply_meta(&self, op: &MetaOp, now: u64) -> Option<u32> {
        let mut deleted = None;
        if let MetaOp::DeleteQueue { id, .. } = op {
            let removed = self.queues.borrow_mut().remove(id);
            if let Some(mut q) = removed {
                let vhost = q.vhost.clone();
                let mut sink = ShardSink::new(self, &vhost);
                sink.bulk_delete = true;
                let (n, consumers) = q.delete(&mut sink);
                if let Some(log) = self.log() {
                    if let Err(e) = log.append(&Record::QueueDeleted { queue: id.0 }) {
                        warn!(error = %e, "cannot record a queue deletion");
                    }
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
                        // Its deadline stays in the past until the
                        // coordinator deletes it: do not look again (this
                        // loop would spin and starve the shard).
                        self.scheduled.borrow_mut().remove(&id);
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
            // Last durable point: everything appended is on disk.
            if let Some(log) = me.log() {
                log.sync_all().await;
            }
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
        self.log.borrow().is_some()
    }

    /// The shard's log, if it persists.
    pub fn log(&self) -> Option<Rc<Log>> {
        self.log.borrow().clone()
    }

    /// Installs the log (at start, after recovery).
    pub fn set_log(&self, log: Rc<Log>) {
        *self.log.borrow_mut() = Some(log);
    }

    /// Installs the metadata store (coordinator, at start).
    pub fn set_meta_store(&self, store: Rc<MetaStore>) {
        *self.meta_store.borrow_mut() = Some(store);
    }

    /// Puts recovered messages into the queues this shard owns; records
    /// of queues that no longer exist are marked deleted.
    pub fn restore(&self, log: &Rc<Log>, recovered: crate::log::recovery::Recovered) {
        let mut resident = 0u64;
        let mut restored = 0usize;
        for (qid, msgs) in recovered.queues {
            let mut queues = self.queues.borrow_mut();
            let Some(q) = queues.get_mut(&QueueId(qid)) else {
                for m in msgs.values() {
                    log.release(m.loc);
                }
                if let Err(e) = log.append(&Record::QueueDeleted { queue: qid }) {
                    warn!(error = %e, "cannot record a vanished queue");
                }
                continue;
            };
            restored += msgs.len();
            let entries: Vec<QueuedMsg> = msgs
                .into_iter()
                .map(|(id, m)| {
                    let props = match ringmq_protocol::Properties::from_flatbuffer(&m.props) {
                        Ok(p) if !p.is_empty() => Some(std::sync::Arc::new(p)),
                        Ok(_) => None,
                        Err(e) => {
                            warn!(queue = qid, msg = id, error = %e, "recovered properties do not decode; dropped");
                            None
                        }
                    };
                    if m.body.is_some() {
                        resident += u64::from(m.size);
                    }
                    QueuedMsg {
                        id,
                        msg: Message {
                            exchange: m.exchange.as_str().into(),
                            routing_key: m.routing_key.as_str().into(),
                            props,
                            body: m.body.clone().unwrap_or_default(),
                            publisher: 0,
                        },
                        redelivered: m.redelivered,
                        expires_at: (m.expires_at > 0).then_some(m.expires_at),
                        loc: Some(m.loc),
                        resident: m.body.is_some(),
                        size: m.size,
                    }
                })
                .collect();
            q.restore(entries);
        }
        self.resident.set(resident);
        if restored > 0 {
            tracing::info!(
                shard = self.id,
                messages = restored,
                "queues restored from the log"
            );
        }
    }

    /// Sends the confirm for a record once the log has committed it.
    fn confirm_when_durable(&self, loc: LogLoc, c: ConfirmRef, queue: QueueId, id: u64) {
        let end = (loc.seq, loc.offset + u64::from(loc.len));
        let committed = self.log().map(|l| l.committed());
        if committed.is_some_and(|p| p >= end) {
            self.post(
                Shard::shard_of(c.session),
                ShardMsg::Confirmed {
                    confirm: c,
                    nack: false,
                },
            );
        } else {
            self.durable_waiters
                .borrow_mut()
                .push_back((end, c, queue, id));
        }
    }

    /// The log committed up to `pos` (or failed): send the confirms.
    pub fn on_commit(self: &Rc<Self>, result: Result<Pos, LogError>) {
        match result {
            Ok(pos) => {
                let mut waiters = self.durable_waiters.borrow_mut();
                while waiters.front().is_some_and(|(end, ..)| *end <= pos) {
                    if let Some((_, c, ..)) = waiters.pop_front() {
                        self.post(
                            Shard::shard_of(c.session),
                            ShardMsg::Confirmed {
                                confirm: c,
                                nack: false,
                            },
                        );
                    }
                }
            }
            Err(e) => {
                let waiting = std::mem::take(&mut *self.durable_waiters.borrow_mut());
                for (_, c, queue, id) in waiting {
                    // Not durable: the publisher is told, and the message
                    // leaves the queue so a republish does not duplicate it.
                    if let Some(q) = self.queues.borrow_mut().get_mut(&queue) {
                        q.discard(id);
                    }
                    self.post(
                        Shard::shard_of(c.session),
                        ShardMsg::Confirmed {
                            confirm: c,
                            nack: true,
                        },
                    );
                }
                let reason = format!("disk failure on shard {}: {e}", self.id);
                for to in 0..self.count {
                    self.post(
                        to,
                        ShardMsg::Alarm {
                            reason: reason.clone(),
                        },
                    );
                }
            }
        }
    }

    /// Deletes the oldest segment once every message in it is settled, and
    /// compacts it (copying its live records forward) once it is mostly
    /// dead, so an old unacked message cannot pin gigabytes.
    pub async fn reclaim_segments(self: Rc<Self>) {
        loop {
            glommio::timer::sleep(Duration::from_millis(200)).await;
            if self.is_stopping() {
                return;
            }
            let Some(log) = self.log() else { return };
            while let Some((seq, empty)) = log.reclaimable() {
                if !empty {
                    self.compact(&log, seq).await;
                    if log.reclaimable() != Some((seq, true)) {
                        break;
                    }
                }
                // Settle records in this segment must not vanish before the
                // records that make them unnecessary are durable.
                if let Err(e) = log.delete_segment(seq).await {
                    warn!(error = %e, seq, "cannot delete a segment");
                    break;
                }
            }
        }
    }

    /// Copies the live records of segment `seq` into the active segment.
    async fn compact(self: &Rc<Self>, log: &Rc<Log>, seq: u32) {
        let live: Vec<(QueueId, crate::queue::Persisted)> = self
            .queues
            .borrow()
            .iter()
            .map(|(id, q)| (*id, q.persisted_in(seq)))
            .filter(|(_, v)| !v.is_empty())
            .collect();
        let mut moved = 0u64;
        for (qid, msgs) in live {
            for (msg_id, from, delivered) in msgs {
                let bytes = match log.read(from).await {
                    Ok(b) => b,
                    Err(e) => {
                        warn!(error = %e, "compaction read failed");
                        return;
                    }
                };
                let Ok((rec, _)) = Record::decode(&bytes) else {
                    warn!(seq, "compaction: record does not decode");
                    return;
                };
                // The message may have been settled while we read.
                let still = self.queues.borrow().get(&qid).is_some_and(|q| {
                    q.persisted_in(seq)
                        .iter()
                        .any(|(id, l, _)| *id == msg_id && *l == from)
                });
                if !still {
                    continue;
                }
                let Ok(to) = log.append(&rec) else { return };
                if delivered {
                    let _ = log.append(&Record::Delivered {
                        queue: qid.0,
                        id: msg_id,
                    });
                }
                let relocated = self
                    .queues
                    .borrow_mut()
                    .get_mut(&qid)
                    .is_some_and(|q| q.relocate(msg_id, from, to));
                if relocated {
                    log.release(from);
                    moved += 1;
                } else {
                    // Settled meanwhile: the copy is dead too.
                    let _ = log.append(&Record::Settle {
                        queue: qid.0,
                        id: msg_id,
                    });
                    log.release(to);
                }
            }
        }
        // The copies must be durable before the old segment goes.
        log.sync_all().await;
        tracing::info!(shard = self.id, seq, moved, "segment compacted");
    }

    /// Starts page-in tasks for queues whose head is not in memory.
    fn start_page_ins(self: &Rc<Self>) {
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
    /// then dispatches.
    pub(crate) async fn page_in(self: &Rc<Self>, id: QueueId) {
        const BATCH: usize = 256;
        let Some(log) = self.log() else { return };
        loop {
            let wanted = match self.queues.borrow().get(&id) {
                Some(q) => q.paged_head(BATCH),
                None => return,
            };
            if wanted.is_empty() {
                break;
            }
            for (msg_id, loc) in wanted {
                let bytes = match log.read(loc).await {
                    Ok(bytes) => bytes,
                    Err(e) => {
                        error!(queue = %id, error = %e, "page-in failed");
                        return;
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
                break;
            }
        }
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
    /// The record and id of the last message persisted (for its confirm).
    last_loc: Option<(LogLoc, u64)>,
    /// A queue's head needs paging in.
    page_in: bool,
    /// Deleting a whole queue: one QueueDeleted record instead of a
    /// settle per message.
    bulk_delete: bool,
}

impl<'a> ShardSink<'a> {
    fn new(shard: &'a Shard, vhost: &'a str) -> ShardSink<'a> {
        ShardSink {
            shard,
            vhost,
            last_loc: None,
            page_in: false,
            bulk_delete: false,
        }
    }
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

    fn settled(&mut self, queue: QueueId, qm: &QueuedMsg) {
        let Some(loc) = qm.loc else { return };
        if qm.resident {
            self.shard
                .resident
                .set(self.shard.resident.get().saturating_sub(u64::from(qm.size)));
        }
        let Some(log) = self.shard.log() else { return };
        if !self.bulk_delete {
            if let Err(e) = log.append(&Record::Settle {
                queue: queue.0,
                id: qm.id,
            }) {
                debug!(error = %e, "settlement not recorded");
            }
        }
        log.release(loc);
    }

    fn persist(&mut self, queue: &QueueDef, qm: &mut QueuedMsg) -> bool {
        self.last_loc = None;
        if !(queue.durable && qm.msg.is_persistent()) {
            return true;
        }
        let Some(log) = self.shard.log() else {
            return true;
        };
        // Messages of one dense publish share their properties: encode once.
        let props = match &qm.msg.props {
            None => std::rc::Rc::new(Vec::new()),
            Some(p) => {
                let mut cache = self.shard.props_cache.borrow_mut();
                match &*cache {
                    Some((cached, bytes)) if std::sync::Arc::ptr_eq(cached, p) => bytes.clone(),
                    _ => {
                        let bytes = std::rc::Rc::new(p.to_flatbuffer());
                        *cache = Some((p.clone(), bytes.clone()));
                        bytes
                    }
                }
            }
        };
        let rec = Record::Enqueue {
            queue: queue.id.0,
            id: qm.id,
            expires_at: qm.expires_at.unwrap_or(0),
            exchange: qm.msg.exchange.as_str(),
            routing_key: qm.msg.routing_key.as_str(),
            props: &props[..],
            body: &qm.msg.body,
        };
        match log.append(&rec) {
            Ok(loc) => {
                qm.loc = Some(loc);
                self.last_loc = Some((loc, qm.id));
                let budget = self.shard.config.storage.memory_budget_bytes;
                let size = u64::from(qm.size);
                if self.shard.resident.get() + size > budget {
                    qm.msg.body = bytes::Bytes::new();
                    qm.resident = false;
                } else {
                    self.shard.resident.set(self.shard.resident.get() + size);
                }
                // Keep only the message's own bytes, not the frame it came in.
                qm.msg.detach();
                true
            }
            Err(e) => {
                debug!(error = %e, "persistent message refused");
                false
            }
        }
    }

    fn delivered(&mut self, queue: QueueId, qm: &QueuedMsg) {
        if qm.loc.is_none() {
            return;
        }
        if let Some(log) = self.shard.log() {
            let _ = log.append(&Record::Delivered {
                queue: queue.0,
                id: qm.id,
            });
        }
    }

    fn page_in(&mut self, _queue: QueueId) {
        self.page_in = true;
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
