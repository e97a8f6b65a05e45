//! Step "mount": the config's mounts, made inside the rootfs before pivot_root. This module
//! owns how one `wire::Mount` becomes mount(2) calls: the destination is resolved in the root
//! (see `paths`) and every call targets `/proc/self/fd/N` of the resolved fd; bind mounts get
//! their per-mount flags in a second MS_REMOUNT call (the first bind ignores them); kernel
//! filesystems are never mounted onto a symlink; runc's recursive options ("rro", ...) then go
//! to the mount and everything under it in one mount_setattr(2); propagation changes come last.
//! Also home of the bind-remount helper that masked/read-only paths and the read-only root use.

mod cgroup;

use crate::error::{JailError, Step};
use crate::{paths, sys};
use nix::errno::Errno;
use nix::mount::MsFlags;
use nix::sys::statvfs::FsFlags;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::path::Path;
use wire::zygote::Mount;

/// The rootfs while it is being built: an fd of the bind mount of it (opened after the bind, so
/// that it refers to the new mount) and its canonical host path, for error messages and for
/// telling the container's own mounts apart in the mount table.
pub struct Root {
    pub fd: std::os::fd::OwnedFd,
    pub real: std::path::PathBuf,
}

/// What the mounts of one container depend on besides the list itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct MountContext {
    /// The container has its own cgroup namespace (new or joined), so cgroup filesystems can be
    /// mounted fresh.
    pub cgroupns: bool,
    /// An fd of the pid namespace the container joins, if it joins one. We are not in it (only
    /// our children will be), so proc is mounted for it with `pidns=` (Linux 6.15): a proc
    /// mounted for our own would show the container the host's processes.
    pub joined_pid_ns: Option<RawFd>,
}

/// Mounts every `cfg.mounts` entry in order.
pub fn mount_all(root: &Root, mounts: &[Mount], ctx: MountContext) -> Result<(), JailError> {
    for m in mounts {
        mount_one(root, m, ctx).map_err(|(op, errno)| {
            JailError::new(Step::Mount, describe(op, m, &root.real), errno)
        })?;
    }
    Ok(())
}

/// "mount /proc (proc) at /r/proc", "remount /data (bind from /srv/x) at /r/data", ...
fn describe(op: &str, m: &Mount, rootfs: &Path) -> String {
    let kind = match (is_bind(m), m.fstype.as_deref()) {
        (true, _) => format!("bind from {}", m.source.as_deref().unwrap_or("?")),
        (false, Some(t)) => t.to_string(),
        (false, None) => "no type".to_string(),
    };
    let at = rootfs.join(paths::clean(&m.destination));
    format!(
        "{op} {} ({kind}) at {}",
        m.destination.display(),
        at.display()
    )
}

pub fn is_bind(m: &Mount) -> bool {
    m.flags & MsFlags::MS_BIND.bits() != 0 || m.fstype.as_deref() == Some("bind")
}

type StepResult = Result<(), (&'static str, Errno)>;

fn mount_one(root: &Root, m: &Mount, ctx: MountContext) -> StepResult {
    let rel = paths::clean(&m.destination);
    if rel.as_os_str().is_empty() {
        // Mounting over the rootfs itself would hide everything mounted so far.
        return Err(("refuse", Errno::EINVAL));
    }
    let fd = root.fd.as_fd();
    let follow_final = if is_bind(m) {
        bind(fd, &rel, m)?;
        true
    } else if m.fstype.as_deref() == Some("cgroup") {
        cgroup::mount(root, &rel, m, ctx.cgroupns)?;
        false
    } else {
        let source = m
            .source
            .as_deref()
            .or(m.fstype.as_deref())
            .unwrap_or("none");
        let fstype = m.fstype.as_deref().unwrap_or("");
        let data = match (fstype, ctx.joined_pid_ns) {
            ("proc", Some(ns)) => proc_for_pid_ns(&m.data, ns),
            _ => m.data.clone(),
        };
        if fstype == "tmpfs" {
            tmpfs(fd, &rel, source, flags(m.flags), &data)?;
        } else {
            fresh(fd, &rel, source, fstype, flags(m.flags), &data)?;
        }
        false
    };
    if let Some(attr) = m.recursive {
        let target = paths::open_target(fd, &rel, follow_final).map_err(|e| ("reopen", e))?;
        sys::mount_setattr_recursive(target.as_fd(), attr.set, attr.clear)
            .map_err(|e| ("set recursive options of", e))?;
    }
    for &p in &m.propagation {
        let target = paths::open_target(fd, &rel, follow_final).map_err(|e| ("reopen", e))?;
        mount_fd(None, target.as_fd(), None, flags(p), "")
            .map_err(|e| ("set propagation of", e))?;
    }
    Ok(())
}

/// proc's options with `pidns=` naming the joined pid namespace's fd. The path is resolved in
/// our (pre-pivot) mount namespace, whose /proc is the host's and shows this process.
fn proc_for_pid_ns(data: &str, pid_ns: RawFd) -> String {
    let pidns = format!("pidns=/proc/self/fd/{pid_ns}");
    match data {
        "" => pidns,
        other => format!("{other},{pidns}"),
    }
}

pub fn flags(bits: u64) -> MsFlags {
    MsFlags::from_bits_retain(bits as libc::c_ulong)
}

/// mount(2) onto the inode behind `target`. An empty `data` is passed as NULL.
pub fn mount_fd(
    source: Option<&str>,
    target: BorrowedFd<'_>,
    fstype: Option<&str>,
    flags: MsFlags,
    data: &str,
) -> Result<(), Errno> {
    let data = (!data.is_empty()).then_some(data);
    nix::mount::mount(source, sys::fd_path(target).as_str(), fstype, flags, data)
}

/// A kernel filesystem (proc, sysfs, tmpfs, devpts, mqueue, cgroup2, ...) at `rel`, with flags
/// and data as given. The target directory is created if missing and must not be a symlink.
pub fn fresh(
    root: BorrowedFd<'_>,
    rel: &Path,
    source: &str,
    fstype: &str,
    flags: MsFlags,
    data: &str,
) -> StepResult {
    let target =
        paths::create_target(root, rel, paths::Leaf::Dir, false).map_err(|e| ("resolve", e))?;
    mount_fd(Some(source), target.as_fd(), Some(fstype), flags, data).map_err(|e| ("mount", e))
}

/// A tmpfs at `rel` (see `fresh`). When it covers an existing directory, its root takes that
/// directory's mode, as runc does for every tmpfs mount (even over a `mode=` option): a tmpfs on
/// sysfs's /sys/fs/cgroup (mode 0555) is not writable by a root without CAP_DAC_OVERRIDE, as
/// the directory it hides was not. A read-only tmpfs is mounted read-write for the chmod, then
/// remounted read-only (superblock included, as mounting it read-only at once would give).
pub fn tmpfs(
    root: BorrowedFd<'_>,
    rel: &Path,
    source: &str,
    flags: MsFlags,
    data: &str,
) -> StepResult {
    let covered = paths::open_target(root, rel, false)
        .ok()
        .and_then(|fd| nix::sys::stat::fstat(fd.as_raw_fd()).ok())
        .filter(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
        .map(|st| nix::sys::stat::Mode::from_bits_truncate(st.st_mode & 0o7777));
    let Some(mode) = covered else {
        return fresh(root, rel, source, "tmpfs", flags, data);
    };
    fresh(root, rel, source, "tmpfs", flags - MsFlags::MS_RDONLY, data)?;
    let mounted = paths::open_target(root, rel, false).map_err(|e| ("reopen", e))?;
    // An O_PATH fd cannot be fchmod'ed; its magic link leads to the tmpfs root.
    nix::sys::stat::fchmodat(
        None,
        sys::fd_path(mounted.as_fd()).as_str(),
        mode,
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    )
    .map_err(|e| ("chmod", e))?;
    if flags.contains(MsFlags::MS_RDONLY) {
        mount_fd(
            None,
            mounted.as_fd(),
            None,
            MsFlags::MS_REMOUNT | flags,
            data,
        )
        .map_err(|e| ("remount", e))?;
    }
    Ok(())
}

/// A bind mount: MS_BIND (|MS_REC), then the remaining flags in a bind remount.
fn bind(root: BorrowedFd<'_>, rel: &Path, m: &Mount) -> StepResult {
    let source = m.source.as_deref().ok_or(("bind", Errno::EINVAL))?;
    let meta =
        std::fs::metadata(source).map_err(|e| ("stat source of", crate::error::errno_of(&e)))?;
    let leaf = if meta.is_dir() {
        paths::Leaf::Dir
    } else {
        paths::Leaf::File
    };
    let target = paths::create_target(root, rel, leaf, true).map_err(|e| ("resolve", e))?;
    let requested = flags(m.flags);
    let first = MsFlags::MS_BIND | (requested & MsFlags::MS_REC);
    mount_fd(Some(source), target.as_fd(), None, first, "").map_err(|e| ("mount", e))?;
    let rest = requested - (MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
    if rest.is_empty() {
        return Ok(());
    }
    // The fd we mounted on still names the covered inode; the new mount's root needs a fresh
    // lookup.
    let mounted = paths::open_target(root, rel, true).map_err(|e| ("reopen", e))?;
    remount_bind_fd(mounted.as_fd(), rest).map_err(|e| ("remount", e))
}

/// MS_BIND|MS_REMOUNT with `requested` on the mount whose root is `target`. If the kernel
/// refuses (EPERM: the mount has flags locked because it came from a less privileged mount
/// namespace), retry keeping the flags the mount already has, as runc does.
pub fn remount_bind(target: &Path, requested: MsFlags) -> Result<(), Errno> {
    let base = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | requested;
    let none: Option<&str> = None;
    match nix::mount::mount(none, target, none, base, none) {
        Err(Errno::EPERM) => {}
        other => return other,
    }
    let current = nix::sys::statvfs::statvfs(target)?.flags();
    nix::mount::mount(
        none,
        target,
        none,
        base | kept_flags(current, requested),
        none,
    )
}

/// `remount_bind` of the mount whose root `target` is (through its magic link).
pub fn remount_bind_fd(target: BorrowedFd<'_>, requested: MsFlags) -> Result<(), Errno> {
    remount_bind(Path::new(&sys::fd_path(target)), requested)
}

/// The mount flags a bind remount must repeat to keep what `current` (statvfs flags) has:
/// ro/nosuid/nodev/noexec always, and the atime mode unless `requested` sets one itself.
pub fn kept_flags(current: FsFlags, requested: MsFlags) -> MsFlags {
    let map = [
        (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
    ];
    let atime_map = [
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ];
    let atime_requested = MsFlags::MS_NOATIME
        | MsFlags::MS_NODIRATIME
        | MsFlags::MS_RELATIME
        | MsFlags::MS_STRICTATIME;
    let mut kept = MsFlags::empty();
    for (st, ms) in map {
        if current.contains(st) {
            kept |= ms;
        }
    }
    if !requested.intersects(atime_requested) {
        for (st, ms) in atime_map {
            if current.contains(st) {
                kept |= ms;
            }
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(dest: &str, fstype: Option<&str>, source: Option<&str>, flags: MsFlags) -> Mount {
        Mount {
            destination: dest.into(),
            fstype: fstype.map(String::from),
            source: source.map(String::from),
            flags: flags.bits(),
            ..Default::default()
        }
    }

    #[test]
    fn bind_detection_and_description() {
        let b = m(
            "/data",
            None,
            Some("/srv/d"),
            MsFlags::MS_BIND | MsFlags::MS_REC,
        );
        assert!(is_bind(&b));
        assert!(is_bind(&m(
            "/x",
            Some("bind"),
            Some("/y"),
            MsFlags::empty()
        )));
        assert_eq!(
            describe("mount", &b, Path::new("/r")),
            "mount /data (bind from /srv/d) at /r/data"
        );
        let p = m("/proc", Some("proc"), Some("proc"), MsFlags::empty());
        assert!(!is_bind(&p));
        assert_eq!(
            describe("mount", &p, Path::new("/r")),
            "mount /proc (proc) at /r/proc"
        );
        let e = JailError::new(
            Step::Mount,
            describe("mount", &p, Path::new("/r")),
            Errno::ENOENT,
        );
        assert_eq!(e.to_string(), "mount /proc (proc) at /r/proc: ENOENT");
    }

    #[test]
    fn kept_flags_keep_lockable_flags_and_atime_only_when_unrequested() {
        let cur = FsFlags::ST_NOSUID | FsFlags::ST_NODEV | FsFlags::ST_RELATIME;
        assert_eq!(
            kept_flags(cur, MsFlags::MS_RDONLY),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_RELATIME
        );
        assert_eq!(
            kept_flags(cur, MsFlags::MS_RDONLY | MsFlags::MS_NOATIME),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV
        );
        assert_eq!(
            kept_flags(FsFlags::ST_RDONLY | FsFlags::ST_NOEXEC, MsFlags::empty()),
            MsFlags::MS_RDONLY | MsFlags::MS_NOEXEC
        );
    }

    #[test]
    fn proc_for_a_joined_pid_namespace_names_it() {
        assert_eq!(proc_for_pid_ns("", 7), "pidns=/proc/self/fd/7");
        assert_eq!(
            proc_for_pid_ns("hidepid=2", 7),
            "hidepid=2,pidns=/proc/self/fd/7"
        );
    }

    #[test]
    fn mounting_onto_the_root_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let fd = sys::open(tmp.path(), nix::fcntl::OFlag::O_PATH).unwrap();
        let root = Root {
            fd,
            real: tmp.path().to_path_buf(),
        };
        let err = mount_all(
            &root,
            &[m("/..", Some("tmpfs"), None, MsFlags::empty())],
            MountContext::default(),
        )
        .unwrap_err();
        assert_eq!((err.step(), err.errno()), ("mount", libc::EINVAL));
    }

    #[test]
    fn missing_bind_source_is_enoent() {
        let tmp = tempfile::tempdir().unwrap();
        let fd = sys::open(tmp.path(), nix::fcntl::OFlag::O_PATH).unwrap();
        let root = Root {
            fd,
            real: tmp.path().to_path_buf(),
        };
        let b = m(
            "/data",
            None,
            Some("/nonexistent/zagent-src"),
            MsFlags::MS_BIND,
        );
        let err = mount_all(&root, &[b], MountContext::default()).unwrap_err();
        assert_eq!((err.step(), err.errno()), ("mount", libc::ENOENT));
        assert!(err
            .to_string()
            .starts_with("stat source of /data (bind from /nonexistent/zagent-src)"));
        assert!(!tmp.path().join("data").exists());
    }
}
