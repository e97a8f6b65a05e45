//! Safe resolution of container paths inside the rootfs before pivot_root. It owns the rule that
//! a path from the config never reaches outside the rootfs: every lookup goes through
//! openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS) from an fd of the rootfs, missing
//! directories are created one component at a time relative to an already resolved parent, and
//! the caller then mounts (or chmods) through `/proc/self/fd/N` of the fd it gets back, so that
//! no path string is ever resolved twice.

use crate::sys;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::{Mode, SFlag};
use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

const RESOLVE: u64 = sys::RESOLVE_IN_ROOT | sys::RESOLVE_NO_MAGICLINKS;

/// `path` made relative to the container root, lexically: "." dropped and ".." popped (never
/// above the root). Lexical cleaning is what makes creating missing components safe: with no
/// ".." left, mkdirat relative to a resolved parent cannot climb out of it.
pub fn clean(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

fn dot_if_empty(rel: &Path) -> &Path {
    if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    }
}

/// Opens `rel` (already `clean`ed) inside `root`, following symlinks only within the root.
pub fn open(root: BorrowedFd<'_>, rel: &Path, flags: OFlag) -> Result<OwnedFd, Errno> {
    sys::openat2(root, dot_if_empty(rel), flags, 0, RESOLVE)
}

/// An O_PATH fd of `rel`. With `follow_final` false the final component must not be a symlink
/// (ELOOP otherwise): kernel filesystems must never be mounted through one.
pub fn open_target(root: BorrowedFd<'_>, rel: &Path, follow_final: bool) -> Result<OwnedFd, Errno> {
    let mut flags = OFlag::O_PATH;
    if !follow_final {
        flags |= OFlag::O_NOFOLLOW;
    }
    let fd = open(root, rel, flags)?;
    if !follow_final && file_type(fd.as_fd())? == SFlag::S_IFLNK {
        return Err(Errno::ELOOP);
    }
    Ok(fd)
}

pub fn file_type(fd: BorrowedFd<'_>) -> Result<SFlag, Errno> {
    let st = nix::sys::stat::fstat(fd.as_raw_fd())?;
    Ok(SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()))
}

/// An O_PATH directory fd of `rel`, creating each missing directory (mode 0755 before umask)
/// relative to its resolved parent.
pub fn mkdir_all(root: BorrowedFd<'_>, rel: &Path) -> Result<OwnedFd, Errno> {
    let dir_flags = OFlag::O_PATH | OFlag::O_DIRECTORY;
    match open(root, rel, dir_flags) {
        Err(Errno::ENOENT) => {}
        other => return other,
    }
    let mut parent = open(root, Path::new(""), dir_flags)?;
    let mut prefix = PathBuf::new();
    for name in rel.iter() {
        prefix.push(name);
        parent = match open(root, &prefix, dir_flags) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => create_dir(parent.as_fd(), name)?,
            Err(e) => return Err(e),
        };
    }
    Ok(parent)
}

/// mkdirat + reopen without following: a dangling symlink in the way gives ELOOP rather than
/// a directory created wherever it points.
fn create_dir(parent: BorrowedFd<'_>, name: &OsStr) -> Result<OwnedFd, Errno> {
    match nix::sys::stat::mkdirat(
        Some(parent.as_raw_fd()),
        name,
        Mode::from_bits_truncate(0o755),
    ) {
        Ok(()) | Err(Errno::EEXIST) => {}
        Err(e) => return Err(e),
    }
    let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW;
    sys::openat(parent, Path::new(name), flags, 0)
}

/// What to create at a mount target that does not exist yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leaf {
    Dir,
    /// An empty regular file, for bind mounts of a non-directory.
    File,
}

/// Splits a `clean`ed path into its parent and final name; None for the root itself.
pub fn split(rel: &Path) -> Option<(&Path, &OsStr)> {
    Some((rel.parent()?, rel.file_name()?))
}

/// Resolves (creating it and its parents if missing) the mount target `rel` and returns an
/// O_PATH fd of it. An existing target is used as it is, whatever its type; the kernel rejects a
/// file/directory mismatch at mount time.
pub fn create_target(
    root: BorrowedFd<'_>,
    rel: &Path,
    leaf: Leaf,
    follow_final: bool,
) -> Result<OwnedFd, Errno> {
    let Some((parent_rel, name)) = split(rel) else {
        return Err(Errno::EINVAL);
    };
    match open_target(root, rel, follow_final) {
        Err(Errno::ENOENT) => {}
        other => return other,
    }
    let parent = mkdir_all(root, parent_rel)?;
    match leaf {
        Leaf::Dir => drop(create_dir(parent.as_fd(), name)?),
        Leaf::File => {
            // O_EXCL never follows a symlink and never opens (and blocks on) an existing fifo.
            let flags = OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW;
            match sys::openat(parent.as_fd(), Path::new(name), flags, 0o644) {
                Ok(_) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(e),
            }
        }
    }
    open_target(root, rel, follow_final)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn root_fd(dir: &Path) -> OwnedFd {
        sys::open(dir, OFlag::O_PATH | OFlag::O_DIRECTORY).unwrap()
    }

    /// Where an fd really points, as a path relative to the temp root.
    fn where_is(fd: &OwnedFd, root: &Path) -> PathBuf {
        let real = std::fs::read_link(sys::fd_path(fd.as_fd())).unwrap();
        real.strip_prefix(root.canonicalize().unwrap())
            .unwrap()
            .to_path_buf()
    }

    #[test]
    fn clean_is_lexical_and_never_climbs_above_root() {
        assert_eq!(clean(Path::new("/proc")), PathBuf::from("proc"));
        assert_eq!(
            clean(Path::new("/../../etc/./x/../passwd")),
            PathBuf::from("etc/passwd")
        );
        assert_eq!(clean(Path::new("a/b/../../..")), PathBuf::from(""));
        assert_eq!(clean(Path::new("/")), PathBuf::from(""));
        assert_eq!(
            split(&clean(Path::new("/dev/pts"))),
            Some((Path::new("dev"), OsStr::new("pts")))
        );
        assert_eq!(split(Path::new("")), None);
    }

    #[test]
    fn mkdir_all_creates_missing_components() {
        let tmp = tempfile::tempdir().unwrap();
        let root = root_fd(tmp.path());
        std::fs::create_dir(tmp.path().join("a")).unwrap();
        let fd = mkdir_all(root.as_fd(), &clean(Path::new("/a/b/c"))).unwrap();
        assert!(tmp.path().join("a/b/c").is_dir());
        assert_eq!(where_is(&fd, tmp.path()), PathBuf::from("a/b/c"));
        // Existing: same answer, nothing new.
        let again = mkdir_all(root.as_fd(), Path::new("a/b/c")).unwrap();
        assert_eq!(where_is(&again, tmp.path()), PathBuf::from("a/b/c"));
    }

    #[test]
    fn symlinks_pointing_outside_stay_inside_the_root() {
        let outer = tempfile::tempdir().unwrap();
        let rootp = outer.path().join("root");
        std::fs::create_dir(&rootp).unwrap();
        let root = root_fd(&rootp);
        // Absolute and relative escapes are both clamped to the root.
        symlink("/", rootp.join("abs")).unwrap();
        symlink("../../../../..", rootp.join("rel")).unwrap();
        symlink("/etc", rootp.join("etc")).unwrap();
        let fd = mkdir_all(root.as_fd(), Path::new("abs/x")).unwrap();
        assert_eq!(where_is(&fd, &rootp), PathBuf::from("x"));
        let fd = mkdir_all(root.as_fd(), Path::new("rel/y/z")).unwrap();
        assert_eq!(where_is(&fd, &rootp), PathBuf::from("y/z"));
        // "etc" -> "/etc" resolves to <root>/etc, which does not exist and cannot be created
        // through the (dangling) symlink.
        assert_eq!(
            mkdir_all(root.as_fd(), Path::new("etc/ssl")).unwrap_err(),
            Errno::ELOOP
        );
        assert!(!outer.path().join("x").exists() && !outer.path().join("y").exists());
        assert_eq!(std::fs::read_dir(outer.path()).unwrap().count(), 1);
    }

    #[test]
    fn dotdot_in_config_path_cannot_escape() {
        let outer = tempfile::tempdir().unwrap();
        let rootp = outer.path().join("root");
        std::fs::create_dir(&rootp).unwrap();
        let root = root_fd(&rootp);
        let rel = clean(Path::new("/missing/../../../escape"));
        let fd = create_target(root.as_fd(), &rel, Leaf::Dir, false).unwrap();
        assert_eq!(where_is(&fd, &rootp), PathBuf::from("escape"));
        assert!(!outer.path().join("escape").exists());
    }

    #[test]
    fn final_symlink_is_refused_unless_following() {
        let tmp = tempfile::tempdir().unwrap();
        let root = root_fd(tmp.path());
        std::fs::create_dir(tmp.path().join("real")).unwrap();
        symlink("/real", tmp.path().join("proc")).unwrap();
        let err = create_target(root.as_fd(), Path::new("proc"), Leaf::Dir, false).unwrap_err();
        assert_eq!(err, Errno::ELOOP);
        let fd = create_target(root.as_fd(), Path::new("proc"), Leaf::Dir, true).unwrap();
        assert_eq!(where_is(&fd, tmp.path()), PathBuf::from("real"));
        // A symlink earlier in the path is fine either way (resolved in the root).
        let fd = create_target(root.as_fd(), Path::new("proc/sub"), Leaf::Dir, false).unwrap();
        assert_eq!(where_is(&fd, tmp.path()), PathBuf::from("real/sub"));
    }

    #[test]
    fn file_targets_and_dangling_final_symlinks() {
        let outer = tempfile::tempdir().unwrap();
        let rootp = outer.path().join("root");
        std::fs::create_dir(&rootp).unwrap();
        let root = root_fd(&rootp);
        let fd =
            create_target(root.as_fd(), Path::new("etc/resolv.conf"), Leaf::File, true).unwrap();
        assert_eq!(file_type(fd.as_fd()).unwrap(), SFlag::S_IFREG);
        assert!(rootp.join("etc/resolv.conf").is_file());
        // A dangling symlink pointing outside: never creates the file outside the root.
        symlink(outer.path().join("victim"), rootp.join("etc/hosts")).unwrap();
        let err =
            create_target(root.as_fd(), Path::new("etc/hosts"), Leaf::File, true).unwrap_err();
        assert_eq!(err, Errno::ENOENT);
        assert!(!outer.path().join("victim").exists());
    }
}
