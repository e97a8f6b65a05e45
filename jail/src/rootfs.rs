//! The rootfs as a whole: propagation of "/" in the new mount namespace (step "propagation"),
//! the bind of the rootfs onto itself ("rootfs-bind"), pivot_root into it ("pivot_root"), and
//! what is done to paths after the pivot: masked paths ("masked-paths"), read-only paths
//! ("readonly-paths") and the read-only root ("readonly-root"). After the pivot,
//! paths are plain paths: "/" is the container's root, so symlinks cannot lead out of it.

use crate::error::{JailError, Step};
use crate::mounts::{self, Root};
use crate::{mountinfo, sys};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{MntFlags, MsFlags};
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};

const NONE: Option<&str> = None;

/// Step "propagation": `propagation` (0 means the default MS_REC|MS_SLAVE) on "/", so that
/// nothing mounted from here on reaches the host. With shared propagation asked for, the rootfs's
/// parent mount is made private (pivot_root refuses a shared parent, and the bind must not
/// propagate out).
pub fn set_propagation(propagation: u64, rootfs: &Path) -> Result<(), JailError> {
    let flags = match propagation {
        0 => MsFlags::MS_REC | MsFlags::MS_SLAVE,
        p => mounts::flags(p),
    };
    let err = |what: String| {
        move |errno| JailError::new(Step::Propagation, format!("make / {what}"), errno)
    };
    nix::mount::mount(NONE, "/", NONE, flags, NONE).map_err(err(format!("{flags:?}")))?;
    if !flags.contains(MsFlags::MS_SHARED) {
        return Ok(());
    }
    let real = rootfs.canonicalize().map_err(|e| {
        JailError::new(
            Step::Propagation,
            format!("make / shared: resolve rootfs {}", rootfs.display()),
            crate::error::errno_of(&e),
        )
    })?;
    let table = mountinfo::read().map_err(|e| {
        JailError::new(
            Step::Propagation,
            "make / shared: read /proc/self/mountinfo",
            crate::error::errno_of(&e),
        )
    })?;
    let Some(parent) = mountinfo::containing(&table, &real).filter(|m| m.is_shared()) else {
        return Ok(());
    };
    let at = parent.mount_point.clone();
    nix::mount::mount(NONE, &at, NONE, MsFlags::MS_PRIVATE, NONE).map_err(err(format!(
        "shared: make rootfs parent mount {} private",
        at.display()
    )))
}

/// Step "rootfs-bind": bind the rootfs onto itself so that it is a mount point pivot_root
/// accepts, then open it (after the bind, so that the fd is on the new mount).
pub fn bind_rootfs(rootfs: &Path) -> Result<Root, JailError> {
    let err = |errno| {
        JailError::new(
            Step::RootfsBind,
            format!("bind rootfs {} onto itself", rootfs.display()),
            errno,
        )
    };
    nix::mount::mount(
        Some(rootfs),
        rootfs,
        NONE,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        NONE,
    )
    .map_err(err)?;
    let fd = sys::open(rootfs, OFlag::O_PATH | OFlag::O_DIRECTORY).map_err(err)?;
    let real = std::fs::read_link(sys::fd_path(fd.as_fd())).unwrap_or_else(|_| rootfs.into());
    Ok(Root { fd, real })
}

/// Step "pivot_root": pivot_root(".", ".") inside the rootfs stacks the old root on top of the
/// new one. We then change into the old root (through an fd taken before the pivot) and make it
/// a recursive slave there, so that detaching it cannot propagate to the host's mounts, and
/// detach it; only the container's tree is left. Doing the slave change on "." right after the
/// pivot would hit the new root instead, undoing the spec's `rootfsPropagation` (runc and Kata's
/// agent change to the old root first, for the same reason).
pub fn pivot(root: Root) -> Result<(), JailError> {
    let err = |what: &str| {
        let what = format!("{what} (rootfs {})", root.real.display());
        move |errno| JailError::new(Step::PivotRoot, what, errno)
    };
    let old_root = sys::open(Path::new("/"), OFlag::O_PATH | OFlag::O_DIRECTORY)
        .map_err(err("open the old root"))?;
    nix::unistd::fchdir(root.fd.as_raw_fd()).map_err(err("fchdir to the rootfs"))?;
    nix::unistd::pivot_root(".", ".").map_err(err("pivot_root"))?;
    nix::unistd::fchdir(old_root.as_raw_fd()).map_err(err("fchdir to the old root"))?;
    nix::mount::mount(NONE, ".", NONE, MsFlags::MS_SLAVE | MsFlags::MS_REC, NONE)
        .map_err(err("make the old root a slave"))?;
    nix::mount::umount2(".", MntFlags::MNT_DETACH).map_err(err("detach the old root"))?;
    drop(old_root);
    nix::unistd::chdir("/").map_err(err("chdir to the new /"))
}

/// The spec's `rootfsPropagation`, once more on the new "/" after the pivot (as runc does): the
/// rootfs was bound from a parent made private, so the bind did not inherit it. On "/" alone,
/// never recursively: the mounts below it already have theirs (those copied from the host got
/// the recursive change in step "propagation", the container's own got their parent's or the
/// one their spec entry asks for), and a recursive change here would undo a mount's own
/// `rshared`, `rslave`, ... (the validated spec always has a value, MS_REC|MS_SLAVE by default).
pub fn set_root_propagation(propagation: u64) -> Result<(), JailError> {
    let flags = mounts::flags(propagation) - MsFlags::MS_REC;
    if flags.is_empty() {
        return Ok(());
    }
    nix::mount::mount(NONE, "/", NONE, flags, NONE).map_err(|errno| {
        JailError::new(
            Step::Propagation,
            format!("make / {flags:?} on the new /"),
            errno,
        )
    })
}

/// Step "masked-paths": a masked directory gets an empty read-only tmpfs, anything else
/// /dev/null on top. The bind copies the flags of the mount /dev/null is on: read-only when that
/// is the read-only root (no /dev mount in the spec), as with runc, which masks after making the
/// root read-only too.
pub fn mask(paths: &[PathBuf]) -> Result<(), JailError> {
    for p in paths {
        let err = |errno| JailError::new(Step::MaskedPaths, format!("mask {}", p.display()), errno);
        let meta = match std::fs::metadata(p) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(err(crate::error::errno_of(&e))),
        };
        let done = if meta.is_dir() {
            nix::mount::mount(Some("tmpfs"), p, Some("tmpfs"), MsFlags::MS_RDONLY, NONE)
        } else {
            nix::mount::mount(Some("/dev/null"), p, NONE, MsFlags::MS_BIND, NONE)
        };
        done.map_err(err)?;
    }
    Ok(())
}

/// Step "readonly-paths": bind each path onto itself, then remount it read-only keeping its
/// other flags.
pub fn make_readonly(paths: &[PathBuf]) -> Result<(), JailError> {
    for p in paths {
        let err = |errno| {
            JailError::new(
                Step::ReadonlyPaths,
                format!("make {} read-only", p.display()),
                errno,
            )
        };
        let rec_bind = MsFlags::MS_BIND | MsFlags::MS_REC;
        match nix::mount::mount(Some(p.as_path()), p, NONE, rec_bind, NONE) {
            Ok(()) => {}
            Err(Errno::ENOENT) => continue,
            Err(e) => return Err(err(e)),
        }
        remount_readonly(p, MsFlags::MS_REC).map_err(err)?;
    }
    Ok(())
}

/// Step "readonly-root": "/" read-only.
pub fn make_root_readonly() -> Result<(), JailError> {
    remount_readonly(Path::new("/"), MsFlags::empty())
        .map_err(Step::ReadonlyRoot.err("remount / read-only"))
}

/// A bind remount adds MS_RDONLY but would otherwise clear nosuid/nodev/noexec and the atime
/// mode; repeat the flags the mount has now.
fn remount_readonly(path: &Path, extra: MsFlags) -> Result<(), Errno> {
    let current = nix::sys::statvfs::statvfs(path)?.flags();
    let flags = MsFlags::MS_RDONLY | extra | mounts::kept_flags(current, MsFlags::empty());
    mounts::remount_bind(path, flags)
}
