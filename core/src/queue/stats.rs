//! What a queue reports to the management API: its counters (plain adds on
//! its own paths) and gauges computed when asked. Reading walks the
//! unacked messages and the ready ones for the byte counts, which costs
//! nothing until somebody asks.

use ringmq_mgmt::view::MessageCounters;

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

/// A queue's gauges and counters at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct QueueGauges {
    /// Ready messages.
    pub ready: u64,
    /// Unacked deliveries.
    pub unacked: u64,
    /// Body bytes ready.
    pub ready_bytes: u64,
    /// Body bytes unacked.
    pub unacked_bytes: u64,
    /// Body bytes of ready messages in memory.
    pub ram_bytes: u64,
    /// Persistent messages in a durable queue, ready or unacked.
    pub persistent: u64,
    /// Consumers.
    pub consumers: u64,
    /// Fraction of consumers that could take a message now.
    pub consumer_utilisation: Option<f64>,
    /// Counters.
    pub counters: MessageCounters,
    /// Last use, ms on the shard clock.
    pub last_used: u64,
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

    /// Gauges and counters now: O(1) in the ready messages, O(n) in the
    /// unacked ones (bounded by the consumers' prefetch).
    pub fn gauges(&self) -> QueueGauges {
        let mut g = QueueGauges {
            ready: self.ready_count as u64,
            unacked: self.unacked.len() as u64,
            ready_bytes: self.ready_bytes,
            consumers: self.consumers.len() as u64,
            last_used: self.last_used,
            ..QueueGauges::default()
        };
        g.ram_bytes = self.ready_resident_bytes;
        g.persistent = self.ready_durable;
        for u in self.unacked.values() {
            g.unacked_bytes += u64::from(u.qm.size);
            g.persistent += u64::from(u.qm.durable);
        }
        if !self.consumers.is_empty() {
            let able = self.consumers.iter().filter(|c| c.ready()).count();
            g.consumer_utilisation = Some(if self.ready_count == 0 {
                1.0
            } else {
                able as f64 / self.consumers.len() as f64
            });
        }
        let c = &self.counters;
        g.counters = MessageCounters {
            published: c.published,
            delivered: c.delivered,
            delivered_no_ack: c.delivered_no_ack,
            got: c.got,
            got_no_ack: c.got_no_ack,
            redelivered: c.redelivered,
            acked: c.acked,
            ..MessageCounters::default()
        };
        g
    }
}
