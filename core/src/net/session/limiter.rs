//! A channel's shared prefetch limit (`basic.qos` with `global = true`),
//! RabbitMQ's limiter: one bound on the unacknowledged deliveries of all the
//! channel's consumers together. Data and arithmetic only; `qos.rs` posts
//! the permits it decides on.
//!
//! Once a channel has a limiter, each of its consumers is *gated*: its
//! queue needs a permit for every delivery, besides the consumer's own
//! credit (its per-consumer prefetch). A queue asks for permits when it has
//! messages for a consumer that has none (`demanded`); the limiter leases
//! what its room allows to the consumers that asked, oldest first
//! (`grant`), and a queue gives back the permits it cannot use
//! (`returned`). A delivery uses its permit; if acks are required it then
//! counts as unacked until it is settled or requeued (`released`). A
//! no-ack delivery frees its room at once, but gets none while the limit
//! is reached (as in RabbitMQ). `basic.get` is neither limited nor counted.
//!
//! # Invariants
//! - `leased` is the sum of `leases`.
//! - Permits are leased only while `unacked + leased < limit` (or the limit
//!   is 0), so the channel never has more than `limit` consumer deliveries
//!   unacked, unless the limit was lowered below what it already had.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

use crate::exchange::QueueRef;
use crate::queue::ConsumerId;

/// A channel's shared prefetch limit and the permits leased under it.
#[derive(Debug)]
pub(super) struct Limiter {
    /// `prefetch_count` of the last `basic.qos` with `global`; 0: none.
    limit: u16,
    /// Consumer deliveries that need an ack and are not yet settled.
    unacked: u32,
    /// Permits held by queues, not yet used or given back.
    leased: u32,
    /// Those permits, per consumer.
    leases: FxHashMap<ConsumerId, u32>,
    /// Consumers whose queue asked for permits, oldest first.
    waiting: VecDeque<Wanted>,
}

/// A consumer whose queue asked for permits.
#[derive(Debug)]
struct Wanted {
    consumer: ConsumerId,
    queue: QueueRef,
    /// Deliveries its queue could make now.
    want: u32,
}

impl Limiter {
    /// The shared limit (`basic.qos` with `global`).
    pub fn limit(&self) -> u16 {
        self.limit
    }

    /// A limit of `limit` on a channel that already has `unacked` consumer
    /// deliveries awaiting their ack (they count at once, as in RabbitMQ).
    pub fn new(limit: u16, unacked: u32) -> Limiter {
        Limiter {
            limit,
            unacked,
            leased: 0,
            leases: FxHashMap::default(),
            waiting: VecDeque::new(),
        }
    }

    /// A later `basic.qos` with `global`: the new limit applies at once.
    pub fn set_limit(&mut self, limit: u16) {
        self.limit = limit;
    }

    /// A limit is in force (RabbitMQ's `is_active`): not lifted.
    pub fn is_active(&self) -> bool {
        self.limit > 0
    }

    /// Deliveries that may still be leased.
    fn room(&self) -> u32 {
        if self.limit == 0 {
            return u32::MAX;
        }
        u32::from(self.limit).saturating_sub(self.unacked.saturating_add(self.leased))
    }

    /// A delivery to one of the channel's consumers arrived: it used a
    /// leased permit (a delivery sent before the consumer was gated used
    /// none), and counts as unacked if it needs an ack.
    pub fn delivered(&mut self, consumer: ConsumerId, ack_required: bool) {
        self.returned(consumer, 1);
        if ack_required {
            self.unacked += 1;
        }
    }

    /// `n` consumer deliveries were settled or requeued.
    pub fn released(&mut self, n: u32) {
        self.unacked = self.unacked.saturating_sub(n);
    }

    /// A consumer's queue asks for up to `want` permits.
    pub fn demanded(&mut self, consumer: ConsumerId, queue: QueueRef, want: u32) {
        match self.waiting.iter_mut().find(|w| w.consumer == consumer) {
            Some(w) => w.want = want,
            None => self.waiting.push_back(Wanted {
                consumer,
                queue,
                want,
            }),
        }
    }

    /// A consumer's queue gives back permits it could not use.
    pub fn returned(&mut self, consumer: ConsumerId, permits: u32) {
        if let Some(held) = self.leases.get_mut(&consumer) {
            let n = permits.min(*held);
            *held -= n;
            self.leased -= n;
            if *held == 0 {
                self.leases.remove(&consumer);
            }
        }
    }

    /// A consumer is gone (cancelled): its permits died with it at its
    /// queue.
    pub fn forget(&mut self, consumer: ConsumerId) {
        if let Some(held) = self.leases.remove(&consumer) {
            self.leased -= held;
        }
        self.waiting.retain(|w| w.consumer != consumer);
    }

    /// Leases permits to the consumers that asked, oldest first, while
    /// there is room; `lease(queue, consumer, permits)` sends each lease.
    pub fn grant(&mut self, mut lease: impl FnMut(QueueRef, ConsumerId, u32)) {
        loop {
            let room = self.room();
            if room == 0 {
                return;
            }
            let Some(w) = self.waiting.pop_front() else {
                return;
            };
            let n = w.want.min(room);
            if n == 0 {
                continue;
            }
            *self.leases.entry(w.consumer).or_default() += n;
            self.leased += n;
            lease(w.queue, w.consumer, n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::QueueId;

    fn q(n: u64) -> QueueRef {
        QueueRef {
            id: QueueId(n),
            shard: 0,
        }
    }

    fn grants(l: &mut Limiter) -> Vec<(ConsumerId, u32)> {
        let mut out = Vec::new();
        l.grant(|_, c, n| out.push((c, n)));
        out
    }

    #[test]
    fn leases_stay_within_the_limit_oldest_first() {
        let mut l = Limiter::new(3, 0);
        l.demanded(1, q(1), 2);
        l.demanded(2, q(2), 5);
        assert_eq!(grants(&mut l), [(1, 2), (2, 1)]);
        // Full: 3 leased. The queues use them; 2 asks again.
        l.delivered(1, true);
        l.delivered(1, true);
        l.delivered(2, true);
        l.demanded(2, q(2), 4);
        assert!(grants(&mut l).is_empty());
        // An ack frees one delivery's room.
        l.released(1);
        assert_eq!(grants(&mut l), [(2, 1)]);
    }

    #[test]
    fn deliveries_already_unacked_count_at_once() {
        let mut l = Limiter::new(2, 2);
        l.demanded(1, q(1), 1);
        assert!(grants(&mut l).is_empty());
        l.released(2);
        assert_eq!(grants(&mut l), [(1, 1)]);
    }

    #[test]
    fn returned_and_forgotten_permits_free_their_room() {
        let mut l = Limiter::new(2, 0);
        l.demanded(1, q(1), 2);
        assert_eq!(grants(&mut l), [(1, 2)]);
        l.demanded(2, q(2), 1);
        assert!(grants(&mut l).is_empty());
        l.returned(1, 1);
        assert_eq!(grants(&mut l), [(2, 1)]);
        l.demanded(3, q(3), 1);
        l.forget(1);
        assert_eq!(grants(&mut l), [(3, 1)]);
        assert_eq!(l.leased, l.leases.values().sum::<u32>());
    }

    #[test]
    fn no_ack_deliveries_use_permits_but_count_no_further() {
        let mut l = Limiter::new(1, 0);
        l.demanded(1, q(1), 10);
        assert_eq!(grants(&mut l), [(1, 1)]);
        l.delivered(1, false);
        l.demanded(1, q(1), 10);
        assert_eq!(grants(&mut l), [(1, 1)]);
    }

    #[test]
    fn a_delivery_without_a_lease_is_only_counted() {
        let mut l = Limiter::new(2, 0);
        l.delivered(9, true);
        assert_eq!(l.leased, 0);
        l.demanded(1, q(1), 5);
        assert_eq!(grants(&mut l), [(1, 1)]);
    }

    #[test]
    fn limit_zero_is_unbounded_and_changes_apply_at_once() {
        let mut l = Limiter::new(1, 5);
        l.demanded(1, q(1), 7);
        assert!(grants(&mut l).is_empty());
        l.set_limit(0);
        assert_eq!(grants(&mut l), [(1, 7)]);
        l.set_limit(10);
        l.demanded(2, q(2), 7);
        assert!(grants(&mut l).is_empty(), "5 unacked + 7 leased");
    }
}
