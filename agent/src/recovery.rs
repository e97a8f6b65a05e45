//! Restart recovery: what an agent that died (SIGKILL, crash) left in its state dir and cgroups
//! is taken away by the next agent on that state dir before it serves. Owns the per-container
//! recovery record (`recovery.json`, written at create once the cgroup exists and before the
//! child is launched), the exclusive lock on the state dir (so a second agent never "recovers" a
//! live agent's containers), and the startup scan: for each container dir with a record, kill
//! every process in its cgroup, remove the cgroup's leaves, unmount anything mounted under the
//! dir, remove the dir, and log one warning with the id, which is then free again.
//!
//! Only what a record (or, for dirs of agents from before records, the debug `config.json`)
//! names is touched: the cgroup parent is shared with other agents, so it is never scanned.
//! Entries that are not directories (the agent's own socket may live here), symlinks, and
//! directories whose contents are not ours are left alone with a warning.

use jail::cgroups::{Cgroup, CgroupError, Layout, Mounts};
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The record's file name in a container's state dir.
pub const RECORD: &str = "recovery.json";
const RECORD_TMP: &str = "recovery.json.tmp";
const RECORD_VERSION: u32 = 1;
/// The files a container dir may hold without a record and still be ours (a create that died
/// before writing one, or an agent from before records).
const OURS: [&str; 3] = ["exec.fifo", "config.json", RECORD_TMP];
/// How long the processes of one leftover cgroup get to die after SIGKILL.
const KILL_WAIT: Duration = Duration::from_secs(10);
/// Records and debug configs are small; anything bigger is not ours.
const MAX_FILE: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error("another zagent is using the state dir {0:?}")]
    Locked(PathBuf),
    #[error("{what} {path:?}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error("processes {pids:?} of cgroup {cgroup:?} did not die within {KILL_WAIT:?}")]
    Survivors { cgroup: PathBuf, pids: Vec<i32> },
    #[error("the recovery task failed: {0}")]
    Task(#[source] tokio::task::JoinError),
    #[error("encoding the recovery record: {0}")]
    Encode(#[source] serde_json::Error),
    #[error("bad recovery record {path:?}: {reason}")]
    BadRecord { path: PathBuf, reason: String },
    #[error("reading {0:?}: not a regular file")]
    NotRegular(PathBuf),
}

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> RecoveryError {
    let path = path.to_owned();
    move |source| RecoveryError::Io { what, path, source }
}

/// What recovery needs to find a container's leftovers.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Record {
    version: u32,
    id: String,
    /// The cgroup path relative to the hierarchy root(s), as `Layout::create` was given it.
    cgroup: PathBuf,
    /// The cgroup existed (empty) before the create and was joined. It is the container's from
    /// then on, and goes at recovery as at RemoveContainer (runc's delete removes a joined
    /// cgroup too); recorded so the log says so. Absent in records of older agents.
    #[serde(default)]
    joined: bool,
}

/// Writes the record of container `id` (cgroup `cgroup`, `joined` if it existed before) into
/// its state dir `dir`, atomically (a temp file renamed over), so recovery never reads half a
/// record.
pub fn write_record(
    dir: &Path,
    id: &str,
    cgroup: &Path,
    joined: bool,
) -> Result<(), RecoveryError> {
    let record = Record {
        version: RECORD_VERSION,
        id: id.into(),
        cgroup: cgroup.into(),
        joined,
    };
    let tmp = dir.join(RECORD_TMP);
    let json = serde_json::to_vec(&record).map_err(RecoveryError::Encode)?;
    std::fs::write(&tmp, json).map_err(io_err("writing", &tmp))?;
    std::fs::rename(&tmp, dir.join(RECORD)).map_err(io_err("renaming", &tmp))
}

/// Held for the agent's lifetime: the state dir's exclusive flock. The kernel drops it when the
/// agent dies, however it dies; the fd is close-on-exec, so no child keeps it.
pub struct StateLock {
    _lock: Flock<File>,
}

pub fn lock_state_dir(dir: &Path) -> Result<StateLock, RecoveryError> {
    let file = File::open(dir).map_err(io_err("opening the state dir", dir))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(StateLock { _lock: lock }),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Err(RecoveryError::Locked(dir.to_owned())),
        Err((_, e)) => Err(io_err("locking the state dir", dir)(e.into())),
    }
}

/// Recovers every leftover in `state_dir`, off the async workers (it may wait for processes to
/// die). Returns how many containers were recovered. Failing to recover one container is
/// logged and its dir kept (with its record, so the next start tries again).
pub async fn run(state_dir: PathBuf, layout: Layout) -> Result<usize, RecoveryError> {
    tokio::task::spawn_blocking(move || recover(&state_dir, &layout))
        .await
        .map_err(RecoveryError::Task)?
}

pub fn recover(state_dir: &Path, layout: &Layout) -> Result<usize, RecoveryError> {
    let state_dir = std::fs::canonicalize(state_dir).map_err(io_err("resolving", state_dir))?;
    let entries = std::fs::read_dir(&state_dir).map_err(io_err("reading", &state_dir))?;
    let mut recovered = 0;
    for entry in entries {
        let entry = entry.map_err(io_err("reading", &state_dir))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        // Not followed: a symlink is not a container dir, whatever it points at.
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if !kind.is_dir() {
            if kind.is_symlink() {
                tracing::warn!(path = %path.display(), "a symlink in the state dir; left alone");
            }
            continue;
        }
        if jail::validate::check_id(&name).is_err() {
            tracing::warn!(path = %path.display(), "not a container dir; left alone");
            continue;
        }
        match recover_dir(&path, &name, layout) {
            Ok(true) => recovered += 1,
            Ok(false) => {}
            Err(e) => tracing::error!(
                id = %name,
                error = %e,
                "recovering a container left by an earlier agent; its state dir is kept"
            ),
        }
    }
    Ok(recovered)
}

/// One container dir `dir` named `id`: true if it was a container and is gone now.
fn recover_dir(dir: &Path, id: &str, layout: &Layout) -> Result<bool, RecoveryError> {
    let names = dir_names(dir)?;
    let record = read_record(dir, id)?;
    let joined = record.as_ref().is_some_and(|r| r.joined);
    let cgroup = match record {
        Some(r) => Some(r.cgroup),
        None if names.iter().all(|n| OURS.contains(&n.as_str())) => legacy_cgroup(dir, layout),
        None => {
            let what = "a state dir without a record holds files not ours; left alone";
            tracing::warn!(id = %id, files = ?names, "{what}");
            return Ok(false);
        }
    };
    let killed = match &cgroup {
        Some(rel) => match layout.open(rel)? {
            Some(cg) => kill_and_remove(&cg, rel)?,
            None => 0,
        },
        None => 0,
    };
    unmount_under(dir)?;
    std::fs::remove_dir_all(dir).map_err(io_err("removing", dir))?;
    match cgroup {
        Some(rel) => tracing::warn!(
            id = %id,
            killed,
            cgroup = %rel.display(),
            joined,
            "recovered a container left by an earlier agent: processes killed, cgroup and \
             state dir removed"
        ),
        None => {
            let what = "removed a partial state dir of an earlier agent (no cgroup known)";
            tracing::warn!(id = %id, killed, "{what}");
        }
    }
    Ok(true)
}

fn dir_names(dir: &Path) -> Result<Vec<String>, RecoveryError> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err("reading", dir))? {
        let entry = entry.map_err(io_err("reading", dir))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    Ok(names)
}

/// The record; `None` if there is none. A record that does not parse or names another
/// container is an error: its cgroup cannot be known, so nothing is touched.
fn read_record(dir: &Path, id: &str) -> Result<Option<Record>, RecoveryError> {
    let path = dir.join(RECORD);
    let Some(bytes) = read_small(&path)? else {
        return Ok(None);
    };
    let bad = |reason: String| RecoveryError::BadRecord {
        path: path.clone(),
        reason,
    };
    let record: Record = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
    if record.version != RECORD_VERSION || record.id != id {
        return Err(bad(format!("{record:?} is not version 1 of {id}")));
    }
    Ok(Some(record))
}

/// A regular file's contents (not through a symlink), `None` if it does not exist.
fn read_small(path: &Path) -> Result<Option<Vec<u8>>, RecoveryError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path);
    let file = match file {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("opening", path)(e)),
    };
    let meta = file.metadata().map_err(io_err("reading", path))?;
    if !meta.is_file() {
        return Err(RecoveryError::NotRegular(path.to_owned()));
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE)
        .read_to_end(&mut bytes)
        .map_err(io_err("reading", path))?;
    Ok(Some(bytes))
}

/// The cgroup of a container made by an agent from before records, from the `cgroup_procs`
/// files in its debug `config.json` (absolute paths under a hierarchy of `layout`).
fn legacy_cgroup(dir: &Path, layout: &Layout) -> Option<PathBuf> {
    let bytes = read_small(&dir.join("config.json")).ok()??;
    let config: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let file = Path::new(config.get("cgroup_procs")?.get(0)?.as_str()?);
    let leaf = file.parent()?;
    let rel = match layout.mounts() {
        Mounts::V1(hierarchies) => hierarchies
            .iter()
            .find_map(|h| leaf.strip_prefix(&h.mount).ok()),
        Mounts::V2 { root } => leaf.strip_prefix(root).ok(),
    }?;
    Some(rel.to_owned())
}

/// SIGKILLs everything in `cg` until it is empty (bounded), then removes its leaves. Returns how
/// many distinct processes were found in it.
fn kill_and_remove(cg: &Cgroup, rel: &Path) -> Result<usize, RecoveryError> {
    let deadline = Instant::now() + KILL_WAIT;
    let mut seen = BTreeSet::new();
    loop {
        let pids = cg.pids()?;
        if pids.is_empty() {
            break;
        }
        seen.extend(pids.iter().copied());
        if Instant::now() >= deadline {
            return Err(RecoveryError::Survivors {
                cgroup: rel.to_owned(),
                pids,
            });
        }
        // Repeats until the list is empty, catching processes forked meanwhile.
        cg.kill_all(libc::SIGKILL)?;
        // A container paused when the agent died is still frozen, and on cgroup v1 a frozen
        // task dies of SIGKILL only once thawed. Killed first, so nothing of it runs again.
        if cg.is_frozen().unwrap_or(false) {
            cg.thaw()?;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    cg.remove()?;
    Ok(seen.len())
}

/// Unmounts (lazily, deepest first, never following a symlink) whatever is mounted at or under
/// `dir`, so that removing the dir cannot reach into a mounted filesystem. The agent mounts
/// nothing there itself; this is for whatever else did.
fn unmount_under(dir: &Path) -> Result<(), RecoveryError> {
    let info = "/proc/self/mountinfo";
    let text = std::fs::read_to_string(info).map_err(io_err("reading", Path::new(info)))?;
    let mut points = mount_points_under(&text, dir);
    points.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    for point in points {
        let flags = nix::mount::MntFlags::MNT_DETACH | nix::mount::MntFlags::UMOUNT_NOFOLLOW;
        nix::mount::umount2(&point, flags).map_err(|e| io_err("unmounting", &point)(e.into()))?;
        tracing::warn!(path = %point.display(), "unmounted a leftover mount in the state dir");
    }
    Ok(())
}

/// The mount points in `mountinfo` at or under `dir` (the jail's parser, escapes undone).
fn mount_points_under(mountinfo: &str, dir: &Path) -> Vec<PathBuf> {
    jail::mountinfo::parse(mountinfo)
        .into_iter()
        .map(|m| m.mount_point)
        .filter(|point| point.starts_with(dir))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// A state dir and a fake cgroup v2 root (plain dirs: the code reads `cgroup.procs`).
    fn setup() -> (tempfile::TempDir, PathBuf, Layout) {
        let tmp = tempfile::tempdir().unwrap();
        let state = tmp.path().join("state");
        fs::create_dir(&state).unwrap();
        let root = tmp.path().join("cgroup");
        fs::create_dir_all(root.join("zagent")).unwrap();
        (tmp, state, Layout::v2(root))
    }

    fn fake_cgroup(layout: &Layout, rel: &str, procs: &str) -> PathBuf {
        let Mounts::V2 { root } = layout.mounts() else {
            unreachable!()
        };
        let dir = root.join(rel);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("cgroup.procs"), procs).unwrap();
        dir
    }

    #[test]
    fn a_recorded_container_is_killed_and_removed() {
        let (_tmp, state, layout) = setup();
        let dir = state.join("c1");
        fs::create_dir(&dir).unwrap();
        write_record(&dir, "c1", Path::new("zagent/c1"), false).unwrap();
        fs::write(dir.join("config.json"), "{}").unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let cg = fake_cgroup(&layout, "zagent/c1", &format!("{}\n", child.id()));
        let recovery = std::thread::spawn(move || recover(&state, &layout).map(|n| (n, state)));
        // A fake cgroup does not empty itself: once the process is dead, we do it.
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        fs::write(cg.join("cgroup.procs"), "").unwrap();
        let (recovered, state) = recovery.join().unwrap().unwrap();
        assert_eq!(recovered, 1);
        assert!(!state.join("c1").exists());
        assert!(!cg.exists());
        assert!(cg.parent().unwrap().exists(), "the shared parent stays");
    }

    #[test]
    fn partial_dirs_go_and_what_is_not_ours_stays() {
        let (tmp, state, layout) = setup();
        fs::create_dir(state.join("empty")).unwrap();
        fs::create_dir(state.join("partial")).unwrap();
        fs::write(state.join("partial/exec.fifo"), "").unwrap();
        fs::write(state.join("partial/config.json"), "{}").unwrap();
        let no_cgroup = state.join("gone");
        fs::create_dir(&no_cgroup).unwrap();
        write_record(&no_cgroup, "gone", Path::new("zagent/gone"), true).unwrap();
        let kept = ["foreign", "garbled", "other", "a b"];
        for name in kept {
            fs::create_dir(state.join(name)).unwrap();
        }
        fs::write(state.join("foreign/data"), "x").unwrap();
        fs::write(state.join("garbled").join(RECORD), "{").unwrap();
        write_record(&state.join("other"), "x", Path::new("zagent/x"), false).unwrap();
        let x = fake_cgroup(&layout, "zagent/x", "");
        let outside = tmp.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("keep"), "x").unwrap();
        std::os::unix::fs::symlink(&outside, state.join("link")).unwrap();
        fs::write(state.join("zagent.sock"), "").unwrap();

        assert_eq!(recover(&state, &layout).unwrap(), 3);
        for gone in ["empty", "partial", "gone"] {
            assert!(!state.join(gone).exists(), "{gone}");
        }
        for name in kept.iter().chain(&["link", "zagent.sock"]) {
            assert!(fs::symlink_metadata(state.join(name)).is_ok(), "{name}");
        }
        assert!(outside.join("keep").exists());
        assert!(x.exists(), "a record naming another id touches nothing");
    }

    #[test]
    fn a_dir_from_before_records_is_found_through_its_config() {
        let (_tmp, state, layout) = setup();
        let cg = fake_cgroup(&layout, "kata/old", "");
        let dir = state.join("old");
        fs::create_dir(&dir).unwrap();
        let config = serde_json::json!({ "cgroup_procs": [cg.join("cgroup.procs")] });
        fs::write(dir.join("config.json"), config.to_string()).unwrap();
        assert_eq!(
            legacy_cgroup(&dir, &layout),
            Some(PathBuf::from("kata/old"))
        );
        let v1 = Layout::v1(vec![jail::cgroups::Hierarchy {
            mount: cg.parent().unwrap().to_owned(),
            controllers: vec!["pids".into()],
        }]);
        assert_eq!(legacy_cgroup(&dir, &v1), Some(PathBuf::from("old")));
        let elsewhere = Layout::v2("/nowhere");
        assert_eq!(legacy_cgroup(&dir, &elsewhere), None);
        assert_eq!(recover(&state, &layout).unwrap(), 1);
        assert!(!dir.exists() && !cg.exists());
    }

    #[test]
    fn the_record_is_written_whole() {
        let tmp = tempfile::tempdir().unwrap();
        write_record(tmp.path(), "c1", Path::new("zagent/c1"), true).unwrap();
        assert!(!tmp.path().join(RECORD_TMP).exists());
        let record = read_record(tmp.path(), "c1").unwrap().unwrap();
        assert_eq!(record.cgroup, PathBuf::from("zagent/c1"));
        assert!(record.joined);
        // A record of an agent from before `joined` reads as not joined.
        let old = r#"{"version":1,"id":"c1","cgroup":"zagent/c1"}"#;
        fs::write(tmp.path().join(RECORD), old).unwrap();
        assert!(!read_record(tmp.path(), "c1").unwrap().unwrap().joined);
        assert!(read_record(tmp.path(), "c2").is_err());
        assert_eq!(read_record(&tmp.path().join("none"), "c1").unwrap(), None);
    }

    #[test]
    fn one_agent_per_state_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let held = lock_state_dir(tmp.path()).unwrap();
        let err = lock_state_dir(tmp.path()).err().unwrap();
        assert!(matches!(err, RecoveryError::Locked(_)), "{err}");
        drop(held);
        lock_state_dir(tmp.path()).unwrap();
    }

    #[test]
    fn mount_points_are_unescaped_and_filtered() {
        let info = "1 0 0:1 / / rw - ext4 /dev/vda rw\n\
                    2 1 0:2 / /run/z/c\\0401/m rw - tmpfs t rw\n\
                    3 1 0:3 / /run/z/c2 rw - tmpfs t rw\n\
                    4 1 0:4 / /run/z/c10 rw - tmpfs t rw\n";
        let dir = Path::new("/run/z/c 1");
        assert_eq!(mount_points_under(info, dir), [dir.join("m")]);
        assert_eq!(
            mount_points_under(info, Path::new("/run/z/c1")),
            Vec::<PathBuf>::new()
        );
        let info = "5 1 0:5 / /a\\134b\\x rw - tmpfs t rw\n";
        assert_eq!(
            mount_points_under(info, Path::new("/")),
            [Path::new(r"/a\b\x")]
        );
    }
}
