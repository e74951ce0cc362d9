//! Publisher threads: open loop at a fixed rate or as fast as allowed,
//! with a window of unconfirmed messages and a cap on the backlog.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::clock::{message_id, now_ns, precise_timers, sleep_until, wait_until};
use crate::driver::{new_histogram, ConfirmTracker, Counters, PublishConn, SharedRun};
use crate::error::BenchError;
use crate::scenario::{Scenario, Topology};

/// What a publisher thread reports.
pub(super) struct PublisherOut {
    pub published: u64,
    pub end_ns: u64,
    pub confirmed: u64,
    pub nacked: u64,
    pub confirm: Histogram<u64>,
    pub send_lag: Histogram<u64>,
}

/// The publishing plan of one publisher.
#[derive(Debug, Clone)]
pub(super) struct PublishPlan {
    index: usize,
    start_ns: u64,
    deadline_ns: Option<u64>,
    count: Option<u64>,
    interval_ns: Option<f64>,
    spin_ns: u64,
    keys: usize,
    confirms: bool,
    in_flight: u64,
    max_backlog: u64,
    fanout: u64,
    drain: Duration,
}

impl PublishPlan {
    /// Fixed rate: ns between two messages of one publisher.
    pub fn interval_ns(&self) -> Option<f64> {
        self.interval_ns
    }

    /// The plan of publisher `index` of scenario `s`, starting at `start_ns`.
    /// At a fixed rate the publishers take turns: publisher `i` starts
    /// `i / publishers` of an interval late, so the total rate is evenly
    /// paced (1,000 publishers at 1 msg/s send one message a millisecond,
    /// not 1,000 at once every second).
    pub fn new(s: &Scenario, topo: &Topology, index: usize, start_ns: u64) -> PublishPlan {
        let interval_ns = s.rate.map(|r| 1e9 * f64::from(s.publishers) / r);
        PublishPlan {
            index,
            start_ns: start_ns + interval_ns.map_or(0, |iv| phase_ns(iv, index, s.publishers)),
            deadline_ns: match s.messages {
                Some(_) => None,
                None => Some(start_ns + (s.duration * 1e9) as u64),
            },
            count: s.messages_for(index as u32),
            interval_ns,
            spin_ns: u64::from(s.spin_us) * 1000,
            keys: topo.routing_keys.len(),
            confirms: s.confirms,
            in_flight: u64::from(s.in_flight),
            max_backlog: if s.consumers > 0 { s.max_backlog } else { 0 },
            fanout: s.fanout_factor(),
            drain: Duration::from_secs_f64(s.drain_timeout),
        }
    }
}

/// How late publisher `index` of `publishers` starts within an interval of
/// `interval_ns`, ns.
pub(super) fn phase_ns(interval_ns: f64, index: usize, publishers: u32) -> u64 {
    (interval_ns * index as f64 / f64::from(publishers.max(1))) as u64
}

/// A publisher thread: publishes, then waits for its last confirms.
pub(super) fn publish_loop<P: PublishConn>(
    mut conn: P,
    plan: &PublishPlan,
    shared: &SharedRun,
) -> Result<PublisherOut, BenchError> {
    let tracker = plan.confirms.then(|| {
        Arc::new(ConfirmTracker::new(
            plan.in_flight as u32,
            thread::current(),
        ))
    });
    let reader = match &tracker {
        Some(t) => {
            let source = conn.reader()?;
            let t = t.clone();
            Some(
                thread::Builder::new()
                    .name(format!("confirms-{}", plan.index))
                    .spawn(move || t.run_reader(source))
                    .map_err(|e| BenchError::io("spawning a confirm reader", e))?,
            )
        }
        None => None,
    };
    let mut send_lag = new_histogram();
    let sent = publish_body(&mut conn, plan, shared, tracker.as_deref(), &mut send_lag);
    let end_ns = now_ns();
    // Wait for the last confirms, until they stop coming.
    if let (Ok(sent), Some(t)) = (&sent, &tracker) {
        let patience = plan.drain.as_nanos() as u64;
        let (mut last, mut since) = (t.confirmed(), now_ns());
        while t.lowest_unconfirmed() <= *sent && !t.has_failed() && !shared.1.is_set() {
            thread::park_timeout(Duration::from_millis(10));
            let (c, now) = (t.confirmed(), now_ns());
            if c != last {
                (last, since) = (c, now);
            } else if now - since > patience {
                break;
            }
        }
    }
    let mut confirm = new_histogram();
    let (mut confirmed, mut nacked) = (0, 0);
    if let (Some(t), Some(h)) = (&tracker, reader) {
        t.stop();
        if let Ok(hist) = h.join() {
            confirm = hist;
        }
        confirmed = t.confirmed();
        nacked = t.nacked();
        if let Some(e) = t.take_error() {
            let _ = conn.close();
            return Err(e);
        }
    }
    let published = sent?;
    conn.close()?;
    Ok(PublisherOut {
        published,
        end_ns,
        confirmed,
        nacked,
        confirm,
        send_lag,
    })
}

/// The publishing loop; returns how many messages were sent.
fn publish_body<P: PublishConn>(
    conn: &mut P,
    plan: &PublishPlan,
    shared: &SharedRun,
    tracker: Option<&ConfirmTracker>,
    send_lag: &mut Histogram<u64>,
) -> Result<u64, BenchError> {
    let (counters, abort) = &**shared;
    if plan.interval_ns.is_some() {
        precise_timers();
    }
    sleep_until(plan.start_ns);
    let keys = plan.keys.max(1);
    let mut seq: u64 = 0;
    let mut unreported: u64 = 0;
    let mut last_confirmed = 0u64;
    loop {
        if plan.count.is_some_and(|c| seq >= c) {
            break;
        }
        let mut stamp = now_ns();
        if let Some(iv) = plan.interval_ns {
            let due = plan.start_ns + (seq as f64 * iv) as u64;
            if plan.deadline_ns.is_some_and(|d| due >= d) {
                break;
            }
            if due > stamp {
                conn.flush()?;
                wait_until(due, plan.spin_ns);
            }
            stamp = due;
        } else if plan.deadline_ns.is_some_and(|d| stamp >= d) {
            break;
        }
        if let Some(t) = tracker {
            match wait_for_window(conn, plan, t, seq, abort)? {
                Window::Open => {}
                Window::Waited if plan.interval_ns.is_none() => stamp = now_ns(),
                Window::Waited => {}
                Window::Aborted => return Ok(seq),
            }
            t.sent(seq + 1, stamp);
        }
        let key = (seq as usize + plan.index) % keys;
        // At a fixed rate the body carries the actual send time (the
        // consumers know the intended one from the sequence number);
        // otherwise the two are the same.
        let carried = if plan.interval_ns.is_some() {
            now_ns()
        } else {
            stamp
        };
        conn.publish(key, carried, message_id(plan.index, seq))?;
        seq += 1;
        unreported += 1;
        if let Some(iv) = plan.interval_ns {
            let next_due = plan.start_ns + (seq as f64 * iv) as u64;
            let now = now_ns();
            if next_due > now {
                conn.flush()?;
            }
            send_lag.saturating_record(now_ns().saturating_sub(stamp).max(1));
        }
        if unreported >= 256 {
            counters.published.fetch_add(unreported, Ordering::Relaxed);
            unreported = 0;
            if let Some(t) = tracker {
                let c = t.confirmed();
                counters
                    .confirmed
                    .fetch_add(c - last_confirmed, Ordering::Relaxed);
                last_confirmed = c;
            }
            if abort.is_set() {
                break;
            }
            hold_backlog(conn, plan, shared)?;
        }
    }
    conn.flush()?;
    counters.published.fetch_add(unreported, Ordering::Relaxed);
    if let Some(t) = tracker {
        counters
            .confirmed
            .fetch_add(t.confirmed() - last_confirmed, Ordering::Relaxed);
    }
    Ok(seq)
}

/// How the window of unconfirmed messages let a message through.
enum Window {
    /// At once.
    Open,
    /// After waiting for confirms.
    Waited,
    /// The run was aborted while waiting.
    Aborted,
}

/// Waits until message `seq` fits in the window of unconfirmed messages.
fn wait_for_window<P: PublishConn>(
    conn: &mut P,
    plan: &PublishPlan,
    t: &ConfirmTracker,
    seq: u64,
    abort: &crate::driver::Abort,
) -> Result<Window, BenchError> {
    let in_flight = |t: &ConfirmTracker| (seq + 1).saturating_sub(t.lowest_unconfirmed());
    if in_flight(t) < plan.in_flight {
        return Ok(Window::Open);
    }
    conn.flush()?;
    while in_flight(t) >= plan.in_flight {
        if t.has_failed() {
            return Err(t
                .take_error()
                .unwrap_or_else(|| BenchError::protocol("publisher", "confirm reader failed")));
        }
        if abort.is_set() {
            return Ok(Window::Aborted);
        }
        thread::park_timeout(Duration::from_millis(10));
    }
    Ok(Window::Waited)
}

/// Waits while the consumers lag more than the plan's backlog cap.
fn hold_backlog<P: PublishConn>(
    conn: &mut P,
    plan: &PublishPlan,
    shared: &SharedRun,
) -> Result<(), BenchError> {
    let (counters, abort) = &**shared;
    if plan.max_backlog == 0 {
        return Ok(());
    }
    let backlog = |c: &Counters| {
        (c.published.load(Ordering::Relaxed) * plan.fanout)
            .saturating_sub(c.consumed.load(Ordering::Relaxed))
    };
    if backlog(counters) > plan.max_backlog {
        conn.flush()?;
        while backlog(counters) > plan.max_backlog && !abort.is_set() {
            thread::sleep(Duration::from_micros(200));
        }
    }
    Ok(())
}
