//! Leak checks shared by the root tiers: after a container is gone, nothing of it may be left
//! (registry entry, state dir, cgroup in any hierarchy, zombie children of the agent, mounts
//! under the directories a test hands us), and host mount-table queries for tests that must
//! prove that no mount reached a host path.

use crate::agent::TestAgent;
use crate::procs;
use std::path::{Path, PathBuf};

/// Every directory the container `id` (default `linux.cgroupsPath`, `zagent/<id>`) could have a
/// cgroup in on this machine: each v1 hierarchy and the unified one.
pub fn cgroup_dirs(id: &str) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path().join("zagent").join(id))
        .collect();
    // A pure v2 machine has the hierarchy at the top.
    dirs.push(Path::new("/sys/fs/cgroup/zagent").join(id));
    dirs
}

/// The cgroup dirs of `id` that still exist.
pub fn cgroups_left(id: &str) -> Vec<PathBuf> {
    cgroup_dirs(id).into_iter().filter(|d| d.exists()).collect()
}

/// Mount points of the test's own (host) mount namespace, unescaped as the kernel escapes
/// them in mountinfo (`\040` for a space and so on).
pub fn host_mount_points() -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").expect("read mountinfo");
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(unescape(m)))
        .collect()
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(u8::is_ascii_digit));
        match octal {
            Some(d) if b[i] == b'\\' => {
                let v = d.iter().fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
                out.push(v as u8);
                i += 4;
            }
            _ => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Host mount points at `dir` or below it.
pub fn host_mounts_at_or_under(dir: &Path) -> Vec<PathBuf> {
    host_mount_points()
        .into_iter()
        .filter(|m| m.starts_with(dir))
        .collect()
}

/// Asserts that nothing of container `id` is left in agent `a`, and that no host mount exists
/// at or under any of `dirs` (the rootfs and temp dirs the test used).
pub async fn assert_nothing_left(a: &TestAgent, id: &str, dirs: &[&Path]) {
    assert!(a.info(id).await.is_none(), "{id} still registered");
    assert!(!a.state_dir.join(id).exists(), "state dir of {id} left");
    assert_eq!(
        cgroups_left(id),
        Vec::<PathBuf>::new(),
        "cgroups of {id} left"
    );
    assert_eq!(
        procs::zombies_of(a.pid()),
        Vec::<i32>::new(),
        "zombies of the agent"
    );
    for d in dirs {
        assert_eq!(
            host_mounts_at_or_under(d),
            Vec::<PathBuf>::new(),
            "host mounts under {}",
            d.display()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape(r"/a\040b\011c"), "/a b\tc");
        assert_eq!(unescape(r"/plain\x"), r"/plain\x");
    }

    #[test]
    fn cgroup_dirs_name_the_id_in_every_hierarchy() {
        let dirs = cgroup_dirs("c1");
        assert!(dirs.iter().all(|d| d.ends_with("zagent/c1")));
        assert!(dirs.contains(&PathBuf::from("/sys/fs/cgroup/zagent/c1")));
    }
}
