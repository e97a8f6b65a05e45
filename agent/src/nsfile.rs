//! Namespace files named by path in a spec (`linux.namespaces[].path`). The shim is trusted but
//! may be buggy, so a path is checked before anything of it is used: it is opened off the async
//! workers (a FIFO or a hung filesystem must never stall the runtime), first `O_PATH` (which
//! neither blocks nor has the side effects of opening a device), must live on nsfs, and is then
//! reopened `O_RDONLY|O_NONBLOCK` and asked for its type with `NS_GET_NSTYPE`, which must match
//! the kind the spec says. Anything else is INVALID_ARGUMENT within `OPEN_TIMEOUT`.

use crate::error::AgentError;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;
use wire::zygote::NamespaceKind;

/// How long opening and checking every namespace file of one create may take.
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(1);

/// `NSFS_MAGIC` from linux/magic.h.
const NSFS_MAGIC: i64 = 0x6e73_6673;

/// `NS_GET_NSTYPE` from linux/nsfs.h: `_IO(0xb7, 0x3)`.
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;

#[derive(Debug, thiserror::Error)]
pub enum NsFileError {
    #[error("open: {0}")]
    Open(Errno),
    #[error("statfs: {0}")]
    Statfs(Errno),
    #[error("not a namespace file (filesystem magic {0:#x}, not nsfs)")]
    NotNsfs(i64),
    #[error("reopen: {0}")]
    Reopen(Errno),
    #[error("NS_GET_NSTYPE: {0}")]
    Type(Errno),
    #[error("is a {found} namespace (wanted {wanted})")]
    WrongKind {
        found: &'static str,
        wanted: &'static str,
    },
}

/// Opens every `(kind, path)` in order, checked, or fails with INVALID_ARGUMENT naming the path.
pub async fn open_all(paths: &[(NamespaceKind, PathBuf)]) -> Result<Vec<OwnedFd>, AgentError> {
    if paths.is_empty() {
        return Ok(Vec::new());
    }
    let owned = paths.to_vec();
    let task = tokio::task::spawn_blocking(move || {
        owned
            .iter()
            .map(|(kind, path)| open_checked(*kind, path).map_err(|e| invalid(*kind, path, e)))
            .collect::<Result<Vec<_>, _>>()
    });
    match tokio::time::timeout(OPEN_TIMEOUT, task).await {
        Ok(Ok(result)) => result,
        Ok(Err(source)) => Err(AgentError::Task {
            what: "namespace open",
            source,
        }),
        // The blocking thread may stay stuck in open(2); the create does not wait for it.
        Err(_) => Err(AgentError::InvalidArgument(format!(
            "namespace paths {:?}: not opened within {OPEN_TIMEOUT:?}",
            paths.iter().map(|(_, p)| p).collect::<Vec<_>>()
        ))),
    }
}

fn invalid(kind: NamespaceKind, path: &Path, e: NsFileError) -> AgentError {
    AgentError::InvalidArgument(format!(
        "{} namespace path {}: {e}",
        kind.name(),
        path.display()
    ))
}

/// One namespace file: O_PATH, nsfs, reopened for reading, of the wanted kind.
pub fn open_checked(kind: NamespaceKind, path: &Path) -> Result<OwnedFd, NsFileError> {
    let flags = OFlag::O_PATH | OFlag::O_CLOEXEC;
    let raw = nix::fcntl::open(path, flags, Mode::empty()).map_err(NsFileError::Open)?;
    // SAFETY: open just returned this fd; nothing else owns it.
    let path_fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let magic = nix::sys::statfs::fstatfs(&path_fd)
        .map_err(NsFileError::Statfs)?
        .filesystem_type()
        .0 as i64;
    if magic != NSFS_MAGIC {
        return Err(NsFileError::NotNsfs(magic));
    }
    let reopen = format!("/proc/self/fd/{}", path_fd.as_raw_fd());
    let flags = OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK | OFlag::O_NOCTTY;
    let raw =
        nix::fcntl::open(reopen.as_str(), flags, Mode::empty()).map_err(NsFileError::Reopen)?;
    // SAFETY: open just returned this fd; nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: NS_GET_NSTYPE takes no argument and only returns the namespace's CLONE_NEW* type;
    // `fd` is an open nsfs file.
    let found = unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_NSTYPE) };
    let found = Errno::result(found).map_err(NsFileError::Type)?;
    if found != clone_flag(kind) {
        return Err(NsFileError::WrongKind {
            found: flag_name(found),
            wanted: kind.name(),
        });
    }
    Ok(fd)
}

fn clone_flag(kind: NamespaceKind) -> libc::c_int {
    match kind {
        NamespaceKind::Mount => libc::CLONE_NEWNS,
        NamespaceKind::Pid => libc::CLONE_NEWPID,
        NamespaceKind::Uts => libc::CLONE_NEWUTS,
        NamespaceKind::Ipc => libc::CLONE_NEWIPC,
        NamespaceKind::Network => libc::CLONE_NEWNET,
        NamespaceKind::Cgroup => libc::CLONE_NEWCGROUP,
        NamespaceKind::User => libc::CLONE_NEWUSER,
    }
}

fn flag_name(flag: libc::c_int) -> &'static str {
    match flag {
        libc::CLONE_NEWNS => "mount",
        libc::CLONE_NEWPID => "pid",
        libc::CLONE_NEWUTS => "uts",
        libc::CLONE_NEWIPC => "ipc",
        libc::CLONE_NEWNET => "network",
        libc::CLONE_NEWCGROUP => "cgroup",
        libc::CLONE_NEWUSER => "user",
        libc::CLONE_NEWTIME => "time",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_regular_file_a_fifo_and_a_missing_path_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o600)).unwrap();
        for path in [&file, &fifo] {
            let e = open_checked(NamespaceKind::Network, path).unwrap_err();
            assert!(matches!(e, NsFileError::NotNsfs(_)), "{path:?}: {e}");
        }
        let e = open_checked(NamespaceKind::Network, &dir.path().join("none")).unwrap_err();
        assert!(matches!(e, NsFileError::Open(Errno::ENOENT)), "{e}");
    }

    #[test]
    fn our_own_namespace_files_pass_only_for_their_kind() {
        let net = Path::new("/proc/self/ns/net");
        open_checked(NamespaceKind::Network, net).expect("our own network namespace");
        let e = open_checked(NamespaceKind::Ipc, net).unwrap_err();
        assert_eq!(e.to_string(), "is a network namespace (wanted ipc)");
    }
}
