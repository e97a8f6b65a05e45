//! Test-only harness for the root tests: a busybox rootfs in a temp dir, and jailed processes
//! run the way the zygote runs them. `spawn_jailed` forks, unshares the namespaces the zygote's
//! clone3 would create, forks again (so that the jailed child is pid 1 of the new pid namespace)
//! and runs `prepare` + `exec` there; `spawn_exec` forks, joins the pid namespace of a running
//! jailed process through its pidfd (in that intermediate process only, never in the test
//! process), forks again and runs `prepare_exec` + `exec`. Stdin is /dev/null, stdout and stderr
//! a pipe; a pty master from `take_console` comes back over a socketpair with SCM_RIGHTS, as
//! the zygote's child sends it to the agent. The forked children only make system calls and
//! leave with `_exit`; a jail failure is reported as one "JAILERR <step> <errno> <message>" line.

use crate::init::{exec, finish, prepare, prepare_exec, JailError};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{dup2, fork, pipe2, ForkResult, Pid};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use wire::channel;
use wire::zygote::{ChildEvent, ContainerConfig, ExecConfig, NamespaceKind};

/// Held around every fork of the test process and around writing the busybox binary: a child
/// forked by another test thread while the copy's write fd is open would keep that fd (the
/// intermediate processes never exec) and make every exec of that busybox fail with ETXTBSY.
static FORK_GUARD: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// fork(2) of the test process under `FORK_GUARD`.
///
/// # Safety
/// As for `nix::unistd::fork`: the child may only make async-signal-safe calls (plus glibc's
/// fork-safe malloc) and must leave with `_exit`.
unsafe fn guarded_fork() -> ForkResult {
    let _guard = FORK_GUARD.lock().unwrap_or_else(|e| e.into_inner());
    // SAFETY: the caller upholds fork's contract (see above); the guard is only memory in the
    // child, which never touches it.
    unsafe { fork() }.unwrap()
}

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
    {
        let _no_fork = FORK_GUARD.lock().unwrap_or_else(|e| e.into_inner());
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox"))
            .expect("/bin/busybox is needed (apt-get install busybox-static)");
    }
    for applet in [
        "sh", "cat", "grep", "hostname", "ls", "readlink", "touch", "wc", "pwd", "tty", "stty",
        "sleep", "stat",
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
    let job = Job::Container { cfg, join };
    spawn(&job, &|| nix::sched::unshare(unshare)).finish()
}

/// A container's process started in the background (see the module header).
pub fn spawn_jailed(cfg: &ContainerConfig, unshare: CloneFlags) -> Spawned {
    let job = Job::Container { cfg, join: &[] };
    spawn(&job, &|| nix::sched::unshare(unshare))
}

/// An exec into the running jailed process `init` (its pid in our pid namespace).
pub fn spawn_exec(cfg: &ExecConfig, init: Pid) -> Spawned {
    let pidfd = crate::sys::pidfd_open(init.as_raw()).expect("pidfd_open of the container");
    let job = Job::Exec {
        cfg,
        init: pidfd.as_fd(),
    };
    spawn(&job, &|| {
        nix::sched::setns(pidfd.as_fd(), CloneFlags::CLONE_NEWPID)
    })
}

/// What the jailed grandchild runs.
enum Job<'a> {
    Container {
        cfg: &'a ContainerConfig,
        join: &'a [(NamespaceKind, BorrowedFd<'a>)],
    },
    Exec {
        cfg: &'a ExecConfig,
        init: BorrowedFd<'a>,
    },
}

/// A jailed process in the background. Dropping it unfinished kills it and reaps the
/// intermediate process, so that a failed assertion leaves nothing running.
pub struct Spawned {
    /// Our own child: the intermediate process, whose exit code is the jailed process's.
    middle: Pid,
    /// The jailed process's pid in our pid namespace (None if the intermediate failed first).
    pub pid: Option<Pid>,
    out: BufReader<File>,
    seen: String,
    console: OwnedFd,
    reaped: bool,
}

impl Spawned {
    /// The next line of the jailed process's stdout/stderr ("" at end of file).
    pub fn read_line(&mut self) -> String {
        let mut line = String::new();
        self.out.read_line(&mut line).unwrap();
        self.seen.push_str(&line);
        line
    }

    /// The pty master the jailed process passed after `prepare*`; None once it exec'd or
    /// exited without one.
    pub fn take_console(&self) -> Option<OwnedFd> {
        let mut buf = channel::buffer();
        match channel::recv::<ChildEvent>(self.console.as_fd(), &mut buf, Some(1)) {
            Ok((ChildEvent::Console, mut fds)) => fds.pop(),
            _ => None,
        }
    }

    pub fn kill(&self) {
        if let Some(pid) = self.pid {
            let _ = kill(pid, Signal::SIGKILL);
        }
    }

    /// Reads the output to its end and reaps the intermediate process.
    pub fn finish(mut self) -> Run {
        let mut rest = String::new();
        self.out.read_to_string(&mut rest).unwrap();
        self.seen.push_str(&rest);
        let status = waitpid(self.middle, None).unwrap();
        self.reaped = true;
        Run {
            output: std::mem::take(&mut self.seen),
            code: code(status),
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if !self.reaped {
            self.kill();
            let _ = waitpid(self.middle, None);
        }
    }
}

/// The ends the forked processes keep.
struct ChildEnds {
    out: OwnedFd,
    pid: OwnedFd,
    console: OwnedFd,
    null: OwnedFd,
}

fn spawn(job: &Job<'_>, enter: &dyn Fn() -> nix::Result<()>) -> Spawned {
    let (r, out) = pipe2(OFlag::O_CLOEXEC).unwrap();
    let (pid_r, pid) = pipe2(OFlag::O_CLOEXEC).unwrap();
    let (console_parent, console) = channel::pair().unwrap();
    let null = crate::sys::open(Path::new("/dev/null"), OFlag::O_RDWR).unwrap();
    // SAFETY: the child only makes system calls (plus the allocations `prepare` makes, which
    // glibc's fork-safe malloc allows) and leaves with `_exit`, never returning into the test
    // harness's threads' state.
    match unsafe { guarded_fork() } {
        ForkResult::Child => {
            drop((r, pid_r, console_parent));
            let ends = ChildEnds {
                out,
                pid,
                console,
                null,
            };
            crate::sys::exit_immediately(middle(job, enter, ends))
        }
        ForkResult::Parent { child } => {
            drop((out, pid, console, null));
            let mut raw = [0u8; 4];
            let jailed = File::from(pid_r).read_exact(&mut raw).ok();
            Spawned {
                middle: child,
                pid: jailed.map(|()| Pid::from_raw(i32::from_ne_bytes(raw))),
                out: BufReader::new(File::from(r)),
                seen: String::new(),
                console: console_parent,
                reaped: false,
            }
        }
    }
}

fn middle(job: &Job<'_>, enter: &dyn Fn() -> nix::Result<()>, ends: ChildEnds) -> i32 {
    if enter().is_err() {
        return 90;
    }
    // SAFETY: as in `spawn`: the grandchild only makes system calls and `_exit`s.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => jailed(job, ends),
        Ok(ForkResult::Parent { child }) => {
            let ChildEnds { pid, .. } = ends;
            let _ = nix::unistd::write(&pid, &child.as_raw().to_ne_bytes());
            drop(pid);
            waitpid(child, None).map_or(93, code)
        }
        Err(_) => 91,
    }
}

fn jailed(job: &Job<'_>, ends: ChildEnds) -> ! {
    let ChildEnds {
        out,
        pid,
        console,
        null,
    } = ends;
    drop(pid);
    let ok = dup2(null.as_raw_fd(), 0).is_ok()
        && dup2(out.as_raw_fd(), 1).is_ok()
        && dup2(out.as_raw_fd(), 2).is_ok();
    drop((out, null));
    if !ok {
        crate::sys::exit_immediately(92);
    }
    let prepared = match job {
        Job::Container { cfg, join } => prepare(cfg, join, &mut || Ok(())),
        Job::Exec { cfg, init } => prepare_exec(cfg, *init),
    };
    let mut prepared = match prepared {
        Ok(p) => p,
        Err(e) => report_and_exit(e, 100),
    };
    if let Some(master) = prepared.take_console() {
        let sent = channel::send(console.as_fd(), &ChildEvent::Console, &[master.as_fd()]);
        if sent.is_err() {
            crate::sys::exit_immediately(94);
        }
    }
    drop(console);
    if let Err(e) = finish(&prepared) {
        report_and_exit(e, 100);
    }
    report_and_exit(exec(&prepared), 101)
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

/// Everything a pty master gives until the slave side is gone (EIO), with the line
/// discipline's "\r\n" turned back into "\n".
pub fn read_console(master: OwnedFd) -> String {
    let mut file = File::from(master);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.raw_os_error() == Some(libc::EIO) => break,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => panic!("read the pty master: {e}"),
        }
    }
    String::from_utf8_lossy(&out).replace("\r\n", "\n")
}

/// Whether a helper that is uid 0 but holds only `caps` (effective and permitted: no
/// CAP_SYS_PTRACE, no CAP_DAC_*) can open /proc/<pid>/environ. For a target with the same
/// uid and gids whose permitted set is within `caps`, only non-dumpability refuses it (EACCES).
pub fn environ_access(pid: Pid, caps: u64) -> Result<(), Errno> {
    let path = PathBuf::from(format!("/proc/{pid}/environ"));
    // SAFETY: the helper only makes system calls and leaves with `_exit`.
    match unsafe { guarded_fork() } {
        ForkResult::Child => {
            let status = match crate::sys::capset(caps, caps, 0) {
                Err(_) => 255,
                Ok(()) => crate::sys::open(&path, OFlag::O_RDONLY).map_or_else(|e| e as i32, |_| 0),
            };
            crate::sys::exit_immediately(status)
        }
        ForkResult::Parent { child } => match waitpid(child, None).unwrap() {
            WaitStatus::Exited(_, 0) => Ok(()),
            WaitStatus::Exited(_, 255) => panic!("the helper could not lower its capabilities"),
            WaitStatus::Exited(_, errno) => Err(Errno::from_raw(errno)),
            other => panic!("helper: {other:?}"),
        },
    }
}

/// Polls `done` every 5 ms for up to `limit`.
pub fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    done()
}
