//! The run's progress line and the decision that the run is over.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use super::publish::PublisherOut;
use crate::clock::now_ns;
use crate::driver::SharedRun;
use crate::error::BenchError;
use crate::memory::Sample;
use crate::scenario::Scenario;

/// Waits for the publishers, then for the consumers to drain; prints
/// progress and samples counts and the RSS of `pids` once a second.
pub(super) fn monitor(
    s: &Scenario,
    shared: &SharedRun,
    publishers: &[JoinHandle<Result<PublisherOut, BenchError>>],
    consumers_stop: &AtomicBool,
    (start_ns, pids): (u64, &[(&'static str, u32)]),
    progress: bool,
) -> Vec<Sample> {
    let mut timeline = Vec::new();
    let mut next_sample = start_ns;
    let (counters, abort) = &**shared;
    let fanout = s.fanout_factor();
    let tty = std::io::stderr().is_terminal();
    let mut next_print = start_ns + 1_000_000_000;
    let mut last = (start_ns, 0u64, 0u64, 0u64);
    let mut drain: Option<(u64, u64)> = None; // (consumed seen, when)
    let drain_ns = (s.drain_timeout * 1e9) as u64;
    loop {
        thread::sleep(Duration::from_millis(50));
        if abort.is_set() || consumers_stop.load(Ordering::Acquire) {
            break;
        }
        let now = now_ns();
        let published = counters.published.load(Ordering::Relaxed);
        let consumed = counters.consumed.load(Ordering::Relaxed);
        let confirmed = counters.confirmed.load(Ordering::Relaxed);
        if now >= next_sample {
            timeline.push(sample(now - start_ns, published, consumed, pids));
            next_sample += 1_000_000_000;
        }
        if progress && now >= next_print {
            let dt = (now - last.0) as f64 / 1e9;
            let line = format!(
                "[{:6.1} s] published {:>10}/s  consumed {:>10}/s  confirmed {:>10}/s  backlog {:>10}",
                now.saturating_sub(start_ns) as f64 / 1e9,
                si((published - last.1) as f64 / dt),
                si((consumed - last.2) as f64 / dt),
                si((confirmed - last.3) as f64 / dt),
                si((published * fanout).saturating_sub(consumed) as f64),
            );
            let mut err = std::io::stderr().lock();
            let _ = if tty {
                write!(err, "\r{line}\x1b[K")
            } else {
                writeln!(err, "{line}")
            };
            let _ = err.flush();
            last = (now, published, consumed, confirmed);
            next_print += 1_000_000_000;
        }
        if !publishers.iter().all(JoinHandle::is_finished) {
            continue;
        }
        if s.consumers == 0 || consumed >= published * fanout {
            break;
        }
        match drain {
            Some((seen, when)) if seen == consumed => {
                if now - when > drain_ns {
                    break;
                }
            }
            _ => drain = Some((consumed, now)),
        }
    }
    if progress && tty {
        let _ = writeln!(std::io::stderr());
    }
    let published = counters.published.load(Ordering::Relaxed);
    let consumed = counters.consumed.load(Ordering::Relaxed);
    timeline.push(sample(
        now_ns().saturating_sub(start_ns),
        published,
        consumed,
        pids,
    ));
    timeline
}

/// Counts and the RSS of the broker and gateway at `since_start_ns`.
fn sample(since_start_ns: u64, published: u64, consumed: u64, pids: &[(&str, u32)]) -> Sample {
    let rss_of = |role: &str| {
        pids.iter()
            .find(|(r, _)| *r == role)
            .and_then(|&(_, pid)| crate::memory::rss(pid))
    };
    Sample {
        t: since_start_ns as f64 / 1e9,
        published,
        consumed,
        broker_rss: rss_of("broker"),
        gateway_rss: rss_of("gateway"),
    }
}

/// A number with a k/M suffix, for the progress line.
fn si(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2} M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1} k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}
