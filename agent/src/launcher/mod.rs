//! The launch seam: how a process of a container comes to exist. `zygote` asks the pre-started
//! fork server; the Kata-style re-exec baseline plugs in here too. A launcher carries one
//! zygote-protocol request (a container child or a process joining a running container: the
//! same round trip, only the frame and its fds differ) and answers with the cloned pid and
//! pidfd. Everything else (jail, RPCs, registry) is shared, so the two compare like with like.

#[cfg(test)]
pub mod fake;
mod helper;
pub mod reexec;
pub mod zygote;

use std::os::fd::OwnedFd;
use wire::zygote::Request;

/// One request: `Request::Launch` or `Request::Exec`, and the fds that travel with it in the
/// order the zygote protocol fixes for it (`wire::zygote::LaunchFds` or `ExecFds`).
pub struct LaunchRequest {
    pub frame: Request,
    pub fds: Vec<OwnedFd>,
}

pub struct Launched {
    pub pid: i32,
    pub pidfd: OwnedFd,
}

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("starting the zygote: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("zygote channel: {0}")]
    Channel(#[from] wire::channel::ChannelError),
    #[error("the zygote died during the launch")]
    ZygoteDied,
    #[error("zygote refused the launch ({errno_name}): {message}")]
    Refused {
        errno: i32,
        errno_name: String,
        message: String,
    },
    #[error("unexpected zygote reply: {0}")]
    Protocol(String),
    #[error("the agent is shutting down: no new zygote is started")]
    Closed,
}

impl LaunchError {
    /// The launch could be retried once a new zygote is up.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            LaunchError::ZygoteDied | LaunchError::Spawn(_) | LaunchError::Closed
        )
    }
}

#[async_trait::async_trait]
pub trait Launcher: Send + Sync {
    /// Carries `req` to whatever clones the child; our copies of its fds are closed once this
    /// returns, on every path.
    async fn launch(&self, req: LaunchRequest) -> Result<Launched, LaunchError>;

    /// The `--launcher` name, which labels the launch latency metrics.
    fn name(&self) -> &'static str;

    /// How many times a fork server had to be started again after dying (GetMetrics).
    fn restarts(&self) -> u64 {
        0
    }

    /// The agent is shutting down: launches under way finish, but whatever serves them is not
    /// replaced any more when it dies (a Ctrl-C in a terminal reaches the zygote too).
    fn close(&self) {}
}
