//! AgentError: every way an RPC can fail, each cause typed (never tunnelled through
//! `io::Error`), with the one mapping to ttrpc codes (`code`, used by `From<AgentError> for
//! ttrpc::Error`). Handlers return it; the boundary logs it once and converts it.

use crate::launcher::LaunchError;
use crate::reaper::ReapError;
use crate::recovery::RecoveryError;
use crate::sequence::SequenceError;
use crate::storage::StorageError;
use jail::cgroups::CgroupError;
use jail::validate::ValidateError;
use ttrpc::Code;
use wire::channel::ChannelError;
use wire::oci::OciConvertError;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The protobuf spec or process names something OCI does not know.
    #[error("invalid argument: {0}")]
    Spec(#[from] OciConvertError),
    #[error("invalid spec: {0}")]
    Validate(#[from] ValidateError),
    /// An exec's user spec names no user or group of the container.
    #[error("invalid argument: {0}")]
    User(#[from] jail::passwd::UserError),
    #[error("not supported yet: {0}")]
    Unsupported(String),
    #[error("container {0:?} already exists")]
    Exists(String),
    #[error("exec id {exec_id:?} is already in use in container {id:?}")]
    ExecExists { id: String, exec_id: String },
    #[error("container {0:?} not found")]
    NotFound(String),
    #[error("process {exec_id:?} not found in container {id:?}")]
    ProcessNotFound { id: String, exec_id: String },
    #[error("container {id:?} is {state}: cannot {op}")]
    State {
        id: String,
        state: &'static str,
        op: &'static str,
    },
    #[error("process has already finished")]
    Finished,
    #[error("stdin is closed")]
    StdinClosed,
    #[error("another WriteStdin to this process is still in progress")]
    StdinBusy,
    #[error("process has no terminal")]
    NoTerminal,
    #[error("launch: {0}")]
    Launch(#[from] LaunchError),
    /// A child's events broke the launch sequence (e.g. `ready` before `started`).
    #[error("launch protocol: {0}")]
    Sequence(#[from] SequenceError),
    /// A child's sync socket (or another zygote-protocol channel) failed.
    #[error("{what}: {source}")]
    Channel {
        what: &'static str,
        #[source]
        source: ChannelError,
    },
    /// A task the RPC handed its work to panicked or was cancelled.
    #[error("{what} task failed: {source}")]
    Task {
        what: &'static str,
        #[source]
        source: tokio::task::JoinError,
    },
    /// A task the RPC waited on ended without an answer (it panicked).
    #[error("{0} task ended without an answer")]
    TaskLost(&'static str),
    #[error("process {pid}: {source}")]
    Reap {
        pid: i32,
        #[source]
        source: ReapError,
    },
    #[error("recovery record: {0}")]
    Recovery(#[from] RecoveryError),
    #[error("container setup failed at step {step:?} ({errno_name}): {message}")]
    Jail {
        step: String,
        errno: i32,
        errno_name: String,
        message: String,
    },
    #[error("cgroup: {0}")]
    Cgroup(#[from] CgroupError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("the agent is stopping")]
    Stopping,
    #[error("encoding the metrics: {0}")]
    Metrics(#[from] std::fmt::Error),
    #[error("{0}")]
    Hook(#[from] crate::hooks::HookError),
    #[error("{0}")]
    Storage(#[from] crate::storage::StorageError),
    #[error("network: {0}")]
    Net(#[from] crate::net::NetError),
    #[error("{0}")]
    Iptables(#[from] crate::iptables::IptablesError),
    #[error("{0}")]
    Swap(#[from] crate::swap::SwapError),
    #[error("network stats: {0}")]
    NetStats(#[from] crate::netstats::NetStatsError),
    #[error("the sandbox's pid namespace init {0}")]
    PidnsInit(String),
}

impl AgentError {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> AgentError {
        AgentError::Io {
            what: what.into(),
            source,
        }
    }

    pub fn jail(step: &str, errno: i32, message: &str) -> AgentError {
        let errno_name = format!("{}", nix::errno::Errno::from_raw(errno));
        AgentError::Jail {
            step: step.into(),
            errno,
            errno_name,
            message: message.into(),
        }
    }

    pub fn code(&self) -> Code {
        match self {
            AgentError::InvalidArgument(_)
            | AgentError::Spec(_)
            | AgentError::Validate(_)
            | AgentError::User(_) => Code::INVALID_ARGUMENT,
            AgentError::Cgroup(CgroupError::Unsupported { .. }) => Code::INVALID_ARGUMENT,
            // A limit the kernel refuses: EINVAL for a value out of range (e.g. a memory limit
            // above memory+swap), EBUSY for one below what is in use now.
            AgentError::Cgroup(CgroupError::Write { source, .. })
                if source.raw_os_error() == Some(libc::EINVAL) =>
            {
                Code::INVALID_ARGUMENT
            }
            AgentError::Cgroup(CgroupError::Write { source, .. })
                if source.raw_os_error() == Some(libc::EBUSY) =>
            {
                Code::FAILED_PRECONDITION
            }
            AgentError::Storage(StorageError::DeviceNotFound { .. })
            | AgentError::Storage(StorageError::NotMounted(_)) => Code::NOT_FOUND,
            AgentError::Storage(StorageError::Mount { .. }) => Code::FAILED_PRECONDITION,
            AgentError::Storage(_) => Code::INVALID_ARGUMENT,
            AgentError::Unsupported(_) => Code::UNIMPLEMENTED,
            AgentError::Exists(_)
            | AgentError::ExecExists { .. }
            | AgentError::Cgroup(CgroupError::Exists(_))
            | AgentError::Cgroup(CgroupError::NotEmpty { .. }) => Code::ALREADY_EXISTS,
            AgentError::Cgroup(CgroupError::Frozen(_)) => Code::FAILED_PRECONDITION,
            AgentError::NotFound(_) | AgentError::ProcessNotFound { .. } | AgentError::Finished => {
                Code::NOT_FOUND
            }
            AgentError::State { .. }
            | AgentError::Jail { .. }
            | AgentError::Hook(_)
            | AgentError::StdinClosed
            | AgentError::NoTerminal => Code::FAILED_PRECONDITION,
            AgentError::StdinBusy => Code::RESOURCE_EXHAUSTED,
            AgentError::Net(e) => e.code(),
            AgentError::Iptables(e) => e.code(),
            AgentError::Swap(e) => e.code(),
            AgentError::Launch(e) if e.is_unavailable() => Code::UNAVAILABLE,
            AgentError::Timeout(_) => Code::DEADLINE_EXCEEDED,
            AgentError::Stopping => Code::UNAVAILABLE,
            AgentError::Launch(_)
            | AgentError::Sequence(_)
            | AgentError::Channel { .. }
            | AgentError::Task { .. }
            | AgentError::TaskLost(_)
            | AgentError::Reap { .. }
            | AgentError::Recovery(_)
            | AgentError::Cgroup(_)
            | AgentError::Io { .. }
            | AgentError::Metrics(_)
            | AgentError::NetStats(_)
            | AgentError::PidnsInit(_) => Code::INTERNAL,
        }
    }
}

impl From<AgentError> for ttrpc::Error {
    fn from(e: AgentError) -> ttrpc::Error {
        ttrpc::Error::RpcStatus(ttrpc::get_status(e.code(), e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_the_kind_of_failure() {
        let bad_id = jail::validate::check_id("").unwrap_err();
        assert_eq!(AgentError::from(bad_id).code(), Code::INVALID_ARGUMENT);
        let spec = OciConvertError::UnknownNamespace("x".into());
        assert_eq!(AgentError::from(spec).code(), Code::INVALID_ARGUMENT);
        let reap = AgentError::Reap {
            pid: 1,
            source: ReapError::Waitid(nix::errno::Errno::ECHILD),
        };
        assert_eq!(reap.code(), Code::INTERNAL);
        assert_eq!(AgentError::TaskLost("create").code(), Code::INTERNAL);
        assert_eq!(AgentError::Exists("a".into()).code(), Code::ALREADY_EXISTS);
        assert_eq!(AgentError::NotFound("a".into()).code(), Code::NOT_FOUND);
        let st = AgentError::State {
            id: "a".into(),
            state: "running",
            op: "start",
        };
        assert_eq!(st.code(), Code::FAILED_PRECONDITION);
        let j = AgentError::jail("mount", libc::ENOENT, "mount /x");
        assert_eq!(j.code(), Code::FAILED_PRECONDITION);
        assert!(j.to_string().contains("ENOENT"), "{j}");
        match ttrpc::Error::from(j) {
            ttrpc::Error::RpcStatus(s) => assert!(s.message.contains("mount")),
            other => panic!("{other:?}"),
        }
    }
}
