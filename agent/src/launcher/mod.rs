//! The launch seam: how a container child comes to exist. `zygote` asks the pre-started fork
//! server; the Kata-style re-exec baseline plugs in here too. Everything else (jail, RPCs,
//! registry) is shared, so the two compare like with like.

mod helper;
pub mod reexec;
pub mod zygote;

use std::os::fd::OwnedFd;
use wire::zygote::ContainerConfig;

/// What a launch needs: the config and the fds in `wire::zygote::LaunchFds` order.
pub struct LaunchRequest {
    pub config: ContainerConfig,
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    pub sync: OwnedFd,
    pub exec_fifo: OwnedFd,
    /// One fd per `config.namespaces` entry with `join: true`, in that order.
    pub join_ns: Vec<OwnedFd>,
}

/// What an exec needs: the config and the fds in `wire::zygote::ExecFds` order.
pub struct ExecRequest {
    pub config: wire::zygote::ExecConfig,
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    pub sync: OwnedFd,
    pub init_pidfd: OwnedFd,
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
}

impl LaunchError {
    /// The launch could be retried once a new zygote is up.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, LaunchError::ZygoteDied | LaunchError::Spawn(_))
    }
}

#[async_trait::async_trait]
pub trait Launcher: Send + Sync {
    async fn launch(&self, req: LaunchRequest) -> Result<Launched, LaunchError>;
    async fn exec(&self, req: ExecRequest) -> Result<Launched, LaunchError>;
}
