//! The agent's end of a child's sync socket: `started` (with the child's pidfd), `console`
//! (with the pty master), `spawned` (with the pidfd of the process that replaces the child
//! inside a joined pid namespace), `ready` or `failed`, and EOF, which after a release (or, for an
//! exec, after `started`) means execve succeeded: the socket is close-on-exec in the child.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use tokio::io::unix::AsyncFd;
use wire::channel::{self, ChannelError};
use wire::zygote::ChildEvent;

pub struct SyncSocket(AsyncFd<OwnedFd>);

impl SyncSocket {
    pub fn new(fd: OwnedFd) -> std::io::Result<SyncSocket> {
        use nix::fcntl::{fcntl, FcntlArg, OFlag};
        let flags = OFlag::from_bits_truncate(fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL)?);
        fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
        // SAFETY: the AsyncFd owns this OwnedFd, which is closed only when it is dropped.
        Ok(SyncSocket(unsafe { AsyncFd::register(fd) }?))
    }

    /// The next event with the fds it carries (checked: one for `started`, `spawned` and `console`,
    /// none otherwise), or None once the child's end is closed (exec'd or dead).
    pub async fn next(&self) -> Result<Option<(ChildEvent, Option<OwnedFd>)>, ChannelError> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let mut guard = self.0.readable().await.map_err(|e| {
                ChannelError::Io(nix::errno::Errno::from_raw(
                    e.raw_os_error().unwrap_or(libc::EIO),
                ))
            })?;
            match channel::recv::<ChildEvent>(self.0.get_ref().as_fd(), &mut buf, None) {
                Err(e) if e.is_would_block() => guard.clear_ready(),
                Err(ChannelError::Closed)
                | Err(ChannelError::Io(nix::errno::Errno::ECONNRESET)) => return Ok(None),
                Err(e) => return Err(e),
                Ok((ev, mut fds)) => {
                    let expected = usize::from(matches!(
                        ev,
                        ChildEvent::Started | ChildEvent::Spawned { .. } | ChildEvent::Console
                    ));
                    if fds.len() != expected {
                        return Err(ChannelError::FdCount {
                            expected,
                            got: fds.len(),
                        });
                    }
                    return Ok(Some((ev, fds.pop())));
                }
            }
        }
    }
}
