//! What both launchers share: exec'ing our sealed binary as a helper process (`zagent zygote`
//! or `zagent init`) with a SOCK_SEQPACKET channel as its stdin, and one request/reply round
//! trip over that channel.

use super::{LaunchError, LaunchRequest, Launched};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::process::Stdio;
use tokio::io::unix::AsyncFd;
use wire::channel::{self, ChannelError};
use wire::zygote::{Reply, Request};

/// The agent's end of a helper's channel.
pub struct Channel(AsyncFd<OwnedFd>);

/// Execs `exe` (our sealed copy) as `zagent <role>`. The channel becomes the helper's stdin:
/// inherited without touching CLOEXEC flags that a concurrent spawn could race with, and
/// without an fd number in the environment. The helper leads a process group of its own, so
/// that a Ctrl-C at the agent's terminal (SIGINT to the foreground group) stops the agent,
/// which then shuts its helpers down, instead of killing them under it.
pub fn spawn(
    exe: &OwnedFd,
    role: &str,
    args: &[String],
) -> Result<(tokio::process::Child, Channel), LaunchError> {
    let (ours, theirs) = channel::pair()?;
    let child = tokio::process::Command::new(format!("/proc/self/fd/{}", exe.as_raw_fd()))
        .arg0("zagent")
        .arg(role)
        .args(args)
        .env_clear()
        .stdin(Stdio::from(theirs))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .process_group(0)
        .spawn()
        .map_err(LaunchError::Spawn)?;
    Ok((child, Channel::new(ours)?))
}

impl Channel {
    fn new(fd: OwnedFd) -> Result<Channel, LaunchError> {
        use nix::fcntl::{fcntl, FcntlArg, OFlag};
        let raw = fd.as_raw_fd();
        let flags = OFlag::from_bits_truncate(fcntl(raw, FcntlArg::F_GETFL).map_err(io_err)?);
        fcntl(raw, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK)).map_err(io_err)?;
        // SAFETY: the AsyncFd owns this OwnedFd; it is closed only when the AsyncFd is dropped.
        let afd = unsafe { AsyncFd::register(fd) }.map_err(|e| LaunchError::Spawn(e.into()))?;
        Ok(Channel(afd))
    }

    /// False when the helper's end is closed (it died while idle).
    pub fn alive(&self) -> bool {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let mut fds = [PollFd::new(self.0.get_ref().as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::ZERO) {
            Ok(0) => true,
            Ok(_) => !fds[0]
                .revents()
                .is_some_and(|r| r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR)),
            Err(_) => false,
        }
    }

    /// Sends one request and waits for its reply.
    pub async fn roundtrip(
        &self,
        req: &Request,
        fds: &[BorrowedFd<'_>],
    ) -> Result<(Reply, Vec<OwnedFd>), LaunchError> {
        let frame = wire::codec::encode(req).map_err(ChannelError::from)?;
        loop {
            let mut guard = self.0.writable().await.map_err(io_err)?;
            match channel::send_frame(self.0.get_ref().as_fd(), &frame, fds) {
                Err(e) if e.is_would_block() => guard.clear_ready(),
                Err(ChannelError::Io(nix::errno::Errno::EPIPE)) => {
                    return Err(LaunchError::ZygoteDied)
                }
                other => break other?,
            }
        }
        let mut buf = channel::buffer();
        loop {
            let mut guard = self.0.readable().await.map_err(io_err)?;
            match channel::recv::<Reply>(self.0.get_ref().as_fd(), &mut buf, None) {
                Err(e) if e.is_would_block() => guard.clear_ready(),
                Err(ChannelError::Closed)
                | Err(ChannelError::Io(nix::errno::Errno::ECONNRESET)) => {
                    return Err(LaunchError::ZygoteDied)
                }
                other => return Ok(other?),
            }
        }
    }

    /// Sends the request with its fds and turns the reply into `Launched`.
    pub async fn launch(&self, req: LaunchRequest) -> Result<Launched, LaunchError> {
        let fds: Vec<BorrowedFd<'_>> = req.fds.iter().map(|f| f.as_fd()).collect();
        launched(self.roundtrip(&req.frame, &fds).await?)
    }
}

fn launched((reply, mut got): (Reply, Vec<OwnedFd>)) -> Result<Launched, LaunchError> {
    match reply {
        Reply::Launched { pid } if got.len() == 1 => Ok(Launched {
            pid,
            pidfd: got.pop().expect("one fd"),
        }),
        Reply::Refused { errno, message } => Err(LaunchError::Refused {
            errno,
            errno_name: nix::errno::Errno::from_raw(errno).to_string(),
            message,
        }),
        other => Err(LaunchError::Protocol(format!(
            "{other:?} with {} fds",
            got.len()
        ))),
    }
}

fn io_err(e: impl Into<std::io::Error>) -> LaunchError {
    let e: std::io::Error = e.into();
    LaunchError::Channel(ChannelError::Io(jail::error::errno_of(&e)))
}
