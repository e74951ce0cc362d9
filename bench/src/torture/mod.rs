//! `ringmq-bench torture`: kill -9 cycles of the real `ringmq` and
//! `ringmq-gateway` binaries under confirmed persistent load, with a
//! restart and a full check after every kill. See `docs/torture.md`.
//!
//! ```text
//! start both (fresh data dir) -> declare durable queues
//! per cycle:
//!   load::Load (publishers, consumers with markers) for 0.3-2 s
//!   -> SIGKILL broker and gateway -> journals into the Ledger
//!   -> servers::Servers::start on the same data dir (timed: recovery)
//!   -> drain::drain: every queue emptied and checked, markers confirmed
//! -> report::TortureReport (text, JSON)
//! ```
//!
//! # When an ack or a delivery is durable
//! AMQP gives an ack no answer, so the harness proves durability with a
//! *marker*: a persistent publish, confirms on, that a consumer sends on
//! its own channel to its own queue after the acks. Once the marker is
//! confirmed, every ack sent before it on that channel, and the
//! `Delivered` record of every delivery received before it, are on disk.
//! Why, in the broker as it is (read from `gateway/src/amqp/from_client.rs`,
//! `core/src/net/session/`, `core/src/shard/`, `core/src/log/`):
//! - The gateway translates one AMQP connection's frames in order onto one
//!   native connection; a pending batch of acks is flushed before the next
//!   publish is batched (`settle` / `finish_publish`).
//! - The broker's session handles frames one at a time, in order
//!   (`handle_frames`). A `Settle` posts `ShardMsg::Settle` to the queue's
//!   shard, and a `Publish` posts `ShardMsg::Enqueue` to it, both
//!   synchronously while the frame is handled, into the one outbox per
//!   destination shard; the outbox and the mesh channel behind it are
//!   FIFO, and the shard handles a batch in order (`handle_batch`).
//! - A queue lives on one shard, and a shard has one append-only log. The
//!   ack appends `Record::Settle` (`Sink::settled`) before the marker's
//!   `Record::Enqueue` is appended. The marker is confirmed only once the
//!   log's committed position passes its record (`confirm_when_durable`),
//!   and the log commits a prefix: so the `Settle` is durable too.
//! - `Record::Delivered` is appended on the queue's shard when the queue
//!   hands the message to a consumer (`Queue::dispatch` ->
//!   `Sink::delivered`), before the delivery leaves for the consumer. A
//!   marker published after the delivery arrived is appended later on the
//!   same log, whatever path it takes.
//!
//! Deliveries and acks of one consumer are only promoted by that
//! consumer's own markers: sound, if conservative.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

pub mod drain;
pub mod ledger;
pub mod load;
pub mod report;
pub mod servers;

use self::ledger::Ledger;
use self::load::{Journal, Load, Plan, Role};
use self::report::{record, CycleReport, Settings, Summary, TortureReport};
use self::servers::{Binaries, Servers};
use crate::amqp::CheckedChannel;
use crate::error::BenchError;

/// What to run.
#[derive(Debug, Clone)]
pub struct TortureOptions {
    /// Kill, restart and check cycles.
    pub cycles: u32,
    /// AMQP publishers (through the gateway).
    pub publishers: u32,
    /// Native publishers (straight to the broker).
    pub native_publishers: u32,
    /// Durable queues.
    pub queues: u32,
    /// Consumers (through the gateway), spread over the queues.
    pub consumers: u32,
    /// Seed of the schedule: load times, kill order, queues, body sizes,
    /// ack style.
    pub seed: u64,
    /// Run directory (must be empty or absent; kept). `None`: a temporary
    /// directory, removed at the end unless `keep`.
    pub data_dir: Option<PathBuf>,
    /// Keep the temporary directory.
    pub keep: bool,
    /// `ringmq` binary (default: next to this executable).
    pub broker: Option<PathBuf>,
    /// `ringmq-gateway` binary (default: next to this executable).
    pub gateway: Option<PathBuf>,
    /// Broker shards.
    pub broker_cores: usize,
    /// Shortest load before a kill, ms.
    pub min_load_ms: u64,
    /// Longest load before a kill, ms.
    pub max_load_ms: u64,
    /// Unconfirmed publishes per publisher.
    pub in_flight: usize,
    /// Consumer prefetch.
    pub prefetch: u16,
    /// Deliveries each consumer leaves unacked.
    pub hold: usize,
    /// Largest padding after a body's 20-byte head.
    pub max_pad: u16,
    /// How long a restart may take.
    pub ready_timeout: Duration,
}

impl Default for TortureOptions {
    fn default() -> Self {
        TortureOptions {
            cycles: 100,
            publishers: 3,
            native_publishers: 1,
            queues: 4,
            consumers: 4,
            seed: 1,
            data_dir: None,
            keep: false,
            broker: None,
            gateway: None,
            broker_cores: 2,
            min_load_ms: 300,
            max_load_ms: 2000,
            in_flight: 64,
            prefetch: 64,
            hold: 8,
            max_pad: 1000,
            ready_timeout: Duration::from_secs(30),
        }
    }
}

impl TortureOptions {
    /// Checks the settings.
    ///
    /// # Errors
    /// [`BenchError::BadOption`] naming the flag.
    pub fn validate(&self) -> Result<(), BenchError> {
        let bad = |key, reason: &str| {
            Err(BenchError::BadOption {
                key,
                reason: reason.to_owned(),
            })
        };
        if self.queues == 0 || self.queues > 1000 {
            return bad("queues", "between 1 and 1000");
        }
        if self.publishers + self.native_publishers == 0 {
            return bad("publishers", "at least one publisher (AMQP or native)");
        }
        if self.broker_cores == 0 {
            return bad("broker-cores", "at least 1");
        }
        if self.min_load_ms > self.max_load_ms || self.max_load_ms == 0 {
            return bad("max-load-ms", "at least --min-load-ms, and above 0");
        }
        if self.in_flight == 0 {
            return bad("in-flight", "at least 1");
        }
        if self.prefetch == 0 || usize::from(self.prefetch) <= self.hold {
            return bad("prefetch", "above 0 and above --hold");
        }
        Ok(())
    }
}

/// SplitMix64: the schedule's random numbers, reproducible from a seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64().checked_rem(n).unwrap_or(0)
    }

    /// An independent generator.
    pub fn fork(&mut self) -> Rng {
        Rng(self.next_u64())
    }
}

/// The run directory: a temporary one, or the caller's.
pub(crate) enum RunDir {
    Temp(tempfile::TempDir),
    Given(PathBuf),
}

impl RunDir {
    /// A new temporary directory named `prefix…`, or `given`, which
    /// must be empty or absent.
    pub(crate) fn new(given: Option<&PathBuf>, prefix: &str) -> Result<RunDir, BenchError> {
        let Some(dir) = given else {
            return tempfile::Builder::new()
                .prefix(prefix)
                .tempdir()
                .map(RunDir::Temp)
                .map_err(|source| BenchError::File {
                    path: std::env::temp_dir(),
                    source,
                });
        };
        let bad = |reason: String| BenchError::RunDir {
            path: dir.clone(),
            reason,
        };
        std::fs::create_dir_all(dir).map_err(|e| bad(e.to_string()))?;
        let mut entries = std::fs::read_dir(dir).map_err(|e| bad(e.to_string()))?;
        if entries.next().is_some() {
            return Err(bad("not empty (a run starts from an empty broker)".into()));
        }
        Ok(RunDir::Given(dir.clone()))
    }

    pub(crate) fn path(&self) -> PathBuf {
        match self {
            RunDir::Temp(t) => t.path().to_owned(),
            RunDir::Given(p) => p.clone(),
        }
    }

    /// Removes a temporary directory unless `keep`; returns the path of
    /// a kept one.
    pub(crate) fn finish(self, keep: bool) -> Option<PathBuf> {
        match self {
            RunDir::Temp(t) if keep => Some(t.keep()),
            RunDir::Temp(_) => None,
            RunDir::Given(p) => Some(p),
        }
    }
}

/// The state of a run between cycles.
struct Run<'a> {
    opts: &'a TortureOptions,
    rng: Rng,
    servers: Servers,
    queues: Arc<Vec<String>>,
    ledger: Ledger,
    report: TortureReport,
    recovery: Histogram<u64>,
    broker_ready: Histogram<u64>,
}

/// Runs the torture; `on_cycle` sees each cycle as it ends. A failure in
/// the middle (a server that does not come back, a drain that stalls) ends
/// the run early and is reported in [`TortureReport::aborted`].
///
/// # Errors
/// Invalid options, missing binaries, an unusable run directory.
pub fn run(
    opts: &TortureOptions,
    on_cycle: &mut dyn FnMut(&CycleReport),
) -> Result<TortureReport, BenchError> {
    opts.validate()?;
    let bins = Binaries::locate(opts.broker.as_deref(), opts.gateway.as_deref())?;
    let dir = RunDir::new(opts.data_dir.as_ref(), "ringmq-torture-")?;
    let servers = Servers::new(bins, &dir.path(), opts.broker_cores, opts.ready_timeout)?;
    let mut run = Run {
        opts,
        rng: Rng::new(opts.seed),
        servers,
        queues: Arc::new((0..opts.queues).map(|i| format!("torture-{i}")).collect()),
        ledger: Ledger::default(),
        report: TortureReport {
            settings: Settings {
                seed: opts.seed,
                cycles: opts.cycles,
                publishers: opts.publishers,
                native_publishers: opts.native_publishers,
                consumers: opts.consumers,
                queues: opts.queues,
                broker_cores: opts.broker_cores,
                load_ms: (opts.min_load_ms, opts.max_load_ms),
            },
            ..TortureReport::default()
        },
        recovery: report::duration_histogram(),
        broker_ready: report::duration_histogram(),
    };
    if let Err(e) = run.all_cycles(on_cycle) {
        run.report.aborted = Some(e.chain());
    }
    run.servers.kill(true);
    let mut report = run.report;
    report.recovery = Summary::of(&run.recovery);
    report.broker_ready = Summary::of(&run.broker_ready);
    drop(run.servers);
    report.kept = dir.finish(opts.keep);
    report.seal();
    Ok(report)
}

impl Run<'_> {
    fn all_cycles(&mut self, on_cycle: &mut dyn FnMut(&CycleReport)) -> Result<(), BenchError> {
        self.servers.start()?;
        let mut setup = CheckedChannel::connect(&self.servers.amqp(), "setup")?;
        for q in self.queues.iter() {
            setup.declare(q, false)?;
        }
        setup.close()?;
        for cycle in 1..=self.opts.cycles {
            let c = self.cycle(cycle)?;
            on_cycle(&c);
            self.report.cycles = cycle;
            self.report.per_cycle.push(c);
        }
        Ok(())
    }

    /// The clients of a cycle, each with its name and a new origin.
    fn clients(&mut self, cycle: u32) -> Vec<(Role, String, u32)> {
        let opts = self.opts;
        let mut clients = Vec::new();
        let mut add = |role, what: String| {
            let origin = self.ledger.origin(what.clone());
            clients.push((role, what, origin));
        };
        for i in 0..opts.consumers {
            let q = (i % opts.queues) as u16;
            add(Role::Consumer(q), format!("consumer-{i}@{cycle}"));
        }
        for i in 0..opts.publishers {
            add(Role::Amqp, format!("amqp-publisher-{i}@{cycle}"));
        }
        for i in 0..opts.native_publishers {
            add(Role::Native, format!("native-publisher-{i}@{cycle}"));
        }
        clients
    }

    /// Load, kill, restart, check.
    fn cycle(&mut self, cycle: u32) -> Result<CycleReport, BenchError> {
        let opts = self.opts;
        let violations_before = self.report.counts.violations();
        let (published_before, confirmed_before) =
            (self.report.counts.published, self.report.counts.confirmed);
        let plan = Plan {
            amqp: self.servers.amqp(),
            native: self.servers.native(),
            queues: self.queues.clone(),
            in_flight: opts.in_flight,
            prefetch: opts.prefetch,
            hold: opts.hold,
            max_pad: opts.max_pad,
        };
        let clients = self.clients(cycle);
        let load_ms = opts.min_load_ms + self.rng.below(opts.max_load_ms - opts.min_load_ms + 1);
        let load = Load::start(&plan, clients, &mut self.rng)?;
        std::thread::sleep(Duration::from_millis(load_ms));
        let killed_at = Instant::now();
        let broker_first = self.rng.below(2) == 0;
        self.servers.kill(broker_first);
        // Publishes first: a consumer's journal names messages of
        // publishers whatever the order of the journals.
        let journals = load.finish()?;
        for j in &journals {
            let added = self.ledger.add_published(j.origin, &j.published);
            let c = &mut self.report.counts;
            c.published += added.published;
            c.confirmed += added.confirmed;
            c.nacked += added.nacked;
        }
        for j in journals {
            self.merge(j, killed_at);
        }
        let ready = self.servers.start()?;
        record(&mut self.recovery, ready.both);
        record(&mut self.broker_ready, ready.broker);
        let recovered = drain::drain(
            &self.servers.amqp(),
            &self.queues,
            &mut self.ledger,
            format!("drain@{cycle}"),
            &mut self.report.counts,
        )?;
        let c = &self.report.counts;
        Ok(CycleReport {
            cycle,
            load_ms,
            published: c.published - published_before,
            confirmed: c.confirmed - confirmed_before,
            recovered,
            broker_ready_ms: ready.broker.as_secs_f64() * 1000.0,
            recovery_ms: ready.both.as_secs_f64() * 1000.0,
            violations: c.violations() - violations_before,
        })
    }

    /// What a client learned about messages, its counts, and how it ended.
    fn merge(&mut self, j: Journal, killed_at: Instant) {
        let c = &mut self.report.counts;
        for (id, f) in j.touched {
            if !self.ledger.mark(id, f) {
                c.corrupt += 1;
            }
        }
        c.delivered += j.delivered;
        c.acked += j.acked;
        c.acks_durable += j.acks_durable;
        c.deliveries_durable += j.deliveries_durable;
        c.live_order_violations += j.order_violations;
        c.corrupt += j.corrupt;
        if let Some((at, e)) = j.error {
            if at < killed_at {
                c.client_errors += 1;
                self.report.client_errors.push(format!("{}: {e}", j.what));
            }
        }
    }
}
