//! End-to-end latency of each queue for the management API and Prometheus:
//! publish to delivery (or `basic.get`), and publish to confirm for
//! messages that wait for the log. Fixed buckets (a few hundred bytes per
//! queue, whatever the traffic), recorded with one comparison loop per
//! message; the clock is read once per dispatch, not per message.

use std::sync::OnceLock;
use std::time::Instant;

use ringmq_mgmt::view::Histogram;

/// Upper bounds of the buckets, microseconds (the last bucket is +Inf).
pub const BOUNDS_US: [u64; 16] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

/// [`BOUNDS_US`] in seconds, as the management API shows them.
pub const BOUNDS_SECONDS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Microseconds since the process started (monotonic); never 0, so 0 can
/// mean "not stamped" (a message recovered from the log).
pub fn now_us() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_micros() as u64 + 1
}

/// One latency histogram.
#[derive(Debug, Clone, Default)]
pub struct LatencyHist {
    /// Per bucket (not cumulative), the last one past every bound.
    counts: [u64; BOUNDS_US.len() + 1],
    sum_us: u64,
    /// Values recorded (so an empty histogram is seen in one comparison).
    total: u64,
}

impl LatencyHist {
    /// Records the time from `since` (a [`now_us`] stamp; 0 = unknown) to
    /// `now`.
    pub fn record(&mut self, since: u64, now: u64) {
        if since == 0 || now < since {
            return;
        }
        let us = now - since;
        let i = BOUNDS_US
            .iter()
            .position(|b| us <= *b)
            .unwrap_or(BOUNDS_US.len());
        self.counts[i] += 1;
        self.total += 1;
        self.sum_us = self.sum_us.saturating_add(us);
    }

    /// The histogram for the management thread (empty when nothing was
    /// recorded, which costs no allocation).
    pub fn snapshot(&self) -> Histogram {
        if self.total == 0 {
            return Histogram::default();
        }
        Histogram {
            bounds_seconds: &BOUNDS_SECONDS,
            counts: self.counts.to_vec(),
            sum_seconds: self.sum_us as f64 / 1e6,
        }
    }
}

/// A queue's two latencies.
#[derive(Debug, Clone, Default)]
pub struct QueueLatency {
    /// Publish to delivery or get.
    pub deliver: LatencyHist,
    /// Publish to confirm, for messages confirmed once durable.
    pub confirm: LatencyHist,
}

impl QueueLatency {
    /// Both histograms for the management thread; `None` (no allocation)
    /// while nothing was timed.
    pub fn snapshot(&self) -> Option<Box<ringmq_mgmt::view::Latency>> {
        if self.deliver.total == 0 && self.confirm.total == 0 {
            return None;
        }
        Some(Box::new(ringmq_mgmt::view::Latency {
            deliver: self.deliver.snapshot(),
            confirm: self.confirm.snapshot(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_land_in_their_buckets() {
        let mut h = LatencyHist::default();
        h.record(1, 51); // 50 µs
        h.record(1, 1_001); // 1 ms
        h.record(1, 60_000_001); // a minute
        h.record(0, 10); // not stamped: ignored
        let s = h.snapshot();
        assert_eq!(s.counts[0], 1);
        assert_eq!(s.counts[3], 1);
        assert_eq!(s.counts[16], 1);
        assert_eq!(s.counts.iter().sum::<u64>(), 3);
        assert!((s.sum_seconds - 60.00105).abs() < 1e-9);
    }
}
