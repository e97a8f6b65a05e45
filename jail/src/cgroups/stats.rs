//! A cgroup's usage figures for StatsContainer, in the shape of Kata's `CgroupStats` message:
//! cpu (total, per cpu, user, system, throttling), memory (usage, peak, limit, failures, cache,
//! swap, the whole `memory.stat` map), pids (current, limit) and block I/O (bytes and
//! operations per device). v1 reads each controller's own hierarchy; v2 reads the one unified
//! dir. A file the kernel does not have (an option not compiled in, a controller not mounted)
//! leaves its figure at `None` or empty; a file that exists but does not parse is an error.

use super::{invalid_data, read_u64, CgroupError, V1Dirs};
use std::collections::BTreeMap;
use std::io;
use std::path::Path;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupStats {
    pub cpu: CpuStats,
    pub memory: MemoryStats,
    pub pids: PidsStats,
    pub blkio: BlkioStats,
}

/// Nanoseconds throughout (v2's microseconds are converted).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuStats {
    pub total_ns: Option<u64>,
    /// v1 only: v2 does not account per cpu.
    pub percpu_ns: Vec<u64>,
    pub user_ns: Option<u64>,
    pub system_ns: Option<u64>,
    pub periods: Option<u64>,
    pub throttled_periods: Option<u64>,
    pub throttled_ns: Option<u64>,
}

/// Bytes. `limit` is what the kernel enforces: v1's huge number when unlimited, and on v2
/// `i64::MAX` for "max", which is what v1 reports near enough.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryStats {
    pub usage: Option<u64>,
    pub max_usage: Option<u64>,
    pub limit: Option<u64>,
    pub failcnt: Option<u64>,
    /// Page cache: `cache` in v1's memory.stat, `file` in v2's.
    pub cache: Option<u64>,
    pub swap_usage: Option<u64>,
    pub swap_limit: Option<u64>,
    pub use_hierarchy: bool,
    pub stat: BTreeMap<String, u64>,
}

/// `limit` None means unlimited ("max").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PidsStats {
    pub current: Option<u64>,
    pub limit: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlkioStats {
    /// Bytes per device and operation ("Read", "Write", ...).
    pub service_bytes: Vec<BlkioEntry>,
    /// Operations per device and operation.
    pub serviced: Vec<BlkioEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlkioEntry {
    pub major: u64,
    pub minor: u64,
    pub op: String,
    pub value: u64,
}

pub(super) fn v1(dirs: &V1Dirs) -> Result<CgroupStats, CgroupError> {
    let get = |dir: Option<&Path>, file: &str| dir.map_or(Ok(None), |d| read_u64(&d.join(file)));
    let mut cpu = CpuStats {
        total_ns: get(dirs.cpuacct, "cpuacct.usage")?,
        user_ns: get(dirs.cpuacct, "cpuacct.usage_user")?,
        system_ns: get(dirs.cpuacct, "cpuacct.usage_sys")?,
        ..Default::default()
    };
    if let Some(dir) = dirs.cpuacct {
        cpu.percpu_ns = numbers(&dir.join("cpuacct.usage_percpu"))?;
        if cpu.user_ns.is_none() {
            // Older kernels: only cpuacct.stat, in clock ticks.
            let ticks = keyed(&dir.join("cpuacct.stat"))?;
            let ns = |key: &str| ticks.get(key).map(|t| t.saturating_mul(ns_per_tick()));
            (cpu.user_ns, cpu.system_ns) = (ns("user"), ns("system"));
        }
    }
    if let Some(dir) = dirs.cpu {
        let stat = keyed(&dir.join("cpu.stat"))?;
        cpu.periods = stat.get("nr_periods").copied();
        cpu.throttled_periods = stat.get("nr_throttled").copied();
        cpu.throttled_ns = stat.get("throttled_time").copied();
    }
    let m = dirs.memory;
    let stat = m.map_or(Ok(BTreeMap::new()), |d| keyed(&d.join("memory.stat")))?;
    let memory = MemoryStats {
        usage: get(m, "memory.usage_in_bytes")?,
        max_usage: get(m, "memory.max_usage_in_bytes")?,
        limit: get(m, "memory.limit_in_bytes")?,
        failcnt: get(m, "memory.failcnt")?,
        cache: stat.get("cache").copied(),
        // memsw is memory+swap, present only with swap accounting.
        swap_usage: get(m, "memory.memsw.usage_in_bytes")?,
        swap_limit: get(m, "memory.memsw.limit_in_bytes")?,
        use_hierarchy: get(m, "memory.use_hierarchy")? == Some(1),
        stat,
    };
    let pids = dirs.pids.map_or(Ok(PidsStats::default()), pids)?;
    let blkio = match dirs.blkio {
        Some(dir) => BlkioStats {
            service_bytes: blkio_v1(dir, "io_service_bytes_recursive")?,
            serviced: blkio_v1(dir, "io_serviced_recursive")?,
        },
        None => BlkioStats::default(),
    };
    Ok(CgroupStats {
        cpu,
        memory,
        pids,
        blkio,
    })
}

pub(super) fn v2(dir: &Path) -> Result<CgroupStats, CgroupError> {
    let cpu_stat = keyed(&dir.join("cpu.stat"))?;
    let us = |key: &str| cpu_stat.get(key).map(|v| v.saturating_mul(1000));
    let cpu = CpuStats {
        total_ns: us("usage_usec"),
        percpu_ns: Vec::new(),
        user_ns: us("user_usec"),
        system_ns: us("system_usec"),
        periods: cpu_stat.get("nr_periods").copied(),
        throttled_periods: cpu_stat.get("nr_throttled").copied(),
        throttled_ns: us("throttled_usec"),
    };
    let stat = keyed(&dir.join("memory.stat"))?;
    let events = keyed(&dir.join("memory.events"))?;
    let memory = MemoryStats {
        usage: read_u64(&dir.join("memory.current"))?,
        max_usage: read_u64(&dir.join("memory.peak"))?,
        limit: max_or_number(&dir.join("memory.max"))?.map(|l| l.unwrap_or(i64::MAX as u64)),
        // Times the limit was hit, v1's failcnt.
        failcnt: events.get("max").copied(),
        cache: stat.get("file").copied(),
        swap_usage: read_u64(&dir.join("memory.swap.current"))?,
        swap_limit: max_or_number(&dir.join("memory.swap.max"))?
            .map(|l| l.unwrap_or(i64::MAX as u64)),
        // v2 is always hierarchical.
        use_hierarchy: true,
        stat,
    };
    Ok(CgroupStats {
        cpu,
        memory,
        pids: pids(dir)?,
        blkio: io_v2(&dir.join("io.stat"))?,
    })
}

fn pids(dir: &Path) -> Result<PidsStats, CgroupError> {
    Ok(PidsStats {
        current: read_u64(&dir.join("pids.current"))?,
        limit: max_or_number(&dir.join("pids.max"))?.flatten(),
    })
}

/// The file's text; `None` when it does not exist.
fn text(file: &Path) -> Result<Option<String>, CgroupError> {
    match std::fs::read_to_string(file) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CgroupError::Read {
            file: file.to_owned(),
            source,
        }),
    }
}

/// "max" or a number: `Some(None)` for "max", `None` when the file does not exist.
fn max_or_number(file: &Path) -> Result<Option<Option<u64>>, CgroupError> {
    let Some(text) = text(file)? else {
        return Ok(None);
    };
    match text.trim() {
        "max" => Ok(Some(None)),
        n => n
            .parse()
            .map(|n| Some(Some(n)))
            .map_err(|_| invalid_data(file, n)),
    }
}

/// Whitespace-separated numbers (cpuacct.usage_percpu).
fn numbers(file: &Path) -> Result<Vec<u64>, CgroupError> {
    let Some(text) = text(file)? else {
        return Ok(Vec::new());
    };
    text.split_whitespace()
        .map(|w| w.parse().map_err(|_| invalid_data(file, w)))
        .collect()
}

/// A flat keyed file ("key value" lines: memory.stat, cpu.stat, memory.events).
fn keyed(file: &Path) -> Result<BTreeMap<String, u64>, CgroupError> {
    let Some(text) = text(file)? else {
        return Ok(BTreeMap::new());
    };
    let mut map = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let (key, value) = line
            .split_once(' ')
            .ok_or_else(|| invalid_data(file, line))?;
        let value = value.trim().parse().map_err(|_| invalid_data(file, line))?;
        map.insert(key.to_owned(), value);
    }
    Ok(map)
}

/// v1's "MAJ:MIN Op value" lines; the "Total" line is left out. The plain file is only filled
/// by the CFQ/BFQ schedulers: without them the kernel accounts in the `throttle.` one.
fn blkio_v1(dir: &Path, name: &str) -> Result<Vec<BlkioEntry>, CgroupError> {
    let mut entries = blkio_lines(&dir.join(format!("blkio.{name}")))?;
    if entries.is_empty() {
        entries = blkio_lines(&dir.join(format!("blkio.throttle.{name}")))?;
    }
    Ok(entries)
}

fn blkio_lines(file: &Path) -> Result<Vec<BlkioEntry>, CgroupError> {
    let Some(text) = text(file)? else {
        return Ok(Vec::new());
    };
    let mut entries = Vec::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let [dev, op, value] = words[..] else {
            continue; // "Total N", or empty
        };
        let (major, minor) = device(file, dev)?;
        let value = value.parse().map_err(|_| invalid_data(file, line))?;
        entries.push(BlkioEntry {
            major,
            minor,
            op: op.to_owned(),
            value,
        });
    }
    Ok(entries)
}

/// v2's io.stat: "MAJ:MIN rbytes=N wbytes=N rios=N wios=N ..." per device, as v1's shape.
fn io_v2(file: &Path) -> Result<BlkioStats, CgroupError> {
    let mut stats = BlkioStats::default();
    let Some(text) = text(file)? else {
        return Ok(stats);
    };
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut words = line.split_whitespace();
        let (major, minor) = device(file, words.next().unwrap_or_default())?;
        for (key, value) in words.filter_map(|w| w.split_once('=')) {
            let value: u64 = value.parse().map_err(|_| invalid_data(file, line))?;
            let (list, op) = match key {
                "rbytes" => (&mut stats.service_bytes, "Read"),
                "wbytes" => (&mut stats.service_bytes, "Write"),
                "rios" => (&mut stats.serviced, "Read"),
                "wios" => (&mut stats.serviced, "Write"),
                _ => continue,
            };
            list.push(BlkioEntry {
                major,
                minor,
                op: op.to_owned(),
                value,
            });
        }
    }
    Ok(stats)
}

fn device(file: &Path, dev: &str) -> Result<(u64, u64), CgroupError> {
    let parse = |(a, b): (&str, &str)| Some((a.parse().ok()?, b.parse().ok()?));
    dev.split_once(':')
        .and_then(parse)
        .ok_or_else(|| invalid_data(file, dev))
}

/// Nanoseconds per clock tick (cpuacct.stat counts USER_HZ ticks).
pub(super) fn ns_per_tick() -> u64 {
    // SAFETY: sysconf reads a constant of the C library; it has no memory effects.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        1_000_000_000 / hz as u64
    } else {
        10_000_000 // USER_HZ is 100 on every Linux architecture
    }
}
