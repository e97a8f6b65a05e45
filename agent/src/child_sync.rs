//! The agent's end of a container child's sync socket: the child's `ready` or `failed` events,
//! and EOF, which after StartContainer's release means execve succeeded (the socket is
//! close-on-exec in the child).

use std::os::fd::{AsFd, OwnedFd};
use tokio::io::unix::AsyncFd;
use wire::channel::{self, ChannelError};
use wire::zygote::ChildEvent;

pub struct SyncSocket(AsyncFd<OwnedFd>);

impl SyncSocket {
    pub fn new(fd: OwnedFd) -> std::io::Result<SyncSocket> {
        let flags = nix::fcntl::fcntl(std::os::fd::AsRawFd::as_raw_fd(&fd), nix::fcntl::FcntlArg::F_GETFL)?;
        let flags = nix::fcntl::OFlag::from_bits_truncate(flags) | nix::fcntl::OFlag::O_NONBLOCK;
        nix::fcntl::fcntl(std::os::fd::AsRawFd::as_raw_fd(&fd), nix::fcntl::FcntlArg::F_SETFL(flags))?;
        // SAFETY: the AsyncFd owns this OwnedFd, which is closed only when it is dropped.
        Ok(SyncSocket(unsafe { AsyncFd::register(fd) }?))
    }

    /// The next event, or None once the child's end is closed (exec'd or dead).
    pub async fn next(&self) -> Result<Option<ChildEvent>, ChannelError> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let mut guard = self.0.readable().await.map_err(|e| {
                ChannelError::Io(nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))
            })?;
            match channel::recv::<ChildEvent>(self.0.get_ref().as_fd(), &mut buf, Some(0)) {
                Err(e) if e.is_would_block() => guard.clear_ready(),
                Err(ChannelError::Closed) | Err(ChannelError::Io(nix::errno::Errno::ECONNRESET)) => {
                    return Ok(None)
                }
                Err(e) => return Err(e),
                Ok((ev, _)) => return Ok(Some(ev)),
            }
        }
    }
}
