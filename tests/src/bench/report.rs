//! The results as a reader sees them: the header and method (`meta`), the tables on the
//! terminal (with ratios against the zygote), and the files: JSON with every sample, the same
//! text, and the SVG.

use super::model::{step_ms, MemoryResult, Report, SideKind, SideLatency, Step, STEPS};
use super::plot;
use super::stats::{summarize, Summary};
use anyhow::{Context, Result};
use std::fmt::Write as _;
use std::path::Path;

fn ms(v: f64) -> String {
    if v.is_nan() {
        "-".into()
    } else if v < 10.0 {
        format!("{v:.3}")
    } else if v < 100.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.1}")
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
        _ => "-".into(),
    }
}

/// The side every ratio is taken against: the zygote, else the first launcher.
fn base_side(r: &Report) -> Option<&SideLatency> {
    let launchers = r.latency.iter().filter(|l| l.kind == SideKind::Launcher);
    r.latency
        .iter()
        .find(|l| l.side == "zygote")
        .or(launchers.clone().next())
}

fn pick(s: &Option<Summary>, q: usize) -> Option<f64> {
    s.map(|s| [s.p50, s.p90, s.p99][q])
}

fn latency_table(r: &Report, out: &mut String) {
    let Some(base) = base_side(r) else { return };
    let floor = r
        .latency
        .iter()
        .find(|l| l.kind == SideKind::Floor && !l.samples.is_empty());
    let others: Vec<&SideLatency> = r
        .latency
        .iter()
        .filter(|l| l.kind != SideKind::Floor && l.side != base.side)
        .collect();
    let _ = writeln!(
        out,
        "\nSequential latency, ms ({} measured per side after {} warm-up)",
        r.plan.samples, r.plan.warmup
    );
    let mut head = format!("{:<10} {:>4}", "step", "");
    for l in &r.latency {
        let _ = write!(head, " {:>9}", l.side);
    }
    for o in &others {
        let _ = write!(head, " {:>14}", format!("{}/{}", o.side, base.side));
    }
    if floor.is_some() {
        let _ = write!(head, " {:>14}", format!("{}/floor", base.side));
    }
    let _ = writeln!(out, "{head}");
    for step in STEPS {
        let sums: Vec<Option<Summary>> = r
            .latency
            .iter()
            .map(|l| summarize(step_ms(&l.samples, step)))
            .collect();
        let base_sum = summarize(step_ms(&base.samples, step));
        for (q, name) in ["p50", "p90", "p99"].iter().enumerate() {
            let mut line = format!("{:<10} {:>4}", if q == 0 { step.name() } else { "" }, name);
            for s in &sums {
                let _ = write!(line, " {:>9}", pick(s, q).map_or("-".into(), ms));
            }
            for o in &others {
                let _ = write!(
                    line,
                    " {:>14}",
                    ratio(
                        pick(&summarize(step_ms(&o.samples, step)), q),
                        pick(&base_sum, q)
                    )
                );
            }
            if let Some(f) = floor {
                let fs = summarize(step_ms(&f.samples, step));
                let v = if step == Step::Lifecycle {
                    ratio(pick(&base_sum, q), pick(&fs, q))
                } else {
                    "-".into()
                };
                let _ = write!(line, " {:>14}", v);
            }
            let _ = writeln!(out, "{line}");
        }
    }
    for l in r.latency.iter().filter(|l| l.failed.is_some()) {
        let _ = writeln!(
            out,
            "  {} FAILED after {} samples: {}",
            l.side,
            l.samples.len(),
            l.failed.as_deref().unwrap_or("")
        );
    }
}

fn throughput_table(r: &Report, out: &mut String) {
    if r.throughput.is_empty() {
        return;
    }
    let sides = r.throughput_sides();
    let base = base_side(r).map(|b| b.side.clone()).unwrap_or_default();
    let _ = writeln!(
        out,
        "\nThroughput, containers/s, full lifecycle ({} x {:.1} s per cell; min-max over rounds)",
        r.plan.rounds, r.plan.window_s
    );
    let mut head = format!("{:<8}", "clients");
    for s in &sides {
        let _ = write!(head, " {:>22}", s);
    }
    for s in sides.iter().filter(|s| **s != base) {
        let _ = write!(head, " {:>14}", format!("{s}/{base}"));
    }
    let _ = writeln!(out, "{head}");
    for &c in &r.plan.clients {
        let rate = |side: &str| {
            let runs: Vec<_> = r
                .throughput
                .iter()
                .filter(|t| t.side == side && t.clients == c)
                .collect();
            let total: f64 = runs.iter().map(|t| t.completed as f64).sum::<f64>()
                / runs.iter().map(|t| t.elapsed_s).sum::<f64>();
            let lo = runs
                .iter()
                .map(|t| t.per_second)
                .fold(f64::INFINITY, f64::min);
            let hi = runs.iter().map(|t| t.per_second).fold(0.0, f64::max);
            (!runs.is_empty()).then_some((total, lo, hi))
        };
        let mut line = format!("{c:<8}");
        for s in &sides {
            let cell = rate(s).map_or("-".into(), |(t, lo, hi)| {
                format!("{t:.1} ({lo:.0}-{hi:.0})")
            });
            let _ = write!(line, " {cell:>22}");
        }
        for s in sides.iter().filter(|s| **s != base) {
            let _ = write!(
                line,
                " {:>14}",
                ratio(rate(s).map(|x| x.0), rate(&base).map(|x| x.0))
            );
        }
        let _ = writeln!(out, "{line}");
    }
}

/// One row of the memory table.
type Figure = fn(&MemoryResult) -> String;

fn memory_table(r: &Report, out: &mut String) {
    if r.memory.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\nMemory with {} parked (created, not started) containers per agent, PSS in kB",
        r.plan.memory_parked
    );
    let mut head = format!("{:<44}", "");
    for m in &r.memory {
        let _ = write!(head, " {:>12}", m.side);
    }
    let _ = writeln!(out, "{head}");
    let rows: [(&str, Figure); 12] = [
        ("container child PSS, per container", |m| {
            format!("{:.0}", m.children_pss_per_container_kb)
        }),
        ("marginal PSS per container (whole tree)", |m| {
            format!("{:.0}", m.marginal_pss_per_container_kb)
        }),
        ("agent PSS before", |m| m.agent_before.pss_kb.to_string()),
        ("agent PSS with containers parked", |m| {
            m.agent_after.pss_kb.to_string()
        }),
        ("agent growth (total)", |m| m.agent_growth_kb.to_string()),
        ("agent growth per container", |m| {
            format!("{:.1}", m.agent_growth_kb as f64 / m.parked.max(1) as f64)
        }),
        ("agent PSS at the scaling phase's top level", |m| {
            m.agent_at_max_parked
                .as_ref()
                .map_or("-".into(), |(n, a)| format!("{} ({n})", a.pss_kb))
        }),
        ("agent PSS after the scaling phase", |m| {
            m.agent_after_remove
                .as_ref()
                .map_or("-".into(), |a| a.pss_kb.to_string())
        }),
        ("zygote PSS before", |m| {
            m.zygote_before
                .as_ref()
                .map_or("-".into(), |z| z.pss_kb.to_string())
        }),
        ("zygote PSS with containers parked", |m| {
            m.zygote_after
                .as_ref()
                .map_or("-".into(), |z| z.pss_kb.to_string())
        }),
        ("other new processes (e.g. zagent init)", |m| {
            m.others.len().to_string()
        }),
        ("container children counted", |m| {
            m.children.len().to_string()
        }),
    ];
    for (name, f) in rows {
        let mut line = format!("{name:<44}");
        for m in &r.memory {
            let _ = write!(line, " {:>12}", f(m));
        }
        let _ = writeln!(out, "{line}");
    }
}

fn scaling_table(r: &Report, out: &mut String) {
    if r.scaling.is_empty() {
        return;
    }
    let launchers: Vec<String> = r
        .latency
        .iter()
        .filter(|l| l.kind == SideKind::Launcher)
        .map(|l| l.side.clone())
        .collect();
    let base = base_side(r).map(|b| b.side.clone()).unwrap_or_default();
    let mut sides = launchers.clone();
    if r.scaling.iter().any(|s| s.side == "floor") {
        sides.push("floor".into());
    }
    let _ = writeln!(
        out,
        "\nCreate latency with N containers already parked on each agent (ms, p50 / p90 / p99, {} per cell;\nfloor: its whole clone..reap, measured with the same containers parked)",
        r.plan.scaling_samples
    );
    let mut head = format!("{:<8}", "parked");
    for s in &sides {
        let _ = write!(head, " {:>26}", s);
    }
    for s in launchers.iter().filter(|s| **s != base) {
        let _ = write!(head, " {:>18}", format!("{s}/{base} p50"));
    }
    let _ = writeln!(out, "{head}");
    for &level in &r.plan.parked_levels {
        let sum = |side: &str| {
            let res = r
                .scaling
                .iter()
                .find(|s| s.side == side && s.parked == level)?;
            let step = if side == "floor" {
                Step::Lifecycle
            } else {
                Step::Create
            };
            summarize(step_ms(&res.samples, step))
        };
        let mut line = format!("{level:<8}");
        for s in &sides {
            let cell = sum(s).map_or("-".into(), |x| {
                format!("{} / {} / {}", ms(x.p50), ms(x.p90), ms(x.p99))
            });
            let _ = write!(line, " {cell:>26}");
        }
        for s in launchers.iter().filter(|s| **s != base) {
            let _ = write!(
                line,
                " {:>18}",
                ratio(sum(s).map(|x| x.p50), sum(&base).map(|x| x.p50))
            );
        }
        let _ = writeln!(out, "{line}");
    }
}

/// The whole text: header, method, tables, warnings.
pub fn render(r: &Report) -> String {
    let m = &r.meta;
    let mut out = format!(
        "zagent-bench ({} mode), {}; {:.0} s wall\nmachine: {} x {}, {} MiB, kernel {}, {}\nsource: {}\nbench build: {}; zagent: {} ({})\n",
        m.mode, m.started_utc, m.wall_s, m.cpus, m.cpu, m.mem_total_kb / 1024, m.kernel, m.cgroups, m.git_commit, m.bench_profile, m.zagent, m.zagent_version
    );
    for (name, version) in &m.runtimes {
        let _ = writeln!(out, "{name}: {version}");
    }
    for (name, why) in &m.runtimes_not_measured {
        let _ = writeln!(out, "{name}: not measured ({why})");
    }
    out.push_str("\nMethod:\n");
    for line in &r.method {
        let _ = writeln!(out, "- {line}");
    }
    latency_table(r, &mut out);
    super::join::table(r, &mut out);
    super::seccomp::table(r, &mut out);
    throughput_table(r, &mut out);
    memory_table(r, &mut out);
    scaling_table(r, &mut out);
    if !r.warnings.is_empty() {
        out.push_str("\nWarnings:\n");
        for w in &r.warnings {
            let _ = writeln!(out, "- {w}");
        }
    }
    if r.interrupted {
        let _ = writeln!(out, "\nINTERRUPTED: the results above are partial");
    } else if let Some(e) = &r.error {
        let _ = writeln!(out, "\nFAILED (zagent side): {e}");
    }
    out
}

/// Prints the text and writes zagent-bench-<mode>.{txt,json,svg} into `dir`.
pub fn output(r: &Report, dir: &Path) -> Result<()> {
    let text = render(r);
    println!("{text}");
    let stem = dir.join(format!("zagent-bench-{}", r.meta.mode));
    let write = |ext: &str, data: &[u8]| {
        let path = stem.with_extension(ext);
        std::fs::write(&path, data).with_context(|| format!("writing {}", path.display()))?;
        anyhow::Ok(path)
    };
    let txt = write("txt", text.as_bytes())?;
    let json = write("json", &serde_json::to_vec(r)?)?;
    let svg = write("svg", plot::render(r).as_bytes())?;
    println!(
        "wrote {}, {} (every sample) and {}",
        txt.display(),
        json.display(),
        svg.display()
    );
    Ok(())
}
