//! Consumer threads, and the counts check of `--check`.

use std::sync::atomic::{AtomicBool, Ordering};

use hdrhistogram::Histogram;

use super::publish::PublisherOut;
use super::RunResult;
use crate::clock::{message_id, read_stamp, split_id};
use crate::driver::{new_histogram, ConsumeConn, SharedRun};
use crate::error::BenchError;
use crate::scenario::{Scenario, Topology};

/// What a consumer thread reports.
pub(super) struct ConsumerOut {
    pub queue: usize,
    pub consumed: u64,
    pub unstamped: u64,
    pub last_ns: u64,
    pub e2e: Histogram<u64>,
    pub ids: Vec<u64>,
}

/// A consumer thread: consumes (and acks) until told to stop.
pub(super) fn consume_loop<C: ConsumeConn>(
    mut conn: C,
    queue: usize,
    s: &Scenario,
    check: bool,
    shared: &SharedRun,
    stop: &AtomicBool,
) -> Result<ConsumerOut, BenchError> {
    let (counters, abort) = &**shared;
    let mut e2e = new_histogram();
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
                    e2e.saturating_record(now.saturating_sub(stamp).max(1));
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
        ids,
    })
}

/// `--check`: every published message consumed exactly once per queue it
/// routes to, every body stamped, and (with confirms) every message
/// confirmed and none nacked.
pub(super) fn check_counts(
    r: &RunResult,
    pubs: &[PublisherOut],
    cons: &[ConsumerOut],
    topo: &Topology,
) -> Result<(), String> {
    let s = &r.scenario;
    let mut problems = Vec::new();
    let fanout = s.fanout_factor();
    if s.consumers > 0 && r.consumed != r.published * fanout {
        problems.push(format!(
            "consumed {} deliveries, expected {} ({} published x {fanout})",
            r.consumed,
            r.published * fanout,
            r.published
        ));
    }
    if r.unstamped > 0 {
        problems.push(format!("{} deliveries had no stamp", r.unstamped));
    }
    if s.confirms {
        if r.confirmed != r.published {
            problems.push(format!(
                "{} confirms for {} published messages",
                r.confirmed, r.published
            ));
        }
        if r.nacked > 0 {
            problems.push(format!("{} messages nacked", r.nacked));
        }
    }
    if s.consumers > 0 {
        // Every (queue, id) exactly once; every published id in the
        // expected number of queues.
        let mut per_queue: Vec<Vec<u64>> = vec![Vec::new(); topo.queues.len()];
        for c in cons {
            per_queue[c.queue].extend_from_slice(&c.ids);
        }
        let mut all = Vec::new();
        for (q, ids) in per_queue.iter_mut().enumerate() {
            ids.sort_unstable();
            let dups = ids.windows(2).filter(|w| w[0] == w[1]).count();
            if dups > 0 {
                problems.push(format!("queue {q}: {dups} duplicate deliveries"));
            }
            all.extend(ids.iter().copied());
        }
        all.sort_unstable();
        let mut expected: Vec<u64> = Vec::new();
        for (i, p) in pubs.iter().enumerate() {
            for seq in 0..p.published {
                for _ in 0..fanout {
                    expected.push(message_id(i, seq));
                }
            }
        }
        expected.sort_unstable();
        if all != expected {
            let missing = expected
                .iter()
                .filter(|id| all.binary_search(id).is_err())
                .count();
            let unknown: Vec<String> = all
                .iter()
                .filter(|id| expected.binary_search(id).is_err())
                .take(3)
                .map(|id| format!("{:?}", split_id(*id)))
                .collect();
            problems.push(format!(
                "delivered ids differ from published ids: {missing} never delivered, unknown ids {unknown:?}"
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}
