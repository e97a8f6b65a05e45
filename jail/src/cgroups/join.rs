//! Joining a leaf that exists already at `linux.cgroupsPath`, as runc does (an orchestrator may
//! make the cgroup and hand its path to the runtime). Only an idle one: a leaf with processes in
//! it is refused (runc 1.1 only warns, and calls that deprecated; runc 1.2 refuses it too), as is
//! one another container of this agent holds (made or joined, even before its process is in
//! it) and a frozen one (runc: "container's cgroup unexpectedly frozen"). The limits of the spec
//! are then written into it like into a new one.

use super::{read, CgroupError, Tree};
use std::io;
use std::path::Path;

/// Whether the existing `leaf` may be joined.
pub(super) fn check(tree: &Tree, leaf: &Path) -> Result<(), CgroupError> {
    if tree.claimed.contains(leaf) {
        return Err(CgroupError::Exists(leaf.to_owned()));
    }
    let pids = read(&leaf.join("cgroup.procs"))?.split_whitespace().count();
    if pids > 0 {
        return Err(CgroupError::NotEmpty {
            path: leaf.to_owned(),
            pids,
        });
    }
    // v1's freezer hierarchy has freezer.state; v2's every cgroup has cgroup.freeze.
    let frozen = match optional(&leaf.join("freezer.state"))? {
        Some(state) => state.trim() != "THAWED",
        None => optional(&leaf.join("cgroup.freeze"))?.is_some_and(|v| v.trim() == "1"),
    };
    if frozen {
        return Err(CgroupError::Frozen(leaf.to_owned()));
    }
    Ok(())
}

fn optional(file: &Path) -> Result<Option<String>, CgroupError> {
    match std::fs::read_to_string(file) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CgroupError::Read {
            file: file.to_owned(),
            source,
        }),
    }
}
