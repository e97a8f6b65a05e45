//! Freezing and thawing a container's cgroup (PauseContainer / ResumeContainer): v1's
//! `freezer.state` (FROZEN / THAWED), v2's `cgroup.freeze` (1 / 0, confirmed by the `frozen`
//! key of `cgroup.events`). Freezing returns only once the kernel reports the cgroup frozen,
//! so a paused container runs no instruction after the call; it gives up (and thaws again)
//! after `FREEZE_TIMEOUT`. Blocking file I/O with short sleeps: call it off the async runtime.

use super::{read, write, Cgroup, CgroupError, Flavor};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long freezing may take before it is given up. A cgroup whose tasks sit in
/// uninterruptible sleep (e.g. on a stuck NFS server) can stay FREEZING for ever.
pub const FREEZE_TIMEOUT: Duration = Duration::from_secs(2);

impl Cgroup {
    /// Freezes every task of the cgroup and waits until the kernel says it is frozen. On
    /// timeout the cgroup is thawed again (never left half frozen) and `FreezeTimeout` is
    /// returned.
    pub fn freeze(&self) -> Result<(), CgroupError> {
        let (file, on, _) = self.freezer()?;
        let deadline = Instant::now() + FREEZE_TIMEOUT;
        let mut pause = Duration::from_micros(100);
        loop {
            // v1 can stay FREEZING when a task was being forked or woken: writing FROZEN again
            // retries the tasks still running (what runc does too).
            write(&file, on)?;
            if self.is_frozen()? {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = self.thaw();
                return Err(CgroupError::FreezeTimeout {
                    path: file,
                    waited: FREEZE_TIMEOUT,
                });
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(10));
        }
    }

    /// Thaws the cgroup. Already thawed is fine.
    pub fn thaw(&self) -> Result<(), CgroupError> {
        let (file, _, off) = self.freezer()?;
        write(&file, off)
    }

    /// Whether the kernel reports the cgroup frozen (FREEZING is not frozen).
    pub fn is_frozen(&self) -> Result<bool, CgroupError> {
        match &self.flavor {
            Flavor::V1(_) => {
                let (file, _, _) = self.freezer()?;
                Ok(read(&file)?.trim() == "FROZEN")
            }
            Flavor::V2 => events_frozen(&self.dirs[0].join("cgroup.events")),
        }
    }

    /// The control file and the values that freeze and thaw.
    fn freezer(&self) -> Result<(PathBuf, &'static str, &'static str), CgroupError> {
        match &self.flavor {
            Flavor::V1(index) => match index.freezer {
                Some(i) => Ok((self.dirs[i].join("freezer.state"), "FROZEN", "THAWED")),
                None => Err(CgroupError::MissingController {
                    controller: "freezer",
                    needed_for: "pausing a container",
                }),
            },
            Flavor::V2 => Ok((self.dirs[0].join("cgroup.freeze"), "1", "0")),
        }
    }
}

/// `frozen 1` in a v2 `cgroup.events`.
fn events_frozen(file: &Path) -> Result<bool, CgroupError> {
    Ok(read(file)?
        .lines()
        .filter_map(|line| line.split_once(' '))
        .any(|(key, value)| key == "frozen" && value.trim() == "1"))
}

#[cfg(test)]
mod tests {
    use super::super::{Layout, Resources};
    use super::*;
    use std::fs;

    use super::super::fake_tree::v1_cgroup as v1;

    #[test]
    fn v1_freezes_through_freezer_state_and_thaws() {
        let (tmp, cg) = v1(&["memory", "freezer"]);
        let state = tmp.path().join("freezer/c1/freezer.state");
        fs::write(&state, "THAWED\n").unwrap();
        assert!(!cg.is_frozen().unwrap());
        // A fake file reads back what was written: FROZEN at once.
        cg.freeze().unwrap();
        assert_eq!(fs::read_to_string(&state).unwrap(), "FROZEN");
        assert!(cg.is_frozen().unwrap());
        cg.thaw().unwrap();
        assert_eq!(fs::read_to_string(&state).unwrap(), "THAWED");
    }

    #[test]
    fn v1_without_a_freezer_hierarchy_is_a_missing_controller() {
        let (_tmp, cg) = v1(&["memory"]);
        let e = cg.freeze().unwrap_err();
        assert!(
            matches!(
                e,
                CgroupError::MissingController {
                    controller: "freezer",
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn v2_waits_for_frozen_in_cgroup_events_and_gives_up_thawed() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("cgroup.controllers"), "memory pids").unwrap();
        fs::write(tmp.path().join("cgroup.subtree_control"), "").unwrap();
        let layout = Layout::v2(tmp.path().to_owned());
        let cg = layout
            .create(Path::new("c1"), &Resources::default())
            .unwrap();
        let leaf = tmp.path().join("c1");
        fs::write(leaf.join("cgroup.events"), "populated 1\nfrozen 1\n").unwrap();
        cg.freeze().unwrap();
        assert_eq!(fs::read_to_string(leaf.join("cgroup.freeze")).unwrap(), "1");
        cg.thaw().unwrap();
        assert_eq!(fs::read_to_string(leaf.join("cgroup.freeze")).unwrap(), "0");
        // The kernel never confirms: bounded, then thawed again.
        fs::write(leaf.join("cgroup.events"), "populated 1\nfrozen 0\n").unwrap();
        let started = Instant::now();
        let e = cg.freeze().unwrap_err();
        assert!(matches!(e, CgroupError::FreezeTimeout { .. }), "{e}");
        assert!(started.elapsed() < FREEZE_TIMEOUT + Duration::from_secs(1));
        assert_eq!(fs::read_to_string(leaf.join("cgroup.freeze")).unwrap(), "0");
    }
}
