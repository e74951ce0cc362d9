//! Memory over time: the resident set of the broker and gateway processes
//! sampled once a second beside the run's counts, and an SVG plot of it
//! (RSS above, throughput below) for soak runs. Hand-written SVG, as in
//! [`crate::plot`].

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::plot::{escape, nice_ceiling};
use crate::report::RunSummary;

/// One sample of a run's timeline.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Seconds since the start of the load.
    pub t: f64,
    /// Messages published so far.
    pub published: u64,
    /// Deliveries consumed so far.
    pub consumed: u64,
    /// Broker resident set, bytes (when its pid is known).
    pub broker_rss: Option<u64>,
    /// Gateway resident set, bytes (when its pid is known).
    pub gateway_rss: Option<u64>,
}

/// The resident set of process `pid`, bytes; `None` when it cannot be
/// read (the process is gone).
pub fn rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// Highest broker and gateway RSS of a timeline.
pub fn peaks(timeline: &[Sample]) -> (Option<u64>, Option<u64>) {
    let peak = |f: fn(&Sample) -> Option<u64>| timeline.iter().filter_map(f).max();
    (peak(|s| s.broker_rss), peak(|s| s.gateway_rss))
}

const WIDTH: f64 = 960.0;
const PANEL: f64 = 260.0;
const LEFT: f64 = 90.0;
const RIGHT: f64 = 30.0;
const TOP: f64 = 60.0;
const GAP: f64 = 60.0;
const COLOURS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
];

/// One line: its legend, colour, dash, and points (seconds, value).
struct Line {
    name: String,
    colour: &'static str,
    dashed: bool,
    points: Vec<(f64, f64)>,
}

/// Renders RSS (MiB, top) and consumed and published rates (msg/s,
/// bottom) of every run over time as an SVG document.
pub fn rss_svg(runs: &[RunSummary], title: &str) -> String {
    let mut rss_lines = Vec::new();
    let mut rate_lines = Vec::new();
    for (i, r) in runs.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let base = format!("{} · {}", r.label, r.scenario.name);
        let mib = |b: Option<u64>| b.map(|b| b as f64 / 1048576.0);
        for (what, dashed, get) in [
            (
                "broker",
                false,
                (|s: &Sample| s.broker_rss) as fn(&Sample) -> Option<u64>,
            ),
            ("gateway", true, |s: &Sample| s.gateway_rss),
        ] {
            let points: Vec<_> = r
                .timeline
                .iter()
                .filter_map(|s| mib(get(s)).map(|v| (s.t, v)))
                .collect();
            if !points.is_empty() {
                rss_lines.push(Line {
                    name: format!("{base} · {what} RSS"),
                    colour,
                    dashed,
                    points,
                });
            }
        }
        for (what, dashed, get) in [
            (
                "consumed",
                false,
                (|s: &Sample| s.consumed) as fn(&Sample) -> u64,
            ),
            ("published", true, |s: &Sample| s.published),
        ] {
            let points: Vec<_> = r
                .timeline
                .windows(2)
                .filter(|w| w[1].t > w[0].t)
                .map(|w| {
                    let rate = get(&w[1]).saturating_sub(get(&w[0])) as f64 / (w[1].t - w[0].t);
                    (w[1].t, rate)
                })
                .collect();
            if points.iter().any(|p| p.1 > 0.0) {
                rate_lines.push(Line {
                    name: format!("{base} · {what}/s"),
                    colour,
                    dashed,
                    points,
                });
            }
        }
    }
    let t_max = runs
        .iter()
        .filter_map(|r| r.timeline.last().map(|s| s.t))
        .fold(1.0, f64::max);
    let height =
        TOP + 2.0 * PANEL + GAP + 40.0 + 18.0 * (rss_lines.len() + rate_lines.len()) as f64;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        s,
        r#"<rect width="100%" height="100%" fill="white"/><text x="{}" y="30" font-size="16" text-anchor="middle">{}</text>"#,
        WIDTH / 2.0,
        escape(title)
    );
    panel(&mut s, TOP, "RSS (MiB)", &rss_lines, t_max);
    panel(&mut s, TOP + PANEL + GAP, "msg/s", &rate_lines, t_max);
    let mut y = TOP + 2.0 * PANEL + GAP + 40.0;
    for l in rss_lines.iter().chain(&rate_lines) {
        let _ = writeln!(
            s,
            r#"<line x1="{LEFT}" y1="{y}" x2="{}" y2="{y}" stroke="{}" stroke-width="2"{}/><text x="{}" y="{}">{}</text>"#,
            LEFT + 30.0,
            l.colour,
            dash(l.dashed),
            LEFT + 36.0,
            y + 4.0,
            escape(&l.name)
        );
        y += 18.0;
    }
    s.push_str("</svg>\n");
    s
}

/// One panel: axes with ticks, then the lines, x in seconds.
fn panel(s: &mut String, top: f64, unit: &str, lines: &[Line], t_max: f64) {
    let y_max = nice_ceiling(
        lines
            .iter()
            .flat_map(|l| l.points.iter().map(|p| p.1))
            .fold(1.0, f64::max),
    );
    let w = WIDTH - LEFT - RIGHT;
    let x = |t: f64| LEFT + t / t_max * w;
    let y = |v: f64| top + PANEL - v / y_max * PANEL;
    let _ = writeln!(
        s,
        r##"<rect x="{LEFT}" y="{top}" width="{w}" height="{PANEL}" fill="none" stroke="#444"/><text x="20" y="{}" transform="rotate(-90 20 {})" text-anchor="middle">{unit}</text>"##,
        top + PANEL / 2.0,
        top + PANEL / 2.0
    );
    for i in 0..=4 {
        let v = y_max * f64::from(i) / 4.0;
        let t = t_max * f64::from(i) / 4.0;
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{yv}" x2="{}" y2="{yv}" stroke="#ddd"/><text x="{}" y="{}" text-anchor="end">{}</text><text x="{}" y="{}" text-anchor="middle">{:.0} s</text>"##,
            LEFT + w,
            LEFT - 6.0,
            y(v) + 4.0,
            short(v),
            x(t),
            top + PANEL + 16.0,
            t,
            yv = y(v),
        );
    }
    for l in lines {
        let mut path = String::new();
        for (i, &(t, v)) in l.points.iter().enumerate() {
            let _ = write!(
                path,
                "{}{:.1},{:.1}",
                if i == 0 { "M" } else { " L" },
                x(t),
                y(v)
            );
        }
        let _ = writeln!(
            s,
            r#"<path d="{path}" fill="none" stroke="{}" stroke-width="1.5"{}/>"#,
            l.colour,
            dash(l.dashed)
        );
    }
}

fn dash(dashed: bool) -> &'static str {
    if dashed {
        r#" stroke-dasharray="6 4""#
    } else {
        ""
    }
}

/// A tick value with a k/M suffix.
fn short(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.0}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_is_read_for_this_process() {
        let me = rss(std::process::id()).expect("own RSS");
        assert!(me > 1 << 20, "{me}");
        assert_eq!(rss(u32::MAX), None);
    }

    #[test]
    fn peaks_and_ceilings() {
        let s = |t, b| Sample {
            t,
            published: 0,
            consumed: 0,
            broker_rss: Some(b),
            gateway_rss: None,
        };
        assert_eq!(peaks(&[s(0.0, 5), s(1.0, 9), s(2.0, 7)]), (Some(9), None));
        assert_eq!(nice_ceiling(340.0), 500.0);
        assert_eq!(nice_ceiling(1.0), 1.0);
        assert_eq!(nice_ceiling(1500.0), 2000.0);
    }
}
