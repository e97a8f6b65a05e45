//! The agent's end of a child's sync socket: `started` (with the child's pidfd), `console`
//! (with the pty master), `spawned` (with the pidfd of the process that replaces the child
//! inside a joined pid namespace), `ready` or `failed`, and EOF, which after a release (or, for an
//! exec, after `started`) means execve succeeded: the socket is close-on-exec in the child.
//! `follow` drives the launch sequence from these events; create and exec follow a child to
//! `ready` or `running`, StartContainer follows a released one to `running`.

use crate::error::AgentError;
use crate::reaper::Watched;
use crate::sequence::{LaunchEvent, LaunchState};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::Duration;
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
            let mut guard = self
                .0
                .readable()
                .await
                .map_err(|e| ChannelError::Io(jail::error::errno_of(&e)))?;
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

impl SyncSocket {
    /// Sends the child its one message (`Proceed`, after the runtime hooks). The child reads
    /// its end as soon as it asked, so the socket is empty and this never has to wait.
    pub fn send(&self, msg: &wire::zygote::ToChild) -> Result<(), ChannelError> {
        channel::send(self.0.get_ref().as_fd(), msg, &[])
    }
}

/// Starts reaping a process a launch made.
pub fn watched(pid: i32, pidfd: OwnedFd) -> Result<Watched, AgentError> {
    Watched::new(pid, pidfd).map_err(|e| AgentError::io("watch pidfd", e))
}

/// What the child's sync events carried besides the state: the pty master of a `console`
/// event, and the process of the last `spawned` one, with those it replaced (all already
/// watched, so they are reaped whatever happens next). Kept by the caller even when `follow`
/// fails, so that it can kill them.
#[derive(Default)]
pub struct Carried {
    pub console: Option<OwnedFd>,
    pub spawned: Option<Watched>,
    pub replaced: Vec<Watched>,
}

/// Follows the child's sync events from `seq` until `done(state)` holds, collecting what they
/// carry into `carried`. A `failed` event, an early EOF or `limit` passing is the error.
pub async fn follow(
    sync: &SyncSocket,
    mut seq: LaunchState,
    limit: Duration,
    done: impl Fn(&LaunchState) -> bool,
    carried: &mut Carried,
) -> Result<LaunchState, AgentError> {
    let deadline = tokio::time::Instant::now() + limit;
    while !done(&seq) {
        let ev = tokio::time::timeout_at(deadline, sync.next())
            .await
            .map_err(|_| AgentError::Timeout("waiting for the container process".into()))?
            .map_err(|source| AgentError::Channel {
                what: "sync socket",
                source,
            })?;
        let ev = match ev {
            Some((ChildEvent::Console, fd)) => {
                carried.console = fd;
                LaunchEvent::Child(ChildEvent::Console)
            }
            Some((ChildEvent::Spawned { pid }, Some(fd))) => {
                // Watched before the state machine judges the event: whatever it says, the
                // process exists and is ours to reap.
                let previous = carried.spawned.replace(watched(pid, fd)?);
                carried.replaced.extend(previous);
                LaunchEvent::Child(ChildEvent::Spawned { pid })
            }
            Some((ev, _)) => LaunchEvent::Child(ev),
            None => LaunchEvent::SyncClosed,
        };
        seq = match seq.on(ev)? {
            LaunchState::Failed {
                step,
                errno,
                message,
            } => return Err(AgentError::jail(&step, errno, &message)),
            next => next,
        };
    }
    Ok(seq)
}
