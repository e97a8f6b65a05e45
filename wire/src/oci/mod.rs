//! The OCI runtime spec as the Kata agent protocol carries it: the generated `grpc.Spec`
//! message tree from `protos/oci.proto` (re-exported here, so `wire::oci::Spec` is the
//! protobuf message and `wire::agent::CreateContainerRequest::OCI` holds one), plus the
//! conversions between it and [`oci_spec::runtime::Spec`].
//!
//! The protocol is lossy in both directions, and the rules below decide how:
//!
//! * proto3 scalars have no presence. Zero numbers and empty strings become `None` where
//!   the OCI field is optional, and `None` is sent as zero/empty. Exceptions, chosen to
//!   match what real specs carry: `terminal`, `noNewPrivileges` and `root.readonly`
//!   always come back as `Some(bool)`; device `uid`/`gid` always come back as `Some`, and
//!   device `fileMode` 0 comes back as `None` (absent: 0666, runc's default; a mode of 0000,
//!   which only CAP_DAC_OVERRIDE could open, cannot be asked for through the protocol); a
//!   device-cgroup rule's missing major/minor (the wildcard) travels as `-1`.
//! * Empty lists and maps become `None`, except `annotations` and
//!   `linux.resources.devices`, which come back as `Some(empty)`, because that is what
//!   [`oci_spec::runtime::Spec::default`] uses for them.
//! * Nested messages do have presence and map to `Option` exactly.
//! * Fields the protocol has no slot for, and that zagent implements, travel as `io.zagent.`
//!   annotations (`carried.rs`): `process.user.umask`, `domainname`, `linux.personality`,
//!   `process.ioPriority`, `process.scheduler` and `linux.seccomp.defaultErrnoRet`.
//!   `spec_to_grpc` sets them (replacing any the spec had) and `spec_from_grpc` takes them out
//!   again. ExecProcess carries no annotations: `process_to_grpc` drops an exec'd process's
//!   umask, I/O priority and scheduler (the agent gives an exec its container's).
//! * The other fields the protocol has no slot for are dropped when sending and come back as
//!   `None`: `process.commandLine`, `process.execCPUAffinity`, mount ID mappings,
//!   `linux.netDevices`, `linux.timeOffsets`, `linux.memoryPolicy`, memory
//!   `useHierarchy`/`checkBeforeUpdate`, cpu `idle`/`burst`, `resources.rdma`/`unified`,
//!   seccomp `listenerPath`/`listenerMetadata`, every intelRdt field except `l3CacheSchema`,
//!   and the solaris/windows/vm/zos sections. zagent implements none of them: a client
//!   refuses a spec that has any with `check_sendable` (zagent-ctl does), and the agent
//!   refuses them anyway.
//! * Signed/unsigned mismatches (hugepage limit) use two's-complement casts so that `-1`
//!   ("unlimited") survives the round trip; console sizes above `u32::MAX` saturate.

mod carried;
mod from_grpc;
mod to_grpc;
mod unsendable;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod wire_tests;

pub use crate::generated::oci::*;
pub use carried::{
    DOMAINNAME_ANNOTATION, IO_PRIORITY_ANNOTATION, PERSONALITY_ANNOTATION, SCHEDULER_ANNOTATION,
    SECCOMP_ERRNO_ANNOTATION, UMASK_ANNOTATION,
};
pub use from_grpc::{process_from_grpc, resources_from_grpc, spec_from_grpc};
pub use to_grpc::{process_to_grpc, resources_to_grpc, spec_to_grpc};
pub use unsendable::{check_sendable, Unsendable};

/// Why a protobuf spec could not be turned into an [`oci_spec::runtime::Spec`]: the
/// host sent a string that names nothing OCI knows, or a number that does not fit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OciConvertError {
    #[error("unknown namespace type {0:?}")]
    UnknownNamespace(String),
    #[error("unknown device type {0:?}")]
    UnknownDeviceType(String),
    #[error("unknown capability {0:?}")]
    UnknownCapability(String),
    #[error("unknown rlimit type {0:?}")]
    UnknownRlimit(String),
    #[error("unknown seccomp {kind} {value:?}")]
    UnknownSeccomp { kind: &'static str, value: String },
    #[error("annotation {key} = {value:?} is not {expected}")]
    BadAnnotation {
        key: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("{field} = {value} does not fit the OCI type")]
    OutOfRange { field: &'static str, value: i128 },
    #[error("the spec has a {0} section: zagent runs Linux containers")]
    OtherPlatform(&'static str),
    #[error("oci-spec rejected a converted value: {0}")]
    Build(String),
}
