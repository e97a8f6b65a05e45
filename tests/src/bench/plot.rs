//! The SVG plot, drawn by hand (plain elements and <text>, so no font files are needed): the
//! latency tail per step and side (share of samples at least this slow, log against log, so
//! p90 to p99.9 are readable), throughput against concurrency (log axis, min-max error bars),
//! create latency against the number of parked containers (trend per agent, the floor beside
//! it), and memory per parked container. The header names the source commit and any runtime
//! that was not measured.

use super::model::{step_ms, MemoryResult, Report, Step};
use std::fmt::Write as _;

const W: f64 = 1240.0;
const PANEL_W: f64 = 600.0;
const PANEL_H: f64 = 330.0;
const MARGIN: (f64, f64, f64, f64) = (62.0, 20.0, 34.0, 46.0); // left, right, top, bottom
/// Where the first row of panels starts, below the title and the header lines.
const TOP: f64 = 70.0;

/// The plot area of one panel, in SVG coordinates.
#[derive(Clone, Copy)]
struct Area {
    x: f64,
    y: f64,
    w: f64,
    h: f64,
}

fn color(side: &str) -> &'static str {
    match side {
        "zygote" => "#1f77b4",
        "reexec" => "#ff7f0e",
        "runc" => "#2ca02c",
        "crun" => "#d62728",
        "floor" => "#555555",
        _ => "#9467bd",
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn text(svg: &mut String, x: f64, y: f64, anchor: &str, size: u32, s: &str) {
    let _ = writeln!(
        svg,
        r#"<text x="{x:.1}" y="{y:.1}" text-anchor="{anchor}" font-size="{size}">{}</text>"#,
        esc(s)
    );
}

fn line(svg: &mut String, (x1, y1): (f64, f64), (x2, y2): (f64, f64), style: &str) {
    let _ = writeln!(
        svg,
        r#"<line x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}" {style}/>"#
    );
}

/// Frame, title and axis titles of panel number `i` (two per row); returns its plot area.
fn panel(svg: &mut String, i: usize, title: &str, xlabel: &str, ylabel: &str) -> Area {
    let (px, py) = (
        20.0 + (i % 2) as f64 * (PANEL_W + 20.0),
        TOP + (i / 2) as f64 * (PANEL_H + 20.0),
    );
    let a = Area {
        x: px + MARGIN.0,
        y: py + MARGIN.2,
        w: PANEL_W - MARGIN.0 - MARGIN.1,
        h: PANEL_H - MARGIN.2 - MARGIN.3,
    };
    let _ = writeln!(
        svg,
        r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="none" stroke="#333"/>"##,
        a.x, a.y, a.w, a.h
    );
    text(svg, px + PANEL_W / 2.0, py + 20.0, "middle", 14, title);
    text(svg, a.x + a.w / 2.0, a.y + a.h + 36.0, "middle", 12, xlabel);
    let (lx, ly) = (px + 14.0, a.y + a.h / 2.0);
    let _ = writeln!(
        svg,
        r#"<text x="{lx:.1}" y="{ly:.1}" text-anchor="middle" font-size="12" transform="rotate(-90 {lx:.1} {ly:.1})">{}</text>"#,
        esc(ylabel)
    );
    a
}

/// Log-scale mapping of [lo, hi] onto the area's width, with 1-2-5 ticks.
struct LogX {
    lo: f64,
    hi: f64,
}

impl LogX {
    fn new(lo: f64, hi: f64) -> LogX {
        let lo = 10f64.powf(lo.max(1e-3).log10().floor());
        let hi = 10f64.powf(hi.max(lo * 10.0).log10().ceil());
        LogX { lo, hi }
    }

    fn at(&self, a: Area, v: f64) -> f64 {
        a.x + a.w * (v.max(self.lo).log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10())
    }

    fn ticks(&self, svg: &mut String, a: Area) {
        let mut decade = self.lo;
        while decade <= self.hi * 1.0001 {
            for m in [1.0, 2.0, 5.0] {
                let v = decade * m;
                if v > self.hi * 1.0001 {
                    break;
                }
                let x = self.at(a, v);
                line(svg, (x, a.y), (x, a.y + a.h), r##"stroke="#ddd""##);
                text(svg, x, a.y + a.h + 16.0, "middle", 11, &trim(v));
            }
            decade *= 10.0;
        }
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Horizontal grid lines and labels for a linear y axis [0, top].
fn y_ticks(svg: &mut String, a: Area, top: f64, ticks: &[(f64, String)]) {
    for (v, label) in ticks {
        let y = a.y + a.h - a.h * v / top;
        line(svg, (a.x, y), (a.x + a.w, y), r##"stroke="#ddd""##);
        text(svg, a.x - 6.0, y + 4.0, "end", 11, label);
    }
}

/// One entry of a legend: a line in the series' colour, solid or dashed.
struct Key {
    label: String,
    color: &'static str,
    dashed: bool,
}

impl Key {
    fn side(name: &str) -> Key {
        Key {
            label: name.into(),
            color: color(name),
            dashed: name == "floor",
        }
    }
}

/// Where a legend goes: the corner the panel's data leaves free.
#[derive(Clone, Copy)]
enum Corner {
    TopLeft,
    BottomLeft,
}

fn legend(svg: &mut String, a: Area, keys: &[Key], corner: Corner) {
    let longest = keys
        .iter()
        .map(|k| k.label.chars().count())
        .max()
        .unwrap_or(0);
    let width = 40.0 + 6.5 * longest as f64;
    let bottom = a.y + a.h - 10.0 - 16.0 * keys.len() as f64;
    let (x, y0) = match corner {
        Corner::TopLeft => (a.x + 10.0, a.y + 8.0),
        Corner::BottomLeft => (a.x + 10.0, bottom),
    };
    // A backdrop, so the keys stay readable over the data.
    let _ = writeln!(
        svg,
        r#"<rect x="{:.1}" y="{y0:.1}" width="{width:.1}" height="{:.1}" fill="white" fill-opacity="0.85"/>"#,
        x - 4.0,
        16.0 * keys.len() as f64 + 4.0
    );
    for (k, key) in keys.iter().enumerate() {
        let y = y0 + 16.0 * k as f64 + 8.0;
        let dash = if key.dashed {
            r#" stroke-dasharray="5,3""#
        } else {
            ""
        };
        let style = format!(r#"stroke="{}" stroke-width="2.5"{dash}"#, key.color);
        line(svg, (x, y), (x + 22.0, y), &style);
        text(svg, x + 28.0, y + 4.0, "start", 12, &key.label);
    }
}

fn side_keys(names: &[String]) -> Vec<Key> {
    names.iter().map(|n| Key::side(n)).collect()
}

/// The tail: for each side, the share of samples at least as slow as x, both axes on log
/// scales, so that p90, p99 and p99.9 are as far apart as p50 and p90 (a CDF on a linear
/// scale crowds the whole tail into its top tenth).
fn tail_panel(svg: &mut String, r: &Report, i: usize, step: Step) {
    let series: Vec<(String, Vec<f64>)> = r
        .latency
        .iter()
        .map(|l| (l.side.clone(), step_ms(&l.samples, step)))
        .filter(|(_, v)| !v.is_empty())
        .collect();
    let title = format!(
        "{} latency, tail ({} per side)",
        step.name(),
        r.plan.samples
    );
    let a = panel(
        svg,
        i,
        &title,
        "ms (log scale)",
        "share at least this slow (log)",
    );
    let all = series.iter().flat_map(|(_, v)| v.iter().copied());
    let (lo, hi) = all.fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    let Some(most) = series.iter().map(|s| s.1.len()).max() else {
        return;
    };
    let x = LogX::new(lo, hi);
    x.ticks(svg, a);
    // Down to the decade that holds one sample in `most`.
    let floor = 10f64.powf((1.0 / most as f64).log10().floor());
    let y = |share: f64| a.y + a.h * share.max(floor).log10() / floor.log10();
    let marks = [
        (1.0, "all"),
        (0.5, "p50"),
        (0.1, "p90"),
        (0.01, "p99"),
        (0.001, "p99.9"),
        (0.0001, "p99.99"),
    ];
    for (share, label) in marks.iter().filter(|m| m.0 >= floor) {
        line(
            svg,
            (a.x, y(*share)),
            (a.x + a.w, y(*share)),
            r##"stroke="#ddd""##,
        );
        text(svg, a.x - 6.0, y(*share) + 4.0, "end", 11, label);
    }
    for (name, mut v) in series.clone() {
        v.sort_by(f64::total_cmp);
        let n = v.len() as f64;
        // Before v[k], (n-k+1)/n of the samples are at least as slow; from it, (n-k)/n.
        let mut pts = format!("{:.1},{:.1} ", x.at(a, v[0]), y(1.0));
        for (k, ms) in v.iter().enumerate().skip(1) {
            let px = x.at(a, *ms);
            let (above, at) = ((n - k as f64 + 1.0) / n, (n - k as f64) / n);
            let _ = write!(pts, "{px:.1},{:.1} {px:.1},{:.1} ", y(above), y(at));
        }
        let dash = if name == "floor" {
            r#" stroke-dasharray="5,3""#
        } else {
            ""
        };
        let _ = writeln!(
            svg,
            r#"<polyline fill="none" stroke="{}" stroke-width="1.8"{dash} points="{pts}"/>"#,
            color(&name)
        );
    }
    let names: Vec<String> = series.iter().map(|s| s.0.clone()).collect();
    legend(svg, a, &side_keys(&names), Corner::BottomLeft);
}

/// Rate per (side, clients): the combined rate over the rounds, and the lowest and highest
/// round's.
fn rates(r: &Report, side: &str, clients: usize) -> Option<(f64, f64, f64)> {
    let runs: Vec<_> = r
        .throughput
        .iter()
        .filter(|t| t.side == side && t.clients == clients)
        .collect();
    let done: f64 = runs.iter().map(|t| t.completed as f64).sum();
    let secs: f64 = runs.iter().map(|t| t.elapsed_s).sum();
    let lo = runs
        .iter()
        .map(|t| t.per_second)
        .fold(f64::INFINITY, f64::min);
    let hi = runs.iter().map(|t| t.per_second).fold(0.0, f64::max);
    (secs > 0.0).then(|| (done / secs, lo, hi))
}

/// Throughput against the number of clients on a log2 axis (the levels double, or nearly),
/// with the spread between the rounds as error bars.
fn throughput_panel(svg: &mut String, r: &Report, i: usize) {
    let title = format!(
        "throughput vs concurrent clients (bars: min-max of {} rounds)",
        r.plan.rounds
    );
    let a = panel(
        svg,
        i,
        &title,
        "concurrent clients (log scale)",
        "containers / s (full lifecycle)",
    );
    let sides = r.throughput_sides();
    let clients = &r.plan.clients;
    let top = sides
        .iter()
        .flat_map(|s| clients.iter().filter_map(|&c| rates(r, s, c)))
        .map(|(_, _, hi)| hi)
        .fold(0.0f64, f64::max);
    if top <= 0.0 {
        return;
    }
    let top = nice_top(top);
    y_ticks(
        svg,
        a,
        top,
        &(0..=4)
            .map(|k| (top * k as f64 / 4.0, trim(top * k as f64 / 4.0)))
            .collect::<Vec<_>>(),
    );
    let log = |c: usize| (c.max(1) as f64).log2();
    let (lo, hi) = clients
        .iter()
        .fold((f64::INFINITY, 0.0f64), |(lo, hi), &c| {
            (lo.min(log(c)), hi.max(log(c)))
        });
    let span = if hi > lo { hi - lo } else { 1.0 };
    let xs = |c: usize| a.x + 30.0 + (a.w - 60.0) * (log(c) - lo) / span;
    for &c in clients {
        text(svg, xs(c), a.y + a.h + 16.0, "middle", 11, &c.to_string());
    }
    let ys = |v: f64| a.y + a.h - a.h * v / top;
    for s in &sides {
        let col = color(s);
        let pts: Vec<(f64, (f64, f64, f64))> = clients
            .iter()
            .filter_map(|&c| Some((xs(c), rates(r, s, c)?)))
            .collect();
        let p: String = pts
            .iter()
            .map(|(x, (v, _, _))| format!("{x:.1},{:.1} ", ys(*v)))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline fill="none" stroke="{col}" stroke-width="2" points="{p}"/>"#
        );
        for (x, (v, lo, hi)) in pts {
            let bar = format!(r#"stroke="{col}" stroke-width="1.5""#);
            line(svg, (x, ys(lo)), (x, ys(hi)), &bar);
            line(svg, (x - 4.0, ys(lo)), (x + 4.0, ys(lo)), &bar);
            line(svg, (x - 4.0, ys(hi)), (x + 4.0, ys(hi)), &bar);
            let _ = writeln!(
                svg,
                r#"<circle cx="{x:.1}" cy="{:.1}" r="3.5" fill="{col}"/>"#,
                ys(v)
            );
        }
    }
    legend(svg, a, &side_keys(&sides), Corner::TopLeft);
}

/// A round number (1, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 times a power of ten) at or above `v`.
fn nice_top(v: f64) -> f64 {
    let p = 10f64.powf(v.log10().floor());
    [1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|t| *t >= v)
        .unwrap_or(10.0 * p)
}

/// Least-squares line through (x, y): (intercept, slope); None with fewer than 2 distinct x.
fn fit(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    let n = points.len() as f64;
    let (sx, sy) = points
        .iter()
        .fold((0.0, 0.0), |(sx, sy), (x, y)| (sx + x, sy + y));
    let (mx, my) = (sx / n, sy / n);
    let sxx: f64 = points.iter().map(|(x, _)| (x - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
    (sxx > 0.0).then(|| {
        let slope = sxy / sxx;
        (my - slope * mx, slope)
    })
}

/// The floor's clone..reap p50 at each parked level of the scaling phase: (parked, ms).
fn floor_by_level(r: &Report) -> Vec<(f64, f64)> {
    let mut pts: Vec<(f64, f64)> = r
        .scaling
        .iter()
        .filter(|s| s.side == "floor")
        .filter_map(|s| {
            let p50 = super::stats::summarize(step_ms(&s.samples, Step::Lifecycle))?.p50;
            Some((s.parked as f64, p50))
        })
        .collect();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    pts
}

/// Every parked container's create latency against how many were parked before it, a
/// least-squares trend per agent (its slope in the legend), and the floor measured at the
/// scaling levels beside them: what the kernel's own share does as containers pile up.
fn parking_panel(svg: &mut String, r: &Report, i: usize) {
    let a = panel(
        svg,
        i,
        "create latency while parking containers",
        "containers already parked on the agent",
        "ms (log scale)",
    );
    let floor = floor_by_level(r);
    let max_x = r
        .parking
        .iter()
        .flat_map(|p| p.parked_before.iter().copied())
        .max()
        .map_or(1.0, |m| nice_top(m as f64 + 1.0));
    let all = r
        .parking
        .iter()
        .flat_map(|p| p.create_ns.iter().map(|n| *n as f64 / 1e6))
        .chain(floor.iter().map(|f| f.1));
    let (lo, hi) = all.fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if hi <= 0.0 {
        return;
    }
    // The log mapping of the x axis, turned to run up the panel.
    let y = LogX::new(lo, hi);
    let va = Area {
        x: 0.0,
        y: 0.0,
        w: a.h,
        h: 0.0,
    };
    let ylog = |v: f64| a.y + a.h - y.at(va, v);
    let xlin = |n: f64| a.x + a.w * n / max_x;
    let mut d = y.lo;
    while d <= y.hi * 1.0001 {
        line(
            svg,
            (a.x, ylog(d)),
            (a.x + a.w, ylog(d)),
            r##"stroke="#ddd""##,
        );
        text(svg, a.x - 6.0, ylog(d) + 4.0, "end", 11, &trim(d));
        d *= 10.0;
    }
    for k in 0..=4 {
        let v = max_x * k as f64 / 4.0;
        text(
            svg,
            xlin(v),
            a.y + a.h + 16.0,
            "middle",
            11,
            &format!("{v:.0}"),
        );
    }
    let mut keys = Vec::new();
    for p in &r.parking {
        let pts: Vec<(f64, f64)> = p
            .parked_before
            .iter()
            .zip(&p.create_ns)
            .map(|(n, ns)| (*n as f64, *ns as f64 / 1e6))
            .collect();
        for (n, ms) in &pts {
            let _ = writeln!(
                svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="1.8" fill="{}" fill-opacity="0.5"/>"#,
                xlin(*n),
                ylog(*ms),
                color(&p.side)
            );
        }
        let mut key = Key::side(&p.side);
        if let Some((b, m)) = fit(&pts) {
            // A straight line in ms, drawn as a curve on the log axis.
            let line_pts: String = (0..=40)
                .map(|k| max_x * k as f64 / 40.0)
                .filter(|n| b + m * n > 0.0)
                .map(|n| format!("{:.1},{:.1} ", xlin(n), ylog(b + m * n)))
                .collect();
            let _ = writeln!(
                svg,
                r#"<polyline fill="none" stroke="{}" stroke-width="2.2" points="{line_pts}"/>"#,
                color(&p.side)
            );
            key.label = format!("{}: {:+.1} us per parked", p.side, m * 1e3);
        }
        keys.push(key);
    }
    if !floor.is_empty() {
        let pts: String = floor
            .iter()
            .map(|(n, ms)| format!("{:.1},{:.1} ", xlin(*n), ylog(*ms)))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline fill="none" stroke="{}" stroke-width="2" stroke-dasharray="5,3" points="{pts}"/>"#,
            color("floor")
        );
        for (n, ms) in &floor {
            let _ = writeln!(
                svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{}"/>"#,
                xlin(*n),
                ylog(*ms),
                color("floor")
            );
        }
        let mut key = Key::side("floor");
        key.label = "floor (clone..reap p50, same parked)".into();
        keys.push(key);
    }
    legend(svg, a, &keys, Corner::TopLeft);
}

/// One bar group of the memory panel.
type Figure = fn(&MemoryResult) -> f64;

fn memory_panel(svg: &mut String, r: &Report, i: usize) {
    let title = format!(
        "memory per parked container ({} parked)",
        r.plan.memory_parked
    );
    let a = panel(svg, i, &title, "", "PSS, kB per container");
    let groups: [(&str, Figure); 3] = [
        ("container child", |m| m.children_pss_per_container_kb),
        ("agent growth", |m| {
            m.agent_growth_kb as f64 / m.parked.max(1) as f64
        }),
        ("whole tree", |m| m.marginal_pss_per_container_kb),
    ];
    let top = r
        .memory
        .iter()
        .flat_map(|m| groups.iter().map(move |g| (g.1)(m)))
        .fold(0.0f64, f64::max);
    if top <= 0.0 {
        return;
    }
    let top = nice_top(top);
    y_ticks(
        svg,
        a,
        top,
        &(0..=4)
            .map(|k| (top * k as f64 / 4.0, trim(top * k as f64 / 4.0)))
            .collect::<Vec<_>>(),
    );
    let gw = a.w / groups.len() as f64;
    let bw = (gw - 40.0) / r.memory.len().max(1) as f64;
    for (g, (name, f)) in groups.iter().enumerate() {
        text(
            svg,
            a.x + gw * (g as f64 + 0.5),
            a.y + a.h + 16.0,
            "middle",
            11,
            name,
        );
        for (k, m) in r.memory.iter().enumerate() {
            let v = f(m).max(0.0);
            let (bx, bh) = (a.x + gw * g as f64 + 20.0 + bw * k as f64, a.h * v / top);
            let _ = writeln!(
                svg,
                r#"<rect x="{bx:.1}" y="{:.1}" width="{:.1}" height="{bh:.1}" fill="{}"/>"#,
                a.y + a.h - bh,
                bw - 4.0,
                color(&m.side)
            );
            text(
                svg,
                bx + bw / 2.0 - 2.0,
                a.y + a.h - bh - 4.0,
                "middle",
                10,
                &format!("{:.0}", f(m)),
            );
        }
    }
    let names: Vec<String> = r.memory.iter().map(|m| m.side.clone()).collect();
    legend(svg, a, &side_keys(&names), Corner::TopLeft);
}

pub fn render(r: &Report) -> String {
    let h = TOP + 4.0 * (PANEL_H + 20.0) + 10.0;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
"#
    );
    let title = format!(
        "zagent-bench ({} mode, {}), {} CPUs, kernel {}",
        r.meta.mode, r.meta.started_utc, r.meta.cpus, r.meta.kernel
    );
    text(&mut svg, W / 2.0, 30.0, "middle", 18, &title);
    let mut header = format!("source {}", r.meta.git_commit);
    for (name, why) in &r.meta.runtimes_not_measured {
        let _ = write!(header, "; {name}: not measured ({why})");
    }
    text(&mut svg, W / 2.0, 52.0, "middle", 12, &header);
    let steps = [
        Step::Create,
        Step::Start,
        Step::Wait,
        Step::Remove,
        Step::Lifecycle,
    ];
    for (i, step) in steps.iter().enumerate() {
        tail_panel(&mut svg, r, i, *step);
    }
    throughput_panel(&mut svg, r, 5);
    parking_panel(&mut svg, r, 6);
    memory_panel(&mut svg, r, 7);
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::model::{SideKind, SideLatency, StepSample};

    #[test]
    fn the_trend_is_the_least_squares_line() {
        let (b, m) = fit(&[(0.0, 1.0), (1.0, 3.0), (2.0, 5.0)]).unwrap();
        assert!((b - 1.0).abs() < 1e-9 && (m - 2.0).abs() < 1e-9, "{b} {m}");
        assert!(fit(&[(1.0, 1.0), (1.0, 2.0)]).is_none());
    }

    #[test]
    fn the_tail_reaches_down_to_one_sample_in_the_run() {
        let samples = (1..=1000)
            .map(|k| StepSample {
                total_ns: k * 1000,
                ..Default::default()
            })
            .collect();
        let mut svg = String::new();
        let mut r = crate::bench::meta::tests::report();
        r.latency.push(SideLatency {
            side: "zygote".into(),
            kind: SideKind::Launcher,
            warmup: vec![],
            samples,
            failed: None,
        });
        tail_panel(&mut svg, &r, 0, Step::Lifecycle);
        for mark in [">p90<", ">p99<", ">p99.9<"] {
            assert!(svg.contains(mark), "{mark} missing");
        }
        assert!(!svg.contains(">p99.99<"), "below one sample in 1000");
    }
}
