//! An SVG latency-by-percentile plot that overlays runs, in the style of
//! HdrHistogram's plotter: x is the percentile on a "nines" axis
//! (`-log10(1 - q)`: 0%, 90%, 99%, 99.9%, ...), y the latency (log scale
//! by default). End-to-end curves are solid, confirm curves dashed.
//! Hand-written SVG: no plotting dependency.

use std::fmt::Write as _;

use crate::report::{fmt_us, RunSummary};

/// Plot settings.
#[derive(Debug, Clone)]
pub struct PlotOptions {
    /// Title (default: "Latency by percentile").
    pub title: Option<String>,
    /// Linear latency axis instead of logarithmic.
    pub linear: bool,
}

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 600.0;
const LEFT: f64 = 90.0;
const RIGHT: f64 = 30.0;
const TOP: f64 = 60.0;
const BOTTOM: f64 = 70.0;
const COLOURS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

struct Series<'a> {
    name: String,
    colour: &'static str,
    dashed: bool,
    curve: &'a [(f64, f64)],
}

fn nines(q: f64) -> Option<f64> {
    (q < 1.0).then(|| -(1.0 - q).log10())
}

/// Escapes text for SVG.
pub(crate) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn percentile_label(n: u32) -> String {
    match n {
        0 => "0%".into(),
        1 => "90%".into(),
        2 => "99%".into(),
        n => format!("99.{}%", "9".repeat(n as usize - 2)),
    }
}

/// Renders the runs as an SVG document.
pub fn svg(runs: &[RunSummary], opts: &PlotOptions) -> String {
    let series = collect_series(runs);
    let scale = Scale::fit(&series, opts.linear);
    let mut s = String::new();
    write_title(&mut s, runs, opts);
    write_axes(&mut s, &scale);
    write_curves(&mut s, &series, &scale);
    write_legend(&mut s, &series);
    s.push_str("</svg>\n");
    s
}

/// One curve per run and latency kind (end-to-end solid, confirm dashed).
fn collect_series(runs: &[RunSummary]) -> Vec<Series<'_>> {
    let mut series = Vec::new();
    for (i, r) in runs.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let base = format!("{} · {}", r.label, r.scenario.name);
        for (p, what, dashed) in [
            (&r.latency.end_to_end, "end-to-end", false),
            (&r.latency.confirm, "confirm", true),
        ] {
            if let Some(p) = p {
                series.push(Series {
                    name: format!("{base} {what} (p99 {})", fmt_us(p.p99_us)),
                    colour,
                    dashed,
                    curve: &p.curve,
                });
            }
        }
    }
    series
}

/// Where values land on the plot.
struct Scale {
    /// Nines shown on the x axis.
    x_max: f64,
    /// Latency range of the y axis.
    y_lo: f64,
    y_hi: f64,
    linear: bool,
}

impl Scale {
    /// Axes that fit every curve.
    fn fit(series: &[Series<'_>], linear: bool) -> Scale {
        let max_nines = series
            .iter()
            .flat_map(|s| s.curve.iter().filter_map(|&(q, _)| nines(q)))
            .fold(0.0f64, f64::max);
        let values = || series.iter().flat_map(|s| s.curve.iter().map(|&(_, v)| v));
        let v_min = values().fold(f64::INFINITY, f64::min).max(0.1);
        let v_max = values().fold(0.0f64, f64::max).max(v_min * 10.0);
        let (y_lo, y_hi) = if linear {
            (0.0, nice_ceiling(v_max))
        } else {
            (
                10f64.powf(v_min.log10().floor()),
                10f64.powf(v_max.log10().ceil()),
            )
        };
        Scale {
            x_max: max_nines.ceil().clamp(2.0, 7.0),
            y_lo,
            y_hi,
            linear,
        }
    }

    fn plot_w() -> f64 {
        WIDTH - LEFT - RIGHT
    }

    fn plot_h() -> f64 {
        HEIGHT - TOP - BOTTOM
    }

    fn x(&self, nines: f64) -> f64 {
        LEFT + Scale::plot_w() * (nines / self.x_max)
    }

    fn y(&self, v: f64) -> f64 {
        let (lo, hi) = (self.y_lo, self.y_hi);
        let f = if self.linear {
            (v - lo) / (hi - lo)
        } else {
            (v.max(lo).log10() - lo.log10()) / (hi.log10() - lo.log10())
        };
        TOP + Scale::plot_h() * (1.0 - f)
    }
}

/// The document's opening, background, title and (when every run shares
/// it) the machine line.
fn write_title(s: &mut String, runs: &[RunSummary], opts: &PlotOptions) {
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let title = opts
        .title
        .clone()
        .unwrap_or_else(|| "Latency by percentile".into());
    let _ = writeln!(
        s,
        r#"<text x="{}" y="28" text-anchor="middle" font-size="18">{}</text>"#,
        WIDTH / 2.0,
        escape(&title)
    );
    let same = runs
        .first()
        .filter(|first| runs.iter().all(|r| r.description == first.description));
    if let Some(r) = same {
        let _ = writeln!(
            s,
            r##"<text x="{}" y="46" text-anchor="middle" fill="#555">{} · {} cores · {}</text>"##,
            WIDTH / 2.0,
            escape(&r.description),
            r.machine.cores,
            escape(&r.machine.cpu)
        );
    }
}

/// Grid lines, tick labels, the frame and the axis names.
fn write_axes(s: &mut String, scale: &Scale) {
    let (plot_w, plot_h) = (Scale::plot_w(), Scale::plot_h());
    for n in 0..=(scale.x_max as u32) {
        let x = scale.x(f64::from(n));
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="#ddd"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            TOP + plot_h,
            TOP + plot_h + 18.0,
            percentile_label(n)
        );
    }
    for v in y_ticks(scale.y_lo, scale.y_hi, scale.linear) {
        let y = scale.y(v);
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT + plot_w,
            LEFT - 6.0,
            y + 4.0,
            tick_label(v)
        );
    }
    let _ = writeln!(
        s,
        r##"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#333"/>"##
    );
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">percentile</text>"#,
        LEFT + plot_w / 2.0,
        HEIGHT - 20.0
    );
    let _ = writeln!(
        s,
        r#"<text transform="translate(22 {:.1}) rotate(-90)" text-anchor="middle">latency</text>"#,
        TOP + plot_h / 2.0
    );
}

/// The stroke attribute of a dashed series.
fn dash(se: &Series<'_>) -> &'static str {
    if se.dashed {
        r#" stroke-dasharray="6 4""#
    } else {
        ""
    }
}

/// One polyline per series.
fn write_curves(s: &mut String, series: &[Series<'_>], scale: &Scale) {
    for se in series {
        let mut points = String::new();
        for &(q, v) in se.curve {
            let n = nines(q).map_or(scale.x_max, |n| n.min(scale.x_max));
            let _ = write!(points, "{:.1},{:.1} ", scale.x(n), scale.y(v));
        }
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{}" stroke-width="2"{} points="{}"/>"#,
            se.colour,
            dash(se),
            points.trim_end()
        );
    }
}

/// The legend, top left (the empty corner of a latency curve).
fn write_legend(s: &mut String, series: &[Series<'_>]) {
    for (i, se) in series.iter().enumerate() {
        let y = TOP + 18.0 + 18.0 * i as f64;
        let _ = writeln!(
            s,
            r#"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{}" stroke-width="2"{}/><text x="{:.1}" y="{:.1}">{}</text>"#,
            LEFT + 12.0,
            y - 4.0,
            LEFT + 42.0,
            y - 4.0,
            se.colour,
            dash(se),
            LEFT + 48.0,
            y,
            escape(&se.name)
        );
    }
}

/// A latency axis label: "200 µs", "1 ms", "2.5 s".
fn tick_label(us: f64) -> String {
    let (v, unit) = if us >= 1e6 {
        (us / 1e6, "s")
    } else if us >= 1e3 {
        (us / 1e3, "ms")
    } else {
        (us, "µs")
    };
    let mut n = format!("{v:.2}");
    while n.ends_with('0') {
        n.pop();
    }
    if n.ends_with('.') {
        n.pop();
    }
    format!("{n} {unit}")
}

/// 1, 2 or 5 times a power of ten, at least `v`.
pub(crate) fn nice_ceiling(v: f64) -> f64 {
    let mag = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * mag >= v {
            return m * mag;
        }
    }
    10.0 * mag
}

fn y_ticks(lo: f64, hi: f64, linear: bool) -> Vec<f64> {
    let mut t = Vec::new();
    if linear {
        let step = nice_ceiling(hi / 8.0);
        let mut v = lo;
        while v <= hi + step / 2.0 {
            t.push(v);
            v += step;
        }
    } else {
        let mut decade = lo;
        while decade <= hi * 1.0001 {
            for m in [1.0, 2.0, 5.0] {
                let v = decade * m;
                if v <= hi * 1.0001 {
                    t.push(v);
                }
            }
            decade *= 10.0;
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nines_axis_and_ticks() {
        assert_eq!(nines(0.0), Some(0.0));
        assert!((nines(0.999).unwrap() - 3.0).abs() < 1e-9);
        assert_eq!(nines(1.0), None);
        assert_eq!(percentile_label(4), "99.99%");
        assert_eq!(
            y_ticks(1.0, 100.0, false),
            vec![1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0]
        );
        assert_eq!(nice_ceiling(730.0), 1000.0);
        assert_eq!(tick_label(200.0), "200 µs");
        assert_eq!(tick_label(10_000_000.0), "10 s");
        assert_eq!(tick_label(2500.0), "2.5 ms");
        assert_eq!(escape("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
    }
}
