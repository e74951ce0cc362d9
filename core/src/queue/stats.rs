//! What a queue reports to the management API: its counters (plain adds on
//! its own paths) and gauges computed when asked. Reading walks the
//! unacked messages and the ready ones for the byte counts, which costs
//! nothing until somebody asks.

use ringmq_mgmt::view::{MessageCounters, QueueRow};

use super::{Queue, QueuedMsg};

/// Monotonic counts of one queue since it was created (or recovered).
#[derive(Debug, Default, Clone, Copy)]
pub struct QueueCounters {
    /// Messages accepted into the queue.
    pub published: u64,
    /// Deliveries to consumers that must ack.
    pub delivered: u64,
    /// Deliveries to consumers with automatic ack.
    pub delivered_no_ack: u64,
    /// `basic.get` answers that must be acked.
    pub got: u64,
    /// `basic.get` answers with automatic ack.
    pub got_no_ack: u64,
    /// Deliveries and gets of messages delivered before.
    pub redelivered: u64,
    /// Acks.
    pub acked: u64,
}

impl QueueCounters {
    /// Counts one delivery (`get`: a `basic.get` answer).
    pub fn taken(&mut self, qm: &QueuedMsg, no_ack: bool, get: bool) {
        let c = match (get, no_ack) {
            (false, false) => &mut self.delivered,
            (false, true) => &mut self.delivered_no_ack,
            (true, false) => &mut self.got,
            (true, true) => &mut self.got_no_ack,
        };
        *c += 1;
        if qm.redelivered() {
            self.redelivered += 1;
        }
    }
}

impl Queue {
    /// Counts a ready message in (`added`) or out of the resident and
    /// durable totals.
    pub(super) fn count_ready(&mut self, qm: &QueuedMsg, added: bool) {
        let bytes = if qm.resident { u64::from(qm.size) } else { 0 };
        let durable = u64::from(qm.durable);
        if added {
            self.ready_resident_bytes += bytes;
            self.ready_durable += durable;
        } else {
            self.ready_resident_bytes = self.ready_resident_bytes.saturating_sub(bytes);
            self.ready_durable = self.ready_durable.saturating_sub(durable);
        }
    }

    /// Fills the gauges and counters of `r`: O(1) in the ready messages,
    /// O(n) in the unacked ones (bounded by the consumers' prefetch).
    pub fn fill_row(&self, r: &mut QueueRow) {
        r.ready = self.ready_count as u64;
        r.unacked = self.unacked.len() as u64;
        r.ready_bytes = self.ready_bytes;
        r.ram_bytes = self.ready_resident_bytes;
        r.persistent = self.ready_durable;
        r.unacked_bytes = 0;
        for u in self.unacked.values() {
            r.unacked_bytes += u64::from(u.qm.size);
            r.persistent += u64::from(u.qm.durable);
        }
        r.consumers = self.consumers.len() as u64;
        r.consumer_utilisation = (!self.consumers.is_empty()).then(|| {
            if self.ready_count == 0 {
                1.0
            } else {
                let able = self.consumers.iter().filter(|c| c.ready()).count();
                able as f64 / self.consumers.len() as f64
            }
        });
        let c = &self.counters;
        r.counters = MessageCounters {
            published: c.published,
            delivered: c.delivered,
            delivered_no_ack: c.delivered_no_ack,
            got: c.got,
            got_no_ack: c.got_no_ack,
            redelivered: c.redelivered,
            acked: c.acked,
            ..MessageCounters::default()
        };
        r.idle_since_ms = self.last_used;
        r.latency = self.latency.snapshot();
    }
}
