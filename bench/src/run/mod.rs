//! One run of one scenario against one target: setup, publisher and
//! consumer threads, progress display, drain, teardown, and the counts
//! check of `--check`.
//!
//! Publishers are open loop when a rate is set: message `n` of a publisher
//! is due at `start + n * interval` and carries its due time as its stamp,
//! so when the publisher (or anything behind it) stalls, every late
//! message's latency includes the stall (no coordinated omission).

mod consume;
mod monitor;
mod publish;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use hdrhistogram::Histogram;

use self::consume::{consume_loop, ConsumerOut, Schedule};
use self::monitor::monitor;
use self::publish::{publish_loop, PublishPlan, PublisherOut};
use crate::amqp;
use crate::clock::{message_id, now_ns, split_id};
use crate::cpu::Meter;
use crate::driver::{
    new_histogram, Abort, Admin, ConsumeConn, Counters, PublishConn, Setup, SharedRun,
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
    /// End-to-end latency, ns (at a fixed rate: from the intended send
    /// time).
    pub e2e: Histogram<u64>,
    /// Fixed rate only: end-to-end latency from the actual send time, ns.
    pub e2e_actual: Histogram<u64>,
    /// Confirm latency, ns.
    pub confirm: Histogram<u64>,
    /// Fixed rate only: how late each message was written, from its
    /// intended time, ns: the harness's own share of the latency.
    pub send_lag: Histogram<u64>,
    /// The verdict of `--check` (`None` when not asked).
    pub check: Option<Result<(), String>>,
    /// Counts and the target's RSS once a second.
    pub timeline: Vec<crate::memory::Sample>,
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
    let setup = Setup {
        target,
        scenario: s,
        topo: &topo,
    };
    match target.protocol {
        Protocol::Native => with_topology(native::Admin::connect(target)?, &topo, || {
            load(
                &setup,
                opts,
                |what| native::Publisher::connect(&setup, what),
                |what, queue| native::Consumer::connect(&setup, what, queue),
            )
        }),
        Protocol::Amqp => with_topology(amqp::Admin::connect(target)?, &topo, || {
            load(
                &setup,
                opts,
                |what| amqp::Publisher::connect(&setup, what),
                |what, queue| amqp::Consumer::connect(&setup, what, queue),
            )
        }),
    }
}

/// Declares the topology, runs `load`, and tears the topology down (also
/// after a failed run).
fn with_topology<A: Admin>(
    mut admin: A,
    topo: &Topology,
    load: impl FnOnce() -> Result<RunResult, BenchError>,
) -> Result<RunResult, BenchError> {
    if let Err(e) = admin.declare(topo) {
        let _ = admin.teardown(topo);
        return Err(e);
    }
    let result = load();
    let down = admin.teardown(topo);
    let result = result?;
    down?;
    Ok(result)
}

/// The load itself: connects every consumer and publisher, starts their
/// threads at one instant, waits, and sums up what they measured.
fn load<P, C>(
    setup: &Setup<'_>,
    opts: &RunOptions,
    connect_pub: impl Fn(&str) -> Result<P, BenchError>,
    connect_con: impl Fn(&str, &str) -> Result<C, BenchError>,
) -> Result<RunResult, BenchError>
where
    P: PublishConn,
    C: ConsumeConn,
{
    let Setup {
        target,
        scenario: s,
        topo,
    } = *setup;
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
    let schedule = PublishPlan::new(s, topo, 0, start_ns)
        .interval_ns()
        .map(|interval_ns| Schedule {
            start_ns,
            interval_ns,
            publishers: s.publishers,
        });
    let mut con_handles = Vec::new();
    for (i, (queue, conn)) in consumers.into_iter().enumerate() {
        let (s, check, stop) = (s.clone(), opts.check, consumers_stop.clone());
        let run =
            move |shared: &SharedRun| consume_loop(conn, queue, &s, check, shared, &stop, schedule);
        con_handles.push(spawn_worker(format!("consumer-{i}"), &shared, run)?);
    }
    let mut pub_handles = Vec::new();
    for (i, conn) in publishers.into_iter().enumerate() {
        let plan = PublishPlan::new(s, topo, i, start_ns);
        let run = move |shared: &SharedRun| publish_loop(conn, &plan, shared);
        pub_handles.push(spawn_worker(format!("publisher-{i}"), &shared, run)?);
    }
    let timeline = monitor(
        s,
        &shared,
        &pub_handles,
        &consumers_stop,
        (start_ns, &target.pids()),
        opts.progress,
    );
    consumers_stop.store(true, Ordering::Release);
    let pubs = join_all(pub_handles, "publisher");
    let cons = join_all(con_handles, "consumer");
    let cpu = meter.elapsed();
    let (pubs, cons) = (pubs?, cons?);
    let mut result = summarize(target, s, start_ns, &pubs, &cons, cpu);
    result.timeline = timeline;
    if opts.check {
        result.check = Some(check_counts(&result, &pubs, &cons, topo));
    }
    Ok(result)
}

/// Starts a publisher or consumer thread; a failure raises the run's
/// abort flag so that every other thread stops too.
fn spawn_worker<T: Send + 'static>(
    name: String,
    shared: &SharedRun,
    run: impl FnOnce(&SharedRun) -> Result<T, BenchError> + Send + 'static,
) -> Result<JoinHandle<Result<T, BenchError>>, BenchError> {
    let shared = shared.clone();
    thread::Builder::new()
        .name(name)
        .spawn(move || {
            let r = run(&shared);
            if r.is_err() {
                shared.1.raise();
            }
            r
        })
        .map_err(|e| BenchError::io("spawning a worker thread", e))
}

/// Joins every thread; the first error (or panic) wins.
fn join_all<T>(
    handles: Vec<JoinHandle<Result<T, BenchError>>>,
    what: &str,
) -> Result<Vec<T>, BenchError> {
    let mut out = Vec::new();
    let mut first_err = None;
    for h in handles {
        match h.join() {
            Ok(Ok(v)) => out.push(v),
            Ok(Err(e)) => {
                first_err.get_or_insert(e);
            }
            Err(_) => {
                first_err.get_or_insert(BenchError::protocol(what, "thread panicked"));
            }
        }
    }
    first_err.map_or(Ok(out), Err)
}

/// The run's result from what the threads measured and the CPU times of
/// the harness and of the target's processes.
fn summarize(
    target: &Target,
    s: &Scenario,
    start_ns: u64,
    pubs: &[PublisherOut],
    cons: &[ConsumerOut],
    (harness_cpu_ns, others): (u64, Vec<Option<u64>>),
) -> RunResult {
    let (mut e2e, mut confirm, mut send_lag) = (new_histogram(), new_histogram(), new_histogram());
    let mut e2e_actual = new_histogram();
    for p in pubs {
        let _ = confirm.add(&p.confirm);
        let _ = send_lag.add(&p.send_lag);
    }
    for c in cons {
        let _ = e2e.add(&c.e2e);
        let _ = e2e_actual.add(&c.e2e_actual);
    }
    let secs = |end: u64| end.saturating_sub(start_ns) as f64 / 1e9;
    let mut other = others.into_iter();
    let (mut broker_cpu_ns, mut gateway_cpu_ns) = (None, None);
    for (role, _) in target.pids() {
        let v = other.next().flatten();
        match role {
            "broker" => broker_cpu_ns = v,
            _ => gateway_cpu_ns = v,
        }
    }
    RunResult {
        scenario: s.clone(),
        target: target.clone(),
        start_ns,
        published: pubs.iter().map(|p| p.published).sum(),
        consumed: cons.iter().map(|c| c.consumed).sum(),
        confirmed: pubs.iter().map(|p| p.confirmed).sum(),
        nacked: pubs.iter().map(|p| p.nacked).sum(),
        unstamped: cons.iter().map(|c| c.unstamped).sum(),
        publish_secs: secs(pubs.iter().map(|p| p.end_ns).max().unwrap_or(start_ns)),
        consume_secs: secs(cons.iter().map(|c| c.last_ns).max().unwrap_or(start_ns)),
        harness_cpu_ns,
        broker_cpu_ns,
        gateway_cpu_ns,
        e2e,
        e2e_actual,
        confirm,
        send_lag,
        check: None,
        timeline: Vec::new(),
    }
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
