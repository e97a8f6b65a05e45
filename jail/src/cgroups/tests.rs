//! Tests of cgroup detection, creation, limits, listing, killing and removal, all against a
//! fake tree in a temp dir (mkdir there creates no control files: the tests write the ones the
//! code reads, and read back the ones it writes).

use super::*;
use std::fs;
use tempfile::TempDir;

/// The v1 hierarchies of this machine: (dir under /sys/fs/cgroup, mount options).
const V1: [(&str, &str); 9] = [
    ("cpu", "rw,cpu"),
    ("cpuacct", "rw,cpuacct"),
    ("cpuset", "rw,cpuset"),
    ("memory", "rw,memory"),
    ("devices", "rw,devices"),
    ("freezer", "rw,freezer"),
    ("blkio", "rw,blkio"),
    ("pids", "rw,pids"),
    ("systemd", "rw,name=systemd"),
];

/// A mountinfo like this machine's hybrid layout, with every mount point under `base`.
fn hybrid_mountinfo(base: &Path) -> String {
    let b = base.display();
    let mut text = format!(
        "22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/vda rw\n\
         31 23 0:28 / {b} rw,relatime - tmpfs tmpfs rw,mode=755\n"
    );
    for (i, (dir, opts)) in V1.iter().enumerate() {
        let id = 32 + i;
        text += &format!("{id} 31 0:{id} / {b}/{dir} rw,relatime - cgroup cgroup {opts}\n");
    }
    text += &format!("41 31 0:38 / {b}/unified rw,relatime - cgroup2 cgroup2 rw\n");
    text
}

/// A fake v1 tree: the hierarchy dirs, the root cpuset values, and the layout detected from
/// a mountinfo file describing it.
fn fake_v1() -> (TempDir, Layout) {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("cgroup");
    for (dir, _) in V1 {
        fs::create_dir_all(base.join(dir)).unwrap();
    }
    fs::write(base.join("cpuset/cpuset.cpus"), "0-1\n").unwrap();
    fs::write(base.join("cpuset/cpuset.mems"), "0\n").unwrap();
    let mountinfo = tmp.path().join("mountinfo");
    fs::write(&mountinfo, hybrid_mountinfo(&base)).unwrap();
    let layout = Layout::detect(&mountinfo).unwrap();
    (tmp, layout)
}

/// A fake v2 root offering the usual controllers.
fn fake_v2(controllers: &str) -> (TempDir, Layout) {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("cgroup.controllers"), controllers).unwrap();
    fs::write(tmp.path().join("cgroup.subtree_control"), "").unwrap();
    let layout = Layout::v2(tmp.path().to_owned());
    (tmp, layout)
}

fn base(tmp: &TempDir) -> PathBuf {
    tmp.path().join("cgroup")
}

fn text(path: impl AsRef<Path>) -> String {
    fs::read_to_string(path.as_ref()).unwrap_or_else(|e| panic!("{:?}: {e}", path.as_ref()))
}

fn all_limits() -> Resources {
    Resources {
        memory_limit: Some(64 << 20),
        memory_swap: Some(128 << 20),
        pids_limit: Some(10),
        cpu_shares: Some(1024),
        cpu_quota: Some(50_000),
        cpu_period: Some(100_000),
        cpuset_cpus: Some("1".into()),
        cpuset_mems: None,
        devices: Vec::new(),
        ..Resources::default()
    }
}

#[test]
fn detects_this_machines_hybrid_layout_as_v1() {
    let (tmp, layout) = fake_v1();
    let Mounts::V1(hierarchies) = layout.mounts() else {
        panic!("expected v1, got {layout:?}")
    };
    let got: Vec<_> = hierarchies
        .iter()
        .map(|h| (h.mount.clone(), h.controllers.join(",")))
        .collect();
    let want: Vec<_> = V1
        .iter()
        .map(|(dir, opts)| {
            (
                base(&tmp).join(dir),
                opts.trim_start_matches("rw,").to_owned(),
            )
        })
        .collect();
    assert_eq!(got, want);
}

#[test]
fn detects_unified_only_as_v2() {
    let tmp = tempfile::tempdir().unwrap();
    let mountinfo = tmp.path().join("mountinfo");
    let lines = "22 1 0:21 / / rw shared:1 - ext4 /dev/vda rw\n\
                 30 22 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n";
    fs::write(&mountinfo, lines).unwrap();
    assert_eq!(
        Layout::detect(&mountinfo).unwrap(),
        Layout::v2("/sys/fs/cgroup")
    );
    // systemd's hybrid mode without v1 controllers: only name=systemd on v1.
    let named =
        format!("{lines}31 22 0:27 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd\n");
    fs::write(&mountinfo, named).unwrap();
    assert_eq!(
        Layout::detect(&mountinfo).unwrap(),
        Layout::v2("/sys/fs/cgroup")
    );
}

#[test]
fn detect_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let mountinfo = tmp.path().join("mountinfo");
    assert!(matches!(
        Layout::detect(&mountinfo),
        Err(CgroupError::Detect { .. })
    ));
    fs::write(&mountinfo, "22 1 0:21 / / rw - ext4 /dev/vda rw\n").unwrap();
    assert!(matches!(
        Layout::detect(&mountinfo),
        Err(CgroupError::NotMounted(_))
    ));
    fs::write(&mountinfo, "22 1 0:21 / / rw - ext4 /dev/vda rw\ngarbage\n").unwrap();
    assert!(matches!(
        Layout::detect(&mountinfo),
        Err(CgroupError::Mountinfo { line: 2, .. })
    ));
}

#[test]
fn detect_dedupes_and_unescapes() {
    let tmp = tempfile::tempdir().unwrap();
    let mountinfo = tmp.path().join("mountinfo");
    let lines = "1 0 0:1 / /c\\040g/cpu rw - cgroup cgroup rw,cpu,cpuacct\n\
                 2 0 0:1 / /elsewhere rw - cgroup cgroup rw,cpu,cpuacct\n";
    fs::write(&mountinfo, lines).unwrap();
    let want = Hierarchy {
        mount: "/c g/cpu".into(),
        controllers: vec!["cpu".into(), "cpuacct".into()],
    };
    assert_eq!(Layout::detect(&mountinfo).unwrap(), Layout::v1(vec![want]));
}

#[test]
fn v1_create_writes_limits_and_copies_cpusets() {
    let (tmp, layout) = fake_v1();
    let b = base(&tmp);
    fs::write(b.join("memory/memory.memsw.limit_in_bytes"), "").unwrap();
    let cg = layout
        .create(Path::new("zagent/c1"), &all_limits())
        .unwrap();
    let dirs: Vec<_> = V1
        .iter()
        .map(|(d, _)| b.join(d).join("zagent/c1"))
        .collect();
    assert_eq!(cg.dirs(), dirs);
    assert_eq!(cg.procs_files()[3], b.join("memory/zagent/c1/cgroup.procs"));
    assert_eq!(cg.join_files()[3], b.join("memory/zagent/c1/tasks"));
    assert_eq!(
        layout.join_files(Path::new("zagent/c1")).unwrap(),
        cg.join_files()
    );
    assert_eq!(
        text(b.join("memory/zagent/c1/memory.limit_in_bytes")),
        "67108864"
    );
    assert_eq!(
        text(b.join("memory/zagent/c1/memory.memsw.limit_in_bytes")),
        "134217728"
    );
    assert_eq!(text(b.join("pids/zagent/c1/pids.max")), "10");
    assert_eq!(text(b.join("cpu/zagent/c1/cpu.shares")), "1024");
    assert_eq!(text(b.join("cpu/zagent/c1/cpu.cfs_period_us")), "100000");
    assert_eq!(text(b.join("cpu/zagent/c1/cpu.cfs_quota_us")), "50000");
    // The parent we made gets the root's values; the leaf its own cpus and the parent's mems.
    assert_eq!(text(b.join("cpuset/zagent/cpuset.cpus")), "0-1");
    assert_eq!(text(b.join("cpuset/zagent/cpuset.mems")), "0");
    assert_eq!(text(b.join("cpuset/zagent/c1/cpuset.cpus")), "1");
    assert_eq!(text(b.join("cpuset/zagent/c1/cpuset.mems")), "0");
    // The parent we made clones its values into children made from now on (the kernel does
    // the copy), so a second leaf whose spec sets no cpuset gets no write at all.
    assert_eq!(text(b.join("cpuset/zagent/cgroup.clone_children")), "1");
    let no_cpuset = Resources {
        cpuset_cpus: None,
        ..all_limits()
    };
    let cg2 = layout.create(Path::new("zagent/c2"), &no_cpuset).unwrap();
    assert!(!b.join("cpuset/zagent/c2/cpuset.cpus").exists());
    assert!(!b.join("cpuset/zagent/c2/cpuset.mems").exists());
    cg2.remove().unwrap();
    // Nothing written where the controller does not live.
    assert!(!b.join("devices/zagent/c1/pids.max").exists());
    assert!(!b.join("memory/zagent/c1/cpu.shares").exists());
    cg.remove().unwrap();
    for (dir, _) in V1 {
        assert!(!b.join(dir).join("zagent").exists(), "{dir}");
        assert!(b.join(dir).exists());
    }
}

#[test]
fn v1_skips_memsw_without_swap_accounting_and_writes_unlimited() {
    let (tmp, layout) = fake_v1();
    let b = base(&tmp);
    let res = Resources {
        memory_limit: Some(-1),
        memory_swap: Some(-1),
        pids_limit: Some(-1),
        cpu_quota: Some(-1),
        ..Resources::default()
    };
    layout.create(Path::new("c1"), &res).unwrap();
    assert_eq!(text(b.join("memory/c1/memory.limit_in_bytes")), "-1");
    assert!(!b.join("memory/c1/memory.memsw.limit_in_bytes").exists());
    assert_eq!(text(b.join("pids/c1/pids.max")), "max");
    assert_eq!(text(b.join("cpu/c1/cpu.cfs_quota_us")), "-1");
    assert!(!b.join("cpu/c1/cpu.cfs_period_us").exists());
    // Without cpuset limits the leaf still gets usable values.
    assert_eq!(text(b.join("cpuset/c1/cpuset.cpus")), "0-1");
}

#[test]
fn v1_a_busy_existing_leaf_rolls_back_everything_it_made() {
    let (tmp, layout) = fake_v1();
    let b = base(&tmp);
    fs::create_dir_all(b.join("memory/zagent/c1")).unwrap();
    fs::write(b.join("memory/zagent/c1/cgroup.procs"), "4242\n").unwrap();
    let err = layout
        .create(Path::new("zagent/c1"), &Resources::default())
        .unwrap_err();
    assert!(
        matches!(err, CgroupError::NotEmpty { ref path, pids: 1 }
            if *path == b.join("memory/zagent/c1")),
        "{err}"
    );
    for (dir, _) in V1 {
        let existed = dir == "memory";
        assert_eq!(b.join(dir).join("zagent").exists(), existed, "{dir}");
    }
    assert!(b.join("memory/zagent/c1").exists());
}

#[test]
fn v1_cpuset_parent_another_agent_has_not_filled_yet() {
    // A second agent on the same cgroup parent made `zagent` a moment ago and has not written
    // its cpus and mems yet (a new v1 cpuset starts with both empty). The leaf must not copy the
    // empty values (joining it would fail with ENOSPC): both get the root's.
    let (tmp, layout) = fake_v1();
    let b = base(&tmp);
    fs::create_dir(b.join("cpuset/zagent")).unwrap();
    fs::write(b.join("cpuset/zagent/cpuset.cpus"), "\n").unwrap();
    fs::write(b.join("cpuset/zagent/cpuset.mems"), "\n").unwrap();
    let res = Resources {
        cpuset_cpus: None,
        cpuset_mems: None,
        memory_swap: None,
        ..all_limits()
    };
    layout.create(Path::new("zagent/c1"), &res).unwrap();
    for dir in ["cpuset/zagent", "cpuset/zagent/c1"] {
        assert_eq!(text(b.join(dir).join("cpuset.cpus")), "0-1", "{dir}");
        assert_eq!(text(b.join(dir).join("cpuset.mems")), "0", "{dir}");
    }
}

#[test]
fn v1_failure_rolls_back() {
    let (tmp, layout) = fake_v1();
    let b = base(&tmp);
    // Without the root's cpuset values there is nothing to copy: the create must fail and
    // take the dirs already made in the earlier hierarchies with it.
    fs::remove_file(b.join("cpuset/cpuset.cpus")).unwrap();
    let err = layout
        .create(Path::new("zagent/c1"), &all_limits())
        .unwrap_err();
    assert!(matches!(err, CgroupError::Read { .. }), "{err}");
    for (dir, _) in V1 {
        assert!(!b.join(dir).join("zagent").exists(), "{dir}");
    }
}

#[test]
fn missing_controller_is_refused_before_anything_is_made() {
    let tmp = tempfile::tempdir().unwrap();
    let mount = tmp.path().join("memory");
    fs::create_dir(&mount).unwrap();
    let layout = Layout::v1(vec![Hierarchy {
        mount: mount.clone(),
        controllers: vec!["memory".into()],
    }]);
    let res = Resources {
        pids_limit: Some(5),
        ..Resources::default()
    };
    let err = layout.create(Path::new("c1"), &res).unwrap_err();
    assert!(
        matches!(
            err,
            CgroupError::MissingController {
                controller: "pids",
                ..
            }
        ),
        "{err}"
    );
    assert!(!mount.join("c1").exists());
}

#[test]
fn invalid_paths_are_refused() {
    let (_tmp, layout) = fake_v1();
    for rel in ["", "/abs", "../up", "a/../b", "./a"] {
        let err = layout
            .create(Path::new(rel), &Resources::default())
            .unwrap_err();
        assert!(matches!(err, CgroupError::InvalidPath(_)), "{rel:?}: {err}");
    }
}

#[test]
fn remove_keeps_shared_and_preexisting_parents() {
    let (tmp, layout) = fake_v1();
    let b = base(&tmp);
    fs::create_dir_all(b.join("pids/pre")).unwrap();
    let c1 = layout
        .create(Path::new("pre/zagent/c1"), &Resources::default())
        .unwrap();
    let c2 = layout
        .create(Path::new("pre/zagent/c2"), &Resources::default())
        .unwrap();
    // A child cgroup made by the container itself goes with the leaf.
    fs::create_dir(b.join("cpu/pre/zagent/c1/inner")).unwrap();
    c1.remove().unwrap();
    assert!(!b.join("cpu/pre/zagent/c1").exists());
    assert!(b.join("cpu/pre/zagent/c2").exists());
    c2.remove().unwrap();
    assert!(
        !b.join("cpu/pre").exists(),
        "a parent this code made goes when empty"
    );
    assert!(
        b.join("pids/pre").exists(),
        "a parent that existed before stays"
    );
    assert!(!b.join("pids/pre/zagent").exists());
    c2.remove().unwrap();
}

#[test]
fn a_layout_removes_only_the_parents_it_or_its_clones_made() {
    let (tmp, layout) = fake_v1();
    let b = base(&tmp);
    let other = Layout::new(layout.mounts().clone());
    let mine = layout
        .create(Path::new("zagent/c1"), &Resources::default())
        .unwrap();
    let theirs = other
        .create(Path::new("zagent/c2"), &Resources::default())
        .unwrap();
    mine.remove().unwrap();
    theirs.remove().unwrap();
    assert!(
        b.join("pids/zagent").exists(),
        "the other layout did not make the parent, and it was not empty when ours left"
    );
    let clone = layout
        .clone()
        .create(Path::new("zagent/c3"), &Resources::default())
        .unwrap();
    clone.remove().unwrap();
    assert!(
        !b.join("pids/zagent").exists(),
        "a clone shares what its layout made"
    );
}

#[test]
fn pids_come_from_the_pids_hierarchy() {
    let (tmp, layout) = fake_v1();
    let b = base(&tmp);
    let cg = layout
        .create(Path::new("c1"), &Resources::default())
        .unwrap();
    fs::write(b.join("cpu/c1/cgroup.procs"), "1\n").unwrap();
    fs::write(b.join("pids/c1/cgroup.procs"), "12\n0\n34\n").unwrap();
    assert_eq!(cg.pids().unwrap(), [12, 34]);
    fs::write(b.join("pids/c1/cgroup.procs"), "x\n").unwrap();
    assert!(matches!(cg.pids(), Err(CgroupError::Read { .. })));
}

#[test]
fn open_finds_a_leftover_in_the_hierarchies_that_have_it() {
    let (tmp, layout) = fake_v1();
    let b = base(&tmp);
    let rel = Path::new("zagent/old");
    assert!(layout.open(rel).unwrap().is_none());
    assert!(matches!(
        layout.open(Path::new("../x")),
        Err(CgroupError::InvalidPath(_))
    ));
    // Made by another process (an agent that died): only some hierarchies have it.
    for h in ["cpu", "pids", "memory"] {
        fs::create_dir_all(b.join(h).join(rel)).unwrap();
    }
    fs::create_dir(b.join("memory/zagent/old/inner")).unwrap();
    let cg = layout.open(rel).unwrap().expect("found");
    assert_eq!(cg.dirs().len(), 3);
    fs::write(b.join("pids/zagent/old/cgroup.procs"), "7\n").unwrap();
    assert_eq!(cg.pids().unwrap(), [7]);
    fs::write(b.join("pids/zagent/old/cgroup.procs"), "").unwrap();
    cg.remove().unwrap();
    for h in ["cpu", "pids", "memory"] {
        assert!(!b.join(h).join(rel).exists(), "{h}");
        assert!(
            b.join(h).join("zagent").exists(),
            "{h}: the shared parent stays"
        );
    }
    assert!(layout.open(rel).unwrap().is_none());
    let (tmp, layout) = fake_v2("memory pids");
    fs::create_dir_all(tmp.path().join("zagent/old")).unwrap();
    let cg = layout.open(rel).unwrap().expect("found");
    assert_eq!(
        cg.procs_files(),
        [tmp.path().join("zagent/old/cgroup.procs")]
    );
    cg.remove().unwrap();
    assert!(tmp.path().join("zagent").exists());
}

#[test]
fn kill_all_signals_listed_processes() {
    let (tmp, layout) = fake_v1();
    let cg = layout
        .create(Path::new("c1"), &Resources::default())
        .unwrap();
    let procs = base(&tmp).join("pids/c1/cgroup.procs");
    fs::write(&procs, "").unwrap();
    cg.kill_all(libc::SIGKILL).unwrap();
    let mut child = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    fs::write(&procs, format!("{}\n", child.id())).unwrap();
    cg.kill_all(libc::SIGTERM).unwrap();
    let status = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGTERM));
    assert!(matches!(cg.kill_all(0), Err(CgroupError::Kill { .. })));
}

#[test]
fn v1_stats() {
    let (tmp, layout) = fake_v1();
    let b = base(&tmp);
    let cg = layout
        .create(Path::new("c1"), &Resources::default())
        .unwrap();
    assert_eq!(cg.stats().unwrap(), CgroupStats::default());
    let put = |file: &str, text: &str| fs::write(b.join(file), text).unwrap();
    put("memory/c1/memory.usage_in_bytes", "4096\n");
    put("memory/c1/memory.max_usage_in_bytes", "8192\n");
    put("memory/c1/memory.limit_in_bytes", "9223372036854771712\n");
    put("memory/c1/memory.failcnt", "2\n");
    put("memory/c1/memory.use_hierarchy", "1\n");
    put("memory/c1/memory.stat", "cache 1024\nrss 2048\n");
    put("pids/c1/pids.current", "3\n");
    put("pids/c1/pids.max", "max\n");
    put("cpuacct/c1/cpuacct.usage", "123456\n");
    put("cpuacct/c1/cpuacct.usage_percpu", "100000 23456 \n");
    put("cpuacct/c1/cpuacct.stat", "user 3\nsystem 1\n");
    put(
        "cpu/c1/cpu.stat",
        "nr_periods 10\nnr_throttled 2\nthrottled_time 500\n",
    );
    put(
        "blkio/c1/blkio.throttle.io_service_bytes_recursive",
        "8:0 Read 4096\n8:0 Write 512\nTotal 4608\n",
    );
    let s = cg.stats().unwrap();
    assert_eq!(
        (s.memory.usage, s.memory.max_usage, s.memory.failcnt),
        (Some(4096), Some(8192), Some(2))
    );
    assert_eq!(s.memory.limit, Some(9_223_372_036_854_771_712));
    assert_eq!((s.memory.cache, s.memory.use_hierarchy), (Some(1024), true));
    assert_eq!(s.memory.stat.get("rss"), Some(&2048));
    assert_eq!((s.pids.current, s.pids.limit), (Some(3), None));
    assert_eq!(s.cpu.total_ns, Some(123_456));
    assert_eq!(s.cpu.percpu_ns, vec![100_000, 23_456]);
    // No usage_user/usage_sys files here: cpuacct.stat's ticks, converted.
    let tick = stats::ns_per_tick();
    assert_eq!(
        (s.cpu.user_ns, s.cpu.system_ns),
        (Some(3 * tick), Some(tick))
    );
    assert_eq!(
        (s.cpu.periods, s.cpu.throttled_periods, s.cpu.throttled_ns),
        (Some(10), Some(2), Some(500))
    );
    let read = BlkioEntry {
        major: 8,
        minor: 0,
        op: "Read".into(),
        value: 4096,
    };
    assert_eq!(s.blkio.service_bytes.len(), 2, "Total is left out");
    assert_eq!(s.blkio.service_bytes[0], read);
    put("pids/c1/pids.max", "64\n");
    assert_eq!(cg.stats().unwrap().pids.limit, Some(64));
    put("memory/c1/memory.stat", "cache x\n");
    assert!(matches!(cg.stats(), Err(CgroupError::Read { .. })));
}

#[test]
fn v2_create_enables_controllers_and_writes_limits() {
    let (tmp, layout) = fake_v2("cpuset cpu io memory hugetlb pids rdma");
    let root = tmp.path();
    fs::write(root.join("cgroup.subtree_control"), "cpu io").unwrap();
    let cg = layout
        .create(Path::new("zagent/c1"), &all_limits())
        .unwrap();
    let leaf = root.join("zagent/c1");
    assert_eq!(cg.dirs(), std::slice::from_ref(&leaf));
    assert_eq!(cg.procs_files(), [leaf.join("cgroup.procs")]);
    assert_eq!(cg.join_files(), [leaf.join("cgroup.procs")]);
    assert_eq!(
        layout.join_files(Path::new("zagent/c1")).unwrap(),
        cg.join_files()
    );
    assert_eq!(
        text(root.join("cgroup.subtree_control")),
        "+cpu +io +memory +pids +cpuset"
    );
    assert_eq!(
        text(root.join("zagent/cgroup.subtree_control")),
        "+memory +pids +cpu +cpuset"
    );
    assert!(!leaf.join("cgroup.subtree_control").exists());
    assert_eq!(text(leaf.join("memory.max")), "67108864");
    assert_eq!(text(leaf.join("memory.swap.max")), "67108864");
    assert_eq!(text(leaf.join("pids.max")), "10");
    assert_eq!(text(leaf.join("cpu.weight")), "39");
    assert_eq!(text(leaf.join("cpu.max")), "50000 100000");
    assert_eq!(text(leaf.join("cpuset.cpus")), "1");
    assert!(!leaf.join("cpuset.mems").exists());
    cg.remove().unwrap();
    assert!(!root.join("zagent").exists());
    assert!(root.join("cgroup.controllers").exists());
}

#[test]
fn v2_unlimited_and_partial_cpu() {
    let (tmp, layout) = fake_v2("cpu memory pids");
    let res = Resources {
        memory_limit: Some(-1),
        memory_swap: Some(-1),
        pids_limit: Some(-1),
        cpu_period: Some(20_000),
        ..Resources::default()
    };
    layout.create(Path::new("c1"), &res).unwrap();
    let leaf = tmp.path().join("c1");
    assert_eq!(text(leaf.join("memory.max")), "max");
    assert_eq!(text(leaf.join("memory.swap.max")), "max");
    assert_eq!(text(leaf.join("pids.max")), "max");
    assert_eq!(text(leaf.join("cpu.max")), "max 20000");
    assert_eq!(
        text(tmp.path().join("cgroup.subtree_control")),
        "+memory +pids +cpu"
    );
}

#[test]
fn v2_without_limits_enables_only_what_is_there() {
    let (tmp, layout) = fake_v2("io memory");
    layout
        .create(Path::new("c1"), &Resources::default())
        .unwrap();
    assert_eq!(text(tmp.path().join("cgroup.subtree_control")), "+memory");
}

#[test]
fn v2_missing_controller_and_exists() {
    let (tmp, layout) = fake_v2("memory pids");
    let res = Resources {
        cpu_shares: Some(100),
        ..Resources::default()
    };
    let err = layout.create(Path::new("zagent/c1"), &res).unwrap_err();
    assert!(
        matches!(
            err,
            CgroupError::MissingController {
                controller: "cpu",
                ..
            }
        ),
        "{err}"
    );
    assert!(!tmp.path().join("zagent").exists());
    fs::create_dir_all(tmp.path().join("zagent/c1")).unwrap();
    fs::write(tmp.path().join("zagent/c1/cgroup.procs"), "1\n2\n").unwrap();
    let err = layout
        .create(Path::new("zagent/c1"), &Resources::default())
        .unwrap_err();
    assert!(
        matches!(err, CgroupError::NotEmpty { pids: 2, .. }),
        "{err}"
    );
    assert!(tmp.path().join("zagent/c1").exists());
}

#[test]
fn v2_kill_uses_cgroup_kill_and_stats_read_cpu_stat() {
    let (tmp, layout) = fake_v2("memory pids");
    let cg = layout
        .create(Path::new("c1"), &Resources::default())
        .unwrap();
    let leaf = tmp.path().join("c1");
    fs::write(leaf.join("cgroup.kill"), "").unwrap();
    cg.kill_all(libc::SIGKILL).unwrap();
    assert_eq!(text(leaf.join("cgroup.kill")), "1");
    fs::write(leaf.join("memory.current"), "100\n").unwrap();
    fs::write(leaf.join("memory.max"), "max\n").unwrap();
    fs::write(leaf.join("memory.stat"), "anon 60\nfile 40\n").unwrap();
    fs::write(leaf.join("memory.events"), "low 0\nhigh 0\nmax 5\noom 1\n").unwrap();
    fs::write(leaf.join("pids.max"), "32\n").unwrap();
    fs::write(
        leaf.join("cpu.stat"),
        "usage_usec 2500\nuser_usec 2000\nsystem_usec 500\n",
    )
    .unwrap();
    fs::write(
        leaf.join("io.stat"),
        "8:16 rbytes=4096 wbytes=1024 rios=2 wios=1 dbytes=0 dios=0\n",
    )
    .unwrap();
    let s = cg.stats().unwrap();
    assert_eq!((s.memory.usage, s.memory.max_usage), (Some(100), None));
    assert_eq!(s.memory.limit, Some(i64::MAX as u64), "max");
    assert_eq!((s.memory.cache, s.memory.failcnt), (Some(40), Some(5)));
    assert_eq!((s.pids.current, s.pids.limit), (None, Some(32)));
    assert_eq!(
        (s.cpu.total_ns, s.cpu.user_ns, s.cpu.system_ns),
        (Some(2_500_000), Some(2_000_000), Some(500_000))
    );
    assert!(s.cpu.percpu_ns.is_empty());
    let ops: Vec<(u64, &str, u64)> = s
        .blkio
        .service_bytes
        .iter()
        .map(|e| (e.minor, e.op.as_str(), e.value))
        .collect();
    assert_eq!(ops, vec![(16, "Read", 4096), (16, "Write", 1024)]);
    assert_eq!(s.blkio.serviced.len(), 2);
}

#[test]
fn shares_convert_to_weight() {
    assert_eq!(v2::shares_to_weight(2), 1);
    assert_eq!(v2::shares_to_weight(1024), 39);
    assert_eq!(v2::shares_to_weight(262_144), 10_000);
}

#[test]
fn v1_writes_device_rules_and_v2_refuses_them() {
    use crate::cgroups::DeviceRule;
    let rule = |allow, kind, major, minor: Option<i64>| DeviceRule {
        allow,
        kind,
        major,
        minor,
        access: "rwm".into(),
    };
    let res = Resources {
        devices: vec![
            rule(false, 'a', None, None),
            rule(true, 'c', Some(1), Some(3)),
            rule(true, 'c', Some(136), None),
        ],
        ..Resources::default()
    };
    let (tmp, layout) = fake_v1();
    let b = base(&tmp);
    let cg = layout.create(Path::new("zagent/c1"), &res).unwrap();
    // The fake tree keeps only the last line written to each file; the kernel applies each.
    assert_eq!(text(b.join("devices/zagent/c1/devices.deny")), "a");
    assert_eq!(
        text(b.join("devices/zagent/c1/devices.allow")),
        "c 136:* rwm"
    );
    assert!(!b.join("memory/zagent/c1/devices.allow").exists());
    cg.remove().unwrap();
    let (_tmp2, v2) = fake_v2("cpu memory pids");
    let err = v2.create(Path::new("zagent/c1"), &res).unwrap_err();
    assert!(
        matches!(
            err,
            CgroupError::MissingController {
                controller: "devices",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn v1_writes_reservation_swappiness_and_oom_control() {
    let (tmp, layout) = fake_v1();
    let b = base(&tmp);
    let res = Resources {
        memory_reservation: Some(32 << 20),
        memory_swappiness: Some(0),
        memory_disable_oom_killer: true,
        ..Resources::default()
    };
    layout.create(Path::new("c1"), &res).unwrap();
    let leaf = b.join("memory/c1");
    assert_eq!(text(leaf.join("memory.soft_limit_in_bytes")), "33554432");
    assert_eq!(text(leaf.join("memory.swappiness")), "0");
    assert_eq!(text(leaf.join("memory.oom_control")), "1");
    // Unset, none of them is written.
    layout
        .create(Path::new("c2"), &Resources::default())
        .unwrap();
    for file in ["soft_limit_in_bytes", "swappiness", "oom_control"] {
        assert!(!b.join("memory/c2").join(format!("memory.{file}")).exists());
    }
}

#[test]
fn v2_maps_reservation_to_memory_low_and_refuses_v1_only_knobs() {
    let (tmp, layout) = fake_v2("memory pids");
    let res = Resources {
        memory_reservation: Some(32 << 20),
        ..Resources::default()
    };
    layout.create(Path::new("c1"), &res).unwrap();
    assert_eq!(text(tmp.path().join("c1/memory.low")), "33554432");
    for (res, field) in [
        (
            Resources {
                memory_swappiness: Some(10),
                ..Resources::default()
            },
            "memory.swappiness",
        ),
        (
            Resources {
                memory_disable_oom_killer: true,
                ..Resources::default()
            },
            "memory.disableOOMKiller",
        ),
    ] {
        let err = layout.create(Path::new("c2"), &res).unwrap_err();
        assert!(
            matches!(err, CgroupError::Unsupported { field: f, .. } if f == field),
            "{err}"
        );
        assert!(err.to_string().contains(field), "{err}");
        assert!(!tmp.path().join("c2").exists());
    }
}
