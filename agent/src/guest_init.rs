//! `zagent` as a guest's PID 1 (Kata's agent in "init mode"): mounts the API filesystems, runs
//! the agent as its only child (configured from the kernel command line), reaps every orphan
//! the kernel hands to PID 1, passes SIGTERM and SIGINT on to the agent, and powers the guest
//! off once the agent has exited (PID 1 must never exit: the kernel would panic).
//!
//! Why PID 1 is a separate small process and not the agent itself: PID 1 inherits every orphan
//! and must reap them with a wildcard wait, and the agent never waits wildcard (each of its
//! children is reaped through its pidfd by whoever watches it, tokio reaps its own by pid): a
//! wildcard wait in the agent would steal those statuses. This loop is single-threaded, runs
//! before any runtime exists, and its only child of its own is the agent, so nothing it reaps
//! is anyone else's. The agent's children are the agent's (CLONE_PARENT), not this process's.
//!
//! The root filesystem must not be the initramfs itself: pivot_root (every container's last
//! mount step) fails with EINVAL there. The guest image's /init switches to a tmpfs root
//! (busybox switch_root) and execs this binary there.

use nix::errno::Errno;
use nix::mount::MsFlags;
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{ForkResult, Pid};
use std::ffi::CString;
use std::path::Path;
use std::time::{Duration, Instant};

/// One API filesystem PID 1 mounts, at a path relative to the root it is given.
struct ApiMount {
    fstype: &'static str,
    target: &'static str,
    flags: MsFlags,
    data: &'static str,
}

const NOSUID_NODEV: MsFlags = MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV);
const NOSUID_NODEV_NOEXEC: MsFlags = NOSUID_NODEV.union(MsFlags::MS_NOEXEC);

/// What Kata's agent mounts in init mode, and the unified cgroup hierarchy (the guest kernel is
/// cgroup v2 only). In order: each target lives on the one before it.
const API_MOUNTS: [ApiMount; 7] = [
    ApiMount {
        fstype: "proc",
        target: "proc",
        flags: NOSUID_NODEV_NOEXEC,
        data: "",
    },
    ApiMount {
        fstype: "sysfs",
        target: "sys",
        flags: NOSUID_NODEV_NOEXEC,
        data: "",
    },
    ApiMount {
        fstype: "devtmpfs",
        target: "dev",
        flags: MsFlags::MS_NOSUID,
        data: "mode=0755",
    },
    ApiMount {
        fstype: "devpts",
        target: "dev/pts",
        flags: MsFlags::MS_NOSUID.union(MsFlags::MS_NOEXEC),
        data: "newinstance,ptmxmode=0666,mode=0620",
    },
    ApiMount {
        fstype: "tmpfs",
        target: "dev/shm",
        flags: NOSUID_NODEV,
        data: "mode=1777",
    },
    ApiMount {
        fstype: "tmpfs",
        target: "run",
        flags: NOSUID_NODEV,
        data: "mode=0755",
    },
    ApiMount {
        fstype: "cgroup2",
        target: "sys/fs/cgroup",
        flags: NOSUID_NODEV_NOEXEC,
        data: "",
    },
];

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("creating {0}: {1}")]
    Mkdir(String, std::io::Error),
    #[error("mounting {fstype} on {target}: {errno}")]
    Mount {
        fstype: &'static str,
        target: String,
        errno: Errno,
    },
    #[error("{0}: {1}")]
    Sys(&'static str, Errno),
}

/// Never returns: whatever happens, the guest ends powered off.
pub fn run() -> ! {
    if let Err(e) = serve() {
        eprintln!("zagent (pid 1): {e}");
    }
    power_off()
}

fn serve() -> Result<(), InitError> {
    mount_api_filesystems(Path::new("/"))?;
    raise_nofile(Path::new("/proc/sys/fs/nr_open"))?;
    // Blocked before the fork, so that no signal is lost between the fork and the wait; the
    // child unblocks them before exec.
    let signals = supervised_signals();
    signals
        .thread_block()
        .map_err(|e| InitError::Sys("blocking signals", e))?;
    let agent = spawn_agent(&signals)?;
    supervise(agent, &signals);
    Ok(())
}

/// Mounts each API filesystem under `root`, making its directory first; one already mounted
/// there (EBUSY: a kernel or an earlier init did it) is left as it is.
fn mount_api_filesystems(root: &Path) -> Result<(), InitError> {
    for m in &API_MOUNTS {
        let target = root.join(m.target);
        let shown = target.display().to_string();
        std::fs::create_dir_all(&target).map_err(|e| InitError::Mkdir(shown.clone(), e))?;
        let data = (!m.data.is_empty()).then_some(m.data);
        match nix::mount::mount(Some(m.fstype), &target, Some(m.fstype), m.flags, data) {
            Ok(()) | Err(Errno::EBUSY) => {}
            Err(errno) => {
                return Err(InitError::Mount {
                    fstype: m.fstype,
                    target: shown,
                    errno,
                })
            }
        }
    }
    Ok(())
}

/// The kernel starts PID 1 with 1024 open files (4096 hard): the agent holds several fds per
/// container (stdio, sync socket, exec.fifo, pidfd) and hit EMFILE at 178 parked containers.
/// Both limits go to the kernel's ceiling (`nr_open`), inherited by the agent; a container's
/// own limit comes from its spec's rlimits, as under runc.
fn raise_nofile(nr_open: &Path) -> Result<(), InitError> {
    use nix::sys::resource::{setrlimit, Resource};
    let ceiling = std::fs::read_to_string(nr_open)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(1 << 20);
    setrlimit(Resource::RLIMIT_NOFILE, ceiling, ceiling)
        .map_err(|e| InitError::Sys("raising RLIMIT_NOFILE", e))
}

fn supervised_signals() -> SigSet {
    let mut set = SigSet::empty();
    for s in [Signal::SIGCHLD, Signal::SIGTERM, Signal::SIGINT] {
        set.add(s);
    }
    set
}

/// The agent's oom_score_adj in a guest (see `spawn_agent`).
const AGENT_OOM_SCORE_ADJ: &str = "-997";

/// Forks and execs this binary as the agent, reading its options from /proc/cmdline.
fn spawn_agent(signals: &SigSet) -> Result<Pid, InitError> {
    // Everything the child needs is allocated before the fork. The binary by its path, not
    // /proc/self/exe: the agent's name (comm, what the OOM killer and ps show) is then
    // `zagent`, not `exe`.
    let exe = std::fs::read_link("/proc/self/exe").map_err(|e| {
        InitError::Sys(
            "reading /proc/self/exe",
            Errno::from_raw(e.raw_os_error().unwrap_or(0)),
        )
    })?;
    let exe = CString::new(exe.into_os_string().into_encoded_bytes()).expect("no NUL in a path");
    let argv = ["zagent", "--kernel-cmdline", crate::cmdline::PROC_CMDLINE]
        .map(|a| CString::new(a).expect("no NUL"));
    // SAFETY: PID 1 is single-threaded here (no runtime, no thread was started), so the child
    // may run any code; it only unblocks signals and execs.
    match unsafe { nix::unistd::fork() }.map_err(|e| InitError::Sys("fork", e))? {
        ForkResult::Child => {
            let _ = signals.thread_unblock();
            // The agent (and the zygote it starts) is the guest's last OOM victim, never
            // immune: every container and exec process gets its spec's score written by the
            // jail (0 when unset), so none inherits this one; without it, a dense guest's OOM
            // killer took the agent first (oom_score_adj 0, the largest RSS).
            let _ = std::fs::write("/proc/self/oom_score_adj", AGENT_OOM_SCORE_ADJ);
            let e = nix::unistd::execv(&exe, &argv).unwrap_err();
            eprintln!("zagent (pid 1): exec of the agent: {e}");
            // SAFETY: _exit is async-signal-safe and skips the parent's atexit handlers.
            unsafe { libc::_exit(127) }
        }
        ForkResult::Parent { child } => Ok(child),
    }
}

/// Reaps until the agent has exited, forwarding termination requests to it; then ends every
/// process left and reaps them.
fn supervise(agent: Pid, signals: &SigSet) {
    loop {
        match signals.wait() {
            Ok(Signal::SIGCHLD) => {
                if reap_all_ready(agent) {
                    break;
                }
            }
            Ok(sig) => {
                eprintln!("zagent (pid 1): {sig}: stopping the agent");
                let _ = kill(agent, Signal::SIGTERM);
            }
            Err(e) => eprintln!("zagent (pid 1): sigwait: {e}"),
        }
    }
    end_everyone();
}

/// Reaps every child that has exited; true once one of them was the agent.
fn reap_all_ready(agent: Pid) -> bool {
    let mut agent_done = false;
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return agent_done,
            Ok(status) if status.pid() == Some(agent) => {
                eprintln!("zagent (pid 1): the agent ended: {status:?}");
                agent_done = true;
            }
            Ok(_) => {}
        }
    }
}

/// SIGTERM to every process but us, a moment to exit, SIGKILL, and every one reaped.
fn end_everyone() {
    let all = Pid::from_raw(-1);
    if kill(all, Signal::SIGTERM).is_ok() {
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Err(Errno::ECHILD) => break,
                Ok(WaitStatus::StillAlive) => std::thread::sleep(Duration::from_millis(20)),
                _ => {}
            }
        }
        let _ = kill(all, Signal::SIGKILL);
    }
    while !matches!(waitpid(None, None), Err(Errno::ECHILD)) {}
}

fn power_off() -> ! {
    nix::unistd::sync();
    // SAFETY: reboot(2) takes a command number and touches no memory of ours. It returns only
    // on failure; then the guest is left halted in a pause loop, never by exiting PID 1.
    unsafe { libc::reboot(libc::RB_POWER_OFF) };
    eprintln!("zagent (pid 1): power off failed: {}", Errno::last());
    loop {
        nix::unistd::pause();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_mount_lives_on_one_made_before_it() {
        for (i, m) in API_MOUNTS.iter().enumerate() {
            if let Some((parent, _)) = m.target.rsplit_once('/') {
                let first = parent.split('/').next().unwrap();
                let before = API_MOUNTS[..i].iter().any(|p| p.target == first);
                assert!(before, "{} is mounted before its parent", m.target);
            }
        }
        assert!(API_MOUNTS.iter().any(|m| m.fstype == "cgroup2"));
    }
}
