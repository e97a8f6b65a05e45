//! The one test against this machine's real cgroups (needs root; run with `--ignored`): a
//! container-like cgroup is created with limits, a process joins it, and it is killed and
//! removed. Everything is made under a "zagent-test-<pid>" prefix and removed again even when
//! an assertion fails.

use super::*;
use std::process::{Child, Command};

/// Kills the child and removes the cgroup on drop, so that a failed assertion leaves nothing
/// behind.
struct Guard {
    child: Option<Child>,
    cgroup: Option<Cgroup>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(cgroup) = &self.cgroup {
            let _ = cgroup.remove();
        }
    }
}

fn read_trimmed(path: PathBuf) -> String {
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path:?}: {e}"))
        .trim()
        .to_owned()
}

#[test]
#[ignore = "requires root"]
fn real_cgroup_lifecycle() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test must run as root"
    );
    let layout = Layout::detect(Path::new("/proc/self/mountinfo")).unwrap();
    let prefix = PathBuf::from(format!("zagent-test-{}", std::process::id()));
    let rel = prefix.join("c1");
    let res = Resources {
        memory_limit: Some(64 << 20),
        pids_limit: Some(10),
        ..Resources::default()
    };
    let mut guard = Guard {
        child: None,
        cgroup: None,
    };
    let cgroup = layout.create(&rel, &res).unwrap();
    guard.cgroup = Some(cgroup.clone());
    assert!(matches!(
        layout.create(&rel, &res),
        Err(CgroupError::Exists(_))
    ));

    let dir_with = |file: &str| {
        cgroup
            .dirs()
            .iter()
            .find(|d| d.join(file).exists())
            .cloned()
    };
    match layout.mounts() {
        Mounts::V1(_) => {
            let memory = dir_with("memory.limit_in_bytes").expect("a memory hierarchy");
            assert_eq!(
                read_trimmed(memory.join("memory.limit_in_bytes")),
                "67108864"
            );
        }
        Mounts::V2 { .. } => assert_eq!(
            read_trimmed(cgroup.dirs()[0].join("memory.max")),
            "67108864"
        ),
    }
    let pids = dir_with("pids.max").expect("a pids controller");
    assert_eq!(read_trimmed(pids.join("pids.max")), "10");

    let child = Command::new("sleep").arg("30").spawn().unwrap();
    let pid = child.id() as i32;
    guard.child = Some(child);
    for procs in cgroup.procs_files() {
        std::fs::write(&procs, pid.to_string()).unwrap_or_else(|e| panic!("{procs:?}: {e}"));
    }
    assert!(cgroup.pids().unwrap().contains(&pid));
    let stats = cgroup.stats().unwrap();
    assert_eq!(stats.pids.current, Some(1));
    assert_eq!(stats.pids.limit, Some(10));
    assert!(stats.memory.usage.is_some());
    assert!(stats.cpu.total_ns.is_some());

    cgroup.kill_all(libc::SIGKILL).unwrap();
    let status = guard.child.take().unwrap().wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    assert!(cgroup.pids().unwrap().is_empty());

    cgroup.remove().unwrap();
    for dir in cgroup.dirs() {
        assert!(!dir.exists(), "{dir:?} is still there");
        let parent = dir.parent().unwrap();
        assert!(!parent.exists(), "{parent:?} is still there");
    }
}
