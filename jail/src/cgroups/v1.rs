//! cgroup v1: the container's cgroup is one directory per mounted hierarchy, and each limit
//! goes into the hierarchy that owns its controller.

use super::{
    finish, lock_tree, make_dirs, max_or, parents_within, read, required_controllers, write,
    Cgroup, CgroupError, Flavor, Hierarchy, Parts, Resources, SharedTree, Tree, V1Index,
};
use std::path::{Path, PathBuf};

pub(super) fn create(
    shared: &SharedTree,
    hierarchies: &[Hierarchy],
    rel: &Path,
    res: &Resources,
) -> Result<Cgroup, CgroupError> {
    check_controllers(hierarchies, res)?;
    let mut tree = lock_tree(shared);
    let mut made = Vec::new();
    let result = build(&tree, hierarchies, rel, res, &mut made).map(|parts| parts.tied_to(shared));
    finish(&mut tree, made, result)
}

/// Refuses before anything is created when a limit has no hierarchy to go into.
fn check_controllers(hierarchies: &[Hierarchy], res: &Resources) -> Result<(), CgroupError> {
    for (controller, needed_for) in required_controllers(res) {
        if !hierarchies.iter().any(|h| h.has(controller)) {
            return Err(CgroupError::MissingController {
                controller,
                needed_for,
            });
        }
    }
    Ok(())
}

/// Every hierarchy's dirs first, each existing leaf checked, and only then any limit written:
/// a leaf that cannot be joined leaves nothing changed in the others.
fn build(
    tree: &Tree,
    hierarchies: &[Hierarchy],
    rel: &Path,
    res: &Resources,
    made: &mut Vec<PathBuf>,
) -> Result<Parts, CgroupError> {
    let mut leaves = Vec::with_capacity(hierarchies.len());
    for h in hierarchies {
        let start = made.len();
        let (leaf, existed) = make_dirs(&h.mount, rel, made)?;
        if existed {
            super::join::check(tree, &leaf)?;
        }
        leaves.push((leaf, existed, made[start..].to_vec()));
    }
    let mut parents = Vec::new();
    for (h, (leaf, existed, created)) in hierarchies.iter().zip(&leaves) {
        if h.has("cpuset") {
            fill_cpusets(created, leaf, res)?;
            if *existed {
                fill_joined_cpuset(leaf, res)?;
            }
        }
        apply(h, leaf, res)?;
        parents.extend(parents_within(&h.mount, rel));
    }
    Ok(Parts {
        joined: leaves.iter().any(|l| l.1),
        dirs: leaves.into_iter().map(|l| l.0).collect(),
        parents,
        flavor: flavor(hierarchies),
    })
}

/// A joined cpuset leaf gets the spec's values, and its parent's where it has none (a cpuset
/// without cpus or mems cannot be joined: ENOSPC).
fn fill_joined_cpuset(leaf: &Path, res: &Resources) -> Result<(), CgroupError> {
    for (file, own) in [
        ("cpuset.cpus", &res.cpuset_cpus),
        ("cpuset.mems", &res.cpuset_mems),
    ] {
        let value = match own {
            Some(value) => value.clone(),
            None if read(&leaf.join(file))?.trim().is_empty() => match leaf.parent() {
                Some(parent) => filled(parent, file)?,
                None => continue,
            },
            None => continue,
        };
        write(&leaf.join(file), &value)?;
    }
    Ok(())
}

/// Where the figures live: indexes into `hierarchies`, which the cgroup's dirs follow.
fn flavor(hierarchies: &[Hierarchy]) -> Flavor {
    let index = |controller| hierarchies.iter().position(|h| h.has(controller));
    Flavor::V1(V1Index {
        memory: index("memory"),
        pids: index("pids"),
        cpuacct: index("cpuacct"),
        cpu: index("cpu"),
        cpuset: index("cpuset"),
        freezer: index("freezer"),
        blkio: index("blkio"),
    })
}

/// The existing cgroup `rel` in `present`, the hierarchies that have it; `None` if none has.
pub(super) fn open(shared: &SharedTree, present: &[Hierarchy], rel: &Path) -> Option<Cgroup> {
    if present.is_empty() {
        return None;
    }
    Some(Cgroup {
        tree: shared.clone(),
        joined: false,
        dirs: present.iter().map(|h| h.mount.join(rel)).collect(),
        parents: present
            .iter()
            .flat_map(|h| parents_within(&h.mount, rel))
            .collect(),
        flavor: flavor(present),
    })
}

/// A new v1 cpuset starts with empty cpus and mems, and joining it then fails with ENOSPC:
/// every cpuset dir this call made gets its parent's values, except where the leaf has its own.
/// Writing them rebuilds the scheduler domains, a walk over every cpuset (milliseconds with a
/// thousand containers), so the parents we make also get `cgroup.clone_children`: the kernel
/// then copies the values into each new child itself, and a leaf without its own values under
/// such a parent needs no write at all.
fn fill_cpusets(created: &[PathBuf], leaf: &Path, res: &Resources) -> Result<(), CgroupError> {
    for (i, dir) in created.iter().enumerate() {
        let is_leaf = dir == leaf;
        // Only a parent that had the flag before this call made `dir` has copied into it.
        let inherited = i == 0 && dir.parent().is_some_and(clones_children);
        for (file, own) in [
            ("cpuset.cpus", &res.cpuset_cpus),
            ("cpuset.mems", &res.cpuset_mems),
        ] {
            let value = match own {
                Some(value) if is_leaf => value.clone(),
                // The flag may have been set (by a second agent making the parent) only after
                // `dir` was made, which then copied nothing: an empty value is filled after all.
                _ if inherited && read(&dir.join(file)).map_or(true, |v| !v.trim().is_empty()) => {
                    continue
                }
                _ => match dir.parent() {
                    Some(parent) => filled(parent, file)?,
                    None => continue,
                },
            };
            write(&dir.join(file), &value)?;
        }
        if !is_leaf {
            write(&dir.join("cgroup.clone_children"), "1")?;
        }
    }
    Ok(())
}

/// The value of `file` in the existing cpuset `dir`. Empty means another process (a second agent
/// on the same cgroup parent) made `dir` a moment ago and has not filled it yet; then `dir` is
/// filled here from its nearest filled ancestor, the same values that process will write.
fn filled(dir: &Path, file: &str) -> Result<String, CgroupError> {
    let value = read(&dir.join(file))?.trim().to_owned();
    if !value.is_empty() {
        return Ok(value);
    }
    let Some(parent) = dir.parent() else {
        return Ok(value);
    };
    let value = filled(parent, file)?;
    if !value.is_empty() {
        write(&dir.join(file), &value)?;
    }
    Ok(value)
}

fn clones_children(dir: &Path) -> bool {
    read(&dir.join("cgroup.clone_children")).is_ok_and(|v| v.trim() == "1")
}

fn apply(h: &Hierarchy, leaf: &Path, res: &Resources) -> Result<(), CgroupError> {
    if h.has("memory") {
        if let Some(limit) = res.memory_limit {
            write(&leaf.join("memory.limit_in_bytes"), &limit.to_string())?;
        }
        // memsw only exists with swap accounting: without it, unlimited is what there is, and
        // a limit cannot be set.
        let memsw = "memory.memsw.limit_in_bytes";
        match res.memory_swap {
            Some(swap) if h.mount.join(memsw).exists() => {
                write(&leaf.join(memsw), &swap.to_string())?
            }
            Some(swap) if swap > 0 => {
                return Err(CgroupError::Unsupported {
                    field: "memory.swap",
                    reason: "swap accounting is off (no memory.memsw.limit_in_bytes)",
                })
            }
            _ => {}
        }
        if let Some(reservation) = res.memory_reservation {
            write(
                &leaf.join("memory.soft_limit_in_bytes"),
                &reservation.to_string(),
            )?;
        }
        if let Some(swappiness) = res.memory_swappiness {
            write(&leaf.join("memory.swappiness"), &swappiness.to_string())?;
        }
        if res.memory_disable_oom_killer {
            write(&leaf.join("memory.oom_control"), "1")?;
        }
    }
    if h.has("devices") {
        // In order, as the spec lists them (a leading deny-all is the usual first rule).
        for rule in &res.devices {
            let file = if rule.allow {
                "devices.allow"
            } else {
                "devices.deny"
            };
            write(&leaf.join(file), &rule.v1_line())?;
        }
    }
    if h.has("pids") {
        if let Some(limit) = res.pids_limit {
            write(&leaf.join("pids.max"), &max_or(limit))?;
        }
    }
    if h.has("cpu") {
        if let Some(shares) = res.cpu_shares {
            write(&leaf.join("cpu.shares"), &shares.to_string())?;
        }
        // Period first: the kernel checks a quota against the period in force.
        if let Some(period) = res.cpu_period {
            write(&leaf.join("cpu.cfs_period_us"), &period.to_string())?;
        }
        if let Some(quota) = res.cpu_quota {
            let quota = if quota > 0 { quota } else { -1 };
            write(&leaf.join("cpu.cfs_quota_us"), &quota.to_string())?;
        }
        // Period first here too: the runtime must fit the period in force (runc's order).
        if let Some(period) = res.cpu_rt_period {
            write(&leaf.join("cpu.rt_period_us"), &period.to_string())?;
        }
        if let Some(runtime) = res.cpu_rt_runtime {
            write(&leaf.join("cpu.rt_runtime_us"), &runtime.to_string())?;
        }
    }
    if h.has("blkio") {
        super::blkio::apply_v1(leaf, &res.block_io)?;
    }
    Ok(())
}

/// UpdateContainer on v1: `res` written into the existing cgroup's hierarchies. A limit whose
/// controller has no hierarchy is refused before anything is written.
pub(super) fn update(
    dirs: &[PathBuf],
    index: &V1Index,
    res: &Resources,
) -> Result<(), CgroupError> {
    let dir = |controller: &str| {
        let i = match controller {
            "memory" => index.memory,
            "pids" => index.pids,
            "cpu" => index.cpu,
            "cpuset" => index.cpuset,
            "blkio" => index.blkio,
            _ => None,
        };
        i.map(|i| dirs[i].as_path())
    };
    for (controller, needed_for) in required_controllers(res) {
        if dir(controller).is_none() {
            return Err(CgroupError::MissingController {
                controller,
                needed_for,
            });
        }
    }
    if let Some(leaf) = dir("memory") {
        update_memory(leaf, res)?;
    }
    for controller in ["pids", "cpu", "blkio"] {
        if let Some(leaf) = dir(controller) {
            let h = Hierarchy {
                mount: leaf.to_owned(),
                controllers: vec![controller.to_owned()],
            };
            apply(&h, leaf, res)?;
        }
    }
    if let Some(leaf) = dir("cpuset") {
        for (file, value) in [
            ("cpuset.cpus", &res.cpuset_cpus),
            ("cpuset.mems", &res.cpuset_mems),
        ] {
            if let Some(value) = value {
                write(&leaf.join(file), value)?;
            }
        }
    }
    Ok(())
}

/// The kernel keeps the memory limit at or below memory+swap at every write: raising both
/// needs memsw first, lowering both the limit first. memsw is tried first; refused (EINVAL:
/// below the limit in force), the limit goes first.
fn update_memory(leaf: &Path, res: &Resources) -> Result<(), CgroupError> {
    let memsw = leaf.join("memory.memsw.limit_in_bytes");
    let mut rest = res.clone();
    if let Some(swap) = res.memory_swap.filter(|_| memsw.exists()) {
        match write(&memsw, &swap.to_string()) {
            Ok(()) => rest.memory_swap = None,
            Err(CgroupError::Write { source, .. })
                if source.raw_os_error() == Some(libc::EINVAL) => {}
            Err(e) => return Err(e),
        }
    }
    let h = Hierarchy {
        mount: leaf.to_owned(),
        controllers: vec!["memory".to_owned()],
    };
    apply(&h, leaf, &rest)
}
