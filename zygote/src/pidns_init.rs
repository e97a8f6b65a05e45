//! `zagent pidns-init AGENT_PID`: the init of a Kata sandbox's shared pid namespace (a
//! CreateSandbox with `sandbox_pidns`), so that the sandbox's containers share a pid 1 that is
//! zagent's own and no container's: one that exits does not take the others with it, and
//! orphans anywhere in the namespace are reaped. The old Go kata-agent did the same with a
//! re-exec'd pause process.
//!
//! Two processes, both single-threaded. The holder (the process the agent spawns) unshares a
//! new pid namespace and forks the init into it, waits until the init is sealed, tells the agent
//! `ready` on stdout and then waits for the init; the agent reaches the namespace through the
//! holder's `/proc/PID/ns/pid_for_children` and ends it all by killing the holder: the init
//! has the holder as its parent-death signal (SIGKILL), and when a namespace's init dies the
//! kernel kills everything in it. The holder has the agent as its own.
//!
//! The init is visible to every container of the sandbox, so before it says it is ready it
//! holds nothing of the host's (the brief: no process a container can see holds a host root,
//! cwd, mount or fd): a mount namespace of its own whose root is an empty read-only tmpfs,
//! stdio on /dev/null, no other fd, and not
//! dumpable, so even a container with CAP_SYS_PTRACE in its own user namespace cannot reach
//! its /proc files. It then only reaps.

use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{chdir, dup2, fork, pipe2, pivot_root, read, write, ForkResult, Pid};
use std::os::fd::{AsRawFd, OwnedFd};

#[derive(Debug, thiserror::Error)]
pub enum PidnsInitError {
    #[error("usage: zagent pidns-init AGENT_PID")]
    Usage,
    #[error("the agent (pid {0}) is gone")]
    AgentGone(i32),
    #[error("{what}: {errno}")]
    Holder { what: &'static str, errno: Errno },
    #[error("the namespace's init failed: {0}")]
    InitFailed(String),
}

/// What the init writes to the holder once it is sealed (otherwise it writes why it failed).
const READY: &[u8] = b"ready";

fn holder_err(what: &'static str) -> impl FnOnce(Errno) -> PidnsInitError {
    move |errno| PidnsInitError::Holder { what, errno }
}

/// The holder's side; `args` are the ones after `pidns-init`. Returns when the init ended.
pub fn run(args: &[String]) -> Result<(), PidnsInitError> {
    let [agent] = args else {
        return Err(PidnsInitError::Usage);
    };
    let agent: i32 = agent.parse().map_err(|_| PidnsInitError::Usage)?;
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(holder_err("PR_SET_PDEATHSIG"))?;
    // The agent may have died before the prctl, which then never fires.
    if nix::unistd::getppid().as_raw() != agent {
        return Err(PidnsInitError::AgentGone(agent));
    }
    close_from(3).map_err(holder_err("close_range"))?;
    let (ready_r, ready_w) = pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(holder_err("pipe2"))?;
    unshare(CloneFlags::CLONE_NEWPID).map_err(holder_err("unshare(CLONE_NEWPID)"))?;
    // Opened here: from inside the new namespace our pid would name nothing.
    let holder = pidfd_open(nix::unistd::getpid()).map_err(holder_err("pidfd_open"))?;
    // SAFETY: this process has one thread (it is exec'd fresh by the agent and starts none), so
    // the child's copy of our memory holds no lock another thread owned.
    match unsafe { fork() }.map_err(holder_err("fork"))? {
        ForkResult::Child => {
            drop(ready_r);
            // Only returns on failure, which it reports in place of READY.
            if let Err((step, errno)) = init(&holder, &ready_w) {
                let _ = write(&ready_w, format!("{step}: {errno}").as_bytes());
            }
            std::process::exit(1);
        }
        ForkResult::Parent { child } => {
            drop(ready_w);
            let mut said = [0u8; 128];
            let n = read(ready_r.as_raw_fd(), &mut said).unwrap_or(0);
            if said[..n] != *READY {
                let _ = waitpid(child, None);
                let said = String::from_utf8_lossy(&said[..n]).into_owned();
                return Err(PidnsInitError::InitFailed(said));
            }
            write(std::io::stdout(), b"ready\n").map_err(holder_err("write ready"))?;
            loop {
                match waitpid(child, None) {
                    Err(Errno::EINTR) => continue,
                    _ => return Ok(()),
                }
            }
        }
    }
}

/// Pid 1 of the new namespace: sealed (module doc), then reaps for ever.
fn init(holder: &OwnedFd, ready: &OwnedFd) -> Result<(), (&'static str, Errno)> {
    let at = |step: &'static str| move |errno| (step, errno);
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(at("PR_SET_PDEATHSIG"))?;
    // Our parent is outside our pid namespace: getppid() says 0 whether or not it is alive, so
    // ask through a pidfd whether the holder died before the prctl.
    if exited(holder).map_err(at("pidfd of the holder"))? {
        return Err(("the holder is gone", Errno::ESRCH));
    }
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| ("open /dev/null", jail::error::errno_of(&e)))?;
    for fd in 0..3 {
        dup2(null.as_raw_fd(), fd).map_err(at("stdio on /dev/null"))?;
    }
    drop(null);
    seal_root()?;
    nix::sys::prctl::set_dumpable(false).map_err(at("PR_SET_DUMPABLE"))?;
    // What `ps` in the sandbox's containers shows as pid 1.
    nix::sys::prctl::set_name(c"zagent-init").map_err(at("PR_SET_NAME"))?;
    let mut sigchld = SigSet::empty();
    sigchld.add(Signal::SIGCHLD);
    sigchld.thread_block().map_err(at("block SIGCHLD"))?;
    write(ready, READY).map_err(at("write ready"))?;
    close_from(0).map_err(at("close_range"))?;
    loop {
        reap_all();
        let _ = sigchld.wait();
    }
}

/// A mount namespace of our own whose "/" is an empty read-only tmpfs; the host's tree is
/// detached, and "/" is our cwd. The tmpfs goes on /proc, only because that directory exists
/// wherever zagent runs: in our own mount namespace, so the agent's /proc is untouched.
fn seal_root() -> Result<(), (&'static str, Errno)> {
    let root = "/proc";
    let at = |step: &'static str| move |errno| (step, errno);
    unshare(CloneFlags::CLONE_NEWNS).map_err(at("unshare(CLONE_NEWNS)"))?;
    let private = MsFlags::MS_REC | MsFlags::MS_PRIVATE;
    mount(None::<&str>, "/", None::<&str>, private, None::<&str>).map_err(at("make / private"))?;
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC | MsFlags::MS_RDONLY;
    mount(
        Some("tmpfs"),
        root,
        Some("tmpfs"),
        flags,
        Some("size=4k,mode=0555"),
    )
    .map_err(at("mount the empty root"))?;
    chdir(root).map_err(at("chdir to the empty root"))?;
    pivot_root(".", ".").map_err(at("pivot_root"))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(at("detach the old root"))?;
    chdir("/").map_err(at("chdir /"))
}

/// Reaps every child that has ended (orphans of the namespace come to us).
fn reap_all() {
    while let Ok(status) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
        if status == WaitStatus::StillAlive {
            break;
        }
    }
}

/// close_range(first, ~0): every fd from `first` up.
fn close_from(first: u32) -> Result<(), Errno> {
    // SAFETY: close_range only closes fds of our own table, and nothing of ours (no OwnedFd)
    // at or above `first` is used afterwards: the callers hold their fds below it or are done.
    let r = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, 0u32) };
    Errno::result(r).map(drop)
}

fn pidfd_open(pid: Pid) -> Result<OwnedFd, Errno> {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open with no flags only creates a new fd, which we own right away.
    let raw = Errno::result(unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0u32) })?;
    // SAFETY: `raw` is the new pidfd pidfd_open just returned; nothing else refers to it.
    Ok(unsafe { OwnedFd::from_raw_fd(raw as i32) })
}

/// Whether the process of `pidfd` has ended: a pidfd polls readable once it has.
fn exited(pidfd: &OwnedFd) -> Result<bool, Errno> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
    Ok(poll(&mut fds, PollTimeout::ZERO)? > 0)
}
