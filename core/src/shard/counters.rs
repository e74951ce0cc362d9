//! What a shard counts for the management API: plain integers bumped on
//! the sessions' paths (one `Cell` add each), read and summed over the
//! shards only when somebody asks. Monotonic from the start of the process,
//! as RabbitMQ's `message_stats` are; rates are the reader's business.

use std::cell::Cell;

/// Message events of the sessions living on one shard.
#[derive(Debug, Default)]
pub struct Counters {
    /// Messages published (routed or not).
    pub published: Cell<u64>,
    /// Publisher confirms sent (acks and nacks).
    pub confirmed: Cell<u64>,
    /// Mandatory messages returned as unroutable.
    pub returned_unroutable: Cell<u64>,
    /// Messages that matched no queue and were dropped.
    pub dropped_unroutable: Cell<u64>,
    /// Deliveries to consumers that must ack.
    pub delivered: Cell<u64>,
    /// Deliveries to consumers with automatic ack.
    pub delivered_no_ack: Cell<u64>,
    /// `basic.get` answers that must be acked.
    pub got: Cell<u64>,
    /// `basic.get` answers with automatic ack.
    pub got_no_ack: Cell<u64>,
    /// Deliveries and gets of messages delivered before.
    pub redelivered: Cell<u64>,
    /// Deliveries acked by clients.
    pub acked: Cell<u64>,
    /// Bytes read from client sockets.
    pub bytes_in: Cell<u64>,
    /// Bytes written to client sockets.
    pub bytes_out: Cell<u64>,
}

/// Adds `n` to a counter.
pub fn bump(c: &Cell<u64>, n: u64) {
    c.set(c.get().wrapping_add(n));
}

impl Counters {
    /// The values now, to send to the management thread.
    pub fn snapshot(&self) -> ringmq_mgmt::view::MessageCounters {
        ringmq_mgmt::view::MessageCounters {
            published: self.published.get(),
            confirmed: self.confirmed.get(),
            returned_unroutable: self.returned_unroutable.get(),
            dropped_unroutable: self.dropped_unroutable.get(),
            delivered: self.delivered.get(),
            delivered_no_ack: self.delivered_no_ack.get(),
            got: self.got.get(),
            got_no_ack: self.got_no_ack.get(),
            redelivered: self.redelivered.get(),
            acked: self.acked.get(),
            bytes_in: self.bytes_in.get(),
            bytes_out: self.bytes_out.get(),
        }
    }
}
