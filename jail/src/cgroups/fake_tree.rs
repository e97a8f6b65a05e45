//! Test-only fake v1 cgroup trees in a temp dir: one directory per controller standing for its
//! hierarchy's mount, the cpuset root holding the values a kernel's would (new cpusets copy
//! their parent's), for the unit tests of create, join, update, freeze and OOM watches.

use super::{Cgroup, Hierarchy, Layout, Resources};
use std::fs;
use std::path::Path;

/// A v1 layout over `controllers`, one hierarchy each, under `tmp`.
pub fn v1_layout(tmp: &tempfile::TempDir, controllers: &[&str]) -> Layout {
    let hierarchies = controllers
        .iter()
        .map(|c| {
            let mount = tmp.path().join(c);
            fs::create_dir_all(&mount).unwrap();
            if *c == "cpuset" {
                fs::write(mount.join("cpuset.cpus"), "0-1").unwrap();
                fs::write(mount.join("cpuset.mems"), "0").unwrap();
            }
            Hierarchy {
                mount,
                controllers: vec![c.to_string()],
            }
        })
        .collect();
    Layout::v1(hierarchies)
}

/// The cgroup `c1` created without limits in a fresh fake v1 tree over `controllers`.
pub fn v1_cgroup(controllers: &[&str]) -> (tempfile::TempDir, Cgroup) {
    let tmp = tempfile::tempdir().unwrap();
    let cg = v1_layout(&tmp, controllers)
        .create(Path::new("c1"), &Resources::default())
        .unwrap();
    (tmp, cg)
}
