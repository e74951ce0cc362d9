//! One run of one scenario against one target: setup, publisher and
//! consumer threads, progress display, drain, teardown, and the counts
//! check of `--check`.
//!
//! Publishers are open loop when a rate is set: message `n` of a publisher
//! is due at `start + n * interval` and carries its due time as its stamp,
//! so when the publisher (or anything behind it) stalls, every late
//! message's latency includes the stall (no coordinated omission).

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::amqp;
use crate::clock::{
    message_id, now_ns, precise_timers, read_stamp, sleep_until, split_id, wait_until,
};
use crate::cpu::Meter;
use crate::driver::{
    new_histogram, Abort, Admin, ConfirmTracker, ConsumeConn, Counters, PublishConn, SharedRun,
};
use crate::error::BenchError;
use crate::native;
use crate::scenario::{Scenario, Topology};
use crate::target::{Protocol, Target};

/// How a run reports and checks.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Collect every message id and verify counts at the end.
    pub check: bool,
    /// Print a progress line on stderr every second.
    pub progress: bool,
}

/// Everything measured in one run.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// The scenario as run.
    pub scenario: Scenario,
    /// The target.
    pub target: Target,
    /// Monotonic start of the load, ns.
    pub start_ns: u64,
    /// Messages published.
    pub published: u64,
    /// Deliveries consumed.
    pub consumed: u64,
    /// Publisher confirms received (acks and nacks).
    pub confirmed: u64,
    /// Of which nacks.
    pub nacked: u64,
    /// Deliveries whose body had no stamp.
    pub unstamped: u64,
    /// Seconds from the start to the last publish.
    pub publish_secs: f64,
    /// Seconds from the start to the last delivery.
    pub consume_secs: f64,
    /// CPU time of the harness over the run, ns.
    pub harness_cpu_ns: u64,
    /// CPU time of the broker process, ns (when its pid was given).
    pub broker_cpu_ns: Option<u64>,
    /// CPU time of the gateway process, ns (when its pid was given).
    pub gateway_cpu_ns: Option<u64>,
    /// End-to-end latency, ns.
    pub e2e: Histogram<u64>,
    /// Confirm latency, ns.
    pub confirm: Histogram<u64>,
    /// Fixed rate only: how late each message was written, from its
    /// intended time, ns: the harness's own share of the latency.
    pub send_lag: Histogram<u64>,
    /// The verdict of `--check` (`None` when not asked).
    pub check: Option<Result<(), String>>,
}

/// Runs `s` against `target`.
///
/// # Errors
/// An invalid scenario, an unreachable target, refusals by the broker,
/// socket errors. `--check` failures are not errors here: they are in
/// [`RunResult::check`].
pub fn run(target: &Target, s: &Scenario, opts: &RunOptions) -> Result<RunResult, BenchError> {
    s.validate()?;
    for (_, pid) in target.pids() {
        crate::cpu::pid_ns(pid)?;
    }
    let run_id = format!(
        "{:x}",
        (now_ns() ^ (u64::from(std::process::id()) << 24)) & 0xffff_ffff_ffff
    );
    let topo = Topology::new(s, &run_id);
    match target.protocol {
        Protocol::Native => drive(
            native::Admin::connect(target)?,
            target,
            s,
            &topo,
            opts,
            |what| native::Publisher::connect(target, what, s, &topo),
            |what, queue| native::Consumer::connect(target, what, s, queue),
        ),
        Protocol::Amqp => drive(
            amqp::Admin::connect(target)?,
            target,
            s,
            &topo,
            opts,
            |what| amqp::Publisher::connect(target, what, s, &topo),
            |what, queue| amqp::Consumer::connect(target, what, s, queue),
        ),
    }
}

/// What a publisher thread reports.
struct PublisherOut {
    published: u64,
    end_ns: u64,
    confirmed: u64,
    nacked: u64,
    confirm: Histogram<u64>,
    send_lag: Histogram<u64>,
}

/// What a consumer thread reports.
struct ConsumerOut {
    queue: usize,
    consumed: u64,
    unstamped: u64,
    last_ns: u64,
    e2e: Histogram<u64>,
    ids: Vec<u64>,
}

/// The publishing plan of one publisher.
#[derive(Debug, Clone)]
struct PublishPlan {
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

fn drive<A, P, C>(
    mut admin: A,
    target: &Target,
    s: &Scenario,
    topo: &Topology,
    opts: &RunOptions,
    connect_pub: impl Fn(&str) -> Result<P, BenchError>,
    connect_con: impl Fn(&str, &str) -> Result<C, BenchError>,
) -> Result<RunResult, BenchError>
where
    A: Admin,
    P: PublishConn,
    C: ConsumeConn,
{
    if let Err(e) = admin.declare(topo) {
        let _ = admin.teardown(topo);
        return Err(e);
    }
    let result = load(target, s, topo, opts, connect_pub, connect_con);
    let down = admin.teardown(topo);
    let result = result?;
    down?;
    Ok(result)
}

fn load<P, C>(
    target: &Target,
    s: &Scenario,
    topo: &Topology,
    opts: &RunOptions,
    connect_pub: impl Fn(&str) -> Result<P, BenchError>,
    connect_con: impl Fn(&str, &str) -> Result<C, BenchError>,
) -> Result<RunResult, BenchError>
where
    P: PublishConn,
    C: ConsumeConn,
{
    let mut consumers = Vec::new();
    for i in 0..s.consumers as usize {
        let q = topo.queue_of_consumer(i);
        consumers.push((q, connect_con(&format!("consumer {i}"), &topo.queues[q])?));
    }
    let mut publishers = Vec::new();
    for i in 0..s.publishers as usize {
        publishers.push(connect_pub(&format!("publisher {i}"))?);
    }
    let pids: Vec<u32> = target.pids().iter().map(|&(_, p)| p).collect();
    let meter = Meter::start(&pids)?;
    let shared: SharedRun = Arc::new((Counters::default(), Abort::default()));
    let consumers_stop = Arc::new(AtomicBool::new(false));
    // A little later than now, so every thread is waiting when it comes.
    let start_ns = now_ns() + 5_000_000;
    let deadline_ns = match s.messages {
        Some(_) => None,
        None => Some(start_ns + (s.duration * 1e9) as u64),
    };
    let interval_ns = s.rate.map(|r| 1e9 * f64::from(s.publishers) / r);
    let drain = Duration::from_secs_f64(s.drain_timeout);

    let mut con_handles: Vec<JoinHandle<Result<ConsumerOut, BenchError>>> = Vec::new();
    for (i, (queue, conn)) in consumers.into_iter().enumerate() {
        let shared = shared.clone();
        let stop = consumers_stop.clone();
        let s = s.clone();
        let check = opts.check;
        let h = thread::Builder::new()
            .name(format!("consumer-{i}"))
            .spawn(move || {
                let r = consume_loop(conn, queue, &s, check, &shared, &stop);
                if r.is_err() {
                    shared.1.raise();
                }
                r
            })
            .map_err(|e| BenchError::io("spawning a consumer thread", e))?;
        con_handles.push(h);
    }
    let mut pub_handles: Vec<JoinHandle<Result<PublisherOut, BenchError>>> = Vec::new();
    for (i, conn) in publishers.into_iter().enumerate() {
        let plan = PublishPlan {
            index: i,
            start_ns,
            deadline_ns,
            count: s.messages_for(i as u32),
            interval_ns,
            spin_ns: u64::from(s.spin_us) * 1000,
            keys: topo.routing_keys.len(),
            confirms: s.confirms,
            in_flight: u64::from(s.in_flight),
            max_backlog: if s.consumers > 0 { s.max_backlog } else { 0 },
            fanout: s.fanout_factor(),
            drain,
        };
        let shared = shared.clone();
        let h = thread::Builder::new()
            .name(format!("publisher-{i}"))
            .spawn(move || {
                let r = publish_loop(conn, &plan, &shared);
                if r.is_err() {
                    shared.1.raise();
                }
                r
            })
            .map_err(|e| BenchError::io("spawning a publisher thread", e))?;
        pub_handles.push(h);
    }

    monitor(
        s,
        &shared,
        &pub_handles,
        &consumers_stop,
        start_ns,
        opts.progress,
    );
    consumers_stop.store(true, Ordering::Release);

    let mut pubs = Vec::new();
    let mut first_err: Option<BenchError> = None;
    for h in pub_handles {
        match h.join() {
            Ok(Ok(p)) => pubs.push(p),
            Ok(Err(e)) => {
                first_err.get_or_insert(e);
            }
            Err(_) => {
                first_err.get_or_insert(BenchError::protocol("publisher", "thread panicked"));
            }
        }
    }
    let mut cons = Vec::new();
    for h in con_handles {
        match h.join() {
            Ok(Ok(c)) => cons.push(c),
            Ok(Err(e)) => {
                first_err.get_or_insert(e);
            }
            Err(_) => {
                first_err.get_or_insert(BenchError::protocol("consumer", "thread panicked"));
            }
        }
    }
    let (harness_cpu_ns, others) = meter.elapsed();
    if let Some(e) = first_err {
        return Err(e);
    }

    let mut e2e = new_histogram();
    let mut confirm = new_histogram();
    let mut send_lag = new_histogram();
    for p in &pubs {
        let _ = confirm.add(&p.confirm);
        let _ = send_lag.add(&p.send_lag);
    }
    for c in &cons {
        let _ = e2e.add(&c.e2e);
    }
    let published: u64 = pubs.iter().map(|p| p.published).sum();
    let consumed: u64 = cons.iter().map(|c| c.consumed).sum();
    let secs = |end: u64| end.saturating_sub(start_ns) as f64 / 1e9;
    let publish_secs = secs(pubs.iter().map(|p| p.end_ns).max().unwrap_or(start_ns));
    let consume_secs = secs(cons.iter().map(|c| c.last_ns).max().unwrap_or(start_ns));
    let mut other = others.into_iter();
    let mut broker_cpu_ns = None;
    let mut gateway_cpu_ns = None;
    for (role, _) in target.pids() {
        let v = other.next().flatten();
        match role {
            "broker" => broker_cpu_ns = v,
            _ => gateway_cpu_ns = v,
        }
    }
    let mut result = RunResult {
        scenario: s.clone(),
        target: target.clone(),
        start_ns,
        published,
        consumed,
        confirmed: pubs.iter().map(|p| p.confirmed).sum(),
        nacked: pubs.iter().map(|p| p.nacked).sum(),
        unstamped: cons.iter().map(|c| c.unstamped).sum(),
        publish_secs,
        consume_secs,
        harness_cpu_ns,
        broker_cpu_ns,
        gateway_cpu_ns,
        e2e,
        confirm,
        send_lag,
        check: None,
    };
    if opts.check {
        result.check = Some(check_counts(&result, &pubs, &cons, topo));
    }
    Ok(result)
}

/// Waits for the publishers, then for the consumers to drain; prints
/// progress.
fn monitor(
    s: &Scenario,
    shared: &SharedRun,
    publishers: &[JoinHandle<Result<PublisherOut, BenchError>>],
    consumers_stop: &AtomicBool,
    start_ns: u64,
    progress: bool,
) {
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

fn publish_loop<P: PublishConn>(
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
            let in_flight = |t: &ConfirmTracker| (seq + 1).saturating_sub(t.lowest_unconfirmed());
            if in_flight(t) >= plan.in_flight {
                conn.flush()?;
                while in_flight(t) >= plan.in_flight {
                    if t.has_failed() {
                        return Err(t.take_error().unwrap_or_else(|| {
                            BenchError::protocol("publisher", "confirm reader failed")
                        }));
                    }
                    if abort.is_set() {
                        return Ok(seq);
                    }
                    thread::park_timeout(Duration::from_millis(10));
                }
                if plan.interval_ns.is_none() {
                    stamp = now_ns();
                }
            }
            t.sent(seq + 1, stamp);
        }
        let key = (seq as usize + plan.index) % keys;
        conn.publish(key, stamp, message_id(plan.index, seq))?;
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
            if plan.max_backlog > 0 {
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
            }
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

fn consume_loop<C: ConsumeConn>(
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
fn check_counts(
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
