//! The container child between clone and execve: announce itself (with its own pidfd) on the
//! sync socket, take stdio, drop the zygote's channel, build the jail, report `ready` (or the
//! failed step) straight to the agent, park on exec.fifo until StartContainer writes its byte,
//! then exec. Never returns.

use crate::pool::NsSet;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use wire::channel;
use wire::zygote::{ChildEvent, ContainerConfig, LaunchFds, NamespaceKind, ToChild};

/// Exit status of a child whose jail failed before exec.
const JAIL_FAILED: i32 = 1;

/// What the zygote hands a container child besides the request's fds.
pub struct Launch<'a> {
    pub cfg: &'a ContainerConfig,
    /// The kinds of the namespaces joined by path, in the order of their fds.
    pub joined: &'a [NamespaceKind],
    /// Fresh network, IPC and UTS namespaces from the warm pool, joined with setns.
    pub pooled: Option<&'a NsSet>,
    /// The zygote's own fds, which the child closes first.
    pub closes: &'a [RawFd],
}

pub fn run(launch: Launch<'_>, fds: Vec<OwnedFd>, zygote_channel: BorrowedFd<'_>) -> ! {
    let sync = fds[LaunchFds::SYNC].as_fd();
    begin(zygote_channel, launch.closes, sync, &fds[..3]);
    let mut join: Vec<(NamespaceKind, BorrowedFd<'_>)> = launch
        .joined
        .iter()
        .zip(&fds[LaunchFds::FIXED..])
        .map(|(k, fd)| (*k, fd.as_fd()))
        .collect();
    join.extend(launch.pooled.iter().flat_map(|set| set.joins()));
    let cfg = launch.cfg;
    if jail::userns::in_use(cfg) {
        join = enter_userns(cfg, join, sync);
    }
    let mut runtime_hooks = || wait_for_runtime_hooks(sync);
    let mut prepared = match jail::init::prepare(cfg, &join, &mut runtime_hooks) {
        Ok(p) => p,
        Err(e) => fail(sync, e.step(), e.errno(), e.to_string()),
    };
    send_console(&mut prepared, sync);
    if launch.joined.contains(&NamespaceKind::Pid) {
        let keep = [sync.as_raw_fd(), fds[LaunchFds::EXEC_FIFO].as_raw_fd()];
        spawn_inside(sync, &keep);
    }
    finish(&prepared, sync);
    if channel::send(sync, &ChildEvent::Ready, &[]).is_err() {
        exit(JAIL_FAILED); // the agent is gone or gave up on this launch
    }
    if !park(fds[LaunchFds::EXEC_FIFO].as_fd(), sync) {
        exit(JAIL_FAILED);
    }
    if let Err(e) = jail::init::run_start_hooks(cfg) {
        fail(sync, e.step(), e.errno(), e.to_string());
    }
    exec(&prepared, sync)
}

/// A container with a user namespace: this child (cloned in the zygote's namespaces, still root
/// on the host) takes the steps that need the host's privileges and joins the namespaces given
/// by path but pid (`prepare_outside_userns`), then clones the process that builds the jail,
/// born in the new user and pid namespaces, with its uid and gid maps written from out here
/// before it takes a step. That process makes the other new namespaces itself, once it is
/// root inside, so that the user namespace owns them (mounts, hostname, devpts... are then
/// allowed in them) and what they start with (the IPC namespace's mqueue root) is root's. Returns, in that process only, what is left
/// to join from inside: the pid namespace, if one is joined.
fn enter_userns<'a>(
    cfg: &ContainerConfig,
    join: Vec<(NamespaceKind, BorrowedFd<'a>)>,
    sync: BorrowedFd<'_>,
) -> Vec<(NamespaceKind, BorrowedFd<'a>)> {
    let (inside, outside): (Vec<_>, Vec<_>) = join
        .into_iter()
        .partition(|(kind, _)| *kind == NamespaceKind::Pid);
    if let Err(e) = jail::init::prepare_outside_userns(cfg, &outside) {
        fail(sync, e.step(), e.errno(), e.to_string());
    }
    // The user namespace and the pid one (whose first process this is) at clone time; the
    // rest are unshared inside, once the process is root there (`init::prepare`).
    let flags = crate::fork::namespace_flags(&cfg.namespaces)
        & (libc::CLONE_NEWUSER | libc::CLONE_NEWPID) as u64;
    let maps = |pid: nix::unistd::Pid| {
        jail::userns::write_maps(std::path::Path::new("/proc"), pid.as_raw(), cfg)
    };
    spawn(sync, flags, maps);
    inside
}

/// Clones the process that carries on (with `ns_flags`, CLONE_PARENT so that the agent is its
/// parent), runs `before_release` on it from out here, sends its pidfd as `spawned` and exits;
/// the new process waits for that exit (its pipe's EOF) before it takes a step or says anything
/// on the sync socket, so the agent always learns of it first. Returns in the new process only.
fn spawn(
    sync: BorrowedFd<'_>,
    ns_flags: u64,
    before_release: impl FnOnce(nix::unistd::Pid) -> Result<(), jail::init::JailError>,
) {
    let (wait_rd, wait_wr) = match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
        Ok(ends) => ends,
        Err(errno) => fail(sync, "spawn", errno as i32, format!("pipe2: {errno}")),
    };
    match crate::fork::clone_in_place(ns_flags) {
        Err(errno) => fail(sync, "spawn", errno as i32, format!("clone: {errno}")),
        Ok(crate::fork::Forked::Parent { pid, pidfd }) => {
            let kill = || nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            if let Err(e) = before_release(pid) {
                let _ = kill();
                fail(sync, e.step(), e.errno(), e.to_string());
            }
            let event = ChildEvent::Spawned { pid: pid.as_raw() };
            if channel::send(sync, &event, &[pidfd.as_fd()]).is_err() {
                // The agent cannot know of it: it must not run.
                let _ = kill();
                exit(JAIL_FAILED);
            }
            exit(0) // closes the pipe's write end, which releases the new process
        }
        Ok(crate::fork::Forked::Child) => {
            drop(wait_wr);
            let mut byte = [0u8; 1];
            while let Err(nix::errno::Errno::EINTR) =
                nix::unistd::read(wait_rd.as_raw_fd(), &mut byte)
            {}
        }
    }
}

/// The jail's hooks point with runtime hooks: tell the agent (`HooksDue`) and wait for its
/// `Proceed`, which it sends once `prestart` and `createRuntime` ran; anything else (its end
/// closed: a hook failed, or the agent gave up) ends the launch.
fn wait_for_runtime_hooks(sync: BorrowedFd<'_>) -> Result<(), jail::init::JailError> {
    if channel::send(sync, &ChildEvent::HooksDue, &[]).is_err() {
        exit(JAIL_FAILED);
    }
    let mut buf = channel::buffer();
    match channel::recv::<ToChild>(sync, &mut buf, Some(0)) {
        Ok((ToChild::Proceed, _)) => Ok(()),
        Err(_) => exit(JAIL_FAILED), // the agent is gone or gave up on this launch
    }
}

/// The last jail step of a child that joined a pid namespace it was not born in: clone the
/// process that is born inside it, now that root, cwd, mounts, cgroups, credentials and fds are
/// all the container's, so that nothing in the container can ever see a process of ours that
/// still holds any of the host's (the child itself, outside, was never visible there). The
/// child sends the new process's pidfd as `spawned` and exits; the new process waits for that
/// (the pipe's EOF) before it says anything on the sync socket, so the agent always learns of
/// it first. The new process keeps only stdio and `keep`: namespace fds and pidfds the child
/// needed for joining are not carried into the container. Returns in the new process only.
pub(crate) fn spawn_inside(sync: BorrowedFd<'_>, keep: &[RawFd]) {
    spawn(sync, 0, |_| Ok(()));
    close_all_but(keep);
}

/// Closes every fd but 0, 1, 2 and `keep`. The `OwnedFd`s of what is closed here are never
/// dropped: this process only ever execs or `_exit`s.
fn close_all_but(keep: &[RawFd]) {
    let mut keep: Vec<u32> = keep.iter().map(|&fd| fd as u32).chain(0..=2).collect();
    keep.sort_unstable();
    keep.dedup();
    let mut next = 0u32;
    for fd in keep.into_iter().chain([u32::MAX]) {
        if fd > next {
            // SAFETY: close_range only closes descriptors; none in [next, fd - 1] is used again
            // by this process (see above), and flags 0 touches no memory.
            unsafe { libc::syscall(libc::SYS_close_range, next, fd - 1, 0u32) };
        }
        next = fd.saturating_add(1);
    }
}

/// The steps that belong to the process that will exec (after `spawn_inside`, if any).
pub(crate) fn finish(prepared: &jail::init::Prepared, sync: BorrowedFd<'_>) {
    if let Err(e) = jail::init::finish(prepared) {
        fail(sync, e.step(), e.errno(), e.to_string());
    }
}

/// What every child does first: drop the zygote's channel, tell the agent who it is (its own
/// pidfd travels with `Started`, so the agent can kill and reap it even if the zygote dies
/// before replying), and put the given stdio fds on 0, 1, 2.
pub(crate) fn begin(
    zygote_channel: BorrowedFd<'_>,
    closes: &[RawFd],
    sync: BorrowedFd<'_>,
    stdio: &[OwnedFd],
) {
    // SAFETY: the child must not keep the zygote's end of the agent channel (it could read the
    // next request) nor the zygote's namespace fds; nothing in this process uses those fds
    // again, and we never return to the server loop that owns them.
    unsafe {
        libc::close(zygote_channel.as_raw_fd());
        for fd in closes {
            libc::close(*fd);
        }
    }
    match own_pidfd() {
        Ok(pidfd) => {
            if channel::send(sync, &ChildEvent::Started, &[pidfd.as_fd()]).is_err() {
                exit(JAIL_FAILED);
            }
        }
        Err(errno) => fail(
            sync,
            "pidfd",
            errno as i32,
            format!("pidfd_open(self): {errno}"),
        ),
    }
    for (fd, target) in stdio.iter().zip(0..) {
        if let Err(errno) = nix::unistd::dup2(fd.as_raw_fd(), target) {
            fail(sync, "stdio", errno as i32, format!("dup2 stdio: {errno}"));
        }
    }
}

fn own_pidfd() -> Result<OwnedFd, nix::errno::Errno> {
    // SAFETY: pidfd_open on our own pid (in our own pid namespace) with no flags; it only
    // returns a new fd, which we take ownership of below.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, libc::getpid(), 0u32) };
    let fd = nix::errno::Errno::result(fd)?;
    // SAFETY: the kernel just installed this fd for us; nothing else owns it.
    Ok(unsafe { std::os::fd::FromRawFd::from_raw_fd(fd as i32) })
}

/// Blocks until StartContainer writes its byte into exec.fifo (true), or until the agent's end
/// of the sync socket closes, i.e. the agent died or gave up on us (false): a parked child
/// never outlives its agent, without relying on a thread-scoped PDEATHSIG. The fifo was
/// opened O_RDWR by the agent, so its read side never sees EOF while we hold it.
fn park(fifo: BorrowedFd<'_>, sync: BorrowedFd<'_>) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    loop {
        let mut fds = [
            PollFd::new(fifo, PollFlags::POLLIN),
            PollFd::new(sync, PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return false,
            Ok(_) => {}
        }
        if fds[1].revents().is_some_and(|r| !r.is_empty()) {
            return false; // the agent never writes to us: anything here is its end closing
        }
        if fds[0]
            .revents()
            .is_some_and(|r| r.contains(PollFlags::POLLIN))
        {
            let mut byte = [0u8; 1];
            match nix::unistd::read(fifo.as_raw_fd(), &mut byte) {
                Ok(1) => return true,
                Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => continue,
                _ => return false,
            }
        }
    }
}

/// A process with a terminal hands the pty master to the agent before anything else.
pub(crate) fn send_console(prepared: &mut jail::init::Prepared, sync: BorrowedFd<'_>) {
    if let Some(master) = prepared.take_console() {
        if channel::send(sync, &ChildEvent::Console, &[master.as_fd()]).is_err() {
            exit(JAIL_FAILED);
        }
    }
}

/// execve, or report the failure (127 for a missing program, like a shell) and exit.
pub(crate) fn exec(prepared: &jail::init::Prepared, sync: BorrowedFd<'_>) -> ! {
    let e = jail::init::exec(prepared);
    let status = if e.errno() == libc::ENOENT { 127 } else { 126 };
    let _ = channel::send(
        sync,
        &ChildEvent::Failed {
            step: e.step().into(),
            errno: e.errno(),
            message: e.to_string(),
        },
        &[],
    );
    exit(status)
}

pub(crate) fn fail(sync: BorrowedFd<'_>, step: &str, errno: i32, message: String) -> ! {
    let _ = channel::send(
        sync,
        &ChildEvent::Failed {
            step: step.into(),
            errno,
            message,
        },
        &[],
    );
    exit(JAIL_FAILED)
}

pub(crate) fn exit(status: i32) -> ! {
    // SAFETY: _exit ends this forked child without running the zygote's atexit handlers or
    // destructors, which belong to the zygote, not to us.
    unsafe { libc::_exit(status) }
}
