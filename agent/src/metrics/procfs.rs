//! The /proc files GetMetrics reports, parsed from their text: the guest's (meminfo, stat,
//! diskstats, net/dev, loadavg, vmstat) and the agent's own (self/stat, self/status, self/io).
//! Pure functions of the text, so tests feed them files of their own; `mod.rs` reads them from
//! a /proc root it is given. Every field a line has is kept under the item name Kata's agent
//! uses for it (its `procfs` field names), so that a kernel's newer fields are not dropped.

/// `Key: value [kB]` lines of /proc/meminfo: values in bytes (kB times 1024), counts as they
/// are, under Kata's item names.
pub fn meminfo(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter_map(|line| {
            let (key, rest) = line.split_once(':')?;
            let mut words = rest.split_whitespace();
            let value: f64 = words.next()?.parse().ok()?;
            let scale = if words.next() == Some("kB") {
                1024.0
            } else {
                1.0
            };
            Some((meminfo_item(key.trim()), value * scale))
        })
        .collect()
}

/// Kata's item name for a /proc/meminfo key: its `procfs` field name. Keys Kata does not
/// know get the same snake case rule.
fn meminfo_item(key: &str) -> String {
    let known = match key {
        "SReclaimable" => "s_reclaimable",
        "SUnreclaim" => "s_unreclaim",
        "KReclaimable" => "k_reclaimable",
        "NFS_Unstable" => "nfs_unstable",
        "Committed_AS" => "committed_as",
        "AnonHugePages" => "anon_hugepages",
        "ShmemHugePages" => "shmem_hugepages",
        "FileHugePages" => "file_hugepages",
        "Percpu" => "per_cpu",
        "Hugepagesize" => "hugepagesize",
        "Hugetlb" => "hugetlb",
        "DirectMap4k" => "direct_map_4k",
        "DirectMap4M" => "direct_map_4M",
        "DirectMap2M" => "direct_map_2M",
        "DirectMap1G" => "direct_map_1G",
        _ => "",
    };
    if !known.is_empty() {
        return known.to_owned();
    }
    if let Some(rest) = key.strip_prefix("HugePages_") {
        return format!("hugepages_{}", rest.to_ascii_lowercase());
    }
    // "Active(anon)" is active_anon; otherwise a word starts at each capital after a small letter.
    let mut out = String::new();
    let mut prev_lower = false;
    for c in key.chars() {
        match c {
            '(' | '_' => {
                out.push('_');
                prev_lower = false;
            }
            ')' => {}
            c if c.is_ascii_uppercase() => {
                if prev_lower {
                    out.push('_');
                }
                out.push(c.to_ascii_lowercase());
                prev_lower = false;
            }
            c => {
                out.push(c);
                prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
            }
        }
    }
    out
}

const CPU_ITEMS: [&str; 10] = [
    "user",
    "nice",
    "system",
    "idle",
    "iowait",
    "irq",
    "softirq",
    "steal",
    "guest",
    "guest_nice",
];

/// The cpu lines of /proc/stat: (cpu, item, milliseconds), cpu "total" for the first line and
/// the cpu's number for the others, as Kata's agent labels them. `ticks` is USER_HZ.
pub fn cpu_times(text: &str, ticks: u64) -> Vec<(String, &'static str, f64)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let Some(name) = words.next().and_then(|w| w.strip_prefix("cpu")) else {
            continue;
        };
        let cpu = if name.is_empty() { "total" } else { name };
        for (item, value) in CPU_ITEMS.iter().zip(words) {
            if let Ok(v) = value.parse::<f64>() {
                out.push((cpu.to_owned(), *item, v * 1000.0 / ticks.max(1) as f64));
            }
        }
    }
    out
}

const DISK_ITEMS: [&str; 17] = [
    "reads",
    "merged",
    "sectors_read",
    "time_reading",
    "writes",
    "writes_merged",
    "sectors_written",
    "time_writing",
    "in_progress",
    "time_in_progress",
    "weighted_time_in_progress",
    "discards",
    "discards_merged",
    "sectors_discarded",
    "time_discarding",
    "flushes",
    "time_flushing",
];

/// /proc/diskstats: (disk, item, value) for the fields the kernel gives (4.18 added discards,
/// 5.5 flushes).
pub fn diskstats(text: &str) -> Vec<(String, &'static str, f64)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace().skip(2);
        let Some(disk) = words.next() else {
            continue;
        };
        for (item, value) in DISK_ITEMS.iter().zip(words) {
            if let Ok(v) = value.parse::<f64>() {
                out.push((disk.to_owned(), *item, v));
            }
        }
    }
    out
}

const NETDEV_ITEMS: [&str; 16] = [
    "recv_bytes",
    "recv_packets",
    "recv_errs",
    "recv_drop",
    "recv_fifo",
    "recv_frame",
    "recv_compressed",
    "recv_multicast",
    "sent_bytes",
    "sent_packets",
    "sent_errs",
    "sent_drop",
    "sent_fifo",
    "sent_colls",
    "sent_carrier",
    "sent_compressed",
];

/// /proc/net/dev (the reader's network namespace): (interface, item, value).
pub fn netdev(text: &str) -> Vec<(String, &'static str, f64)> {
    let mut out = Vec::new();
    // Two header lines, then "name: sixteen numbers".
    for line in text.lines().skip(2) {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        for (item, value) in NETDEV_ITEMS.iter().zip(rest.split_whitespace()) {
            if let Ok(v) = value.parse::<f64>() {
                out.push((name.to_owned(), *item, v));
            }
        }
    }
    out
}

/// /proc/loadavg: ([load1, load5, load15], running tasks, all tasks).
pub fn loadavg(text: &str) -> Option<([f64; 3], f64, f64)> {
    let w: Vec<&str> = text.split_whitespace().collect();
    let load = |i: usize| w.get(i)?.parse::<f64>().ok();
    let (cur, max) = w.get(3)?.split_once('/')?;
    Some((
        [load(0)?, load(1)?, load(2)?],
        cur.parse().ok()?,
        max.parse().ok()?,
    ))
}

/// "key value" (/proc/vmstat) or "key: value" (/proc/self/io) lines.
pub fn key_values(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let key = words.next()?.trim_end_matches(':');
            let value = words.next()?.parse().ok()?;
            Some((key.to_owned(), value))
        })
        .collect()
}

/// What GetMetrics reports of /proc/self/stat.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SelfStat {
    pub utime: f64,
    pub stime: f64,
    pub cutime: f64,
    pub cstime: f64,
    pub threads: f64,
    /// Bytes.
    pub vsize: f64,
    /// Pages.
    pub rss: f64,
}

/// /proc/self/stat. The command name (field 2) may hold spaces and parentheses, so the fields
/// are counted from the last ')'.
pub fn self_stat(text: &str) -> Option<SelfStat> {
    let rest = &text[text.rfind(')')? + 1..];
    // rest[0] is field 3 (state).
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| f.get(n - 3)?.parse::<f64>().ok();
    Some(SelfStat {
        utime: field(14)?,
        stime: field(15)?,
        cutime: field(16)?,
        cstime: field(17)?,
        threads: field(20)?,
        vsize: field(23)?,
        rss: field(24)?,
    })
}

/// The memory (kB, as the file has them) and context switch lines of /proc/self/status, under
/// Kata's item names (the key in lower case).
pub fn status(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter_map(|line| {
            let (key, rest) = line.split_once(':')?;
            let wanted = key.starts_with("Vm")
                || key.starts_with("Rss")
                || key == "HugetlbPages"
                || key.ends_with("ctxt_switches");
            if !wanted {
                return None;
            }
            let value = rest.split_whitespace().next()?.parse().ok()?;
            Some((key.to_ascii_lowercase(), value))
        })
        .collect()
}
