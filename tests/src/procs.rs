//! /proc readers for leak checks: children of a pid and their states, fd counts, thread
//! counts, mounts under a path.

use std::path::Path;

/// (pid, state letter, comm) of every process whose parent is `ppid`.
pub fn children(ppid: i32) -> Vec<(i32, char, String)> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // comm is in parentheses and may contain spaces: split at the last ')'.
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let comm = stat[stat.find('(').map(|i| i + 1).unwrap_or(0)..close].to_string();
        let mut rest = stat[close + 2..].split(' ');
        let state = rest.next().and_then(|s| s.chars().next()).unwrap_or('?');
        let parent: i32 = rest.next().and_then(|s| s.parse().ok()).unwrap_or(-1);
        if parent == ppid {
            out.push((pid, state, comm));
        }
    }
    out
}

pub fn zombies_of(ppid: i32) -> Vec<i32> {
    children(ppid)
        .into_iter()
        .filter(|c| c.1 == 'Z')
        .map(|c| c.0)
        .collect()
}

pub fn fd_count(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

pub fn status_field(pid: i32, field: &str) -> Option<String> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines().find_map(|l| {
        l.strip_prefix(field)
            .map(|v| v.trim_start_matches(':').trim().to_string())
    })
}

pub fn threads(pid: i32) -> usize {
    status_field(pid, "Threads")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Bytes `pid` has written through write(2) and its kin (`wchar` of /proc/PID/io).
pub fn wchar(pid: i32) -> Option<u64> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("wchar:"))
        .and_then(|v| v.trim().parse().ok())
}

/// The zygote: the agent's child whose command line is `zagent zygote`.
pub fn zygote_of(agent: i32) -> Option<i32> {
    children(agent).into_iter().map(|c| c.0).find(|pid| {
        std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|c| c.split(|b| *b == 0).nth(1) == Some(b"zygote"))
            .unwrap_or(false)
    })
}

/// Mount points in our mount namespace at or under `dir`.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let prefix = dir.to_string_lossy().into_owned();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|m| m.starts_with(&prefix))
        .collect()
}
