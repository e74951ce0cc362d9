//! `ringmq-bench`: load harness for ringmq (native protocol) and any AMQP
//! 0-9-1 broker. See the crate documentation and `docs/benchmarks.md`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::{Args, Parser, Subcommand};
use ringmq_bench::compare::{compare, table, CompareOptions};
use ringmq_bench::plot::{svg, PlotOptions};
use ringmq_bench::report::{file_stem, write_run, RunSummary};
use ringmq_bench::run::{run, RunOptions};
use ringmq_bench::scenario::{ExchangeType, Scenario};
use ringmq_bench::storage::{parse_bytes, StorageOptions};
use ringmq_bench::torture::TortureOptions;
use ringmq_bench::Target;

/// Load harness for ringmq and AMQP 0-9-1 brokers.
#[derive(Parser, Debug)]
#[command(name = "ringmq-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Runs a scenario (or every scenario of a file) against one target.
    Run(RunArgs),
    /// Runs a scenario suite against several targets, interleaved, and
    /// prints a comparison table.
    Compare(CompareArgs),
    /// Overlays the latency curves of run summaries (JSON) in one SVG.
    Plot(PlotArgs),
    /// Plots broker and gateway RSS and throughput over time of run
    /// summaries (JSON; runs given --target ...#broker=PID,gateway=PID).
    PlotMemory(PlotMemoryArgs),
    /// Crash torture: kill -9 cycles of the real broker and gateway under
    /// confirmed persistent load, each followed by a restart and a check
    /// of every queue (docs/torture.md). Exits non-zero on any violation.
    Torture(TortureArgs),
    /// Storage figures on the data directory's file system: confirm
    /// latency of the real broker against plain write+fdatasync latency,
    /// and the broker's restart time on a large log (kill -9, cold page
    /// cache) against a plain read of the same files (docs/benchmarks.md).
    Storage(StorageArgs),
}

#[derive(Args, Debug)]
struct StorageArgs {
    /// Seconds of the fdatasync loop, and of the confirm run.
    #[arg(long, default_value_t = StorageOptions::default().seconds)]
    seconds: f64,
    /// Bytes per O_DIRECT write of the fdatasync loop (a multiple of 4096).
    #[arg(long, default_value_t = StorageOptions::default().block)]
    block: usize,
    /// Body size of the confirm run, bytes.
    #[arg(long, default_value_t = StorageOptions::default().message_size)]
    size: usize,
    /// Unconfirmed publishes allowed (confirm run and log fill).
    #[arg(long, default_value_t = StorageOptions::default().in_flight)]
    in_flight: u32,
    /// Segment bytes to grow the log to before the kill (1GiB, 512MiB, ...).
    #[arg(long, default_value = "1GiB", value_parser = parse_bytes)]
    log_bytes: u64,
    /// Body size of the log fill, bytes.
    #[arg(long, default_value_t = StorageOptions::default().fill_message_size)]
    fill_size: usize,
    /// Broker shards (--cores of ringmq).
    #[arg(long, default_value_t = StorageOptions::default().broker_cores)]
    broker_cores: usize,
    #[command(flatten)]
    run: RunDirArgs,
    /// Seconds a broker start (its recovery included) may take.
    #[arg(long, default_value_t = StorageOptions::default().ready_timeout.as_secs_f64())]
    ready_timeout: f64,
    /// No line per phase.
    #[arg(long, short)]
    quiet: bool,
}

/// Where a storage or torture run keeps its data and report, and the
/// broker it starts.
#[derive(Args, Debug)]
struct RunDirArgs {
    /// Run directory (must be empty or absent; kept): broker data, logs.
    /// Default: a temporary directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Keep the temporary run directory.
    #[arg(long)]
    keep: bool,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    report: Option<PathBuf>,
    /// The ringmq binary [default: next to this executable].
    #[arg(long)]
    broker: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct TortureArgs {
    /// Kill, restart and check cycles.
    #[arg(long, default_value_t = TortureOptions::default().cycles)]
    cycles: u32,
    /// AMQP publishers (through the gateway; confirms, persistent).
    #[arg(long, default_value_t = TortureOptions::default().publishers)]
    publishers: u32,
    /// Native-protocol publishers (straight to the broker).
    #[arg(long, default_value_t = TortureOptions::default().native_publishers)]
    native_publishers: u32,
    /// Durable queues.
    #[arg(long, default_value_t = TortureOptions::default().queues)]
    queues: u32,
    /// Consumers (through the gateway; manual acks), spread over the queues.
    #[arg(long, default_value_t = TortureOptions::default().consumers)]
    consumers: u32,
    /// Seed of the schedule (load times, kill order, queues, body sizes);
    /// default: from the clock. Timing still differs between runs.
    #[arg(long)]
    seed: Option<u64>,
    #[command(flatten)]
    run: RunDirArgs,
    /// The ringmq-gateway binary [default: next to this executable].
    #[arg(long)]
    gateway: Option<PathBuf>,
    /// Broker shards (--cores of ringmq).
    #[arg(long, default_value_t = TortureOptions::default().broker_cores)]
    broker_cores: usize,
    /// Shortest load before a kill, milliseconds.
    #[arg(long, default_value_t = TortureOptions::default().min_load_ms)]
    min_load_ms: u64,
    /// Longest load before a kill, milliseconds.
    #[arg(long, default_value_t = TortureOptions::default().max_load_ms)]
    max_load_ms: u64,
    /// Unconfirmed publishes per publisher.
    #[arg(long, default_value_t = TortureOptions::default().in_flight)]
    in_flight: usize,
    /// Consumer prefetch.
    #[arg(long, default_value_t = TortureOptions::default().prefetch)]
    prefetch: u16,
    /// Deliveries each consumer leaves unacked (so a kill finds some).
    #[arg(long, default_value_t = TortureOptions::default().hold)]
    hold: usize,
    /// Seconds a restart may take before the run is aborted.
    #[arg(long, default_value_t = TortureOptions::default().ready_timeout.as_secs_f64())]
    ready_timeout: f64,
    /// No line per cycle.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Args, Debug)]
struct PlotMemoryArgs {
    /// Run summaries (JSON written by run or compare).
    #[arg(required = true)]
    runs: Vec<PathBuf>,
    /// Output SVG file.
    #[arg(short, long)]
    output: PathBuf,
    /// Title.
    #[arg(long, default_value = "Memory and throughput over time")]
    title: String,
}

#[derive(Args, Debug)]
struct RunArgs {
    /// native://host:port or amqp://user:pass@host:port/vhost (fragment:
    /// #label=NAME,broker=PID,gateway=PID).
    #[arg(long)]
    target: String,
    /// Scenario file (TOML: one scenario, or [[scenario]] entries).
    #[arg(long)]
    scenario: Option<PathBuf>,
    #[command(flatten)]
    knobs: Knobs,
    /// Broker pid, for its CPU time per message.
    #[arg(long)]
    broker_pid: Option<u32>,
    /// Gateway pid, for its CPU time per message.
    #[arg(long)]
    gateway_pid: Option<u32>,
    /// Directory for the JSON summary and .hgrm files.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Check counts (every message consumed exactly once, every message
    /// confirmed) and exit non-zero when they are wrong.
    #[arg(long)]
    check: bool,
    /// No progress line.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Args, Debug)]
struct CompareArgs {
    /// Targets, in table order; ratios are to the last one. Repeat.
    #[arg(long = "target", required = true)]
    targets: Vec<String>,
    /// Scenario suite file.
    #[arg(long)]
    scenario: Option<PathBuf>,
    #[command(flatten)]
    knobs: Knobs,
    /// Rounds over all targets.
    #[arg(long, default_value_t = 2)]
    rounds: u32,
    /// Directory for every run's JSON summary and .hgrm files.
    #[arg(long)]
    out: Option<PathBuf>,
    /// No progress line.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Args, Debug)]
struct PlotArgs {
    /// Run summaries (JSON written by run or compare).
    #[arg(required = true)]
    runs: Vec<PathBuf>,
    /// Output SVG file.
    #[arg(short, long)]
    output: PathBuf,
    /// Title.
    #[arg(long)]
    title: Option<String>,
    /// Linear latency axis (default: logarithmic).
    #[arg(long)]
    linear: bool,
}

/// Scenario settings; each overrides the scenario file's value.
#[derive(Args, Debug, Default)]
struct Knobs {
    /// Scenario name.
    #[arg(long)]
    name: Option<String>,
    /// Publishing connections.
    #[arg(long)]
    publishers: Option<u32>,
    /// Consuming connections (0: publish only).
    #[arg(long)]
    consumers: Option<u32>,
    /// Queues.
    #[arg(long)]
    queues: Option<u32>,
    /// default, direct, fanout or topic.
    #[arg(long)]
    exchange: Option<String>,
    /// Topic: size of the generated binding set.
    #[arg(long)]
    bindings: Option<u32>,
    /// Distinct routing keys the publishers cycle through.
    #[arg(long)]
    routing_keys: Option<u32>,
    /// Body size in bytes (at least 16).
    #[arg(long)]
    size: Option<usize>,
    /// Persistent messages to durable queues.
    #[arg(long)]
    persistent: bool,
    /// Publisher confirms.
    #[arg(long)]
    confirms: bool,
    /// Unconfirmed messages allowed per publisher.
    #[arg(long)]
    in_flight: Option<u32>,
    /// Consumer prefetch (0: unlimited).
    #[arg(long)]
    prefetch: Option<u16>,
    /// Manual acknowledgements instead of auto-ack.
    #[arg(long)]
    manual_ack: bool,
    /// Manual ack: acknowledge every N deliveries.
    #[arg(long)]
    ack_every: Option<u32>,
    /// Manual ack: one ack per delivery instead of one `multiple` ack.
    #[arg(long)]
    ack_single: bool,
    /// Run length, seconds.
    #[arg(long)]
    duration: Option<f64>,
    /// Total messages to publish (instead of a duration).
    #[arg(long)]
    messages: Option<u64>,
    /// Fixed total publish rate, msg/s (open loop).
    #[arg(long)]
    rate: Option<f64>,
    /// Fixed rate: µs to spin before each due time (0: sleep only).
    #[arg(long)]
    spin_us: Option<u32>,
    /// Pause publishing above this many unconsumed deliveries.
    #[arg(long)]
    max_backlog: Option<u64>,
    /// Seconds without progress before giving up on the last deliveries.
    #[arg(long)]
    drain_timeout: Option<f64>,
}

impl Knobs {
    fn apply(&self, s: &mut Scenario) -> anyhow::Result<()> {
        macro_rules! set {
            ($($field:ident <- $flag:ident),* $(,)?) => {
                $( if let Some(v) = &self.$flag { s.$field = v.clone(); } )*
            };
        }
        set!(
            name <- name,
            publishers <- publishers,
            consumers <- consumers,
            queues <- queues,
            bindings <- bindings,
            routing_keys <- routing_keys,
            message_size <- size,
            in_flight <- in_flight,
            prefetch <- prefetch,
            ack_every <- ack_every,
            duration <- duration,
            max_backlog <- max_backlog,
            spin_us <- spin_us,
            drain_timeout <- drain_timeout,
        );
        if let Some(x) = &self.exchange {
            s.exchange = ExchangeType::parse(x).with_context(|| {
                format!("--exchange {x}: expected default, direct, fanout or topic")
            })?;
        }
        if self.messages.is_some() {
            s.messages = self.messages;
        }
        if self.rate.is_some() {
            s.rate = self.rate;
        }
        if self.duration.is_some() && self.messages.is_none() {
            s.messages = None;
        }
        s.persistent |= self.persistent;
        s.confirms |= self.confirms;
        if self.manual_ack {
            s.auto_ack = false;
        }
        if self.ack_single {
            s.ack_multiple = false;
        }
        Ok(())
    }
}

fn scenarios(file: Option<&PathBuf>, knobs: &Knobs) -> anyhow::Result<Vec<Scenario>> {
    let mut list = match file {
        Some(path) => Scenario::load_all(path)?,
        None => vec![Scenario::default()],
    };
    for s in &mut list {
        knobs.apply(s)?;
        s.validate()?;
    }
    Ok(list)
}

fn cmd_run(a: &RunArgs) -> anyhow::Result<bool> {
    let mut target = Target::parse(&a.target)?;
    if a.broker_pid.is_some() {
        target.broker_pid = a.broker_pid;
    }
    if a.gateway_pid.is_some() {
        target.gateway_pid = a.gateway_pid;
    }
    let list = scenarios(a.scenario.as_ref(), &a.knobs)?;
    let opts = RunOptions {
        check: a.check,
        progress: !a.quiet,
    };
    let mut all_ok = true;
    for s in &list {
        let r = run(&target, s, &opts)?;
        let summary = RunSummary::of(&r);
        print!("{}", summary.text());
        if let Some(dir) = &a.out {
            let stem = file_stem(&format!("{}-{}", s.name, target.label));
            let path = write_run(dir, &stem, &r, &summary)?;
            println!("  saved      {}", path.display());
        }
        if let Some(Err(e)) = &r.check {
            eprintln!("ringmq-bench: check failed: {e}");
            all_ok = false;
        }
    }
    Ok(all_ok)
}

fn cmd_compare(a: &CompareArgs) -> anyhow::Result<bool> {
    let targets = a
        .targets
        .iter()
        .map(|t| Target::parse(t))
        .collect::<Result<Vec<_>, _>>()?;
    if a.rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    let list = scenarios(a.scenario.as_ref(), &a.knobs)?;
    let opts = CompareOptions {
        rounds: a.rounds,
        out: a.out.clone(),
        progress: !a.quiet,
    };
    let cells = compare(&targets, &list, &opts, |cell| match &cell.outcome {
        Ok(s) => print!("round {}: {}", cell.round + 1, s.text()),
        Err(e) => println!(
            "round {}: {} -> {}: error: {e}",
            cell.round + 1,
            list[cell.scenario].name,
            targets[cell.target].label
        ),
    })?;
    let t = table(&targets, &list, &cells);
    println!("{t}");
    if let Some(dir) = &a.out {
        let path = dir.join("compare.md");
        std::fs::write(&path, &t).with_context(|| format!("writing {}", path.display()))?;
        println!("saved {}", path.display());
    }
    Ok(cells.iter().all(|c| c.outcome.is_ok()))
}

fn cmd_plot(a: &PlotArgs) -> anyhow::Result<bool> {
    let runs = a
        .runs
        .iter()
        .map(|p| RunSummary::load(p))
        .collect::<Result<Vec<_>, _>>()?;
    if runs
        .iter()
        .all(|r| r.latency.end_to_end.is_none() && r.latency.confirm.is_none())
    {
        bail!("none of the runs has latency samples to plot");
    }
    let doc = svg(
        &runs,
        &PlotOptions {
            title: a.title.clone(),
            linear: a.linear,
        },
    );
    std::fs::write(&a.output, doc).with_context(|| format!("writing {}", a.output.display()))?;
    println!("saved {}", a.output.display());
    Ok(true)
}

fn cmd_plot_memory(a: &PlotMemoryArgs) -> anyhow::Result<bool> {
    let runs = a
        .runs
        .iter()
        .map(|p| RunSummary::load(p))
        .collect::<Result<Vec<_>, _>>()?;
    if runs.iter().all(|r| r.timeline.is_empty()) {
        bail!("none of the runs has a timeline (written by ringmq-bench 0.1 with RSS sampling)");
    }
    let doc = ringmq_bench::memory::rss_svg(&runs, &a.title);
    std::fs::write(&a.output, doc).with_context(|| format!("writing {}", a.output.display()))?;
    println!("saved {}", a.output.display());
    Ok(true)
}

fn cmd_torture(a: &TortureArgs) -> anyhow::Result<bool> {
    let seed = a.seed.unwrap_or_else(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        (now.as_nanos() as u64) ^ u64::from(std::process::id())
    });
    if !(a.ready_timeout > 0.0 && a.ready_timeout.is_finite()) {
        bail!("--ready-timeout must be a positive number of seconds");
    }
    let opts = TortureOptions {
        cycles: a.cycles,
        publishers: a.publishers,
        native_publishers: a.native_publishers,
        queues: a.queues,
        consumers: a.consumers,
        seed,
        data_dir: a.run.data_dir.clone(),
        keep: a.run.keep,
        broker: a.run.broker.clone(),
        gateway: a.gateway.clone(),
        broker_cores: a.broker_cores,
        min_load_ms: a.min_load_ms,
        max_load_ms: a.max_load_ms,
        in_flight: a.in_flight,
        prefetch: a.prefetch,
        hold: a.hold,
        ready_timeout: std::time::Duration::from_secs_f64(a.ready_timeout),
        ..TortureOptions::default()
    };
    let quiet = a.quiet;
    let report = ringmq_bench::torture::run(&opts, &mut |c| {
        if !quiet {
            eprintln!("{}", c.line(opts.cycles));
        }
    })?;
    print!("{}", report.text());
    if let Some(path) = &a.run.report {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
        println!("  saved        {}", path.display());
    }
    Ok(report.passed())
}

fn cmd_storage(a: &StorageArgs) -> anyhow::Result<bool> {
    if !(a.ready_timeout > 0.0 && a.ready_timeout.is_finite()) {
        bail!("--ready-timeout must be a positive number of seconds");
    }
    let opts = StorageOptions {
        seconds: a.seconds,
        block: a.block,
        message_size: a.size,
        in_flight: a.in_flight,
        log_bytes: a.log_bytes,
        fill_message_size: a.fill_size,
        broker_cores: a.broker_cores,
        data_dir: a.run.data_dir.clone(),
        keep: a.run.keep,
        broker: a.run.broker.clone(),
        ready_timeout: std::time::Duration::from_secs_f64(a.ready_timeout),
    };
    let quiet = a.quiet;
    let report = ringmq_bench::storage::run(&opts, &mut |line| {
        if !quiet {
            eprintln!("{line}");
        }
    })?;
    print!("{}", report.text());
    if let Some(path) = &a.run.report {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
        println!("  saved        {}", path.display());
    }
    Ok(true)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Run(a) => cmd_run(a),
        Command::Compare(a) => cmd_compare(a),
        Command::Plot(a) => cmd_plot(a),
        Command::PlotMemory(a) => cmd_plot_memory(a),
        Command::Torture(a) => cmd_torture(a),
        Command::Storage(a) => cmd_storage(a),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("ringmq-bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
