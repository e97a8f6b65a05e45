//! What the soak measures of the agent under test, from /proc and /sys: its fds, RSS,
//! threads, zombie and other stray children, mounts that mention the soak's directories,
//! cgroups named after the soak's ids, state dirs, containers still registered, and the
//! zygote's pid, threads and fds; and the comparison of a snapshot against the baseline.

use super::rpc::Rpc;
use crate::procs;
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// Where to look, for one agent.
pub struct Probe {
    pub agent: i32,
    /// Directories whose mention in a mountinfo line counts as a mount of ours (the work dir
    /// holds the agent's socket dir, its state dir and the bundle).
    pub dirs: Vec<PathBuf>,
    pub state_dir: PathBuf,
    /// Every container id of this run starts with it.
    pub id_prefix: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Zygote {
    pub pid: i32,
    pub threads: usize,
    pub fds: usize,
}

#[derive(Clone, Debug)]
pub struct Snapshot {
    pub fds: usize,
    pub rss_kib: u64,
    pub threads: usize,
    pub zombies: usize,
    /// Live children other than the zygote (container processes, `zagent init` helpers).
    pub children: usize,
    pub mounts: usize,
    pub cgroups: usize,
    pub state_dirs: usize,
    /// Containers of this run the agent still lists (None: ListContainers failed).
    pub registered: Option<usize>,
    pub zygote: Option<Zygote>,
}

impl Probe {
    pub async fn snapshot(&self, rpc: &Rpc) -> Snapshot {
        let registered = rpc.list().await.ok().map(|ids| {
            ids.iter()
                .filter(|id| id.starts_with(&self.id_prefix))
                .count()
        });
        let zygote = procs::zygote_of(self.agent).map(|pid| Zygote {
            pid,
            threads: procs::threads(pid),
            fds: procs::fd_count(pid),
        });
        let kids = procs::children(self.agent);
        Snapshot {
            fds: procs::fd_count(self.agent),
            rss_kib: rss_kib(self.agent),
            threads: procs::threads(self.agent),
            zombies: kids.iter().filter(|c| c.1 == 'Z').count(),
            children: kids
                .iter()
                .filter(|c| c.1 != 'Z' && Some(c.0) != zygote.map(|z| z.pid))
                .count(),
            mounts: self.mounts().len(),
            cgroups: self.cgroups().len(),
            state_dirs: std::fs::read_dir(&self.state_dir)
                .map(|d| d.count())
                .unwrap_or(0),
            registered,
            zygote,
        }
    }

    /// mountinfo lines (of our mount namespace, which the agent shares) naming one of our dirs.
    pub fn mounts(&self) -> Vec<String> {
        let dirs: Vec<String> = self
            .dirs
            .iter()
            .map(|d| d.to_string_lossy().into_owned())
            .collect();
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter(|l| dirs.iter().any(|d| l.contains(d.as_str())))
            .map(str::to_string)
            .collect()
    }

    /// Cgroups named after this run's ids, in every hierarchy (`/sys/fs/cgroup/*/zagent/`) and
    /// at the top of a pure v2 mount (`/sys/fs/cgroup/zagent/`).
    pub fn cgroups(&self) -> Vec<PathBuf> {
        let root = Path::new("/sys/fs/cgroup");
        let mut parents = vec![root.join("zagent")];
        if let Ok(rd) = std::fs::read_dir(root) {
            parents.extend(rd.flatten().map(|e| e.path().join("zagent")));
        }
        let mut found = Vec::new();
        for p in parents {
            let Ok(rd) = std::fs::read_dir(&p) else {
                continue;
            };
            found.extend(
                rd.flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with(&self.id_prefix))
                    .map(|e| e.path()),
            );
        }
        found
    }
}

fn rss_kib(pid: i32) -> u64 {
    procs::status_field(pid, "VmRSS")
        .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

/// A one-line summary for the progress lines.
pub fn brief(s: &Snapshot) -> String {
    format!(
        "agent fds {} rss {:.1} MiB threads {} children {} zombies {}",
        s.fds,
        s.rss_kib as f64 / 1024.0,
        s.threads,
        s.children,
        s.zombies
    )
}

/// One row of the comparison: name, baseline, after, and what is wrong (None: fine).
struct Row {
    name: &'static str,
    base: String,
    now: String,
    wrong: Option<String>,
}

fn count_row(name: &'static str, base: usize, now: usize) -> Row {
    Row {
        name,
        base: base.to_string(),
        now: now.to_string(),
        wrong: (now > base).then(|| format!("{name}: {base} -> {now}")),
    }
}

fn opt(v: Option<usize>) -> String {
    v.map_or("n/a".into(), |v| v.to_string())
}

fn rows(base: &Snapshot, now: &Snapshot, rss_bound_kib: u64) -> Vec<Row> {
    let growth = now.rss_kib as i64 - base.rss_kib as i64;
    let mut rows = vec![
        count_row("agent fds", base.fds, now.fds),
        Row {
            name: "agent RSS (KiB)",
            base: base.rss_kib.to_string(),
            now: format!("{} ({growth:+})", now.rss_kib),
            wrong: (growth > rss_bound_kib as i64)
                .then(|| format!("agent RSS grew by {growth} KiB (bound {rss_bound_kib} KiB)")),
        },
        count_row("agent threads", base.threads, now.threads),
        count_row("zombie children", base.zombies, now.zombies),
        count_row("other children", base.children, now.children),
        count_row("mounts", base.mounts, now.mounts),
        count_row("cgroups", base.cgroups, now.cgroups),
        count_row("state dirs", base.state_dirs, now.state_dirs),
    ];
    rows.push(Row {
        name: "registered",
        base: opt(base.registered),
        now: opt(now.registered),
        wrong: match (base.registered, now.registered) {
            (Some(b), Some(n)) if n <= b => None,
            (b, n) => Some(format!("registered containers: {} -> {}", opt(b), opt(n))),
        },
    });
    rows.extend(zygote_rows(base.zygote, now.zygote));
    rows
}

fn zygote_rows(base: Option<Zygote>, now: Option<Zygote>) -> Vec<Row> {
    let (Some(b), Some(n)) = (base, now) else {
        let wrong = (base.is_some() != now.is_some()).then(|| {
            format!(
                "zygote: {} -> {}",
                if base.is_some() { "present" } else { "none" },
                if now.is_some() { "present" } else { "none" }
            )
        });
        return vec![Row {
            name: "zygote",
            base: base.map_or("none".into(), |z| z.pid.to_string()),
            now: now.map_or("none".into(), |z| z.pid.to_string()),
            wrong,
        }];
    };
    vec![
        Row {
            name: "zygote pid",
            base: b.pid.to_string(),
            now: n.pid.to_string(),
            // Nothing in the mix kills the zygote: a new one means the old one died.
            wrong: (b.pid != n.pid).then(|| format!("zygote respawned: {} -> {}", b.pid, n.pid)),
        },
        Row {
            wrong: (n.threads != 1 || n.threads > b.threads)
                .then(|| format!("zygote threads: {} -> {}", b.threads, n.threads)),
            ..count_row("zygote threads", b.threads, n.threads)
        },
        count_row("zygote fds", b.fds, n.fds),
    ]
}

/// Everything that is above its baseline (or, for RSS, above the bound).
pub fn leaks(base: &Snapshot, now: &Snapshot, rss_bound_kib: u64) -> Vec<String> {
    rows(base, now, rss_bound_kib)
        .into_iter()
        .filter_map(|r| r.wrong)
        .collect()
}

/// The comparison as a table.
pub fn render(base: &Snapshot, now: &Snapshot, rss_bound_kib: u64) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<18} {:>12} {:>18}  verdict",
        "metric", "baseline", "after"
    );
    for r in rows(base, now, rss_bound_kib) {
        let verdict = if r.wrong.is_some() { "LEAK" } else { "ok" };
        let _ = writeln!(
            out,
            "{:<18} {:>12} {:>18}  {verdict}",
            r.name, r.base, r.now
        );
    }
    out
}
