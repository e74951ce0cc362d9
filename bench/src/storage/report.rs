//! What `ringmq-bench storage` found, as text and as JSON, and the
//! broker's "log recovered" log lines read back.

use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Serialize;

use super::disk::Mount;
use crate::report::{fmt_us, Machine, Percentiles};
use crate::torture::servers::START_HEADER;

/// The settings of the run.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// Length of the fdatasync loop and of the confirm run, seconds.
    pub seconds: f64,
    /// Bytes per write of the fdatasync loop.
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
}

/// The write+fdatasync loop.
#[derive(Debug, Clone, Serialize)]
pub struct SyncFigures {
    /// How it wrote.
    pub mode: String,
    /// Writes+syncs done.
    pub syncs: u64,
    /// Seconds.
    pub secs: f64,
    /// Latency of one write+fdatasync.
    pub latency: Option<Percentiles>,
}

/// Persistent publishes with confirms.
#[derive(Debug, Clone, Serialize)]
pub struct ConfirmFigures {
    /// Messages published.
    pub published: u64,
    /// Confirms received (acks and nacks).
    pub confirmed: u64,
    /// Of which nacks.
    pub nacked: u64,
    /// Seconds of publishing.
    pub secs: f64,
    /// Confirmed messages per second.
    pub msgs_per_sec: f64,
    /// Confirmed body MB/s (10^6 bytes).
    pub mb_per_sec: f64,
    /// Broker CPU per message, µs.
    pub broker_us_per_msg: Option<f64>,
    /// Publish to confirm.
    pub latency: Option<Percentiles>,
}

/// One shard's "log recovered" line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ShardRecovery {
    /// Shard.
    pub shard: u64,
    /// Segment files scanned.
    pub segments: u64,
    /// Records read.
    pub records: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Messages recovered.
    pub messages: u64,
    /// Time the shard's log took to open, ms.
    pub elapsed_ms: u64,
}

/// The log grown, the broker killed and restarted, the files read plainly.
#[derive(Debug, Clone, Serialize)]
pub struct RecoveryFigures {
    /// Messages published into the log.
    pub messages: u64,
    /// Of which confirmed.
    pub confirmed: u64,
    /// Seconds from the first publish to the last confirm.
    pub fill_secs: f64,
    /// Segment files at the kill.
    pub segment_files: usize,
    /// Their bytes.
    pub bytes: u64,
    /// A start of the same broker on an empty data directory, seconds:
    /// what a restart costs besides reading the log.
    pub empty_start_secs: f64,
    /// "dropped", or why the page cache could not be dropped before the
    /// restart.
    pub cache_before_restart: String,
    /// Spawn of the restarted broker until it completed a native
    /// handshake (it listens only once every shard recovered), seconds.
    pub recovery_secs: f64,
    /// `bytes` / `recovery_secs`, MB/s (10^6 bytes).
    pub recovery_mb_per_sec: f64,
    /// The broker's own "log recovered" lines.
    pub shards: Vec<ShardRecovery>,
    /// Messages in the queue after the restart (passive declare).
    pub messages_after_restart: Option<u64>,
    /// As `cache_before_restart`, before the plain read.
    pub cache_before_read: String,
    /// Bytes of the plain read.
    pub read_bytes: u64,
    /// Its seconds.
    pub read_secs: f64,
    /// Its MB/s.
    pub read_mb_per_sec: f64,
    /// `recovery_secs` / `read_secs`.
    pub recovery_over_read: Option<f64>,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct StorageReport {
    /// Where it ran.
    pub machine: Machine,
    /// The run directory (broker data, probe file).
    pub dir: PathBuf,
    /// Its file system.
    pub mount: Option<Mount>,
    /// What was run.
    pub settings: Settings,
    /// Disk alone.
    pub fdatasync: SyncFigures,
    /// Broker, persistent with confirms.
    pub confirms: ConfirmFigures,
    /// Confirm p99 / fdatasync p99.
    pub confirm_p99_over_fdatasync_p99: Option<f64>,
    /// Recovery against a plain read.
    pub recovery: RecoveryFigures,
    /// The run directory, when kept.
    pub kept: Option<PathBuf>,
}

/// `a / b`, when `b` is above 0.
pub fn ratio(a: f64, b: f64) -> Option<f64> {
    (b > 0.0).then(|| a / b)
}

/// MB/s (10^6 bytes) of `bytes` in `secs`.
pub fn mb_per_sec(bytes: u64, secs: f64) -> f64 {
    ratio(bytes as f64 / 1e6, secs).unwrap_or(0.0)
}

/// Bytes in GiB or MiB, whichever reads better.
pub fn fmt_bytes(b: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    if b as f64 >= 1024.0 * MIB {
        format!("{:.2} GiB", b as f64 / (1024.0 * MIB))
    } else {
        format!("{:.1} MiB", b as f64 / MIB)
    }
}

fn fmt_ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "-".into(), |r| format!("{r:.2}"))
}

fn p99(p: Option<&Percentiles>) -> String {
    p.map_or_else(|| "-".into(), |p| fmt_us(p.p99_us))
}

impl StorageReport {
    /// The text printed after a run.
    pub fn text(&self) -> String {
        let mut t = String::new();
        let (s, f, c, r) = (
            &self.settings,
            &self.fdatasync,
            &self.confirms,
            &self.recovery,
        );
        let m = &self.machine;
        let _ = writeln!(t, "storage figures in {}", self.dir.display());
        if let Some(mount) = &self.mount {
            let _ = writeln!(
                t,
                "  file system  {} on {} (mounted at {})",
                mount.fs_type, mount.source, mount.point
            );
        }
        let _ = writeln!(
            t,
            "  machine      {}, {} cores, Linux {}",
            m.cpu, m.cores, m.kernel
        );
        let _ = writeln!(
            t,
            "fdatasync      {}, {:.1} s: {} syncs ({:.0}/s)",
            f.mode,
            f.secs,
            f.syncs,
            ratio(f.syncs as f64, f.secs).unwrap_or(0.0)
        );
        if let Some(p) = &f.latency {
            let _ = writeln!(t, "  latency      {}", p.line());
        }
        let _ = writeln!(
            t,
            "confirms       persistent {} B bodies, durable queue, 1 publisher, {} in flight, native protocol, {} shard(s), {:.1} s",
            s.message_size, s.in_flight, s.broker_cores, c.secs
        );
        let _ = writeln!(
            t,
            "  throughput   {} confirmed ({} nacked) of {} published: {:.0} msg/s, {:.1} MB/s{}",
            c.confirmed,
            c.nacked,
            c.published,
            c.msgs_per_sec,
            c.mb_per_sec,
            c.broker_us_per_msg
                .map_or_else(String::new, |u| format!(", broker CPU {u:.1} µs/msg"))
        );
        if let Some(p) = &c.latency {
            let _ = writeln!(t, "  latency      {}", p.line());
        }
        let _ = writeln!(
            t,
            "  confirm p99 / fdatasync p99 = {} / {} = {}",
            p99(c.latency.as_ref()),
            p99(f.latency.as_ref()),
            fmt_ratio(self.confirm_p99_over_fdatasync_p99)
        );
        let _ = writeln!(
            t,
            "recovery       log of {} ({} B) in {} segment files: {} persistent {} B messages, {} confirmed (filled in {:.1} s, {:.0} MB/s)",
            fmt_bytes(r.bytes),
            r.bytes,
            r.segment_files,
            r.messages,
            s.fill_message_size,
            r.confirmed,
            r.fill_secs,
            mb_per_sec(r.bytes, r.fill_secs)
        );
        let _ = writeln!(t, "  kill -9; page cache: {}", r.cache_before_restart);
        let _ = writeln!(
            t,
            "  restart      {:.2} s until it accepts connections ({:.0} MB/s); an empty broker starts in {:.2} s",
            r.recovery_secs, r.recovery_mb_per_sec, r.empty_start_secs
        );
        for sh in &r.shards {
            let _ = writeln!(
                t,
                "  shard {}      log recovered in {} ms: {} segments, {} records, {} B, {} messages",
                sh.shard, sh.elapsed_ms, sh.segments, sh.records, sh.bytes, sh.messages
            );
        }
        if let Some(n) = r.messages_after_restart {
            let _ = writeln!(t, "  queue        {n} messages after the restart");
        }
        let _ = writeln!(
            t,
            "plain read     page cache: {}; {} with O_DIRECT, 1 MiB reads, file after file: {:.2} s ({:.0} MB/s)",
            r.cache_before_read,
            fmt_bytes(r.read_bytes),
            r.read_secs,
            r.read_mb_per_sec
        );
        let _ = writeln!(
            t,
            "  recovery / plain read = {:.2} s / {:.2} s = {}",
            r.recovery_secs,
            r.read_secs,
            fmt_ratio(r.recovery_over_read)
        );
        if let Some(k) = &self.kept {
            let _ = writeln!(t, "  kept         {}", k.display());
        }
        t
    }
}

/// Removes terminal escape sequences (`ESC [ ... letter`).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The "log recovered" lines the broker logged since its last start
/// (after the last [`START_HEADER`] of its log file).
pub fn recovered_lines(log: &str) -> Vec<ShardRecovery> {
    let since = log.rfind(START_HEADER).map_or(log, |at| &log[at..]);
    since
        .lines()
        .map(strip_ansi)
        .filter(|l| l.contains("log recovered"))
        .map(|l| {
            let mut r = ShardRecovery::default();
            for (key, value) in l.split_whitespace().filter_map(|w| w.split_once('=')) {
                let Ok(v) = value.parse::<u64>() else {
                    continue;
                };
                match key {
                    "shard" => r.shard = v,
                    "segments" => r.segments = v,
                    "records" => r.records = v,
                    "bytes" => r.bytes = v,
                    "messages" => r.messages = v,
                    "elapsed_ms" => r.elapsed_ms = v,
                    _ => {}
                }
            }
            r
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_of_the_last_start_are_read() {
        let log = format!(
            "{START_HEADER} 1 ---\n\
             2026-11-26T05:00:00Z  INFO ringmq_core::log: log recovered shard=0 segments=1 records=2 bytes=3 messages=4 elapsed_ms=5\n\
             {START_HEADER} 2 ---\n\
             \u{1b}[2m2026-11-26T05:01:00Z\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m \u{1b}[2mringmq_core::log\u{1b}[0m\u{1b}[2m:\u{1b}[0m log recovered \u{1b}[3mshard\u{1b}[0m\u{1b}[2m=\u{1b}[0m1 \u{1b}[3msegments\u{1b}[0m\u{1b}[2m=\u{1b}[0m17 records=65540 bytes=1090000000 messages=65536 elapsed_ms=2310\n\
             2026-11-26T05:01:02Z  INFO ringmq_core: ringmq listening addr=127.0.0.1:1 shards=1\n"
        );
        let lines = recovered_lines(&log);
        assert_eq!(
            lines,
            vec![ShardRecovery {
                shard: 1,
                segments: 17,
                records: 65540,
                bytes: 1_090_000_000,
                messages: 65536,
                elapsed_ms: 2310,
            }]
        );
        assert!(recovered_lines("no header, no lines\n").is_empty());
    }

    fn sample() -> StorageReport {
        let mut h = crate::driver::new_histogram();
        for v in [200_000u64, 250_000, 400_000] {
            h.saturating_record(v);
        }
        let sync = Percentiles::of(&h);
        let mut h = crate::driver::new_histogram();
        for v in [500_000u64, 600_000, 800_000] {
            h.saturating_record(v);
        }
        let confirm = Percentiles::of(&h);
        let ratio_p99 = ratio(
            confirm.as_ref().unwrap().p99_us,
            sync.as_ref().unwrap().p99_us,
        );
        StorageReport {
            machine: Machine {
                cpu: "test cpu".into(),
                cores: 2,
                kernel: "6.1".into(),
            },
            dir: PathBuf::from("/tmp/run"),
            mount: Some(Mount {
                point: "/".into(),
                fs_type: "ext4".into(),
                source: "/dev/vda".into(),
            }),
            settings: Settings {
                seconds: 10.0,
                block: 4096,
                message_size: 1024,
                in_flight: 100,
                log_bytes: 1 << 30,
                fill_message_size: 16384,
                broker_cores: 1,
            },
            fdatasync: SyncFigures {
                mode: "4096 B O_DIRECT append + fdatasync".into(),
                syncs: 3,
                secs: 10.0,
                latency: sync,
            },
            confirms: ConfirmFigures {
                published: 3,
                confirmed: 3,
                nacked: 0,
                secs: 10.0,
                msgs_per_sec: 0.3,
                mb_per_sec: 0.0,
                broker_us_per_msg: Some(4.5),
                latency: confirm,
            },
            confirm_p99_over_fdatasync_p99: ratio_p99,
            recovery: RecoveryFigures {
                messages: 65536,
                confirmed: 65536,
                fill_secs: 4.0,
                segment_files: 17,
                bytes: 1_100_000_000,
                empty_start_secs: 0.05,
                cache_before_restart: "dropped".into(),
                recovery_secs: 2.2,
                recovery_mb_per_sec: mb_per_sec(1_100_000_000, 2.2),
                shards: vec![ShardRecovery::default()],
                messages_after_restart: Some(65536),
                cache_before_read: "dropped".into(),
                read_bytes: 1_100_000_000,
                read_secs: 1.1,
                read_mb_per_sec: mb_per_sec(1_100_000_000, 1.1),
                recovery_over_read: ratio(2.2, 1.1),
            },
            kept: None,
        }
    }

    #[test]
    fn report_shows_the_ratios() {
        let r = sample();
        let text = r.text();
        assert!(
            text.contains("confirm p99 / fdatasync p99 = 800 µs / 400 µs = 2.00"),
            "{text}"
        );
        assert!(
            text.contains("recovery / plain read = 2.20 s / 1.10 s = 2.00"),
            "{text}"
        );
        assert!(text.contains("(500 MB/s)"), "{text}");
        assert!(text.contains("1.02 GiB"), "{text}");
        assert!(text.contains("ext4 on /dev/vda"), "{text}");
        let json = serde_json::to_value(&r).unwrap();
        let near_2 = |v: &serde_json::Value| (v.as_f64().unwrap() - 2.0).abs() < 0.01;
        assert!(near_2(&json["recovery"]["recovery_over_read"]));
        assert!(near_2(&json["confirm_p99_over_fdatasync_p99"]));
    }

    #[test]
    fn ratios_of_nothing_are_absent() {
        assert_eq!(ratio(1.0, 0.0), None);
        assert_eq!(mb_per_sec(1_000_000, 0.0), 0.0);
        assert_eq!(fmt_bytes(512 * 1024 * 1024), "512.0 MiB");
    }
}
