//! What a queue reports to the management API: its counters (plain adds on
//! its own paths) and gauges, the ready side kept as messages come and go
//! (`count_ready`), so reading them walks only the unacked deliveries.

use ringmq_mgmt::view::{MessageCounters, QueueRow};

use super::{Queue, QueuedMsg};

/// Counts one delivery of `qm` in a queue's counters (`get`: a
/// `basic.get` answer). A queue's counters are monotonic from its creation
/// (or recovery); it fills the delivery, get, redelivery, ack and publish
/// fields, the others belong to publishers.
pub fn taken(c: &mut MessageCounters, qm: &QueuedMsg, no_ack: bool, get: bool) {
    let n = match (get, no_ack) {
        (false, false) => &mut c.delivered,
        (false, true) => &mut c.delivered_no_ack,
        (true, false) => &mut c.got,
        (true, true) => &mut c.got_no_ack,
    };
    *n += 1;
    if qm.redelivered() {
        c.redelivered += 1;
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
        r.counters = self.counters;
        r.idle_since_ms = self.last_used;
        r.latency = self.latency.snapshot();
    }
}
