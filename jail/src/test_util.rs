//! Test-only harness for the root tests: a busybox rootfs in a temp dir, and `run_jailed`, which
//! forks, unshares the namespaces the zygote's clone3 would create, forks again (so that the
//! jailed child is pid 1 of the new pid namespace), runs `prepare` + `exec` there with stdout
//! and stderr on a pipe, and returns what came out. The forked children only make system calls
//! and leave with `_exit`; a jail failure is reported as one "JAILERR <step> <errno> <message>"
//! line.

use crate::init::{exec, prepare, JailError};
use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{dup2, fork, pipe2, ForkResult};
use std::io::Read;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use wire::zygote::{ContainerConfig, NamespaceKind};

/// Fails (never skips) when not root, so that an unprivileged run of the ignored tests does not
/// pass silently.
pub fn require_root() {
    assert!(nix::unistd::geteuid().is_root(), "this test requires root");
}

/// `<dir>/rootfs` with /bin/busybox and relative applet links, the usual empty mount points,
/// and a world-searchable root so that a non-root container user can use it.
pub fn busybox_rootfs(dir: &Path) -> PathBuf {
    let rootfs = dir.join("rootfs");
    for d in ["bin", "proc", "sys", "dev", "etc", "mnt", "tmp"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox"))
        .expect("/bin/busybox is needed (apt-get install busybox-static)");
    for applet in [
        "sh", "cat", "grep", "hostname", "ls", "readlink", "touch", "wc", "pwd",
    ] {
        symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
    }
    let mode = |p: PathBuf, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m));
    mode(rootfs.clone(), 0o755).unwrap();
    mode(dir.to_path_buf(), 0o755).unwrap();
    mode(rootfs.join("tmp"), 0o1777).unwrap();
    rootfs
}

pub struct Run {
    pub output: String,
    /// The jailed child's exit code (128 + signal when killed).
    pub code: i32,
}

impl Run {
    /// (step, errno) of a reported jail failure.
    pub fn failure(&self) -> Option<(String, i32)> {
        let line = self
            .output
            .lines()
            .find_map(|l| l.strip_prefix("JAILERR "))?;
        let mut f = line.splitn(3, ' ');
        Some((f.next()?.to_string(), f.next()?.parse().ok()?))
    }
}

fn code(status: WaitStatus) -> i32 {
    match status {
        WaitStatus::Exited(_, c) => c,
        WaitStatus::Signaled(_, s, _) => 128 + s as i32,
        _ => 255,
    }
}

pub fn run_jailed(cfg: &ContainerConfig, unshare: CloneFlags) -> Run {
    run_jailed_joining(cfg, unshare, &[])
}

/// `run_jailed`, also joining the namespaces behind `join` (fds inherited across the forks).
pub fn run_jailed_joining(
    cfg: &ContainerConfig,
    unshare: CloneFlags,
    join: &[(NamespaceKind, BorrowedFd<'_>)],
) -> Run {
    let (r, w) = pipe2(OFlag::O_CLOEXEC).unwrap();
    // SAFETY: the child only makes system calls (plus the allocations `prepare` makes, which
    // glibc's fork-safe malloc allows) and leaves with `_exit`, never returning into the test
    // harness's threads' state.
    match unsafe { fork() }.unwrap() {
        ForkResult::Child => {
            drop(r);
            crate::sys::exit_immediately(middle(cfg, unshare, join, w))
        }
        ForkResult::Parent { child } => {
            drop(w);
            let mut output = String::new();
            std::fs::File::from(r).read_to_string(&mut output).unwrap();
            let status = waitpid(child, None).unwrap();
            Run {
                output,
                code: code(status),
            }
        }
    }
}

fn middle(
    cfg: &ContainerConfig,
    unshare: CloneFlags,
    join: &[(NamespaceKind, BorrowedFd<'_>)],
    w: OwnedFd,
) -> i32 {
    if nix::sched::unshare(unshare).is_err() {
        return 90;
    }
    // SAFETY: as in `run_jailed`: the grandchild only makes system calls and `_exit`s.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            let ok = dup2(w.as_raw_fd(), 1).is_ok() && dup2(w.as_raw_fd(), 2).is_ok();
            drop(w);
            if !ok {
                crate::sys::exit_immediately(92);
            }
            match prepare(cfg, join) {
                Ok(prepared) => report_and_exit(exec(&prepared), 101),
                Err(e) => report_and_exit(e, 100),
            }
        }
        Ok(ForkResult::Parent { child }) => {
            drop(w);
            waitpid(child, None).map_or(93, code)
        }
        Err(_) => 91,
    }
}

fn report_and_exit(e: JailError, status: i32) -> ! {
    let line = format!("JAILERR {} {} {e}\n", e.step(), e.errno());
    let _ = nix::unistd::write(std::io::stdout(), line.as_bytes());
    crate::sys::exit_immediately(status)
}

/// Mount points (from our own mount table) under `dir`: must be none after a jailed run.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let table = crate::mountinfo::read().unwrap();
    let dir = dir.canonicalize().unwrap();
    table
        .into_iter()
        .map(|m| m.mount_point)
        .filter(|p| p.starts_with(&dir))
        .collect()
}
