//! Rates over RabbitMQ's 5-second window, from monotonic counters sampled
//! when asked: the counters cost the shards nothing between requests, and
//! a rate is the difference to the last sample at least 5 s old.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::view::MessageCounters;

/// RabbitMQ's default sample window.
pub const WINDOW: Duration = Duration::from_secs(5);

/// Messages per second of each counter.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Rates {
    /// Per second, field by field as in [`MessageCounters`].
    pub published: f64,
    /// Confirms.
    pub confirmed: f64,
    /// Returns.
    pub returned_unroutable: f64,
    /// Drops.
    pub dropped_unroutable: f64,
    /// Deliveries (manual ack).
    pub delivered: f64,
    /// Deliveries (auto ack).
    pub delivered_no_ack: f64,
    /// Gets (manual ack).
    pub got: f64,
    /// Gets (auto ack).
    pub got_no_ack: f64,
    /// Redeliveries.
    pub redelivered: f64,
    /// Acks.
    pub acked: f64,
    /// Bytes in.
    pub bytes_in: f64,
    /// Bytes out.
    pub bytes_out: f64,
    /// Ready messages (gauge).
    pub ready: f64,
    /// Unacked messages (gauge).
    pub unacked: f64,
}

/// A sample: counters plus two gauges.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    c: MessageCounters,
    ready: u64,
    unacked: u64,
}

/// Two samples per key: the newest at least [`WINDOW`] old, and the one
/// taken after it.
#[derive(Debug, Default)]
pub struct RateBook {
    samples: HashMap<String, (Sample, Option<Sample>)>,
}

fn per_sec(new: u64, old: u64, secs: f64) -> f64 {
    if secs <= 0.0 {
        0.0
    } else {
        (new as f64 - old as f64) / secs
    }
}

impl RateBook {
    /// Records counters for `key` and returns the rates since the base sample.
    pub fn observe(
        &mut self,
        key: &str,
        now: Instant,
        c: MessageCounters,
        ready: u64,
        unacked: u64,
    ) -> Rates {
        let s = Sample {
            at: now,
            c,
            ready,
            unacked,
        };
        let entry = self.samples.entry(key.to_owned()).or_insert((s, None));
        let (base, newer) = entry;
        if let Some(n) = newer {
            if now.duration_since(n.at) >= WINDOW {
                *base = *n;
            }
        }
        *newer = Some(s);
        let secs = now.duration_since(base.at).as_secs_f64();
        let b = base.c;
        Rates {
            published: per_sec(c.published, b.published, secs),
            confirmed: per_sec(c.confirmed, b.confirmed, secs),
            returned_unroutable: per_sec(c.returned_unroutable, b.returned_unroutable, secs),
            dropped_unroutable: per_sec(c.dropped_unroutable, b.dropped_unroutable, secs),
            delivered: per_sec(c.delivered, b.delivered, secs),
            delivered_no_ack: per_sec(c.delivered_no_ack, b.delivered_no_ack, secs),
            got: per_sec(c.got, b.got, secs),
            got_no_ack: per_sec(c.got_no_ack, b.got_no_ack, secs),
            redelivered: per_sec(c.redelivered, b.redelivered, secs),
            acked: per_sec(c.acked, b.acked, secs),
            bytes_in: per_sec(c.bytes_in, b.bytes_in, secs),
            bytes_out: per_sec(c.bytes_out, b.bytes_out, secs),
            ready: per_sec(ready, base.ready, secs),
            unacked: per_sec(unacked, base.unacked, secs),
        }
    }

    /// Number of keys sampled.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// True when nothing was sampled.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Forgets keys not in `live` (deleted queues).
    pub fn retain(&mut self, live: impl Fn(&str) -> bool) {
        self.samples.retain(|k, _| live(k));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_is_measured_against_a_sample_at_least_a_window_old() {
        let mut book = RateBook::default();
        let t0 = Instant::now();
        let c = |n| MessageCounters {
            published: n,
            ..MessageCounters::default()
        };
        assert_eq!(book.observe("q", t0, c(0), 0, 0).published, 0.0);
        let r = book.observe("q", t0 + Duration::from_secs(2), c(200), 0, 0);
        assert_eq!(r.published, 100.0);
        // The 2 s sample becomes the base once it is 5 s old.
        book.observe("q", t0 + Duration::from_secs(8), c(800), 0, 0);
        let r = book.observe("q", t0 + Duration::from_secs(10), c(1000), 0, 0);
        assert_eq!(r.published, 100.0);
    }
}
