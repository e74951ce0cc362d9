//! The memory alarm, as RabbitMQ's `vm_memory_high_watermark`: every tick
//! each shard adds up what it holds (messages counted where they live,
//! queue entries, connection buffers), publishes it in the shared
//! [`Resources`](crate::resources::Resources), and compares the sum over
//! all shards with the watermark. Above it, this shard's publishing
//! connections are blocked (told, and no longer read); below it again
//! they are told and read again.

use std::rc::Rc;
use std::time::Duration;

use tracing::{info, warn};

use super::Shard;
use crate::memory;
use crate::queue::QueuedMsg;

/// How often a shard publishes its memory use and looks at the total.
pub const MEMORY_TICK: Duration = Duration::from_millis(50);

/// Memory ticks between two looks at the free disk space (one second).
const DISK_EVERY: u32 = 20;

/// The reason publishers are given, in RabbitMQ's words.
pub const LOW_ON_MEMORY: &str = "low on memory";

/// Bytes paged out per tick at most, so the log's write buffer stays
/// small.
const PAGE_OUT_PER_TICK: u64 = 16 << 20;

/// Ready messages each queue keeps in memory at its head (delivered next).
const KEEP_AT_HEAD: usize = 64;

/// Bytes a queue entry costs: the entry, and the hash map slot of an
/// unacknowledged one.
const ENTRY: usize = std::mem::size_of::<QueuedMsg>();
const UNACKED_ENTRY: usize = ENTRY + 32;

impl Shard {
    /// Bytes this shard holds, by its own count.
    pub fn memory_held(&self) -> i64 {
        let entries: usize = self
            .queues
            .borrow()
            .values()
            .map(|q| q.len() * ENTRY + q.unacked_len() * UNACKED_ENTRY)
            .sum();
        let buffers: usize = self.sessions.borrow().values().map(|s| s.buffered()).sum();
        let streams = self.streams_memory();
        memory::messages_here() + (entries + buffers + streams) as i64
    }

    /// True while the memory alarm is raised.
    pub fn memory_alarm(&self) -> bool {
        self.memory_alarm.get()
    }

    /// Publishes this shard's memory use and follows the alarm, every
    /// [`MEMORY_TICK`], until the shard stops.
    /// The free disk space is looked at every [`DISK_EVERY`] ticks (and at
    /// once after a failed write).
    pub async fn run_memory_monitor(self: Rc<Self>) {
        self.check_disk_free();
        let mut ticks = 0u32;
        loop {
            let tick = glommio::timer::sleep(MEMORY_TICK);
            futures_lite::future::or(tick, self.stopping.wait()).await;
            if self.stopping.is_set() {
                return;
            }
            self.memory_tick();
            ticks += 1;
            if ticks.is_multiple_of(DISK_EVERY) {
                self.check_disk_free();
            }
        }
    }

    fn memory_tick(&self) {
        self.relieve_memory();
        self.resources.publish_memory(self.id, self.memory_held());
        let total = self.resources.memory_held();
        let high = total > self.resources.watermark;
        if high == self.memory_alarm.get() {
            return;
        }
        self.memory_alarm.set(high);
        let mib = |b: u64| b >> 20;
        if high {
            warn!(
                shard = self.id,
                held_mib = mib(total),
                watermark_mib = mib(self.resources.watermark),
                "memory alarm: publishers are blocked"
            );
        } else {
            info!(
                shard = self.id,
                held_mib = mib(total),
                "memory alarm cleared: publishers may go on"
            );
        }
        self.alarms_changed();
    }

    /// Pages out ready messages while this shard holds more message bytes
    /// than its budget, and down to a quarter of it while the alarm is
    /// raised, so that a backlog without consumers does not keep the alarm
    /// up. At most [`PAGE_OUT_PER_TICK`] a tick.
    fn relieve_memory(&self) {
        let budget = self.resources.page_out_above;
        let target = if self.memory_alarm.get() {
            budget / 4
        } else {
            budget
        };
        let resident = self.resident.get();
        if resident <= target {
            return;
        }
        let mut want = (resident - target).min(PAGE_OUT_PER_TICK);
        let now = super::now_ms();
        let ids: Vec<_> = self.queues.borrow().keys().copied().collect();
        for id in ids {
            if want == 0 {
                break;
            }
            let freed = self
                .with_queue(id, now, |q, sink| q.page_out(KEEP_AT_HEAD, want, sink))
                .unwrap_or(0);
            want = want.saturating_sub(freed);
        }
    }
}
