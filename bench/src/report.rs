//! Run reports: the JSON summary (what `plot` and `compare` read back),
//! HdrHistogram percentile-distribution files (`.hgrm`, the text format of
//! `outputPercentileDistribution`, values in microseconds), and the text
//! printed after a run.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::error::BenchError;
use crate::run::RunResult;
use crate::scenario::Scenario;

/// Version of the JSON summary format.
pub const FORMAT_VERSION: u32 = 1;

/// Latency percentiles in microseconds, with the curve for plots.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// Samples.
    pub count: u64,
    /// Smallest.
    pub min_us: f64,
    /// Mean.
    pub mean_us: f64,
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// 99.99th percentile.
    pub p9999_us: f64,
    /// Largest.
    pub max_us: f64,
    /// (quantile, µs) pairs of the percentile distribution (5 ticks per
    /// half distance, as in the `.hgrm` file).
    pub curve: Vec<(f64, f64)>,
}

impl Percentiles {
    /// Percentiles of a histogram in nanoseconds; `None` when empty.
    pub fn of(h: &Histogram<u64>) -> Option<Percentiles> {
        if h.is_empty() {
            return None;
        }
        let us = |ns: u64| ns as f64 / 1000.0;
        let q = |p: f64| us(h.value_at_quantile(p));
        Some(Percentiles {
            count: h.len(),
            min_us: us(h.min()),
            mean_us: h.mean() / 1000.0,
            p50_us: q(0.5),
            p90_us: q(0.9),
            p99_us: q(0.99),
            p999_us: q(0.999),
            p9999_us: q(0.9999),
            max_us: us(h.max()),
            curve: h
                .iter_quantiles(5)
                .map(|v| (v.quantile_iterated_to(), us(v.value_iterated_to())))
                .collect(),
        })
    }

    /// `p50 … max` on one line.
    pub fn line(&self) -> String {
        format!(
            "p50 {}  p90 {}  p99 {}  p99.9 {}  p99.99 {}  max {}  (n={})",
            fmt_us(self.p50_us),
            fmt_us(self.p90_us),
            fmt_us(self.p99_us),
            fmt_us(self.p999_us),
            fmt_us(self.p9999_us),
            fmt_us(self.max_us),
            self.count
        )
    }
}

/// A duration in µs, shown in ms or s when large.
pub fn fmt_us(us: f64) -> String {
    if us >= 1e6 {
        format!("{:.2} s", us / 1e6)
    } else if us >= 1e4 {
        format!("{:.1} ms", us / 1e3)
    } else if us >= 1e3 {
        format!("{:.2} ms", us / 1e3)
    } else {
        format!("{us:.0} µs")
    }
}

/// CPU time of the processes involved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CpuSummary {
    /// What the per-message figures divide by: "delivery" (consumed
    /// deliveries) or "publish" (when nothing is consumed).
    pub per: String,
    /// Harness CPU seconds.
    pub harness_secs: f64,
    /// Harness CPU µs per message.
    pub harness_us_per_msg: f64,
    /// Broker CPU seconds (pid given).
    pub broker_secs: Option<f64>,
    /// Broker CPU µs per message.
    pub broker_us_per_msg: Option<f64>,
    /// Gateway CPU seconds (pid given).
    pub gateway_secs: Option<f64>,
    /// Gateway CPU µs per message.
    pub gateway_us_per_msg: Option<f64>,
}

impl CpuSummary {
    /// Broker plus gateway µs per message, when the broker's is known.
    pub fn server_us_per_msg(&self) -> Option<f64> {
        self.broker_us_per_msg
            .map(|b| b + self.gateway_us_per_msg.unwrap_or(0.0))
    }
}

/// The machine the run was on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// `model name` from /proc/cpuinfo.
    pub cpu: String,
    /// Cores available to the harness.
    pub cores: usize,
    /// Kernel release.
    pub kernel: String,
}

impl Machine {
    /// This machine.
    pub fn this() -> Machine {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".into());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "unknown".into());
        Machine {
            cpu,
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            kernel,
        }
    }
}

/// Latency summaries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Publish (intended) time to delivery.
    pub end_to_end: Option<Percentiles>,
    /// Publish (intended) time to confirm.
    pub confirm: Option<Percentiles>,
    /// Fixed rate only: intended send time to the write of the message,
    /// the harness's own share of the latencies above.
    #[serde(default)]
    pub send_lag: Option<Percentiles>,
    /// Fixed rate only: actual send time (when the publisher thread took
    /// the message up, just before encoding it; it may then wait in the
    /// harness's output buffer) to delivery: the end-to-end latency
    /// without the harness's lag in reaching the message.
    #[serde(default)]
    pub end_to_end_actual: Option<Percentiles>,
}

/// The JSON summary of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// [`FORMAT_VERSION`].
    pub version: u32,
    /// Target label (tables, plot legends).
    pub label: String,
    /// Target URL without password.
    pub target: String,
    /// The scenario as run.
    pub scenario: Scenario,
    /// [`Scenario::describe`].
    pub description: String,
    /// Where it ran.
    pub machine: Machine,
    /// Wall-clock start, seconds since the Unix epoch.
    pub started_unix: u64,
    /// Messages published.
    pub published: u64,
    /// Deliveries consumed.
    pub consumed: u64,
    /// Confirms received.
    pub confirmed: u64,
    /// Nacks among them.
    pub nacked: u64,
    /// Seconds of publishing.
    pub publish_secs: f64,
    /// Seconds from the start to the last delivery.
    pub consume_secs: f64,
    /// Published msg/s.
    pub publish_rate: f64,
    /// Consumed msg/s.
    pub consume_rate: f64,
    /// Published body MB/s (10^6 bytes).
    pub publish_mb_s: f64,
    /// Consumed body MB/s.
    pub consume_mb_s: f64,
    /// CPU figures.
    pub cpu: CpuSummary,
    /// Latency figures.
    pub latency: LatencySummary,
    /// `--check` verdict: "ok" or what failed; absent when not checked.
    pub check: Option<String>,
    /// Highest broker RSS seen, bytes (when its pid was given).
    #[serde(default)]
    pub peak_broker_rss: Option<u64>,
    /// Highest gateway RSS seen, bytes.
    #[serde(default)]
    pub peak_gateway_rss: Option<u64>,
    /// Counts and RSS once a second.
    #[serde(default)]
    pub timeline: Vec<crate::memory::Sample>,
}

impl RunSummary {
    /// Summarises a run.
    pub fn of(r: &RunResult) -> RunSummary {
        let size = r.scenario.message_size as f64;
        let rate = |n: u64, secs: f64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
        let (per, n) = if r.consumed > 0 {
            ("delivery", r.consumed)
        } else {
            ("publish", r.published)
        };
        let per_msg = |ns: u64| ns as f64 / 1000.0 / n.max(1) as f64;
        let publish_rate = rate(r.published, r.publish_secs);
        let consume_rate = rate(r.consumed, r.consume_secs);
        RunSummary {
            version: FORMAT_VERSION,
            label: r.target.label.clone(),
            target: r.target.to_string(),
            scenario: r.scenario.clone(),
            description: r.scenario.describe(),
            machine: Machine::this(),
            started_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            published: r.published,
            consumed: r.consumed,
            confirmed: r.confirmed,
            nacked: r.nacked,
            publish_secs: r.publish_secs,
            consume_secs: r.consume_secs,
            publish_rate,
            consume_rate,
            publish_mb_s: publish_rate * size / 1e6,
            consume_mb_s: consume_rate * size / 1e6,
            cpu: CpuSummary {
                per: per.into(),
                harness_secs: r.harness_cpu_ns as f64 / 1e9,
                harness_us_per_msg: per_msg(r.harness_cpu_ns),
                broker_secs: r.broker_cpu_ns.map(|t| t as f64 / 1e9),
                broker_us_per_msg: r.broker_cpu_ns.map(per_msg),
                gateway_secs: r.gateway_cpu_ns.map(|t| t as f64 / 1e9),
                gateway_us_per_msg: r.gateway_cpu_ns.map(per_msg),
            },
            latency: LatencySummary {
                end_to_end: Percentiles::of(&r.e2e),
                confirm: Percentiles::of(&r.confirm),
                send_lag: Percentiles::of(&r.send_lag),
                end_to_end_actual: Percentiles::of(&r.e2e_actual),
            },
            check: r.check.as_ref().map(|c| match c {
                Ok(()) => "ok".to_owned(),
                Err(e) => e.clone(),
            }),
            peak_broker_rss: crate::memory::peaks(&r.timeline).0,
            peak_gateway_rss: crate::memory::peaks(&r.timeline).1,
            timeline: r.timeline.clone(),
        }
    }

    /// Reads a summary written by [`write_run`].
    ///
    /// # Errors
    /// Unreadable file or not a summary.
    pub fn load(path: &Path) -> Result<RunSummary, BenchError> {
        let text = std::fs::read_to_string(path).map_err(|source| BenchError::File {
            path: path.to_owned(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|e| BenchError::BadReport {
            path: path.to_owned(),
            reason: format!("not a ringmq-bench run summary: {e}"),
        })
    }

    /// The report printed after a run.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{} -> {} [{}]",
            self.scenario.name, self.target, self.label
        );
        let _ = writeln!(s, "  scenario   {}", self.description);
        let _ = writeln!(
            s,
            "  published  {:>12.0} msg/s {:>9.2} MB/s  ({} in {:.2} s)",
            self.publish_rate, self.publish_mb_s, self.published, self.publish_secs
        );
        if self.scenario.consumers > 0 {
            let _ = writeln!(
                s,
                "  consumed   {:>12.0} msg/s {:>9.2} MB/s  ({} in {:.2} s)",
                self.consume_rate, self.consume_mb_s, self.consumed, self.consume_secs
            );
        }
        if self.scenario.confirms {
            let _ = writeln!(
                s,
                "  confirmed  {} ({} nacked)",
                self.confirmed, self.nacked
            );
        }
        let mut cpu = format!(
            "  cpu/{}  harness {:.2} µs",
            self.cpu.per, self.cpu.harness_us_per_msg
        );
        if let Some(b) = self.cpu.broker_us_per_msg {
            let _ = write!(cpu, "  broker {b:.2} µs");
        }
        if let Some(g) = self.cpu.gateway_us_per_msg {
            let _ = write!(cpu, "  gateway {g:.2} µs");
        }
        let _ = writeln!(s, "{cpu}");
        if let Some(p) = &self.latency.end_to_end {
            let _ = writeln!(s, "  end-to-end {}", p.line());
        }
        if let Some(p) = &self.latency.end_to_end_actual {
            let _ = writeln!(s, "  from sent  {}", p.line());
        }
        if let Some(p) = &self.latency.confirm {
            let _ = writeln!(s, "  confirm    {}", p.line());
        }
        if let Some(p) = &self.latency.send_lag {
            let _ = writeln!(s, "  send lag   {}", p.line());
        }
        if self.peak_broker_rss.is_some() || self.peak_gateway_rss.is_some() {
            let mib = |b: Option<u64>| b.map_or("-".to_owned(), |b| format!("{} MiB", b >> 20));
            let _ = writeln!(
                s,
                "  peak RSS   broker {}  gateway {}",
                mib(self.peak_broker_rss),
                mib(self.peak_gateway_rss)
            );
        }
        if let Some(c) = &self.check {
            let _ = writeln!(s, "  check      {c}");
        }
        s
    }
}

/// The percentile distribution of a histogram in nanoseconds, in
/// HdrHistogram's text format with values in microseconds.
pub fn hgrm(h: &Histogram<u64>) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "{:>12} {:>14} {:>10} {:>14}\n\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let len = h.len().max(1);
    for v in h.iter_quantiles(5) {
        let value = v.value_iterated_to() as f64 / 1000.0;
        let q = v.quantile_iterated_to();
        let total = (v.quantile() * len as f64).round() as u64;
        if q < 1.0 {
            let _ = writeln!(
                s,
                "{value:>12.3} {q:>2.12} {total:>10} {:>14.2}",
                1.0 / (1.0 - q)
            );
        } else {
            let _ = writeln!(s, "{value:>12.3} {q:>2.12} {total:>10}");
        }
    }
    let sub_buckets = (2.0 * 10f64.powi(i32::from(h.sigfig())))
        .log2()
        .ceil()
        .exp2() as u64;
    let _ = writeln!(
        s,
        "#[Mean    = {:>12.3}, StdDeviation   = {:>12.3}]",
        h.mean() / 1000.0,
        h.stdev() / 1000.0
    );
    let _ = writeln!(
        s,
        "#[Max     = {:>12.3}, Total count    = {:>12}]",
        h.max() as f64 / 1000.0,
        h.len()
    );
    let _ = writeln!(
        s,
        "#[Buckets = {:>12}, SubBuckets     = {:>12}]",
        h.buckets(),
        sub_buckets
    );
    s
}

/// A file-name-safe version of `s`.
pub fn file_stem(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Writes `{stem}.json`, `{stem}.e2e.hgrm` and `{stem}.confirm.hgrm`
/// (when there are samples) into `dir`; returns the JSON path.
///
/// # Errors
/// The directory or a file cannot be written.
pub fn write_run(
    dir: &Path,
    stem: &str,
    r: &RunResult,
    summary: &RunSummary,
) -> Result<PathBuf, BenchError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| BenchError::File { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let stem = file_stem(stem);
    if !r.e2e.is_empty() {
        let p = dir.join(format!("{stem}.e2e.hgrm"));
        std::fs::write(&p, hgrm(&r.e2e)).map_err(io(&p))?;
    }
    if !r.confirm.is_empty() {
        let p = dir.join(format!("{stem}.confirm.hgrm"));
        std::fs::write(&p, hgrm(&r.confirm)).map_err(io(&p))?;
    }
    let p = dir.join(format!("{stem}.json"));
    let json = serde_json::to_string_pretty(summary).map_err(|e| BenchError::BadReport {
        path: p.clone(),
        reason: e.to_string(),
    })?;
    std::fs::write(&p, json + "\n").map_err(io(&p))?;
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::new_histogram;

    #[test]
    fn hgrm_has_the_standard_layout() {
        let mut h = new_histogram();
        for v in 1..=10_000u64 {
            h.record(v * 1000).unwrap();
        }
        let text = hgrm(&h);
        let mut lines = text.lines();
        assert_eq!(
            lines.next().unwrap().split_whitespace().collect::<Vec<_>>(),
            ["Value", "Percentile", "TotalCount", "1/(1-Percentile)"]
        );
        assert_eq!(lines.next().unwrap(), "");
        let first: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
        assert_eq!(first.len(), 4);
        assert_eq!(first[0], "1.000");
        let last_data = text
            .lines()
            .rfind(|l| !l.starts_with('#') && !l.is_empty())
            .unwrap();
        let last: Vec<&str> = last_data.split_whitespace().collect();
        assert_eq!(last.len(), 3, "{last_data}");
        assert_eq!(last[1], "1.000000000000");
        assert_eq!(last[2], "10000");
        assert!(text.contains("#[Max     ="), "{text}");
        assert!(text.contains("SubBuckets     =         2048"), "{text}");
        let p = Percentiles::of(&h).unwrap();
        assert!((p.p50_us - 5000.0).abs() < 10.0, "{}", p.p50_us);
        assert!(p.curve.len() > 20);
        assert_eq!(p.curve.last().unwrap().0, 1.0);
    }

    #[test]
    fn durations_are_readable() {
        assert_eq!(fmt_us(42.4), "42 µs");
        assert_eq!(fmt_us(1500.0), "1.50 ms");
        assert_eq!(fmt_us(25_000.0), "25.0 ms");
        assert_eq!(fmt_us(2_500_000.0), "2.50 s");
        assert_eq!(file_stem("a b/c"), "a_b_c");
    }
}
