//! Cgroups, owned by the agent side: detecting the host's cgroup layout, creating a
//! container's cgroup with its limits applied before the child is cloned (the child only
//! writes "0" into the `cgroup.procs` files), and listing, signalling, freezing (`freeze.rs`),
//! measuring and removing what is in it. Plain file I/O against an injectable root, so that tests run on a fake tree.
//!
//! Nothing outside the path given to `Layout::create` (or to `Layout::open`, for a cgroup an
//! earlier agent made) is ever created, written or removed, with two exceptions: v2
//! controllers are enabled in the ancestors' `cgroup.subtree_control`, and the v1 cpuset
//! values are copied into parents that `create` made itself. A leaf that exists already is
//! joined, as runc joins it, if nothing is in it (`join.rs`); `remove` then takes it away
//! like one `create` made, as runc's delete does.

mod blkio;
mod freeze;
mod join;
pub use blkio::{BlockIo, Throttle, WeightDevice};
pub use freeze::FREEZE_TIMEOUT;
pub use stats::{BlkioEntry, BlkioStats, CgroupStats, CpuStats, MemoryStats, PidsStats};
mod mountinfo;
mod oom;
pub use oom::{OomCheck, OomWatch};
mod stats;
mod v1;
mod v2;

#[cfg(test)]
mod fake_tree;
#[cfg(test)]
mod join_tests;
#[cfg(test)]
mod root_test;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod update_tests;

use std::collections::BTreeSet;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The limits a container's cgroup is created with. For every field `None` means "leave the
/// kernel's default"; -1 in `memory_limit`, `memory_swap`, `pids_limit` and `cpu_quota` means
/// unlimited. `memory_swap` is OCI's memory+swap total. `memory_reservation` is v1's soft limit
/// and v2's `memory.low` (runc's mapping); `memory_swappiness` and `memory_disable_oom_killer`
/// exist on v1 only and are `Unsupported` on v2 (runc skips them there without a word).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    pub memory_limit: Option<i64>,
    pub memory_swap: Option<i64>,
    pub memory_reservation: Option<i64>,
    /// 0..=100.
    pub memory_swappiness: Option<u64>,
    pub memory_disable_oom_killer: bool,
    pub pids_limit: Option<i64>,
    pub cpu_shares: Option<u64>,
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<u64>,
    /// Real-time group scheduling (v1's `cpu.rt_runtime_us` / `cpu.rt_period_us`; v2 has none).
    pub cpu_rt_runtime: Option<i64>,
    pub cpu_rt_period: Option<u64>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    pub block_io: BlockIo,
    /// Device cgroup rules, applied in order; empty leaves the inherited rules alone.
    pub devices: Vec<DeviceRule>,
}

/// One device cgroup rule: `allow` or deny `access` ("rwm" letters) to devices of `kind`
/// ('a' all, 'c' char, 'b' block) with `major:minor` (None = any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRule {
    pub allow: bool,
    pub kind: char,
    pub major: Option<i64>,
    pub minor: Option<i64>,
    pub access: String,
}

impl DeviceRule {
    /// The line cgroup v1's devices.allow / devices.deny take, e.g. "c 1:3 rwm" or "a".
    pub fn v1_line(&self) -> String {
        if self.kind == 'a' {
            return "a".into();
        }
        let num = |n: Option<i64>| n.map_or("*".to_string(), |n| n.to_string());
        format!(
            "{} {}:{} {}",
            self.kind,
            num(self.major),
            num(self.minor),
            self.access
        )
    }
}

/// One mounted v1 hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    pub mount: PathBuf,
    /// Controller names as in the mount options ("cpu", "cpuacct", "name=systemd", ...).
    pub controllers: Vec<String>,
}

impl Hierarchy {
    pub fn has(&self, controller: &str) -> bool {
        self.controllers.iter().any(|c| c == controller)
    }
}

/// Where the host's cgroups are mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mounts {
    V1(Vec<Hierarchy>),
    V2 { root: PathBuf },
}

/// The host's cgroups as this process uses them: where they are mounted, and what the cgroups
/// made through this layout (and its clones, which share it) have made and claimed in them
/// (`Tree`). Two layouts over the same mounts know nothing of each other's dirs: an agent has
/// one, each test its own.
#[derive(Debug, Clone)]
pub struct Layout {
    mounts: Mounts,
    tree: SharedTree,
}

/// Two layouts are equal when they are over the same mounts.
impl PartialEq for Layout {
    fn eq(&self, other: &Layout) -> bool {
        self.mounts == other.mounts
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("reading {mountinfo:?}: {source}")]
    Detect {
        mountinfo: PathBuf,
        source: io::Error,
    },
    #[error("{mountinfo:?} line {line} is malformed")]
    Mountinfo { mountinfo: PathBuf, line: usize },
    #[error("no cgroup controllers are mounted according to {0:?}")]
    NotMounted(PathBuf),
    #[error("cgroup path {0:?} must be relative and non-empty, without '.' or '..'")]
    InvalidPath(PathBuf),
    #[error("the {controller} cgroup controller is not available, but {needed_for} is set")]
    MissingController {
        controller: &'static str,
        needed_for: &'static str,
    },
    #[error("linux.resources.{field} cannot be applied: {reason}")]
    Unsupported {
        field: &'static str,
        reason: &'static str,
    },
    #[error("cgroup {0:?} already exists and belongs to another container")]
    Exists(PathBuf),
    #[error("cgroup {path:?} already exists and has {pids} process(es) in it")]
    NotEmpty { path: PathBuf, pids: usize },
    #[error("cgroup {0:?} already exists and is frozen")]
    Frozen(PathBuf),
    #[error("creating cgroup {path:?}: {source}")]
    Create { path: PathBuf, source: io::Error },
    #[error("writing {value:?} to {file:?}: {source}")]
    Write {
        file: PathBuf,
        value: String,
        source: io::Error,
    },
    #[error("reading {file:?}: {source}")]
    Read { file: PathBuf, source: io::Error },
    #[error("removing cgroup {path:?}: {source}")]
    Remove { path: PathBuf, source: io::Error },
    #[error("{path:?} did not report the cgroup frozen within {waited:?}; thawed it again")]
    FreezeTimeout { path: PathBuf, waited: Duration },
    #[error("watching {path:?} for OOM events: {source}")]
    Watch { path: PathBuf, source: io::Error },
    #[error("sending signal {signal} to pid {pid}: {source}")]
    Kill {
        pid: i32,
        signal: i32,
        source: nix::errno::Errno,
    },
}

impl Layout {
    pub fn new(mounts: Mounts) -> Layout {
        Layout {
            mounts,
            tree: SharedTree::default(),
        }
    }

    /// cgroup v1 hierarchies.
    pub fn v1(hierarchies: Vec<Hierarchy>) -> Layout {
        Layout::new(Mounts::V1(hierarchies))
    }

    /// A cgroup2 root (the unified hierarchy).
    pub fn v2(root: impl Into<PathBuf>) -> Layout {
        Layout::new(Mounts::V2 { root: root.into() })
    }

    pub fn mounts(&self) -> &Mounts {
        &self.mounts
    }

    /// Parses a mountinfo file (normally /proc/self/mountinfo). cgroup v1 mounts give `V1` (a
    /// cgroup2 mount alongside, as on hybrid hosts, is ignored when v1 controllers exist); a
    /// cgroup2 mount alone gives `V2`.
    pub fn detect(mountinfo: &Path) -> Result<Layout, CgroupError> {
        mountinfo::detect(mountinfo)
    }

    /// The files a child writes "0" into to join `rel` once `create` made it (see
    /// `Cgroup::join_files`); known before the cgroup exists, so a launch can start early.
    pub fn join_files(&self, rel: &Path) -> Result<Vec<PathBuf>, CgroupError> {
        check_rel(rel)?;
        Ok(match &self.mounts {
            Mounts::V1(hierarchies) => hierarchies
                .iter()
                .map(|h| h.mount.join(rel).join("tasks"))
                .collect(),
            Mounts::V2 { root } => vec![root.join(rel).join("cgroup.procs")],
        })
    }

    /// Creates `rel` (e.g. "zagent/c1") in every v1 hierarchy or under the v2 root, parents
    /// included, and applies `res`. Where `rel` exists already it is joined if it is empty,
    /// not frozen and not another cgroup of this process (`join::check`). On any failure,
    /// whatever this call created is removed again (a joined leaf is left, with what was
    /// written into it).
    pub fn create(&self, rel: &Path, res: &Resources) -> Result<Cgroup, CgroupError> {
        check_rel(rel)?;
        match &self.mounts {
            Mounts::V1(hierarchies) => v1::create(&self.tree, hierarchies, rel, res),
            Mounts::V2 { root } => v2::create(&self.tree, root, rel, res),
        }
    }

    /// The cgroup `rel` as it exists now, made by some earlier `create` (e.g. of an agent that
    /// died): its dirs in the hierarchies where `rel` is a directory, `None` if it is in none.
    /// Its `remove` takes away only those leaves (parents only if this process made them).
    pub fn open(&self, rel: &Path) -> Result<Option<Cgroup>, CgroupError> {
        check_rel(rel)?;
        let is_dir = |dir: &Path| std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir());
        let cgroup = match &self.mounts {
            Mounts::V1(hierarchies) => {
                let present: Vec<Hierarchy> = hierarchies
                    .iter()
                    .filter(|h| is_dir(&h.mount.join(rel)))
                    .cloned()
                    .collect();
                v1::open(&self.tree, &present, rel)
            }
            Mounts::V2 { root } if is_dir(&root.join(rel)) => Some(Cgroup {
                tree: self.tree.clone(),
                dirs: vec![root.join(rel)],
                parents: parents_within(root, rel),
                flavor: Flavor::V2,
                joined: false,
            }),
            Mounts::V2 { .. } => None,
        };
        Ok(cgroup)
    }
}

/// Which of a v1 cgroup's directories belongs to which controller (indexes into `dirs`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct V1Index {
    memory: Option<usize>,
    pids: Option<usize>,
    cpuacct: Option<usize>,
    cpu: Option<usize>,
    cpuset: Option<usize>,
    freezer: Option<usize>,
    blkio: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Flavor {
    V1(V1Index),
    V2,
}

/// A cgroup made (or joined) by `Layout::create`.
#[derive(Debug, Clone)]
pub struct Cgroup {
    /// The layout's record of what its cgroups made and claimed.
    tree: SharedTree,
    /// The leaf in every hierarchy (v1) or the one unified dir (v2).
    dirs: Vec<PathBuf>,
    /// The parents between the base(s) and the leaf, deepest first: `remove` takes away the
    /// ones some `create` of this process made, once they are empty.
    parents: Vec<PathBuf>,
    flavor: Flavor,
    /// The leaf existed before `create` (in at least one hierarchy) and was joined.
    joined: bool,
}

impl Cgroup {
    /// Whether `create` joined a leaf that existed before rather than making it.
    pub fn joined(&self) -> bool {
        self.joined
    }

    /// The files a single-threaded child writes "0" into to join: each v1 directory's `tasks`,
    /// or the unified directory's `cgroup.procs`. On v1, moving one thread through `tasks`
    /// skips the global threadgroup rwsem that a `cgroup.procs` write takes for writing (an RCU
    /// grace period, milliseconds per launch); for a single-threaded process it is the same move.
    pub fn join_files(&self) -> Vec<PathBuf> {
        let file = if self.flavor == Flavor::V2 {
            "cgroup.procs"
        } else {
            "tasks"
        };
        self.dirs.iter().map(|d| d.join(file)).collect()
    }

    /// Each directory's `cgroup.procs` (whole processes; what tests and tools write pids into).
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.join("cgroup.procs")).collect()
    }

    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// The processes in the cgroup, read from the pids hierarchy if there is one (v1; else the
    /// first hierarchy) or the unified dir (v2). Pids the reader cannot see (0) are left out.
    pub fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        let dir = match self.flavor {
            Flavor::V1(V1Index { pids: Some(i), .. }) => &self.dirs[i],
            _ => &self.dirs[0],
        };
        let file = dir.join("cgroup.procs");
        let text = read(&file)?;
        let mut pids = Vec::new();
        for word in text.split_whitespace() {
            let pid: i32 = word.parse().map_err(|_| invalid_data(&file, word))?;
            if pid > 0 {
                pids.push(pid);
            }
        }
        Ok(pids)
    }

    /// Signals every process in the cgroup. SIGKILL on v2 uses `cgroup.kill` where the kernel
    /// has it; otherwise the list is read and each pid signalled, and for SIGKILL this repeats
    /// (catching children forked meanwhile) until the cgroup is empty or 20 rounds passed.
    pub fn kill_all(&self, signal: i32) -> Result<(), CgroupError> {
        use nix::sys::signal::{kill, Signal};
        use nix::unistd::Pid;
        if self.flavor == Flavor::V2 && signal == libc::SIGKILL {
            let file = self.dirs[0].join("cgroup.kill");
            if file.exists() {
                return write(&file, "1");
            }
        }
        let kill_err = |pid, source| CgroupError::Kill {
            pid,
            signal,
            source,
        };
        let sig = Signal::try_from(signal).map_err(|e| kill_err(0, e))?;
        let rounds = if sig == Signal::SIGKILL { 20 } else { 1 };
        for round in 0..rounds {
            let pids = self.pids()?;
            if pids.is_empty() {
                break;
            }
            for pid in pids {
                match kill(Pid::from_raw(pid), sig) {
                    Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
                    Err(e) => return Err(kill_err(pid, e)),
                }
            }
            if round + 1 < rounds {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        Ok(())
    }

    /// Removes the cgroup: the leaf dirs (with any child cgroups the container made), retrying
    /// EBUSY for up to a second since the kernel may lag behind the last exit, then the parents
    /// a `create` of this process made (this one's or a sibling's), if they are empty. Blocks:
    /// call it off the async runtime. Already gone is fine.
    pub fn remove(&self) -> Result<(), CgroupError> {
        let mut first_err = None;
        let mut gone = Vec::new();
        for dir in &self.dirs {
            match remove_leaf(dir) {
                Ok(()) => gone.push(dir),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        let mut tree = lock_tree(&self.tree);
        for dir in gone {
            tree.claimed.remove(dir);
        }
        let made = &mut tree.made;
        for parent in &self.parents {
            if !made.contains(parent) {
                continue;
            }
            match rmdir(parent) {
                Ok(()) => {}
                // Another container's cgroup lives there: its remove will come back for it.
                Err(e) if is_busy(&e) => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => {
                    first_err.get_or_insert(CgroupError::Remove {
                        path: parent.clone(),
                        source,
                    });
                    continue;
                }
            }
            made.remove(parent);
        }
        first_err.map_or(Ok(()), Err)
    }

    /// UpdateContainer: applies `res` (memory, pids, cpu and cpuset limits; no device rules) to
    /// the existing cgroup. Blocks: call it off the async runtime.
    pub fn update(&self, res: &Resources) -> Result<(), CgroupError> {
        match &self.flavor {
            Flavor::V1(index) => v1::update(&self.dirs, index, res),
            Flavor::V2 => v2::update(&self.dirs[0], res),
        }
    }

    /// The usage figures StatsContainer reports (`stats.rs`).
    pub fn stats(&self) -> Result<CgroupStats, CgroupError> {
        match &self.flavor {
            Flavor::V1(index) => stats::v1(&self.v1_dirs(index)),
            Flavor::V2 => stats::v2(&self.dirs[0]),
        }
    }
}

/// A v1 cgroup's directory for each controller it has.
#[derive(Debug, Default)]
struct V1Dirs<'a> {
    memory: Option<&'a Path>,
    pids: Option<&'a Path>,
    cpuacct: Option<&'a Path>,
    cpu: Option<&'a Path>,
    blkio: Option<&'a Path>,
}

impl Cgroup {
    fn v1_dirs(&self, index: &V1Index) -> V1Dirs<'_> {
        let dir = |i: Option<usize>| i.map(|i| self.dirs[i].as_path());
        V1Dirs {
            memory: dir(index.memory),
            pids: dir(index.pids),
            cpuacct: dir(index.cpuacct),
            cpu: dir(index.cpu),
            blkio: dir(index.blkio),
        }
    }
}

/// What a layout knows of the cgroup tree. Holding the lock also serialises creation and
/// removal of shared parents: without it, one container's `remove` could take away a parent
/// another's `create` just found, and a v1 cpuset parent could be seen before its values are
/// copied in.
#[derive(Debug, Default)]
struct Tree {
    /// The parent dirs `create` made through this layout and no `remove` has taken away yet: only
    /// those are ever removed, by whichever container leaves them empty.
    made: BTreeSet<PathBuf>,
    /// The leaves of this process's cgroups (made or joined) until their `remove`: a second
    /// `create` of one is `Exists` even before the first container's process is in it.
    claimed: BTreeSet<PathBuf>,
}

type SharedTree = Arc<Mutex<Tree>>;

/// A cgroup as `v1` or `v2` built it, before it is tied to its layout's tree.
struct Parts {
    dirs: Vec<PathBuf>,
    parents: Vec<PathBuf>,
    flavor: Flavor,
    joined: bool,
}

impl Parts {
    fn tied_to(self, tree: &SharedTree) -> Cgroup {
        Cgroup {
            tree: tree.clone(),
            dirs: self.dirs,
            parents: self.parents,
            flavor: self.flavor,
            joined: self.joined,
        }
    }
}

fn lock_tree(tree: &Mutex<Tree>) -> MutexGuard<'_, Tree> {
    tree.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Ends a `create` holding the tree lock: a failed one takes back every dir it made (`made`
/// is in creation order, so reversed it is children first), a successful one records the
/// parents it made.
fn finish(
    tree: &mut Tree,
    made: Vec<PathBuf>,
    result: Result<Cgroup, CgroupError>,
) -> Result<Cgroup, CgroupError> {
    match &result {
        Ok(cgroup) => {
            let parents = made.into_iter().filter(|d| !cgroup.dirs.contains(d));
            tree.made.extend(parents);
            tree.claimed.extend(cgroup.dirs.iter().cloned());
        }
        Err(_) => {
            for dir in made.iter().rev() {
                // Best effort: the error being reported is the one that made us roll back.
                let _ = rmdir(dir);
            }
        }
    }
    result
}

/// The dirs between `base` and `base/rel`, deepest first.
fn parents_within(base: &Path, rel: &Path) -> Vec<PathBuf> {
    let leaf = base.join(rel);
    leaf.ancestors()
        .skip(1)
        .take(rel.components().count() - 1)
        .map(Path::to_path_buf)
        .collect()
}

fn check_rel(rel: &Path) -> Result<(), CgroupError> {
    let plain = rel.components().all(|c| matches!(c, Component::Normal(_)));
    if rel.as_os_str().is_empty() || !plain {
        return Err(CgroupError::InvalidPath(rel.to_owned()));
    }
    Ok(())
}

/// The controllers the limits in `res` need, and what for.
fn required_controllers(res: &Resources) -> Vec<(&'static str, &'static str)> {
    let needs = [
        (
            "memory",
            "memory limit",
            res.memory_limit.is_some()
                || res.memory_swap.is_some()
                || res.memory_reservation.is_some()
                || res.memory_swappiness.is_some()
                || res.memory_disable_oom_killer,
        ),
        ("pids", "pids limit", res.pids_limit.is_some()),
        ("cpu", "cpu shares/quota/period/realtime", {
            res.cpu_shares.is_some()
                || res.cpu_quota.is_some()
                || res.cpu_period.is_some()
                || res.cpu_rt_runtime.is_some()
                || res.cpu_rt_period.is_some()
        }),
        (
            "cpuset",
            "cpuset cpus/mems",
            res.cpuset_cpus.is_some() || res.cpuset_mems.is_some(),
        ),
        ("blkio", "blockIO limits", !res.block_io.is_empty()),
        // cgroup v2 has no devices controller (it takes an eBPF program we do not load yet), so
        // there rules are refused rather than silently not enforced.
        ("devices", "device rules", !res.devices.is_empty()),
    ];
    needs
        .into_iter()
        .filter(|n| n.2)
        .map(|(c, what, _)| (c, what))
        .collect()
}

/// Makes `base/rel`, parents first, appending every dir it creates to `made`. Existing dirs
/// are fine; the leaf existing comes back as `(leaf, true)`, for the caller to check before
/// joining it.
fn make_dirs(
    base: &Path,
    rel: &Path,
    made: &mut Vec<PathBuf>,
) -> Result<(PathBuf, bool), CgroupError> {
    let mut path = base.to_path_buf();
    let mut existed = false;
    for part in rel.components() {
        path.push(part);
        match std::fs::create_dir(&path) {
            Ok(()) => {
                made.push(path.clone());
                existed = false;
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => existed = true,
            Err(source) => return Err(CgroupError::Create { path, source }),
        }
    }
    Ok((path, existed))
}

fn remove_leaf(dir: &Path) -> Result<(), CgroupError> {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        match remove_tree(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if is_busy(&e) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(source) => {
                return Err(CgroupError::Remove {
                    path: dir.to_owned(),
                    source,
                })
            }
        }
    }
}

/// Child cgroups first: a container with its own cgroup namespace may have made some.
fn remove_tree(dir: &Path) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            match remove_tree(&entry.path()) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                other => other?,
            }
        }
    }
    rmdir(dir)
}

/// rmdir(2) of a cgroup. cgroupfs never says ENOTEMPTY (a cgroup with children or processes
/// is EBUSY, its control files do not count), so ENOTEMPTY means a plain directory tree as
/// used by the tests: there the files written stand in for control files and go with it.
fn rmdir(dir: &Path) -> io::Result<()> {
    match std::fs::remove_dir(dir) {
        Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) => {
            let entries = std::fs::read_dir(dir)?.collect::<io::Result<Vec<_>>>()?;
            if entries
                .iter()
                .any(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
            {
                return Err(e);
            }
            for entry in entries {
                std::fs::remove_file(entry.path())?;
            }
            std::fs::remove_dir(dir)
        }
        other => other,
    }
}

fn is_busy(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EBUSY) | Some(libc::ENOTEMPTY))
}

/// Creates the file in a fake tree, truncates and writes it in cgroupfs.
fn write(file: &Path, value: &str) -> Result<(), CgroupError> {
    std::fs::write(file, value).map_err(|source| CgroupError::Write {
        file: file.to_owned(),
        value: value.to_owned(),
        source,
    })
}

fn read(file: &Path) -> Result<String, CgroupError> {
    std::fs::read_to_string(file).map_err(|source| CgroupError::Read {
        file: file.to_owned(),
        source,
    })
}

/// A missing file is `None`: the kernel only has some files with some options.
fn read_u64(file: &Path) -> Result<Option<u64>, CgroupError> {
    match std::fs::read_to_string(file) {
        Ok(text) => {
            let text = text.trim();
            text.parse().map(Some).map_err(|_| invalid_data(file, text))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CgroupError::Read {
            file: file.to_owned(),
            source,
        }),
    }
}

fn invalid_data(file: &Path, text: &str) -> CgroupError {
    let msg = format!("unexpected content {text:?}");
    CgroupError::Read {
        file: file.to_owned(),
        source: io::Error::new(io::ErrorKind::InvalidData, msg),
    }
}

/// "max" for unlimited (any value <= 0), else the number.
fn max_or(value: i64) -> String {
    if value > 0 {
        value.to_string()
    } else {
        "max".to_owned()
    }
}
