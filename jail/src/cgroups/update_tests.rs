//! Tests of `Cgroup::update` (UpdateContainer) against a fake tree: each limit lands in its
//! controller's file of the existing cgroup, and a limit without its controller is refused
//! before anything is written.

use super::*;
use std::fs;

use super::fake_tree::v1_cgroup as v1;

fn text(path: PathBuf) -> String {
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

#[test]
fn v1_update_writes_each_limit_into_its_hierarchy() {
    let (tmp, cg) = v1(&["memory", "pids", "cpu", "cpuset"]);
    let dir = |c: &str| tmp.path().join(c).join("c1");
    // Swap accounting is on: the file exists.
    fs::write(dir("memory").join("memory.memsw.limit_in_bytes"), "").unwrap();
    let res = Resources {
        memory_limit: Some(128 << 20),
        memory_swap: Some(256 << 20),
        pids_limit: Some(20),
        cpu_quota: Some(50_000),
        cpu_period: Some(100_000),
        cpuset_cpus: Some("0".into()),
        ..Default::default()
    };
    cg.update(&res).unwrap();
    let m = dir("memory");
    assert_eq!(text(m.join("memory.limit_in_bytes")), "134217728");
    assert_eq!(text(m.join("memory.memsw.limit_in_bytes")), "268435456");
    assert_eq!(text(dir("pids").join("pids.max")), "20");
    assert_eq!(text(dir("cpu").join("cpu.cfs_quota_us")), "50000");
    assert_eq!(text(dir("cpu").join("cpu.cfs_period_us")), "100000");
    assert_eq!(text(dir("cpuset").join("cpuset.cpus")), "0");
    // Unlimited again.
    let res = Resources {
        pids_limit: Some(-1),
        ..Default::default()
    };
    cg.update(&res).unwrap();
    assert_eq!(text(dir("pids").join("pids.max")), "max");
}

#[test]
fn v1_update_without_the_controller_is_refused_before_writing() {
    let (tmp, cg) = v1(&["memory"]);
    let res = Resources {
        memory_limit: Some(1 << 30),
        pids_limit: Some(5),
        ..Default::default()
    };
    let e = cg.update(&res).unwrap_err();
    assert!(
        matches!(
            e,
            CgroupError::MissingController {
                controller: "pids",
                ..
            }
        ),
        "{e}"
    );
    assert!(!tmp.path().join("memory/c1/memory.limit_in_bytes").exists());
}

#[test]
fn v2_update_writes_the_unified_files() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("cgroup.controllers"), "memory pids cpu").unwrap();
    fs::write(tmp.path().join("cgroup.subtree_control"), "").unwrap();
    let layout = Layout::v2(tmp.path().to_owned());
    let cg = layout
        .create(Path::new("c1"), &Resources::default())
        .unwrap();
    let res = Resources {
        memory_limit: Some(64 << 20),
        pids_limit: Some(7),
        cpu_shares: Some(1024),
        ..Default::default()
    };
    cg.update(&res).unwrap();
    let leaf = tmp.path().join("c1");
    assert_eq!(text(leaf.join("memory.max")), "67108864");
    assert_eq!(text(leaf.join("pids.max")), "7");
    assert_eq!(text(leaf.join("cpu.weight")), "39");
    let swappiness = Resources {
        memory_swappiness: Some(10),
        ..Default::default()
    };
    assert!(matches!(
        cg.update(&swappiness),
        Err(CgroupError::Unsupported { .. })
    ));
}
