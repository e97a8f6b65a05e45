//! The SVG plot, drawn by hand (plain elements and <text>, so no font files are needed):
//! latency distributions (empirical CDFs on a log time axis) per step and side, throughput
//! against concurrency, create latency against the number of parked containers, and memory
//! per parked container.

use super::model::{step_ms, MemoryResult, Report, Step};
use std::fmt::Write as _;

const W: f64 = 1240.0;
const PANEL_W: f64 = 600.0;
const PANEL_H: f64 = 330.0;
const MARGIN: (f64, f64, f64, f64) = (62.0, 20.0, 34.0, 46.0); // left, right, top, bottom

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
        50.0 + (i / 2) as f64 * (PANEL_H + 20.0),
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

fn legend(svg: &mut String, a: Area, names: &[String], bottom_right: bool) {
    let (x, y0) = if bottom_right {
        (
            a.x + a.w - 110.0,
            a.y + a.h - 10.0 - 16.0 * names.len() as f64,
        )
    } else {
        (a.x + 10.0, a.y + 8.0)
    };
    for (k, name) in names.iter().enumerate() {
        let y = y0 + 16.0 * k as f64 + 8.0;
        line(
            svg,
            (x, y),
            (x + 22.0, y),
            &format!(r#"stroke="{}" stroke-width="2.5""#, color(name)),
        );
        text(svg, x + 28.0, y + 4.0, "start", 12, name);
    }
}

fn ecdf_panel(svg: &mut String, r: &Report, i: usize, step: Step) {
    let series: Vec<(String, Vec<f64>)> = r
        .latency
        .iter()
        .map(|l| (l.side.clone(), step_ms(&l.samples, step)))
        .filter(|(_, v)| !v.is_empty())
        .collect();
    let title = format!("{} latency, CDF ({} per side)", step.name(), r.plan.samples);
    let a = panel(
        svg,
        i,
        &title,
        "ms (log scale)",
        "fraction of samples at or below",
    );
    let all = series.iter().flat_map(|(_, v)| v.iter().copied());
    let (lo, hi) = all.fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if series.is_empty() {
        return;
    }
    let x = LogX::new(lo, hi);
    x.ticks(svg, a);
    let ticks: Vec<(f64, String)> = [
        (0.0, "0"),
        (0.25, "0.25"),
        (0.5, "p50"),
        (0.9, "p90"),
        (0.99, "p99"),
    ]
    .iter()
    .map(|(v, l)| (*v, l.to_string()))
    .collect();
    y_ticks(svg, a, 1.0, &ticks);
    for (name, mut v) in series.clone() {
        v.sort_by(f64::total_cmp);
        let n = v.len() as f64;
        let mut pts = String::new();
        for (k, ms) in v.iter().enumerate() {
            let px = x.at(a, *ms);
            let _ = write!(
                pts,
                "{px:.1},{:.1} {px:.1},{:.1} ",
                a.y + a.h - a.h * k as f64 / n,
                a.y + a.h - a.h * (k + 1) as f64 / n
            );
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
    legend(
        svg,
        a,
        &series.iter().map(|s| s.0.clone()).collect::<Vec<_>>(),
        true,
    );
}

fn throughput_panel(svg: &mut String, r: &Report, i: usize) {
    let a = panel(
        svg,
        i,
        "throughput vs concurrent clients",
        "concurrent clients",
        "containers / s (full lifecycle)",
    );
    let sides = r.throughput_sides();
    let rate = |side: &str, c: usize| {
        let runs: Vec<_> = r
            .throughput
            .iter()
            .filter(|t| t.side == side && t.clients == c)
            .collect();
        let done: f64 = runs.iter().map(|t| t.completed as f64).sum();
        let secs: f64 = runs.iter().map(|t| t.elapsed_s).sum();
        (secs > 0.0).then(|| done / secs)
    };
    let top = sides
        .iter()
        .flat_map(|s| r.plan.clients.iter().filter_map(|&c| rate(s, c)))
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
    let n = r.plan.clients.len().max(2) as f64;
    let xs = |k: usize| a.x + 30.0 + (a.w - 60.0) * k as f64 / (n - 1.0);
    for (k, c) in r.plan.clients.iter().enumerate() {
        text(svg, xs(k), a.y + a.h + 16.0, "middle", 11, &c.to_string());
    }
    for s in &sides {
        let pts: Vec<(f64, f64)> = r
            .plan
            .clients
            .iter()
            .enumerate()
            .filter_map(|(k, &c)| Some((xs(k), a.y + a.h - a.h * rate(s, c)? / top)))
            .collect();
        let p: String = pts.iter().map(|(x, y)| format!("{x:.1},{y:.1} ")).collect();
        let _ = writeln!(
            svg,
            r#"<polyline fill="none" stroke="{}" stroke-width="2" points="{p}"/>"#,
            color(s)
        );
        for (x, y) in pts {
            let _ = writeln!(
                svg,
                r#"<circle cx="{x:.1}" cy="{y:.1}" r="3.5" fill="{}"/>"#,
                color(s)
            );
        }
    }
    legend(svg, a, &sides, false);
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

fn parking_panel(svg: &mut String, r: &Report, i: usize) {
    let a = panel(
        svg,
        i,
        "create latency while parking containers",
        "containers already parked on the agent",
        "create, ms (log scale)",
    );
    let max_x = r
        .parking
        .iter()
        .flat_map(|p| p.parked_before.iter().copied())
        .max()
        .map_or(1.0, |m| nice_top(m as f64 + 1.0));
    let all = r
        .parking
        .iter()
        .flat_map(|p| p.create_ns.iter().map(|n| *n as f64 / 1e6));
    let (lo, hi) = all.fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if hi <= 0.0 {
        return;
    }
    // Reuse the log mapping on the vertical axis by mapping onto a rotated area.
    let y = LogX::new(lo, hi);
    let va = Area {
        x: 0.0,
        y: 0.0,
        w: a.h,
        h: 0.0,
    };
    let ylog = |v: f64| a.y + a.h - y.at(va, v);
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
            a.x + a.w * k as f64 / 4.0,
            a.y + a.h + 16.0,
            "middle",
            11,
            &format!("{v:.0}"),
        );
    }
    for p in &r.parking {
        for (n, ns) in p.parked_before.iter().zip(&p.create_ns) {
            let (cx, cy) = (a.x + a.w * *n as f64 / max_x, ylog(*ns as f64 / 1e6));
            let _ = writeln!(
                svg,
                r#"<circle cx="{cx:.1}" cy="{cy:.1}" r="1.6" fill="{}" fill-opacity="0.6"/>"#,
                color(&p.side)
            );
        }
    }
    legend(
        svg,
        a,
        &r.parking.iter().map(|p| p.side.clone()).collect::<Vec<_>>(),
        false,
    );
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
    legend(
        svg,
        a,
        &r.memory.iter().map(|m| m.side.clone()).collect::<Vec<_>>(),
        false,
    );
}

pub fn render(r: &Report) -> String {
    let h = 50.0 + 4.0 * (PANEL_H + 20.0) + 10.0;
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
    let steps = [
        Step::Create,
        Step::Start,
        Step::Wait,
        Step::Remove,
        Step::Lifecycle,
    ];
    for (i, step) in steps.iter().enumerate() {
        ecdf_panel(&mut svg, r, i, *step);
    }
    throughput_panel(&mut svg, r, 5);
    parking_panel(&mut svg, r, 6);
    memory_panel(&mut svg, r, 7);
    svg.push_str("</svg>\n");
    svg
}
