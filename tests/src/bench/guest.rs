//! `zagent-bench --guest MIB`: density in a guest of fixed memory. For each launcher, boots a
//! guest of that size (`scripts/guest.sh`, the launcher chosen on the kernel command line),
//! parks containers in it over hvsock (created, never started) until a create fails or the
//! guest's MemAvailable falls under a margin, and reports containers per guest, guest memory
//! per parked container (MemTotal - MemAvailable from the guest's /proc/meminfo, kernel
//! included, over the count) and create latency as the guest fills. TCG makes every time slow:
//! latencies are reported as ratios (last tenth over first tenth).

use crate::agent::TestAgent;
use crate::guest::Guest;
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::time::Instant;

/// Parking stops when the guest has less than this available: under it the OOM killer may
/// pick the agent, which would end the count with the guest rather than with a refusal.
const MARGIN_KIB: u64 = 24 << 10;
/// MemAvailable is read after every this many creates, and after each one once it is under
/// four margins.
const EVERY: usize = 5;
/// A bound on the run, whatever the guest's size.
const MAX_PARKED: usize = 5000;

pub struct Density {
    pub launcher: String,
    pub mem_mib: u32,
    pub parked: usize,
    pub stop: String,
    pub base_used_kib: u64,
    pub kib_per_parked: f64,
    pub create_first_ms: f64,
    pub create_last_ms: f64,
}

/// (MemTotal, MemAvailable) in KiB, read in the guest through an exec in `probe`.
async fn meminfo(a: &TestAgent, guest: &Guest, probe: &str) -> Result<(u64, u64)> {
    let exec_id = crate::unique_id("meminfo");
    let process = guest.spec(&["cat", "/proc/meminfo"]).process().clone();
    a.exec(probe, &exec_id, &process.context("process")?)
        .await?;
    let out = a.read_all_exec(probe, &exec_id, false).await?;
    a.wait_exec(probe, &exec_id).await?;
    let text = String::from_utf8_lossy(&out);
    let field = |name: &str| {
        text.lines().find_map(|l| {
            l.strip_prefix(name)?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
    };
    match (field("MemTotal:"), field("MemAvailable:")) {
        (Some(t), Some(a)) => Ok((t, a)),
        _ => bail!("no MemTotal/MemAvailable in the guest's /proc/meminfo: {text}"),
    }
}

/// The kernel command line that selects `launcher` ("zygote" without the warm pool, "pool"
/// with zagent's default 4, "reexec").
fn append(launcher: &str) -> Result<&'static str> {
    Ok(match launcher {
        "zygote" => "agent.launcher=zygote agent.warm_pool=0",
        "pool" => "agent.launcher=zygote agent.warm_pool=4",
        "reexec" => "agent.launcher=reexec",
        other => bail!("--guest: unknown launcher {other}"),
    })
}

pub async fn measure(bins: &Path, mem_mib: u32, launcher: &str) -> Result<Density> {
    let guest = Guest::try_boot(bins, mem_mib, append(launcher)?).map_err(anyhow::Error::msg)?;
    let a = guest.agent().await;
    let probe = "probe";
    a.create(probe, &guest.spec(&["sleep", "100000"])).await?;
    a.start_container(probe).await?;
    let (total, avail) = meminfo(&a, &guest, probe).await?;
    let base_used = total - avail;
    let spec = guest.spec(&["true"]);
    let mut times = Vec::new();
    let (mut used, mut last_avail, mut measured) = (base_used, avail, 0);
    let stop = loop {
        if times.len() == MAX_PARKED {
            break format!("{MAX_PARKED} parked (the bench's bound)");
        }
        let t = Instant::now();
        let created = a.create(&format!("p{}", times.len()), &spec).await;
        if created.is_err() {
            let oom = guest.console();
            let oom = oom.lines().rfind(|l| l.contains("Out of memory"));
            let oom = oom
                .map(|l| format!(" (guest console: {})", l.trim()))
                .unwrap_or_default();
            break format!("create failed: {}{oom}", crate::agent::message(&created));
        }
        times.push(t.elapsed().as_secs_f64() * 1e3);
        if times.len() % EVERY == 0 || last_avail < 4 * MARGIN_KIB {
            let (_, avail) = meminfo(&a, &guest, probe).await?;
            (used, last_avail, measured) = (total - avail, avail, times.len());
            if avail < MARGIN_KIB {
                break format!("MemAvailable {} MiB", avail >> 10);
            }
        }
    };
    if times.len() < 20 {
        bail!("{launcher}: only {} parked ({stop})", times.len());
    }
    let tenth = times.len() / 10;
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    Ok(Density {
        launcher: launcher.into(),
        mem_mib,
        parked: times.len(),
        stop,
        base_used_kib: base_used,
        kib_per_parked: (used - base_used) as f64 / measured as f64,
        create_first_ms: mean(&times[..tenth]),
        create_last_ms: mean(&times[times.len() - tenth..]),
    })
}

pub fn table(rows: &[Density]) -> String {
    let mut out = String::from(
        "| guest | launcher | parked | stopped by | used before (MiB) | KiB per parked | create, last tenth / first tenth |\n\
         | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for r in rows {
        out += &format!(
            "| {} MiB | {} | {} | {} | {:.1} | {:.0} | {:.2}x ({:.1} / {:.1} ms, TCG) |\n",
            r.mem_mib,
            r.launcher,
            r.parked,
            r.stop,
            r.base_used_kib as f64 / 1024.0,
            r.kib_per_parked,
            r.create_last_ms / r.create_first_ms,
            r.create_last_ms,
            r.create_first_ms,
        );
    }
    out
}
