//! The container child between clone and execve: take stdio, drop the zygote's channel, build
//! the jail, report `ready` (or the failed step) to the agent on the sync socket, park on
//! exec.fifo until StartContainer writes its byte, then exec. Never returns.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use wire::channel;
use wire::zygote::{ChildEvent, ContainerConfig, LaunchFds, NamespaceKind};

/// Exit status of a child whose jail failed before exec.
const JAIL_FAILED: i32 = 1;

pub fn run(
    cfg: &ContainerConfig,
    fds: Vec<OwnedFd>,
    joined: &[NamespaceKind],
    zygote_channel: BorrowedFd<'_>,
) -> ! {
    // SAFETY: the child must not keep the zygote's end of the agent channel (it could read the
    // next request); nothing in this process uses that fd again, and we never return to the
    // server loop that owns it.
    unsafe { libc::close(zygote_channel.as_raw_fd()) };
    let sync = fds[LaunchFds::SYNC].as_fd();
    if let Err(errno) = take_stdio(&fds) {
        fail(sync, "stdio", errno as i32, format!("dup2 stdio: {errno}"));
    }
    // A joined pid namespace was entered by the zygote at clone time.
    let join: Vec<(NamespaceKind, BorrowedFd<'_>)> = joined
        .iter()
        .zip(&fds[LaunchFds::FIXED..])
        .filter(|(k, _)| **k != NamespaceKind::Pid)
        .map(|(k, fd)| (*k, fd.as_fd()))
        .collect();
    let prepared = match jail::init::prepare(cfg, &join) {
        Ok(p) => p,
        Err(e) => fail(sync, e.step(), e.errno(), e.to_string()),
    };
    if channel::send(sync, &ChildEvent::Ready, &[]).is_err() {
        // The agent is gone or gave up on this launch.
        exit(JAIL_FAILED);
    }
    if !wait_for_start(fds[LaunchFds::EXEC_FIFO].as_fd()) {
        exit(JAIL_FAILED);
    }
    let e = jail::init::exec(&prepared);
    let status = if e.errno() == libc::ENOENT { 127 } else { 126 };
    let _ = channel::send(
        sync,
        &ChildEvent::Failed { step: e.step().into(), errno: e.errno(), message: e.to_string() },
        &[],
    );
    exit(status)
}

fn take_stdio(fds: &[OwnedFd]) -> Result<(), nix::errno::Errno> {
    for (slot, target) in [(LaunchFds::STDIN, 0), (LaunchFds::STDOUT, 1), (LaunchFds::STDERR, 2)] {
        nix::unistd::dup2(fds[slot].as_raw_fd(), target)?;
    }
    Ok(())
}

/// Blocks until StartContainer writes its byte into exec.fifo. The fifo was opened O_RDWR by
/// the agent, so this read cannot see EOF while we hold it; false if the read failed.
fn wait_for_start(fifo: BorrowedFd<'_>) -> bool {
    let mut byte = [0u8; 1];
    loop {
        match nix::unistd::read(fifo.as_raw_fd(), &mut byte) {
            Ok(1) => return true,
            Err(nix::errno::Errno::EINTR) => continue,
            _ => return false,
        }
    }
}

fn fail(sync: BorrowedFd<'_>, step: &str, errno: i32, message: String) -> ! {
    let _ = channel::send(sync, &ChildEvent::Failed { step: step.into(), errno, message }, &[]);
    exit(JAIL_FAILED)
}

fn exit(status: i32) -> ! {
    // SAFETY: _exit ends this forked child without running the zygote's atexit handlers or
    // destructors, which belong to the zygote, not to us.
    unsafe { libc::_exit(status) }
}
