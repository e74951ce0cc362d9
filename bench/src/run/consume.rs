//! Consumer threads.

use std::sync::atomic::{AtomicBool, Ordering};

use hdrhistogram::Histogram;

use crate::clock::{read_stamp, split_id};
use crate::driver::{new_histogram, ConsumeConn, SharedRun};
use crate::error::BenchError;
use crate::scenario::Scenario;

/// What a consumer thread reports.
pub(super) struct ConsumerOut {
    pub queue: usize,
    pub consumed: u64,
    pub unstamped: u64,
    pub last_ns: u64,
    pub e2e: Histogram<u64>,
    /// Fixed rate only: from the actual send time (the stamp) to delivery.
    pub e2e_actual: Histogram<u64>,
    pub ids: Vec<u64>,
}

/// When each message was due, for fixed-rate runs: the publishers carry
/// the actual send time in the body, and the intended one follows from
/// the message's sequence number.
#[derive(Debug, Clone, Copy)]
pub(super) struct Schedule {
    /// When every publisher's first message is due.
    pub start_ns: u64,
    /// Between two messages of one publisher.
    pub interval_ns: f64,
    /// Publishers, each starting its share of an interval after the last.
    pub publishers: u32,
}

impl Schedule {
    /// When message `id` was due.
    fn due(&self, id: u64) -> u64 {
        let (publisher, seq) = split_id(id);
        self.start_ns
            + super::publish::phase_ns(self.interval_ns, publisher, self.publishers)
            + (seq as f64 * self.interval_ns) as u64
    }
}

/// A consumer thread: consumes (and acks) until told to stop.
pub(super) fn consume_loop<C: ConsumeConn>(
    mut conn: C,
    queue: usize,
    s: &Scenario,
    check: bool,
    shared: &SharedRun,
    stop: &AtomicBool,
    schedule: Option<Schedule>,
) -> Result<ConsumerOut, BenchError> {
    let (counters, abort) = &**shared;
    let mut e2e = new_histogram();
    let mut e2e_actual = new_histogram();
    let mut ids = Vec::new();
    let mut consumed = 0u64;
    let mut unstamped = 0u64;
    let mut last_ns = 0u64;
    let mut unacked = 0u32;
    let mut last_tag = 0u64;
    let mut acks: Vec<(u64, bool)> = Vec::new();
    let manual = !s.auto_ack;
    let ack_every = s.ack_every.max(1);
    let multiple = s.ack_multiple;
    let result = loop {
        if abort.is_set() || stop.load(Ordering::Acquire) {
            break Ok(());
        }
        let polled = conn.poll(|now, tag, head| {
            match read_stamp(head) {
                Some((stamp, id)) => {
                    match schedule {
                        Some(sch) => {
                            e2e.saturating_record(now.saturating_sub(sch.due(id)).max(1));
                            e2e_actual.saturating_record(now.saturating_sub(stamp).max(1));
                        }
                        None => e2e.saturating_record(now.saturating_sub(stamp).max(1)),
                    }
                    if check {
                        ids.push(id);
                    }
                }
                None => unstamped += 1,
            }
            last_ns = now;
            if manual {
                last_tag = tag;
                unacked += 1;
                if !multiple {
                    acks.push((tag, false));
                }
                if unacked >= ack_every {
                    if multiple {
                        acks.push((tag, true));
                    }
                    unacked = 0;
                }
            }
        });
        let n = match polled {
            Ok(n) => n,
            Err(e) => break Err(e),
        };
        if n > 0 {
            consumed += n as u64;
            counters.consumed.fetch_add(n as u64, Ordering::Relaxed);
        }
        if !acks.is_empty() {
            for (tag, m) in acks.drain(..) {
                conn.ack(tag, m)?;
            }
            conn.flush()?;
        }
    };
    result?;
    if manual && multiple && unacked > 0 {
        conn.ack(last_tag, true)?;
    }
    conn.close()?;
    Ok(ConsumerOut {
        queue,
        consumed,
        unstamped,
        last_ns,
        e2e,
        e2e_actual,
        ids,
    })
}
