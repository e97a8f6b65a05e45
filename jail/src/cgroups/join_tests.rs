//! Tests of joining an existing leaf at the cgroup path (`join.rs`) and of the limits added
//! with it (real-time cpu, block I/O, swap without swap accounting), against fake trees.

use super::*;
use std::fs;

use super::fake_tree::v1_layout as layout;

/// An existing leaf as an orchestrator would leave it: nothing in it, cpuset values empty.
fn existing(tmp: &tempfile::TempDir, controller: &str, rel: &str) -> PathBuf {
    let leaf = tmp.path().join(controller).join(rel);
    fs::create_dir_all(&leaf).unwrap();
    fs::write(leaf.join("cgroup.procs"), "").unwrap();
    if controller == "cpuset" {
        // The leaf and its parents as cgroupfs shows dirs made without clone_children.
        for dir in leaf
            .ancestors()
            .take_while(|d| *d != tmp.path().join("cpuset"))
        {
            fs::write(dir.join("cpuset.cpus"), "\n").unwrap();
            fs::write(dir.join("cpuset.mems"), "\n").unwrap();
        }
    }
    leaf
}

fn text(path: PathBuf) -> String {
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

#[test]
fn an_empty_existing_leaf_is_joined_and_removed_at_the_end() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = layout(&tmp, &["memory", "cpuset", "pids"]);
    let memory = existing(&tmp, "memory", "pod/c1");
    let cpuset = existing(&tmp, "cpuset", "pod/c1");
    let res = Resources {
        memory_limit: Some(1 << 20),
        ..Resources::default()
    };
    let cg = layout.create(Path::new("pod/c1"), &res).unwrap();
    assert!(cg.joined());
    assert_eq!(text(memory.join("memory.limit_in_bytes")), "1048576");
    // A cpuset without values cannot be joined: the parent's (here the root's) are copied in.
    assert_eq!(text(cpuset.join("cpuset.cpus")), "0-1");
    assert_eq!(text(cpuset.join("cpuset.mems")), "0");
    // A second container at the same path is refused while the first holds it.
    let again = layout.create(Path::new("pod/c1"), &res).unwrap_err();
    assert!(matches!(again, CgroupError::Exists(_)), "{again}");
    cg.remove().unwrap();
    // Gone like a leaf `create` made (runc's delete removes a joined cgroup too); the parent
    // this process did not make stays.
    assert!(!memory.exists() && !cpuset.exists());
    assert!(tmp.path().join("memory/pod").exists());
    assert!(!tmp.path().join("pids/pod/c1").exists());
    let fresh = layout.create(Path::new("pod/c1"), &res).unwrap();
    assert!(!fresh.joined());
    fresh.remove().unwrap();
}

#[test]
fn a_frozen_or_busy_leaf_is_refused_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = layout(&tmp, &["memory", "freezer"]);
    let memory = existing(&tmp, "memory", "c1");
    let freezer = existing(&tmp, "freezer", "c1");
    fs::write(freezer.join("freezer.state"), "FROZEN\n").unwrap();
    let res = Resources {
        memory_limit: Some(1 << 20),
        ..Resources::default()
    };
    let e = layout.create(Path::new("c1"), &res).unwrap_err();
    assert!(
        matches!(e, CgroupError::Frozen(ref p) if *p == freezer),
        "{e}"
    );
    assert!(!memory.join("memory.limit_in_bytes").exists());
    fs::write(freezer.join("freezer.state"), "THAWED\n").unwrap();
    fs::write(freezer.join("cgroup.procs"), "77\n").unwrap();
    let e = layout.create(Path::new("c1"), &res).unwrap_err();
    assert!(matches!(e, CgroupError::NotEmpty { pids: 1, .. }), "{e}");
    assert!(
        memory.exists() && freezer.exists(),
        "existing leaves are never removed"
    );
    let tmp2 = tempfile::tempdir().unwrap();
    fs::write(tmp2.path().join("cgroup.controllers"), "memory").unwrap();
    fs::write(tmp2.path().join("cgroup.subtree_control"), "").unwrap();
    let leaf = tmp2.path().join("c1");
    fs::create_dir(&leaf).unwrap();
    fs::write(leaf.join("cgroup.procs"), "").unwrap();
    fs::write(leaf.join("cgroup.freeze"), "1\n").unwrap();
    let v2 = Layout::v2(tmp2.path().to_owned());
    let e = v2
        .create(Path::new("c1"), &Resources::default())
        .unwrap_err();
    assert!(matches!(e, CgroupError::Frozen(_)), "{e}");
    fs::write(leaf.join("cgroup.freeze"), "0\n").unwrap();
    let cg = v2.create(Path::new("c1"), &Resources::default()).unwrap();
    assert!(cg.joined());
}

#[test]
fn realtime_cpu_and_block_io_go_to_v1_and_realtime_is_refused_on_v2() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = layout(&tmp, &["cpu", "blkio"]);
    let res = Resources {
        cpu_rt_runtime: Some(1000),
        cpu_rt_period: Some(100_000),
        block_io: BlockIo {
            read_bps: vec![Throttle {
                major: 254,
                minor: 0,
                rate: 1 << 20,
            }],
            ..BlockIo::default()
        },
        ..Resources::default()
    };
    layout.create(Path::new("c1"), &res).unwrap();
    assert_eq!(text(tmp.path().join("cpu/c1/cpu.rt_runtime_us")), "1000");
    assert_eq!(text(tmp.path().join("cpu/c1/cpu.rt_period_us")), "100000");
    assert_eq!(
        text(tmp.path().join("blkio/c1/blkio.throttle.read_bps_device")),
        "254:0 1048576"
    );
    let no_blkio = self::layout(&tempfile::tempdir().unwrap(), &["cpu"]);
    let e = no_blkio.create(Path::new("c1"), &res).unwrap_err();
    assert!(
        matches!(
            e,
            CgroupError::MissingController {
                controller: "blkio",
                ..
            }
        ),
        "{e}"
    );
    let v2tmp = tempfile::tempdir().unwrap();
    fs::write(v2tmp.path().join("cgroup.controllers"), "cpu io").unwrap();
    fs::write(v2tmp.path().join("cgroup.subtree_control"), "").unwrap();
    let v2 = Layout::v2(v2tmp.path().to_owned());
    let e = v2.create(Path::new("c1"), &res).unwrap_err();
    assert!(matches!(e, CgroupError::Unsupported { .. }), "{e}");
    let io_only = Resources {
        block_io: res.block_io.clone(),
        ..Resources::default()
    };
    v2.create(Path::new("c2"), &io_only).unwrap();
    assert_eq!(text(v2tmp.path().join("c2/io.max")), "254:0 rbps=1048576");
}

#[test]
fn a_swap_limit_without_swap_accounting_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = layout(&tmp, &["memory"]);
    let res = Resources {
        memory_limit: Some(1 << 20),
        memory_swap: Some(2 << 20),
        ..Resources::default()
    };
    let e = layout.create(Path::new("c1"), &res).unwrap_err();
    assert!(
        matches!(
            e,
            CgroupError::Unsupported {
                field: "memory.swap",
                ..
            }
        ),
        "{e}"
    );
    assert!(!tmp.path().join("memory/c1").exists());
    fs::write(tmp.path().join("memory/memory.memsw.limit_in_bytes"), "").unwrap();
    layout.create(Path::new("c1"), &res).unwrap();
    assert_eq!(
        text(tmp.path().join("memory/c1/memory.memsw.limit_in_bytes")),
        "2097152"
    );
}
