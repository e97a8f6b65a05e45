//! ZygoteError: what can go wrong while serving a request or starting up. Failures of a child's
//! jail are not here: the child reports those to the agent itself as `ChildEvent::Failed`.

use nix::errno::Errno;
use wire::channel::ChannelError;

#[derive(Debug, thiserror::Error)]
pub enum ZygoteError {
    #[error("zygote must run single-threaded, found {0} threads")]
    NotSingleThreaded(usize),
    #[error("sanitize: {what}: {errno}")]
    Sanitize { what: &'static str, errno: Errno },
    #[error("channel: {0}")]
    Channel(#[from] ChannelError),
    #[error("request carries {got} fds, expected {expected}")]
    FdCount { expected: usize, got: usize },
    #[error("protocol version {got} not supported (want {want})")]
    Version { got: u32, want: u32 },
    #[error("clone3: {0}")]
    Clone(Errno),
    #[error("usage: {0}")]
    Usage(String),
    #[error("{0} is not supported by this zygote")]
    Unsupported(&'static str),
    #[error("{0}")]
    PidnsInit(#[from] crate::pidns_init::PidnsInitError),
}

impl ZygoteError {
    pub fn errno(&self) -> i32 {
        match self {
            ZygoteError::Sanitize { errno, .. } => *errno as i32,
            ZygoteError::Clone(e) => *e as i32,
            ZygoteError::Channel(ChannelError::Io(e)) => *e as i32,
            _ => libc::EINVAL,
        }
    }
}
