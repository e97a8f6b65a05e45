//! cgroup v2: the container's cgroup is one directory under the unified root; the controllers
//! it needs are enabled in every ancestor's `cgroup.subtree_control` on the way down.

use super::{
    finish, lock_tree, make_dirs, max_or, parents_within, required_controllers, write, Cgroup,
    CgroupError, Flavor, Parts, Resources, SharedTree, Tree,
};
use std::io;
use std::path::{Path, PathBuf};

/// v2's default `cpu.max` period (µs), used when only a quota is given.
const DEFAULT_PERIOD: u64 = 100_000;

pub(super) fn create(
    shared: &SharedTree,
    root: &Path,
    rel: &Path,
    res: &Resources,
) -> Result<Cgroup, CgroupError> {
    let mut tree = lock_tree(shared);
    let mut made = Vec::new();
    let result = build(&tree, root, rel, res, &mut made).map(|parts| parts.tied_to(shared));
    finish(&mut tree, made, result)
}

fn build(
    tree: &Tree,
    root: &Path,
    rel: &Path,
    res: &Resources,
    made: &mut Vec<PathBuf>,
) -> Result<Parts, CgroupError> {
    refuse_v1_only(res)?;
    let required: Vec<_> = required_controllers(res)
        .into_iter()
        .map(|(c, what)| (if c == "blkio" { "io" } else { c }, what))
        .collect();
    let root_available = list(&root.join("cgroup.controllers"))?;
    if let Some(&(controller, needed_for)) = required
        .iter()
        .find(|r| !root_available.iter().any(|a| a == r.0))
    {
        return Err(CgroupError::MissingController {
            controller,
            needed_for,
        });
    }
    let mut enable: Vec<&str> = required.iter().map(|r| r.0).collect();
    for extra in ["memory", "pids"] {
        if !enable.contains(&extra) && root_available.iter().any(|a| a == extra) {
            enable.push(extra);
        }
    }
    let (leaf, joined) = make_dirs(root, rel, made)?;
    if joined {
        super::join::check(tree, &leaf)?;
    }
    enable_controllers(root, rel, &enable)?;
    apply(&leaf, res)?;
    let parents = parents_within(root, rel);
    Ok(Parts {
        dirs: vec![leaf],
        parents,
        flavor: Flavor::V2,
        joined,
    })
}

/// Enables `enable` in the `cgroup.subtree_control` of the root and of every dir down to the
/// leaf's parent. Each level then offers its child what the root offers, since a level's
/// available controllers are exactly what its parent enabled.
fn enable_controllers(root: &Path, rel: &Path, enable: &[&str]) -> Result<(), CgroupError> {
    let mut level = root.to_path_buf();
    let parents = rel.components().count() - 1;
    for part in std::iter::once(None).chain(rel.components().take(parents).map(Some)) {
        if let Some(part) = part {
            level.push(part);
        }
        let control = level.join("cgroup.subtree_control");
        let enabled = list(&control)?;
        if enable.iter().all(|c| enabled.iter().any(|e| e == c)) {
            continue;
        }
        // Already enabled ones are repeated: a no-op for the kernel, and a fake tree's file
        // (which a write replaces) still lists them afterwards.
        let mut all: Vec<&str> = enabled.iter().map(String::as_str).collect();
        all.extend(enable.iter().filter(|c| !enabled.iter().any(|e| e == *c)));
        let value = all
            .iter()
            .map(|c| format!("+{c}"))
            .collect::<Vec<_>>()
            .join(" ");
        write(&control, &value)?;
    }
    Ok(())
}

/// v2 has no per-cgroup swappiness and no switch that disables the OOM killer (memory.oom.group
/// is something else): refused, where runc skips them silently.
fn refuse_v1_only(res: &Resources) -> Result<(), CgroupError> {
    if res.memory_swappiness.is_some() {
        return Err(CgroupError::Unsupported {
            field: "memory.swappiness",
            reason: "cgroup v2 has no per-cgroup swappiness",
        });
    }
    if res.memory_disable_oom_killer {
        return Err(CgroupError::Unsupported {
            field: "memory.disableOOMKiller",
            reason: "cgroup v2 cannot disable the OOM killer",
        });
    }
    if res.cpu_rt_runtime.is_some() || res.cpu_rt_period.is_some() {
        return Err(CgroupError::Unsupported {
            field: "cpu.realtimeRuntime/realtimePeriod",
            reason: "cgroup v2 has no real-time group scheduling",
        });
    }
    Ok(())
}

fn apply(leaf: &Path, res: &Resources) -> Result<(), CgroupError> {
    if let Some(limit) = res.memory_limit {
        write(&leaf.join("memory.max"), &max_or(limit))?;
    }
    if let Some(reservation) = res.memory_reservation {
        write(&leaf.join("memory.low"), &max_or(reservation))?;
    }
    if let Some(swap) = res.memory_swap {
        write(
            &leaf.join("memory.swap.max"),
            &swap_max(swap, res.memory_limit),
        )?;
    }
    if let Some(limit) = res.pids_limit {
        write(&leaf.join("pids.max"), &max_or(limit))?;
    }
    if let Some(shares) = res.cpu_shares {
        write(
            &leaf.join("cpu.weight"),
            &shares_to_weight(shares).to_string(),
        )?;
    }
    if res.cpu_quota.is_some() || res.cpu_period.is_some() {
        let quota = max_or(res.cpu_quota.unwrap_or(-1));
        let period = res.cpu_period.unwrap_or(DEFAULT_PERIOD);
        write(&leaf.join("cpu.max"), &format!("{quota} {period}"))?;
    }
    if let Some(cpus) = &res.cpuset_cpus {
        write(&leaf.join("cpuset.cpus"), cpus)?;
    }
    if let Some(mems) = &res.cpuset_mems {
        write(&leaf.join("cpuset.mems"), mems)?;
    }
    super::blkio::apply_v2(leaf, &res.block_io)
}

/// UpdateContainer on v2: the limits written into the existing leaf (its controllers were
/// enabled at create). v2 has no ordering constraint between memory.max and memory.swap.max.
pub(super) fn update(leaf: &Path, res: &Resources) -> Result<(), CgroupError> {
    refuse_v1_only(res)?;
    apply(leaf, res)
}

/// OCI's swap is memory+swap; v2's `memory.swap.max` is swap alone.
fn swap_max(swap: i64, memory: Option<i64>) -> String {
    match memory {
        _ if swap <= 0 => "max".to_owned(),
        Some(memory) if memory > 0 => (swap - memory).max(0).to_string(),
        // No memory limit to subtract (validation refuses this): the total bounds swap too.
        _ => swap.to_string(),
    }
}

/// v1 shares (2..=262144) onto v2 weight (1..=10000), the conversion runc and crun use.
pub(super) fn shares_to_weight(shares: u64) -> u64 {
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}

/// A controller list file; missing reads as empty (a level not created yet has none).
fn list(file: &Path) -> Result<Vec<String>, CgroupError> {
    match std::fs::read_to_string(file) {
        Ok(text) => Ok(text
            .split_whitespace()
            .map(|w| w.trim_start_matches('+').to_owned())
            .collect()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(CgroupError::Read {
            file: file.to_owned(),
            source,
        }),
    }
}
