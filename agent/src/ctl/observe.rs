//! The verbs a Kata shim's calls after create map to: `stats` (StatsContainer, printed as
//! `key value` lines, easy to read and to grep), `update` (UpdateContainer from runc-style
//! flags and/or a JSON resources file), `pause` / `resume`, `events` (GetOOMEvent in a loop,
//! one container id per line) and `metrics` (GetMetrics' text as it is).

use crate::client::{ctx, named, Clients};
use anyhow::{bail, Context};
use oci_spec::runtime::{LinuxCpu, LinuxMemory, LinuxPidsBuilder, LinuxResources};
use std::io::Write;
use std::path::PathBuf;
use wire::agent;

pub async fn stats(c: &Clients, id: &str) -> anyhow::Result<()> {
    let req = agent::StatsContainerRequest {
        container_id: id.into(),
        ..Default::default()
    };
    let r = named("StatsContainer", c.agent.stats_container(ctx(), &req).await)?;
    let mut out = std::io::stdout().lock();
    for (key, value) in stats_lines(&r) {
        writeln!(out, "{key} {value}")?;
    }
    Ok(())
}

/// The reply as `key value` pairs, in a fixed order (maps sorted by key).
pub fn stats_lines(r: &agent::StatsContainerResponse) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = Vec::new();
    let mut put = |k: String, v: u64| out.push((k, v));
    let cg = r.cgroup_stats.get_or_default();
    let cpu = cg.cpu_stats.get_or_default();
    let usage = cpu.cpu_usage.get_or_default();
    put("cpu.total_ns".into(), usage.total_usage);
    put("cpu.user_ns".into(), usage.usage_in_usermode);
    put("cpu.system_ns".into(), usage.usage_in_kernelmode);
    for (i, ns) in usage.percpu_usage.iter().enumerate() {
        put(format!("cpu.percpu_ns.{i}"), *ns);
    }
    let t = cpu.throttling_data.get_or_default();
    put("cpu.throttling.periods".into(), t.periods);
    put(
        "cpu.throttling.throttled_periods".into(),
        t.throttled_periods,
    );
    put("cpu.throttling.throttled_ns".into(), t.throttled_time);
    let mem = cg.memory_stats.get_or_default();
    put("memory.cache_bytes".into(), mem.cache);
    for (prefix, d) in [
        ("memory", mem.usage.get_or_default()),
        ("memory.swap", mem.swap_usage.get_or_default()),
    ] {
        put(format!("{prefix}.usage_bytes"), d.usage);
        put(format!("{prefix}.max_usage_bytes"), d.max_usage);
        put(format!("{prefix}.limit_bytes"), d.limit);
        put(format!("{prefix}.failcnt"), d.failcnt);
    }
    let mut stat: Vec<_> = mem.stats.iter().collect();
    stat.sort();
    for (k, v) in stat {
        put(format!("memory.stat.{k}"), *v);
    }
    let pids = cg.pids_stats.get_or_default();
    put("pids.current".into(), pids.current);
    put("pids.limit".into(), pids.limit);
    let blkio = cg.blkio_stats.get_or_default();
    for (name, list) in [
        ("io_service_bytes", &blkio.io_service_bytes_recursive),
        ("io_serviced", &blkio.io_serviced_recursive),
    ] {
        for e in list {
            let op = e.op.to_ascii_lowercase();
            put(
                format!("blkio.{name}.{}:{}.{op}", e.major, e.minor),
                e.value,
            );
        }
    }
    for n in &r.network_stats {
        put(format!("network.{}.rx_bytes", n.name), n.rx_bytes);
        put(format!("network.{}.tx_bytes", n.name), n.tx_bytes);
    }
    out
}

/// `update`'s limits: each flag that is given, over what the file (if any) says.
#[derive(Debug, Default, clap::Args)]
pub struct UpdateArgs {
    /// A JSON file with OCI `linux.resources` (as `runc update -r`); `-` reads standard input.
    #[arg(long, short = 'r')]
    pub resources: Option<PathBuf>,
    /// Memory limit in bytes; k, m, g suffixes (binary) accepted; -1 for unlimited.
    #[arg(long, value_parser = parse_bytes)]
    pub memory: Option<i64>,
    /// Memory plus swap limit, in bytes as --memory; -1 for unlimited.
    #[arg(long, value_parser = parse_bytes)]
    pub memory_swap: Option<i64>,
    /// Memory soft limit, in bytes as --memory.
    #[arg(long, value_parser = parse_bytes)]
    pub memory_reservation: Option<i64>,
    /// Most processes the container may have; -1 for unlimited.
    #[arg(long, allow_negative_numbers = true)]
    pub pids_limit: Option<i64>,
    /// CPU shares (relative weight).
    #[arg(long)]
    pub cpu_shares: Option<u64>,
    /// CPU time in microseconds per period; -1 for unlimited.
    #[arg(long, allow_negative_numbers = true)]
    pub cpu_quota: Option<i64>,
    /// The CFS period in microseconds.
    #[arg(long)]
    pub cpu_period: Option<u64>,
    /// The CPUs the container may run on (e.g. 0-1,3).
    #[arg(long)]
    pub cpuset_cpus: Option<String>,
    /// The memory nodes the container may use (e.g. 0).
    #[arg(long)]
    pub cpuset_mems: Option<String>,
}

/// A size in bytes: digits with an optional k, m, g or t suffix (powers of 1024), or -1.
pub fn parse_bytes(s: &str) -> Result<i64, String> {
    if s == "-1" {
        return Ok(-1);
    }
    let lower = s.to_ascii_lowercase();
    let trimmed = lower.trim_end_matches('b');
    let (digits, shift) = match trimmed.char_indices().last() {
        Some((i, 'k')) => (&trimmed[..i], 10),
        Some((i, 'm')) => (&trimmed[..i], 20),
        Some((i, 'g')) => (&trimmed[..i], 30),
        Some((i, 't')) => (&trimmed[..i], 40),
        _ => (trimmed, 0),
    };
    let n: i64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a size (e.g. 67108864, 64m, 1g, -1)"))?;
    if n < 0 {
        return Err(format!(
            "{s:?}: a size is not negative (-1 means unlimited)"
        ));
    }
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// The resources `update` sends: the file's, with the flags' values over them.
pub fn update_resources(args: &UpdateArgs) -> anyhow::Result<LinuxResources> {
    let mut res = match &args.resources {
        None => LinuxResources::default(),
        Some(path) => {
            let text = if path.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin()).context("reading standard input")?
            } else {
                std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?
            };
            serde_json::from_str(&text)
                .with_context(|| format!("{}: not OCI linux.resources", path.display()))?
        }
    };
    let mut memory = res.memory().unwrap_or_default();
    set(&mut memory, args.memory, |m, v| m.set_limit(Some(v)));
    set(&mut memory, args.memory_swap, |m, v| m.set_swap(Some(v)));
    set(&mut memory, args.memory_reservation, |m, v| {
        m.set_reservation(Some(v))
    });
    let mut cpu = res.cpu().clone().unwrap_or_default();
    set(&mut cpu, args.cpu_shares, |c, v| c.set_shares(Some(v)));
    set(&mut cpu, args.cpu_quota, |c, v| c.set_quota(Some(v)));
    set(&mut cpu, args.cpu_period, |c, v| c.set_period(Some(v)));
    set(&mut cpu, args.cpuset_cpus.clone(), |c, v| {
        c.set_cpus(Some(v))
    });
    set(&mut cpu, args.cpuset_mems.clone(), |c, v| {
        c.set_mems(Some(v))
    });
    let mut pids = *res.pids();
    if let Some(limit) = args.pids_limit {
        pids = Some(LinuxPidsBuilder::default().limit(limit).build()?);
    }
    if memory != LinuxMemory::default() {
        res.set_memory(Some(memory));
    }
    if cpu != LinuxCpu::default() {
        res.set_cpu(Some(cpu));
    }
    res.set_pids(pids);
    if res == LinuxResources::default() {
        bail!("nothing to update: give --resources or a limit flag (see --help)");
    }
    crate::config::refuse_unsendable_resources(Some(&res))?;
    Ok(res)
}

fn set<T, V>(target: &mut T, value: Option<V>, apply: impl FnOnce(&mut T, V) -> &mut T) {
    if let Some(v) = value {
        apply(target, v);
    }
}

pub async fn update(c: &Clients, id: &str, args: &UpdateArgs) -> anyhow::Result<()> {
    let res = update_resources(args)?;
    let req = agent::UpdateContainerRequest {
        container_id: id.into(),
        resources: Some(wire::oci::resources_to_grpc(&res)).into(),
        ..Default::default()
    };
    named(
        "UpdateContainer",
        c.agent.update_container(ctx(), &req).await,
    )?;
    Ok(())
}

pub async fn pause(c: &Clients, id: &str) -> anyhow::Result<()> {
    let req = agent::PauseContainerRequest {
        container_id: id.into(),
        ..Default::default()
    };
    named("PauseContainer", c.agent.pause_container(ctx(), &req).await)?;
    Ok(())
}

pub async fn resume(c: &Clients, id: &str) -> anyhow::Result<()> {
    let req = agent::ResumeContainerRequest {
        container_id: id.into(),
        ..Default::default()
    };
    named(
        "ResumeContainer",
        c.agent.resume_container(ctx(), &req).await,
    )?;
    Ok(())
}

/// Prints the id of each container an OOM hit, as the agent reports them, until `count` ids
/// (if given) or until stdout is closed.
pub async fn events(c: &Clients, count: Option<u64>) -> anyhow::Result<()> {
    let mut seen = 0;
    loop {
        if count.is_some_and(|n| seen >= n) {
            return Ok(());
        }
        let r = named(
            "GetOOMEvent",
            c.agent.get_oom_event(ctx(), &Default::default()).await,
        )?;
        let mut out = std::io::stdout().lock();
        // A reader that went away (`| head -1`) ends the loop, not an error.
        if writeln!(out, "{}", r.container_id)
            .and_then(|()| out.flush())
            .is_err()
        {
            return Ok(());
        }
        seen += 1;
    }
}

pub async fn metrics(c: &Clients) -> anyhow::Result<()> {
    let r = named(
        "GetMetrics",
        c.agent.get_metrics(ctx(), &Default::default()).await,
    )?;
    std::io::stdout().lock().write_all(r.metrics.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_suffixes() {
        assert_eq!(parse_bytes("67108864"), Ok(64 << 20));
        assert_eq!(parse_bytes("64m"), Ok(64 << 20));
        assert_eq!(parse_bytes("64MB"), Ok(64 << 20));
        assert_eq!(parse_bytes("1g"), Ok(1 << 30));
        assert_eq!(parse_bytes("8k"), Ok(8192));
        assert_eq!(parse_bytes("-1"), Ok(-1));
        for bad in ["", "m", "lots", "-5", "1x", "99999999999t"] {
            assert!(parse_bytes(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn flags_override_the_file_and_nothing_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("r.json");
        let json = r#"{"memory": {"limit": 1000000, "swap": 2000000}, "pids": {"limit": 5}}"#;
        std::fs::write(&file, json).unwrap();
        let args = UpdateArgs {
            resources: Some(file),
            memory: Some(64 << 20),
            cpu_quota: Some(50_000),
            ..Default::default()
        };
        let r = update_resources(&args).unwrap();
        let m = r.memory().as_ref().unwrap();
        assert_eq!(m.limit(), Some(64 << 20));
        assert_eq!(m.swap(), Some(2_000_000), "kept from the file");
        assert_eq!(r.pids().as_ref().unwrap().limit(), 5);
        assert_eq!(r.cpu().as_ref().unwrap().quota(), Some(50_000));
        let e = update_resources(&UpdateArgs::default()).unwrap_err();
        assert!(e.to_string().contains("nothing to update"), "{e}");
    }

    #[test]
    fn stats_lines_name_every_figure() {
        let mut r = agent::StatsContainerResponse::default();
        let cg = r.cgroup_stats.mut_or_insert_default();
        cg.pids_stats.mut_or_insert_default().current = 3;
        let mem = cg.memory_stats.mut_or_insert_default();
        mem.usage.mut_or_insert_default().limit = 1 << 20;
        mem.stats.insert("rss".into(), 42);
        let cpu = cg.cpu_stats.mut_or_insert_default();
        cpu.cpu_usage.mut_or_insert_default().percpu_usage = vec![7, 9];
        let lines = stats_lines(&r);
        let get = |k: &str| lines.iter().find(|(key, _)| key == k).map(|(_, v)| *v);
        assert_eq!(get("pids.current"), Some(3));
        assert_eq!(get("memory.limit_bytes"), Some(1 << 20));
        assert_eq!(get("memory.stat.rss"), Some(42));
        assert_eq!(get("cpu.percpu_ns.1"), Some(9));
        assert_eq!(get("cpu.total_ns"), Some(0));
    }
}
