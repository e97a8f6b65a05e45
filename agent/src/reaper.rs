//! Exit statuses by pidfd: one task per process waits for its pidfd to become readable, reaps
//! exactly that child with waitid(P_PIDFD) (never a wildcard wait, so no status is stolen from
//! anyone) and publishes the status (128+signal for a signalled process).

use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use tokio::io::unix::AsyncFd;
use tokio::sync::watch;

/// A shared pidfd, so the reaper and signal senders use the same descriptor.
#[derive(Clone, Debug)]
pub struct PidFd(pub Arc<OwnedFd>);

impl AsRawFd for PidFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

impl PidFd {
    /// Sends `signal` (0 probes) through the pidfd, immune to pid reuse.
    pub fn signal(&self, signal: i32) -> nix::Result<()> {
        // SAFETY: pidfd_send_signal with a valid pidfd, a plain signal number, no siginfo and
        // no flags touches no memory of ours.
        let r = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.0.as_raw_fd(),
                signal,
                std::ptr::null::<libc::siginfo_t>(),
                0u32,
            )
        };
        if r < 0 {
            return Err(nix::errno::Errno::last());
        }
        Ok(())
    }
}

/// The exit code a shell would report: the status, or 128+signal.
pub fn exit_code(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, code) => Some(code),
        WaitStatus::Signaled(_, sig, _) => Some(128 + sig as i32),
        _ => None,
    }
}

/// Starts reaping `pidfd`'s process; the receiver turns `Some(code)` once it has exited.
pub fn watch(pidfd: PidFd) -> std::io::Result<watch::Receiver<Option<i32>>> {
    let (tx, rx) = watch::channel(None);
    // SAFETY: the pidfd is shared through an Arc and is closed only when the last clone is
    // dropped, which is after this AsyncFd (one of the clones) is deregistered.
    let afd = unsafe { AsyncFd::register_with_interest(pidfd, tokio::io::Interest::READABLE) }?;
    tokio::spawn(async move {
        let code = loop {
            let mut guard = match afd.readable().await {
                Ok(g) => g,
                Err(e) => {
                    tracing::error!(error = %e, "pidfd poll failed");
                    break -1;
                }
            };
            let fd = afd.get_ref().0.as_fd();
            match waitid(Id::PIDFd(fd), WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG) {
                Ok(status) => match exit_code(status) {
                    Some(code) => break code,
                    None => guard.clear_ready(),
                },
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    // ECHILD: someone else reaped it (must not happen: we never wait wildcard).
                    tracing::error!(error = %e, "waitid on pidfd failed");
                    break -1;
                }
            }
        };
        let _ = tx.send(Some(code));
    });
    Ok(rx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::signal::Signal;
    use nix::unistd::Pid;

    #[test]
    fn codes_for_exit_and_signal() {
        assert_eq!(exit_code(WaitStatus::Exited(Pid::from_raw(1), 7)), Some(7));
        assert_eq!(
            exit_code(WaitStatus::Signaled(
                Pid::from_raw(1),
                Signal::SIGKILL,
                false
            )),
            Some(137)
        );
        assert_eq!(exit_code(WaitStatus::StillAlive), None);
    }
}
