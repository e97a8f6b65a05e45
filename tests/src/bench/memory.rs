//! Memory per parked container: PSS (proportional set size: private pages plus each shared
//! page divided by the number of processes mapping it) from /proc/PID/smaps_rollup, summed
//! over the processes parked containers add to an agent's process tree, plus the agent's (and
//! the zygote's) own change. Kernel memory (page tables, namespaces, cgroups) is not in PSS.

use super::model::{MemoryResult, ProcMem};
use anyhow::{bail, Context, Result};
use std::collections::{BTreeSet, HashMap};

/// PSS and RSS of `pid` in kB.
pub fn proc_mem(pid: i32) -> Result<ProcMem> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .with_context(|| format!("reading /proc/{pid}/smaps_rollup"))?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    };
    let (Some(pss_kb), Some(rss_kb)) = (field("Pss:"), field("Rss:")) else {
        bail!("/proc/{pid}/smaps_rollup has no Pss/Rss line");
    };
    Ok(ProcMem {
        pid,
        comm: comm(pid),
        pss_kb,
        rss_kb,
    })
}

fn comm(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// pid -> parent pid of every process.
fn parents() -> HashMap<i32, i32> {
    let mut map = HashMap::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return map;
    };
    for e in rd.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // comm may contain spaces and parentheses: the fields after the last ')' are fixed.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            continue;
        };
        if let Some(ppid) = rest.split(' ').nth(1).and_then(|s| s.parse().ok()) {
            map.insert(pid, ppid);
        }
    }
    map
}

/// Every descendant of `root` (children, grandchildren, ...).
pub fn descendants(root: i32) -> BTreeSet<i32> {
    let parents = parents();
    let mut out = BTreeSet::new();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for (&pid, &ppid) in &parents {
            if ppid == p && out.insert(pid) {
                frontier.push(pid);
            }
        }
    }
    out
}

/// The zygote of an agent: its child whose argv[1] is "zygote".
pub fn zygote_of(agent: i32) -> Option<i32> {
    parents()
        .into_iter()
        .filter(|&(_, ppid)| ppid == agent)
        .map(|(pid, _)| pid)
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| c.split(|b| *b == 0).nth(1) == Some(b"zygote"))
                .unwrap_or(false)
        })
}

/// An agent's memory before containers are parked on it.
pub struct Baseline {
    pub agent: ProcMem,
    pub zygote: Option<ProcMem>,
    /// The agent's descendants at that time (the zygote, if any).
    pub tree: BTreeSet<i32>,
}

pub fn baseline(agent: i32) -> Result<Baseline> {
    let zygote = zygote_of(agent).map(proc_mem).transpose()?;
    Ok(Baseline {
        agent: proc_mem(agent)?,
        zygote,
        tree: descendants(agent),
    })
}

/// Measures the agent with `children` (the pids zagent.Admin reports for the parked
/// containers) parked on it. Every child must be a direct child of the agent.
pub fn measure(
    side: &str,
    agent: i32,
    before: &Baseline,
    children: &[i32],
) -> Result<MemoryResult> {
    let parents = parents();
    for pid in children {
        if parents.get(pid) != Some(&agent) {
            bail!(
                "{side}: container pid {pid} is not a child of the agent {agent} (parent {:?})",
                parents.get(pid)
            );
        }
    }
    let kids: BTreeSet<i32> = children.iter().copied().collect();
    let zygote = before.zygote.as_ref().map(|z| z.pid);
    let others: Vec<i32> = descendants(agent)
        .into_iter()
        .filter(|p| !kids.contains(p) && !before.tree.contains(p) && Some(*p) != zygote)
        .collect();
    let children: Vec<ProcMem> = children
        .iter()
        .map(|&p| proc_mem(p))
        .collect::<Result<_>>()?;
    let others: Vec<ProcMem> = others
        .into_iter()
        .filter_map(|p| proc_mem(p).ok())
        .collect();
    let agent_after = proc_mem(agent)?;
    let zygote_after = zygote.map(proc_mem).transpose()?;
    let n = children.len().max(1) as f64;
    let sum = |v: &[ProcMem]| v.iter().map(|m| m.pss_kb as i64).sum::<i64>();
    let tree_before =
        before.agent.pss_kb as i64 + before.zygote.as_ref().map_or(0, |z| z.pss_kb as i64);
    let tree_after = agent_after.pss_kb as i64
        + zygote_after.as_ref().map_or(0, |z| z.pss_kb as i64)
        + sum(&children)
        + sum(&others);
    Ok(MemoryResult {
        side: side.into(),
        parked: children.len(),
        agent_growth_kb: agent_after.pss_kb as i64 - before.agent.pss_kb as i64,
        children_pss_per_container_kb: sum(&children) as f64 / n,
        marginal_pss_per_container_kb: (tree_after - tree_before) as f64 / n,
        agent_before: before.agent.clone(),
        agent_after,
        agent_at_max_parked: None,
        agent_after_remove: None,
        zygote_before: before.zygote.clone(),
        zygote_after,
        children,
        others,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_own_smaps_rollup() {
        let me = super::proc_mem(std::process::id() as i32).unwrap();
        assert!(me.pss_kb > 0 && me.rss_kb >= me.pss_kb);
    }
}
