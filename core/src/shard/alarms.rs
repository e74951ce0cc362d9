//! Alarms that block publishers, as RabbitMQ's resource alarms do: the
//! memory alarm (see `memory.rs`), the free disk space alarm (RabbitMQ's
//! `disk_free_limit`) and a storage alarm per shard whose log cannot write.
//!
//! While any is raised, connections that publish are told (`Blocked`,
//! `connection.blocked` through the gateway) and are no longer read; when
//! the last clears they are told `Unblocked` and read again. Every shard
//! keeps its own view: it checks free space itself, and a shard whose log
//! fails or recovers tells every shard.

use std::collections::BTreeMap;
use std::path::Path;
use std::rc::Rc;

use tracing::{error, info, warn};

use super::mesh::ShardMsg;
use super::Shard;
use crate::log::{LogEvent, Pos};

/// What raised a storage alarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AlarmSource {
    /// Free space on the data directory's file system is below the limit.
    DiskFree,
    /// This shard's log cannot write or sync.
    Log(u16),
}

/// Raised alarms other than memory, by source.
pub type StorageAlarms = BTreeMap<AlarmSource, String>;

/// The reason publishers are given for the free space alarm (RabbitMQ's
/// words).
pub const LOW_ON_DISK: &str = "low on disk space";

impl Shard {
    /// Why publishers are blocked now, if they are: a storage alarm or the
    /// memory alarm.
    pub fn alarm_reason(&self) -> Option<String> {
        if let Some(reason) = self.alarms.borrow().values().next() {
            return Some(reason.clone());
        }
        self.memory_alarm()
            .then(|| super::memory::LOW_ON_MEMORY.to_owned())
    }

    /// True while any alarm blocks publishers.
    pub fn publishers_blocked(&self) -> bool {
        self.memory_alarm() || !self.alarms.borrow().is_empty()
    }

    /// Raises (`Some(reason)`) or clears (`None`) an alarm on this shard
    /// and tells the sessions when that changes whether they are blocked.
    pub(super) fn set_alarm(&self, source: AlarmSource, reason: Option<String>) {
        let changed = {
            let mut alarms = self.alarms.borrow_mut();
            match reason {
                Some(r) => alarms.insert(source, r).is_none(),
                None => alarms.remove(&source).is_some(),
            }
        };
        if changed {
            self.alarms_changed();
        }
    }

    /// Tells every session what blocks publishing now, wakes the ones
    /// waiting for it to clear.
    pub(super) fn alarms_changed(&self) {
        let reason = self.alarm_reason();
        for s in self.all_sessions() {
            s.alarm(reason.as_deref());
            self.mark_dirty(&s);
        }
        self.alarm_changed.notify();
        self.flush_dirty();
    }

    /// Tells every shard (this one included) about this shard's log.
    fn broadcast_log_alarm(&self, reason: Option<String>) {
        for to in 0..self.count {
            self.post(
                to,
                ShardMsg::Alarm {
                    source: AlarmSource::Log(self.id),
                    reason: reason.clone(),
                },
            );
        }
    }

    /// What the log's commit task reports.
    pub fn on_log_event(self: &Rc<Self>, event: LogEvent) {
        match event {
            LogEvent::Committed(pos) => {
                self.confirm_durable(pos);
                self.streams_committed(pos);
            }
            LogEvent::Failed(e) => {
                self.nack_not_durable();
                self.streams_failed();
                self.check_disk_free();
                self.broadcast_log_alarm(Some(format!("disk failure on shard {}: {e}", self.id)));
            }
            LogEvent::Recovered => self.broadcast_log_alarm(None),
        }
    }

    /// Sends the confirms waiting for records up to `pos`.
    fn confirm_durable(&self, pos: Pos) {
        let mut waiters = self.durable_waiters.borrow_mut();
        let now_us = super::latency::now_us();
        let mut queues = self.queues.try_borrow_mut().ok();
        while waiters.front().is_some_and(|w| w.end <= pos) {
            if let Some(w) = waiters.pop_front() {
                if let Some(q) = queues.as_mut().and_then(|qs| qs.get_mut(&w.queue)) {
                    q.latency.confirm.record(w.published_us, now_us);
                }
                self.confirm(w.confirm, false);
            }
        }
    }

    /// A write or sync failed: every publisher waiting for a confirm is
    /// nacked, and its message leaves its queue (settled, so no copy
    /// survives a restart) unless a consumer already has it.
    fn nack_not_durable(&self) {
        let waiting = std::mem::take(&mut *self.durable_waiters.borrow_mut());
        let now = super::now_ms();
        for w in waiting {
            self.with_queue(w.queue, now, |q, sink| q.discard(w.id, sink));
            self.confirm(w.confirm, true);
        }
    }

    /// Compares the free space of the data directory's file system with
    /// `limits.disk_free_limit`, raising or clearing the alarm.
    pub(super) fn check_disk_free(&self) {
        let limit = self.resources.disk_free_limit;
        if limit == 0 {
            return;
        }
        let dir = &self.config.storage.data_dir;
        let free = match disk_free(dir) {
            Ok(free) => free,
            Err(e) => {
                warn!(shard = self.id, dir = %dir.display(), error = %e, "cannot read the free disk space");
                return;
            }
        };
        let low = free < limit;
        let raised = self.alarms.borrow().contains_key(&AlarmSource::DiskFree);
        if low == raised {
            return;
        }
        let mib = |b: u64| b >> 20;
        if low {
            error!(
                shard = self.id,
                free_mib = mib(free),
                limit_mib = mib(limit),
                "disk alarm: free space below limits.disk_free_limit, publishers are blocked"
            );
        } else {
            info!(
                shard = self.id,
                free_mib = mib(free),
                "disk alarm cleared: publishers may go on"
            );
        }
        self.set_alarm(AlarmSource::DiskFree, low.then(|| LOW_ON_DISK.to_owned()));
    }
}

/// Bytes an unprivileged process may still write on the file system of
/// `dir` (created if missing).
///
/// # Errors
/// The directory cannot be created or its file system queried.
pub fn disk_free(dir: &Path) -> std::io::Result<u64> {
    std::fs::create_dir_all(dir)?;
    let st = rustix::fs::statvfs(dir)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}
