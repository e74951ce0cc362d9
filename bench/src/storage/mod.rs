//! `ringmq-bench storage`: the figures of the broker's storage against
//! its file system's own, in one run on one file system (the run
//! directory's):
//!
//! ```text
//! 1. disk::fdatasync_loop: 4 KiB O_DIRECT appends + fdatasync    -> p50..max
//! 2. the real broker (servers::Servers, confirms/): persistent 1 KiB
//!    publishes with confirms, 100 in flight (run::run)           -> p50..max, msg/s
//!    -> confirm p99 / fdatasync p99
//! 3. a fresh broker (recovery/): fill::fill with 16 KiB messages, no
//!    consumer, until its segment files hold --log-bytes
//!    -> kill -9 -> drop the page cache -> restart, timed until it
//!    accepts connections (+ its "log recovered" lines)
//!    -> drop the page cache -> disk::read_direct of the same files
//!    -> recovery seconds / plain read seconds
//! ```
//!
//! What it is not: a check. Nothing here fails on slow figures; the run
//! fails only when something does not work (a broker that does not come
//! back, nacks, O_DIRECT refused).

use std::path::{Path, PathBuf};
use std::time::Duration;

use ringmq_protocol::client::blocking::Connection;
use ringmq_protocol::client::ConnectOptions;
use ringmq_protocol::message as m;

pub mod disk;
pub mod fill;
pub mod report;

use self::disk::Mount;
use self::report::{
    mb_per_sec, ratio, recovered_lines, ConfirmFigures, RecoveryFigures, Settings, StorageReport,
    SyncFigures,
};
use crate::error::BenchError;
use crate::report::{Machine, Percentiles};
use crate::run::{run as run_scenario, RunOptions};
use crate::scenario::Scenario;
use crate::target::Target;
use crate::torture::servers::{Binaries, Servers};
use crate::torture::RunDir;

/// The broker's log filter during the recovery phase: its "log recovered"
/// lines are at `info`.
const RECOVERY_LOG_FILTER: &str = "warn,ringmq_core::log=info";

/// What to run.
#[derive(Debug, Clone)]
pub struct StorageOptions {
    /// Length of the fdatasync loop and of the confirm run.
    pub seconds: f64,
    /// Bytes per write of the fdatasync loop (a multiple of 4096).
    pub block: usize,
    /// Body size of the confirm run.
    pub message_size: usize,
    /// Unconfirmed messages allowed (confirm run and fill).
    pub in_flight: u32,
    /// Segment bytes the fill stops at.
    pub log_bytes: u64,
    /// Body size of the fill.
    pub fill_message_size: usize,
    /// Broker shards.
    pub broker_cores: usize,
    /// Run directory (empty or absent; kept). `None`: a temporary one.
    pub data_dir: Option<PathBuf>,
    /// Keep the temporary run directory.
    pub keep: bool,
    /// `ringmq` binary (default: next to this executable).
    pub broker: Option<PathBuf>,
    /// How long a start (the recovery included) may take.
    pub ready_timeout: Duration,
}

impl Default for StorageOptions {
    fn default() -> Self {
        StorageOptions {
            seconds: 10.0,
            block: 4096,
            message_size: 1024,
            in_flight: 100,
            log_bytes: 1 << 30,
            fill_message_size: 16 * 1024,
            broker_cores: 1,
            data_dir: None,
            keep: false,
            broker: None,
            ready_timeout: Duration::from_secs(300),
        }
    }
}

impl StorageOptions {
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
        if !(self.seconds > 0.0 && self.seconds.is_finite()) {
            return bad("seconds", "a positive number of seconds");
        }
        if self.block == 0 || !self.block.is_multiple_of(disk::ALIGN) {
            return bad("block", "a multiple of 4096 bytes (O_DIRECT)");
        }
        if self.in_flight == 0 {
            return bad("in-flight", "at least 1");
        }
        if self.log_bytes < 1024 * 1024 {
            return bad("log-bytes", "at least 1 MiB");
        }
        if self.broker_cores == 0 {
            return bad("broker-cores", "at least 1");
        }
        Ok(())
    }
}

/// Parses a byte count: a number with an optional unit, `KiB`, `MiB`,
/// `GiB`, `TiB` (or `K`, `M`, `G`, `T`: the same, binary) or `KB`, `MB`,
/// `GB`, `TB` (decimal); `1GiB`, `1.5 GiB`, `1073741824`.
///
/// # Errors
/// What is wrong with the text.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("'{text}': expected a number of bytes, like 1GiB"))?;
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kib" => 1024.0,
        "m" | "mib" => 1024.0 * 1024.0,
        "g" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        other => {
            return Err(format!(
                "'{text}': unknown unit '{other}' (KiB, MiB, GiB, MB, GB)"
            ))
        }
    };
    Ok((number * scale).round() as u64)
}

/// Runs the three measurements; `progress` sees a line as each phase
/// starts.
///
/// # Errors
/// Invalid options, a missing binary, an unusable run directory, a broker
/// that does not start or refuses the load, O_DIRECT refused by the file
/// system.
pub fn run(
    opts: &StorageOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<StorageReport, BenchError> {
    opts.validate()?;
    let bins = Binaries::broker_only(opts.broker.as_deref())?;
    let dir = RunDir::new(opts.data_dir.as_ref(), "ringmq-storage-")?;
    let root = dir.path();
    let result = measure(opts, &bins, &root, progress);
    let kept = dir.finish(opts.keep);
    let mut report = result?;
    report.kept = kept;
    Ok(report)
}

fn measure(
    opts: &StorageOptions,
    bins: &Binaries,
    root: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<StorageReport, BenchError> {
    progress(&format!(
        "fdatasync: {} B O_DIRECT appends + fdatasync for {} s",
        opts.block, opts.seconds
    ));
    let sync = disk::fdatasync_loop(root, opts.block, Duration::from_secs_f64(opts.seconds))?;
    let fdatasync = SyncFigures {
        mode: format!(
            "{} B O_DIRECT append (growing file) + fdatasync",
            opts.block
        ),
        syncs: sync.latency.len(),
        secs: sync.elapsed.as_secs_f64(),
        latency: Percentiles::of(&sync.latency),
    };
    progress(&format!(
        "confirms: persistent {} B publishes, {} in flight, for {} s",
        opts.message_size, opts.in_flight, opts.seconds
    ));
    let confirms = confirm_run(opts, bins, &root.join("confirms"))?;
    let confirm_p99_over_fdatasync_p99 = match (&confirms.latency, &fdatasync.latency) {
        (Some(c), Some(f)) => ratio(c.p99_us, f.p99_us),
        _ => None,
    };
    let recovery = recovery(opts, bins, &root.join("recovery"), progress)?;
    Ok(StorageReport {
        machine: Machine::this(),
        dir: root.to_owned(),
        mount: Mount::of(root),
        settings: Settings {
            seconds: opts.seconds,
            block: opts.block,
            message_size: opts.message_size,
            in_flight: opts.in_flight,
            log_bytes: opts.log_bytes,
            fill_message_size: opts.fill_message_size,
            broker_cores: opts.broker_cores,
        },
        fdatasync,
        confirms,
        confirm_p99_over_fdatasync_p99,
        recovery,
        kept: None,
    })
}

fn make_dir(dir: &Path) -> Result<(), BenchError> {
    std::fs::create_dir_all(dir).map_err(|source| BenchError::File {
        path: dir.to_owned(),
        source,
    })
}

/// Persistent publishes with confirms against a broker of its own, whose
/// data is removed afterwards (it would only take disk space).
fn confirm_run(
    opts: &StorageOptions,
    bins: &Binaries,
    dir: &Path,
) -> Result<ConfirmFigures, BenchError> {
    make_dir(dir)?;
    let mut servers = Servers::new(bins.clone(), dir, opts.broker_cores, opts.ready_timeout)?;
    servers.start_broker()?;
    let s = Scenario {
        name: "storage-confirms".into(),
        consumers: 0,
        message_size: opts.message_size,
        persistent: true,
        confirms: true,
        in_flight: opts.in_flight,
        duration: opts.seconds,
        ..Scenario::default()
    };
    let r = run_scenario(&servers.native_target(), &s, &RunOptions::default());
    servers.kill(true);
    let _ = std::fs::remove_dir_all(servers.data_dir());
    let r = r?;
    let secs = r.publish_secs;
    let acked = r.confirmed - r.nacked;
    let msgs_per_sec = ratio(acked as f64, secs).unwrap_or(0.0);
    Ok(ConfirmFigures {
        published: r.published,
        confirmed: r.confirmed,
        nacked: r.nacked,
        secs,
        msgs_per_sec,
        mb_per_sec: msgs_per_sec * opts.message_size as f64 / 1e6,
        broker_us_per_msg: r
            .broker_cpu_ns
            .map(|ns| ns as f64 / 1000.0 / r.published.max(1) as f64),
        latency: Percentiles::of(&r.confirm),
    })
}

/// "dropped", or why not.
fn describe_drop(r: Result<(), String>) -> String {
    match r {
        Ok(()) => "dropped (sync; echo 3 > /proc/sys/vm/drop_caches)".into(),
        Err(why) => format!("NOT dropped: {why}"),
    }
}

/// Grows a fresh broker's log, kills it, restarts it on a cold cache
/// (timed), then reads the same files plainly on a cold cache (timed).
fn recovery(
    opts: &StorageOptions,
    bins: &Binaries,
    dir: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<RecoveryFigures, BenchError> {
    make_dir(dir)?;
    let mut servers = Servers::new(bins.clone(), dir, opts.broker_cores, opts.ready_timeout)?;
    servers.set_log_filter(RECOVERY_LOG_FILTER);
    let empty_start = servers.start_broker()?;
    let data = servers.data_dir();
    progress(&format!(
        "recovery: filling the log to {} with {} B persistent messages",
        report::fmt_bytes(opts.log_bytes),
        opts.fill_message_size
    ));
    let filled = fill::fill(
        &servers.native_target(),
        &data,
        opts.log_bytes,
        opts.fill_message_size,
        opts.in_flight,
    )?;
    servers.kill(true);
    let segments = disk::segments(&data)?;
    let bytes: u64 = segments.iter().map(|(_, len)| len).sum();
    let cache_before_restart = describe_drop(disk::drop_page_cache());
    progress(&format!(
        "recovery: kill -9 done, {} in {} segment files; restarting",
        report::fmt_bytes(bytes),
        segments.len()
    ));
    let recovery = servers.start_broker()?;
    let messages_after_restart = queue_messages(&servers.native_target(), &filled.queue).ok();
    servers.kill(true);
    let log = std::fs::read_to_string(servers.broker_log()).unwrap_or_default();
    let cache_before_read = describe_drop(disk::drop_page_cache());
    progress("plain read: the same segment files, O_DIRECT, 1 MiB reads");
    let files: Vec<PathBuf> = segments.into_iter().map(|(p, _)| p).collect();
    let (read_bytes, read) = disk::read_direct(&files)?;
    let (recovery_secs, read_secs) = (recovery.as_secs_f64(), read.as_secs_f64());
    Ok(RecoveryFigures {
        messages: filled.published,
        confirmed: filled.confirmed,
        fill_secs: filled.elapsed.as_secs_f64(),
        segment_files: files.len(),
        bytes,
        empty_start_secs: empty_start.as_secs_f64(),
        cache_before_restart,
        recovery_secs,
        recovery_mb_per_sec: mb_per_sec(bytes, recovery_secs),
        shards: recovered_lines(&log),
        messages_after_restart,
        cache_before_read,
        read_bytes,
        read_secs,
        read_mb_per_sec: mb_per_sec(read_bytes, read_secs),
        recovery_over_read: ratio(recovery_secs, read_secs),
    })
}

/// The messages of `queue` (a passive declare).
fn queue_messages(target: &Target, queue: &str) -> Result<u64, BenchError> {
    let fail = |e: ringmq_protocol::client::ClientError| {
        BenchError::protocol("queue check", e.to_string())
    };
    let mut conn = Connection::connect(target.addr(), &ConnectOptions::default()).map_err(fail)?;
    let channel = conn.open_channel().map_err(fail)?;
    let ok = conn
        .queue_declare(m::QueueDeclare {
            channel,
            queue: queue.to_owned(),
            passive: true,
            durable: true,
            ..m::QueueDeclare::default()
        })
        .map_err(fail)?;
    let _ = conn.close();
    Ok(u64::from(ok.message_count))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_parse() {
        assert_eq!(parse_bytes("1GiB"), Ok(1 << 30));
        assert_eq!(parse_bytes("1 GiB"), Ok(1 << 30));
        assert_eq!(parse_bytes("1.5g"), Ok(3 << 29));
        assert_eq!(parse_bytes("512MiB"), Ok(512 << 20));
        assert_eq!(parse_bytes("2GB"), Ok(2_000_000_000));
        assert_eq!(parse_bytes("1073741824"), Ok(1 << 30));
        assert!(parse_bytes("GiB").is_err());
        assert!(parse_bytes("1 parsec").is_err());
    }

    #[test]
    fn options_are_checked() {
        assert!(StorageOptions::default().validate().is_ok());
        let bad = |o: StorageOptions| match o.validate() {
            Err(BenchError::BadOption { key, .. }) => key,
            other => panic!("expected a bad option, got {other:?}"),
        };
        let d = StorageOptions::default;
        assert_eq!(bad(StorageOptions { block: 1000, ..d() }), "block");
        assert_eq!(
            bad(StorageOptions {
                seconds: 0.0,
                ..d()
            }),
            "seconds"
        );
        assert_eq!(
            bad(StorageOptions {
                log_bytes: 10,
                ..d()
            }),
            "log-bytes"
        );
        assert_eq!(
            bad(StorageOptions {
                in_flight: 0,
                ..d()
            }),
            "in-flight"
        );
    }
}
