//! A shard: one per core, the sole owner of its queues and sessions.
//!
//! State is `!Send` (`Rc`, `RefCell`); other shards reach it only through
//! [`mesh::ShardMsg`] batches. Work for the local shard goes through its own
//! outbox too, so a handler never re-enters another (a publish that routes
//! to a local queue is enqueued after the session's read is processed, not
//! in the middle of it).
//!
//! | File | Concern |
//! |---|---|
//! | `clients.rs` | The [`clients::Client`] trait sessions implement, and the registry of live sessions |
//! | `outbox.rs` | Posting messages to shards, calls and their replies |
//! | `dispatch.rs` | One handler per message kind, and calls to a queue's owner |
//! | `sink.rs` | A queue's effects carried out here: deliveries, dead-letters, log records |
//! | `storage.rs` | Recovery into queues, confirms after commit, the storage alarm, segment reclaim |
//! | `paging.rs` | Reading paged-out bodies back from the log |
//! | `streams.rs` | Streams: their messages, reads from the log, commits and retention |
//! | `memory.rs` | The memory alarm: what the shard holds against the high watermark |
//! | `alarms.rs` | Alarms that block publishers: memory, free disk space, a failing log |
//! | `timers.rs` | TTL and `x-expires` deadlines |
//! | `coordinator.rs` | Shard 0: metadata changes, checked, stored and replicated |
//! | `mesh.rs`, `placement.rs` | What shards say to each other; which shard owns a queue |

mod access;
pub mod admin;
pub mod alarms;
pub mod clients;
mod coordinator;
pub use coordinator::server_named_queue;
pub mod counters;
mod dispatch;
pub mod flow;
pub mod latency;
pub mod memory;
pub mod mesh;
mod outbox;
mod paging;
pub mod placement;
mod sink;
mod storage;
mod streams;
mod timers;

use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use glommio::channels::channel_mesh::Senders;
use ringmq_rt::local::{Gate, Latch, Notify, Reply};
use rustc_hash::{FxHashMap, FxHashSet};

use self::clients::Client;
use self::mesh::{CallReq, CallResp, ConfirmRef, ShardMsg};
use crate::config::Config;
use crate::exchange::QueueId;
use crate::log::meta_store::MetaStore;
use crate::log::{Log, Pos};
use crate::meta::{Meta, MetaOp, SessionId};
use crate::queue::Queue;
use crate::resources::Resources;
use ringmq_mgmt::view::AccessChange;

/// Milliseconds since the Unix epoch: the clock of queues (TTL, x-death).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A confirm waiting for the log to commit its record.
struct DurableWaiter {
    /// Where the record ends.
    end: Pos,
    confirm: ConfirmRef,
    /// The message's queue and id in it.
    queue: QueueId,
    id: u64,
    /// When it was published, for the queue's confirm latency.
    published_us: u64,
}

/// Messages waiting for one destination shard.
#[derive(Default)]
struct Outbox {
    items: RefCell<Vec<ShardMsg>>,
    /// Set when items go from none to some.
    ready: Notify,
    /// Set when the sender task has taken the items.
    room: Notify,
}

/// A paged-out message to dead-letter: its queue, vhost, entry and why.
type StoredDeath = (
    crate::meta::QueueDef,
    String,
    crate::queue::QueuedMsg,
    crate::message::DeathReason,
);

/// Properties shared by many messages (one `Arc`) and their record encoding.
type EncodedProps = (std::sync::Arc<ringmq_protocol::Properties>, Rc<Vec<u8>>);

/// One shard.
pub struct Shard {
    /// This shard's index (its mesh peer id).
    pub id: u16,
    /// Number of shards.
    pub count: u16,
    /// Configuration.
    pub config: Rc<Config>,
    /// Connection counts shared by every shard.
    pub resources: Arc<Resources>,
    /// Replicated metadata.
    pub meta: RefCell<Meta>,
    queues: RefCell<FxHashMap<QueueId, Queue>>,
    sessions: RefCell<FxHashMap<SessionId, Rc<dyn Client>>>,
    /// Sessions with output to flush after the current batch.
    dirty: RefCell<Vec<Rc<dyn Client>>>,
    outboxes: Vec<Outbox>,
    calls: RefCell<FxHashMap<u64, Reply<CallResp>>>,
    next_call: Cell<u64>,
    next_session: Cell<u64>,
    next_consumer: Cell<u64>,
    next_queue: Cell<u64>,
    /// Queue ids below this are reserved in the metadata store by this run
    /// (coordinator only; 0 until its first durable queue).
    queue_ids_reserved: Cell<u64>,
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
    meta_store: RefCell<Option<Rc<MetaStore>>>,
    /// Confirms waiting for the log to commit up to their record.
    durable_waiters: RefCell<VecDeque<DurableWaiter>>,
    /// Bytes of persistent bodies in memory (against the memory budget).
    resident: Cell<u64>,
    /// Queues with a page-in task running, and queues that want one.
    paging: RefCell<FxHashSet<QueueId>>,
    want_page_in: RefCell<Vec<QueueId>>,
    /// Paged-out messages to dead-letter once read back from the log, in
    /// order, by one task at a time.
    want_dead_letter: RefCell<VecDeque<StoredDeath>>,
    dead_lettering: Cell<bool>,
    /// Raised alarms other than memory (see `alarms.rs`).
    alarms: RefCell<alarms::StorageAlarms>,
    /// The memory alarm is raised (see `memory.rs`).
    memory_alarm: Cell<bool>,
    /// Wakes the connections waiting for the memory alarm to clear.
    pub alarm_changed: Notify,
    /// Queues in flow on any shard (`flow.rs`).
    flowing: RefCell<FxHashSet<QueueId>>,
    /// Wakes the connections waiting for a queue to leave flow.
    pub flow_changed: Notify,
    /// Metadata request tickets handed out and done (coordinator), and the
    /// wake-up for the next turn.
    meta_next: Cell<u64>,
    meta_done: Cell<u64>,
    meta_turn: Notify,
    /// The last persisted message's properties and their encoding.
    props_cache: RefCell<Option<EncodedProps>>,
    /// The streams this shard owns (`x-queue-type: stream`, `streams.rs`).
    streams: RefCell<FxHashMap<QueueId, crate::stream::Stream>>,
    /// Message events of this shard's sessions, for the management API.
    pub counters: counters::Counters,
}

impl Shard {
    /// A shard with empty state.
    pub fn new(
        id: u16,
        count: u16,
        config: Rc<Config>,
        resources: Arc<Resources>,
        senders: Option<Senders<Vec<ShardMsg>>>,
    ) -> Shard {
        // Vhosts, users and the rest come as ops from the metadata store.
        let meta = Meta::default();
        let base = (id as u64) << 48;
        Shard {
            id,
            count,
            config,
            resources,
            meta: RefCell::new(meta),
            queues: RefCell::default(),
            sessions: RefCell::default(),
            dirty: RefCell::default(),
            outboxes: (0..count).map(|_| Outbox::default()).collect(),
            calls: RefCell::default(),
            next_call: Cell::new(1),
            next_session: Cell::new(base + 1),
            next_consumer: Cell::new(base + 1),
            next_queue: Cell::new(crate::meta::first_queue_id(now_ms())),
            queue_ids_reserved: Cell::new(0),
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
            want_dead_letter: RefCell::default(),
            dead_lettering: Cell::new(false),
            alarms: RefCell::new(alarms::StorageAlarms::new()),
            memory_alarm: Cell::new(false),
            alarm_changed: Notify::new(),
            flowing: RefCell::default(),
            flow_changed: Notify::new(),
            meta_next: Cell::new(0),
            meta_done: Cell::new(0),
            meta_turn: Notify::new(),
            props_cache: RefCell::new(None),
            streams: RefCell::default(),
            counters: counters::Counters::default(),
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

    /// A new queue id (coordinator only).
    fn new_queue_id(&self) -> QueueId {
        let id = self.next_queue.get();
        self.next_queue.set(id + 1);
        QueueId(id)
    }

    /// Number of queues this shard owns.
    pub fn owned_queues(&self) -> usize {
        self.queues.borrow().len()
    }

    fn drop_consumer(self: &Rc<Self>, queue: QueueId, consumer: u64, now: u64) {
        let auto = self.with_queue(queue, now, |q, sink| q.remove_consumer(consumer, now, sink));
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

    /// Applies a metadata op to this shard's replica, creating or deleting
    /// the queue state it owns. Returns the messages deleted with a queue.
    pub(crate) fn apply_meta(&self, op: &MetaOp, now: u64) -> Option<u32> {
        let deleted = match op {
            MetaOp::DeleteQueue { id, .. } => self
                .delete_owned_queue(*id)
                .or_else(|| self.delete_owned_stream(*id)),
            MetaOp::Access(change) => {
                self.before_access_change(change);
                None
            }
            _ => None,
        };
        self.meta.borrow_mut().apply(op);
        if let MetaOp::Access(change) = op {
            match change {
                AccessChange::SetPolicy { row, .. } => self.after_policy_change(&row.vhost, now),
                AccessChange::ClearPolicy { vhost, .. } => self.after_policy_change(vhost, now),
                _ => {}
            }
            self.publish_access();
        }
        if let MetaOp::DeclareQueue { vhost, def } = op {
            // With the effective arguments policies give it.
            let def = &self
                .meta
                .borrow()
                .vhost(vhost)
                .and_then(|v| v.queue_by_id(def.id))
                .cloned()
                .unwrap_or_else(|| def.clone());
            if def.shard == self.id && !self.create_stream(vhost, def) {
                let mut q = Queue::new(def.clone(), vhost, now);
                q.set_flow_backlog(self.config.limits.queue_flow_backlog);
                let deadline = q.next_deadline();
                self.queues.borrow_mut().insert(def.id, q);
                if let Some(t) = deadline {
                    self.schedule(def.id, t);
                }
            }
        }
        deleted
    }

    /// True once shutdown began.
    pub fn is_stopping(&self) -> bool {
        self.stopping.is_set()
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
                log.close().await;
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

    /// A shard has closed its sessions; once all have, every shard exits.
    fn shutdown_done(&self) {
        let done = self.shutdown_done.get() + 1;
        self.shutdown_done.set(done);
        if done == self.count {
            for to in 0..self.count {
                self.post(to, ShardMsg::Exit);
            }
        }
    }
}

impl Shard {
    /// Registers a session once its connection is open.
    pub fn add_session(&self, s: Rc<dyn Client>) {
        self.sessions.borrow_mut().insert(s.id(), s);
    }

    /// Forgets a session.
    pub fn remove_session(&self, id: SessionId) {
        self.sessions.borrow_mut().remove(&id);
    }

    fn session(&self, id: SessionId) -> Option<Rc<dyn Client>> {
        self.sessions.borrow().get(&id).cloned()
    }

    /// Every live session.
    fn all_sessions(&self) -> Vec<Rc<dyn Client>> {
        self.sessions.borrow().values().cloned().collect()
    }

    /// Marks a session as having output to flush at the end of the batch.
    fn mark_dirty(&self, s: &Rc<dyn Client>) {
        self.dirty.borrow_mut().push(s.clone());
    }

    /// Flushes sessions that got output while handling a batch.
    pub fn flush_dirty(&self) {
        let dirty = std::mem::take(&mut *self.dirty.borrow_mut());
        for s in dirty {
            s.flush();
        }
    }
}
