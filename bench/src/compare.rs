//! `compare`: one scenario suite against several targets in one run,
//! interleaved (round 1 visits the targets in order, round 2 in reverse,
//! ...) so slow drifts of a shared machine hit every target alike; then a
//! Markdown table with medians over rounds and ratios to the last target.

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::error::BenchError;
use crate::report::{file_stem, fmt_us, write_run, RunSummary};
use crate::run::{run, RunOptions};
use crate::scenario::Scenario;
use crate::target::Target;

/// Comparison settings.
#[derive(Debug, Clone)]
pub struct CompareOptions {
    /// Rounds over all targets.
    pub rounds: u32,
    /// Directory for every run's JSON and `.hgrm` files.
    pub out: Option<PathBuf>,
    /// Progress lines while running.
    pub progress: bool,
}

/// The outcome of one (scenario, target, round).
#[derive(Debug)]
pub struct Cell {
    /// Scenario index.
    pub scenario: usize,
    /// Target index.
    pub target: usize,
    /// Round, from 0.
    pub round: u32,
    /// The summary, or the error's text.
    pub outcome: Result<RunSummary, String>,
}

/// Runs every scenario on every target, `rounds` times, interleaved.
/// `on_run` sees each outcome as it completes (to print it).
///
/// # Errors
/// Report files that cannot be written. Failed runs are not errors: they
/// are cells with an error.
pub fn compare(
    targets: &[Target],
    scenarios: &[Scenario],
    opts: &CompareOptions,
    mut on_run: impl FnMut(&Cell),
) -> Result<Vec<Cell>, BenchError> {
    let mut cells = Vec::new();
    let run_opts = RunOptions {
        check: false,
        progress: opts.progress,
    };
    for round in 0..opts.rounds {
        for (si, s) in scenarios.iter().enumerate() {
            let order: Vec<usize> = if round % 2 == 0 {
                (0..targets.len()).collect()
            } else {
                (0..targets.len()).rev().collect()
            };
            for ti in order {
                let t = &targets[ti];
                let outcome = match run(t, s, &run_opts) {
                    Ok(r) => {
                        let summary = RunSummary::of(&r);
                        if let Some(dir) = &opts.out {
                            let stem = format!("{}-{}-r{}", s.name, t.label, round + 1);
                            write_run(dir, &file_stem(&stem), &r, &summary)?;
                        }
                        Ok(summary)
                    }
                    Err(e) => Err(e.chain()),
                };
                let cell = Cell {
                    scenario: si,
                    target: ti,
                    round,
                    outcome,
                };
                on_run(&cell);
                cells.push(cell);
            }
        }
    }
    Ok(cells)
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

fn fmt_rate(v: Option<f64>) -> String {
    match v {
        Some(v) if v >= 1e6 => format!("{:.2} M", v / 1e6),
        Some(v) if v >= 1e3 => format!("{:.1} k", v / 1e3),
        Some(v) => format!("{v:.0}"),
        None => "–".into(),
    }
}

fn fmt_latency(v: Option<f64>) -> String {
    v.map_or_else(|| "–".into(), fmt_us)
}

fn fmt_num(v: Option<f64>, unit: &str) -> String {
    match v {
        Some(v) if v >= 100.0 => format!("{v:.0}{unit}"),
        Some(v) if v >= 10.0 => format!("{v:.1}{unit}"),
        Some(v) => format!("{v:.2}{unit}"),
        None => "–".into(),
    }
}

fn ratio(v: Option<f64>, base: Option<f64>) -> String {
    match (v, base) {
        (Some(v), Some(b)) if b > 0.0 => format!("{:.2}×", v / b),
        _ => "–".into(),
    }
}

/// The comparison table (Markdown), one section per scenario; ratios are
/// to the last target. Throughput is the consumed rate (published when
/// nothing consumes); latencies are end-to-end; "server" CPU is broker
/// plus gateway, per delivery.
pub fn table(targets: &[Target], scenarios: &[Scenario], cells: &[Cell]) -> String {
    let mut s = String::new();
    let base = targets.len().saturating_sub(1);
    for (si, sc) in scenarios.iter().enumerate() {
        let _ = writeln!(s, "\n### {} — {}\n", sc.name, sc.describe());
        let _ = writeln!(
            s,
            "| target | msg/s | vs {} | e2e p50 | e2e p99 | e2e p99.9 | p99 vs {} | confirm p99 | harness CPU/msg | server CPU/msg | server CPU vs {} | runs |",
            targets[base].label, targets[base].label, targets[base].label
        );
        let _ = writeln!(
            s,
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        let stat = |ti: usize, f: &dyn Fn(&RunSummary) -> Option<f64>| {
            median(
                cells
                    .iter()
                    .filter(|c| c.scenario == si && c.target == ti)
                    .filter_map(|c| c.outcome.as_ref().ok())
                    .filter_map(f)
                    .collect(),
            )
        };
        let rate = |r: &RunSummary| {
            Some(if r.scenario.consumers > 0 {
                r.consume_rate
            } else {
                r.publish_rate
            })
        };
        let p = |f: fn(&crate::report::Percentiles) -> f64| {
            move |r: &RunSummary| r.latency.end_to_end.as_ref().map(f)
        };
        let p50 = p(|p| p.p50_us);
        let p99 = p(|p| p.p99_us);
        let p999 = p(|p| p.p999_us);
        let cp99 = |r: &RunSummary| r.latency.confirm.as_ref().map(|p| p.p99_us);
        let harness = |r: &RunSummary| Some(r.cpu.harness_us_per_msg);
        let server = |r: &RunSummary| r.cpu.server_us_per_msg();
        let base_rate = stat(base, &rate);
        let base_p99 = stat(base, &p99);
        let base_server = stat(base, &server);
        for (ti, t) in targets.iter().enumerate() {
            let ok = cells
                .iter()
                .filter(|c| c.scenario == si && c.target == ti && c.outcome.is_ok())
                .count();
            let failed: Vec<&str> = cells
                .iter()
                .filter(|c| c.scenario == si && c.target == ti)
                .filter_map(|c| c.outcome.as_ref().err().map(String::as_str))
                .collect();
            let runs = if failed.is_empty() {
                ok.to_string()
            } else {
                format!("{ok} ({} failed: {})", failed.len(), failed[0])
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                t.label,
                fmt_rate(stat(ti, &rate)),
                ratio(stat(ti, &rate), base_rate),
                fmt_latency(stat(ti, &p50)),
                fmt_latency(stat(ti, &p99)),
                fmt_latency(stat(ti, &p999)),
                ratio(stat(ti, &p99), base_p99),
                fmt_latency(stat(ti, &cp99)),
                fmt_num(stat(ti, &harness), " µs"),
                fmt_num(stat(ti, &server), " µs"),
                ratio(stat(ti, &server), base_server),
                runs
            );
        }
        sent_table(&mut s, targets, &stat);
    }
    s
}

/// A run's figure, if it has one.
type Figure<'a> = &'a dyn Fn(&RunSummary) -> Option<f64>;

/// Fixed-rate scenarios: end-to-end latency from the actual send time,
/// beside the table's (from the intended time), so the harness's own lag
/// shows apart.
fn sent_table(s: &mut String, targets: &[Target], stat: &dyn Fn(usize, Figure<'_>) -> Option<f64>) {
    let sent = |f: fn(&crate::report::Percentiles) -> f64| {
        move |r: &RunSummary| r.latency.end_to_end_actual.as_ref().map(f)
    };
    let (p50, p99, p999) = (sent(|p| p.p50_us), sent(|p| p.p99_us), sent(|p| p.p999_us));
    if (0..targets.len()).all(|ti| stat(ti, &p99).is_none()) {
        return;
    }
    let _ = writeln!(
        s,
        "\nFrom the actual send time:\n\n| target | p50 | p99 | p99.9 |\n|---|---:|---:|---:|"
    );
    for (ti, t) in targets.iter().enumerate() {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} |",
            t.label,
            fmt_latency(stat(ti, &p50)),
            fmt_latency(stat(ti, &p99)),
            fmt_latency(stat(ti, &p999))
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_ratios() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0]), Some(2.5));
        assert_eq!(median(vec![]), None);
        assert_eq!(ratio(Some(400.0), Some(100.0)), "4.00×");
        assert_eq!(ratio(Some(1.0), None), "–");
        assert_eq!(fmt_rate(Some(1_523_000.0)), "1.52 M");
    }
}
