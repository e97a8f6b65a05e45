//! The zygote protocol's messages: what the agent asks the zygote (`Request`), what the zygote
//! answers (`Reply`), what a container child reports on its own sync socket (`ChildEvent`), and
//! the plain-data launch config the child builds its jail from.
//!
//! Everything here is plain data converted from the OCI spec (and validated) in the agent; no
//! `oci_spec` type ever crosses this boundary, because its `skip_serializing_if` fields do not
//! round-trip through a non-self-describing codec.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Bumped on every incompatible change of any message in this module.
pub const PROTOCOL_VERSION: u32 = 5;

/// The largest frame either side sends or accepts (checked before anything is decoded).
pub const MAX_FRAME: usize = 192 * 1024;

/// The largest number of fds one frame carries.
pub const MAX_FDS: usize = 16;

/// Agent -> zygote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// First frame on a new channel; the zygote answers `Reply::Hello`.
    Hello { version: u32 },
    /// Clone a container child. Fds, in this order: `LaunchFds::ORDER`, then one fd per entry of
    /// `config.namespaces` that has `join: true`, in that order.
    Launch(Box<ContainerConfig>),
    /// Clone a child that joins a running container and execs a process in it. Fds, in this
    /// order: `ExecFds::ORDER`.
    Exec(Box<ExecConfig>),
}

/// Zygote -> agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    Hello {
        version: u32,
    },
    /// The child exists. One fd comes with it: the child's pidfd.
    Launched {
        pid: i32,
    },
    /// The request was not carried out; nothing was cloned and every fd received was closed.
    Refused {
        errno: i32,
        message: String,
    },
}

/// Container child -> agent, on the child's own sync socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChildEvent {
    /// First message of every child: its pidfd travels with it, so the agent can kill and reap
    /// the child even if the zygote dies before replying.
    Started,
    /// The child joined a pid namespace it was not born in (an exec, or a create that shares
    /// another container's pid namespace), finished the jail outside it, and cloned the process
    /// that is born inside it, last: that process's pidfd travels with this message and `pid`
    /// is its pid in the agent's pid namespace. The sender exits right after; the new process
    /// carries on with the same sync socket (and sends nothing before this message arrived).
    Spawned { pid: i32 },
    /// The process has a terminal: the pty master travels with this message.
    Console,
    /// The jail reached the point of the runtime's hooks (`prestart`, `createRuntime`: mounts
    /// and devices made, before pivot_root), and the config says there are some: the child
    /// waits for `ToChild::Proceed` on the sync socket (EOF: give up).
    HooksDue,
    /// The jail is built; the child now blocks on exec.fifo.
    Ready,
    /// A jail step (or the final execve) failed; the child exits right after sending this.
    Failed {
        step: String,
        errno: i32,
        message: String,
    },
}

/// Agent -> container child, on the child's sync socket: only in answer to `HooksDue`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToChild {
    /// The runtime's hooks ran and succeeded: go on.
    Proceed,
}

/// One OCI hook: `path` (absolute) run with `args` (args[0] included) and exactly `env`, the
/// container's state JSON on its stdin, killed after `timeout_secs` when set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Hook {
    pub path: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub timeout_secs: Option<u32>,
}

/// What a hook's state JSON is made of besides `status` and `pid` (runtime-spec "State").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct HookState {
    pub oci_version: String,
    pub id: String,
    /// The bundle: the rootfs's parent directory (the Kata protocol carries no bundle path).
    pub bundle: PathBuf,
    pub annotations: Vec<(String, String)>,
}

/// The hooks the child runs itself (in the container's namespaces), and whether it must stop
/// for the agent's (`HooksDue`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ChildHooks {
    /// The config has `prestart` or `createRuntime` hooks, which the agent runs.
    pub runtime_hooks_due: bool,
    /// Run before pivot_root, paths resolved on the host.
    pub create_container: Vec<Hook>,
    /// Run after the exec.fifo byte, right before the process, paths resolved in the container.
    pub start_container: Vec<Hook>,
    pub state: HookState,
}

/// Names of the fixed fd slots of a `Request::Launch`, in the order they travel.
pub struct LaunchFds;

impl LaunchFds {
    pub const STDIN: usize = 0;
    pub const STDOUT: usize = 1;
    pub const STDERR: usize = 2;
    /// The child's end of its sync socket (SOCK_SEQPACKET) to the agent.
    pub const SYNC: usize = 3;
    /// exec.fifo, opened O_RDWR so that the child alone holds a reader once the agent and the
    /// zygote closed their copies.
    pub const EXEC_FIFO: usize = 4;
    pub const ORDER: [&'static str; 5] = ["stdin", "stdout", "stderr", "sync", "exec_fifo"];
    pub const FIXED: usize = 5;
}

/// Names of the fixed fd slots of a `Request::Exec`, in the order they travel.
pub struct ExecFds;

impl ExecFds {
    pub const STDIN: usize = 0;
    pub const STDOUT: usize = 1;
    pub const STDERR: usize = 2;
    pub const SYNC: usize = 3;
    /// A pidfd of the container's init process: its namespaces are joined through it.
    pub const INIT_PIDFD: usize = 4;
    pub const ORDER: [&'static str; 5] = ["stdin", "stdout", "stderr", "sync", "init_pidfd"];
    pub const COUNT: usize = 5;
}

/// Everything a child needs to join a running container and exec a process in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ExecConfig {
    pub container_id: String,
    pub exec_id: String,
    /// The container's namespaces, all joined at once through the init pidfd (the pid one only
    /// for the child's children). User among them when the container has a user namespace.
    pub namespaces: Vec<NamespaceKind>,
    /// Files (absolute host paths: v1 `tasks`, v2 `cgroup.procs`) written "0" to join the
    /// container's cgroup, before the mount namespace is joined.
    pub cgroup_procs: Vec<PathBuf>,
    pub process: ProcessConfig,
    /// Initial terminal size (rows, columns) when `process.terminal`.
    pub console_size: Option<(u16, u16)>,
    /// Test hook: sleep this long right before execve, so tests can observe the joining
    /// process. Always 0 unless the agent runs with its hidden test flag.
    pub test_pause_before_exec_ms: u32,
}

/// Everything the child needs to build the jail and exec the container's process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ContainerConfig {
    pub id: String,
    /// Absolute host path of the rootfs.
    pub rootfs: PathBuf,
    pub readonly_root: bool,
    /// `MS_*` propagation flags for "/" inside the new mount namespace (default MS_REC|MS_SLAVE).
    pub rootfs_propagation: u64,
    pub hostname: Option<String>,
    pub domainname: Option<String>,
    pub namespaces: Vec<Namespace>,
    pub mounts: Vec<Mount>,
    /// Mknod'ed (or, in a user namespace, bind-mounted) before pivot_root: the OCI default
    /// devices plus the spec's `linux.devices`.
    pub devices: Vec<Device>,
    pub masked_paths: Vec<PathBuf>,
    pub readonly_paths: Vec<PathBuf>,
    pub sysctl: Vec<(String, String)>,
    /// Files (absolute host paths: v1 `tasks`, v2 `cgroup.procs`) the child writes "0" into
    /// before anything else, to join its cgroup.
    pub cgroup_procs: Vec<PathBuf>,
    pub oom_score_adj: Option<i32>,
    pub process: ProcessConfig,
    /// Initial terminal size (rows, columns) when `process.terminal`.
    pub console_size: Option<(u16, u16)>,
    /// `linux.uidMappings` and `linux.gidMappings` of a new user namespace, written by the
    /// child (still outside it) into the process it clones inside it. Empty otherwise.
    pub uid_mappings: Vec<IdMapping>,
    pub gid_mappings: Vec<IdMapping>,
    /// The spec's hooks that concern the child (none: nothing to run, no stop).
    pub hooks: ChildHooks,
}

/// One line of a user namespace's uid_map or gid_map: `size` ids from `container_id` inside
/// map to `host_id` onwards outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct IdMapping {
    pub container_id: u32,
    pub host_id: u32,
    pub size: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NamespaceKind {
    Mount,
    Pid,
    Uts,
    Ipc,
    Network,
    Cgroup,
    User,
}

impl NamespaceKind {
    /// The OCI spec's name of the kind ("network", "mount", ...), for messages.
    pub fn name(self) -> &'static str {
        match self {
            NamespaceKind::Mount => "mount",
            NamespaceKind::Pid => "pid",
            NamespaceKind::Uts => "uts",
            NamespaceKind::Ipc => "ipc",
            NamespaceKind::Network => "network",
            NamespaceKind::Cgroup => "cgroup",
            NamespaceKind::User => "user",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespace {
    pub kind: NamespaceKind,
    /// false: a new namespace; true: join the one whose fd travels with the request.
    pub join: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Mount {
    /// Absolute path inside the container.
    pub destination: PathBuf,
    pub fstype: Option<String>,
    /// For bind mounts an absolute host path; otherwise the fs's source string ("proc", ...).
    pub source: Option<String>,
    /// `MS_*` flags from the options (MS_BIND, MS_REC, MS_RDONLY, MS_NOSUID, ...).
    pub flags: u64,
    /// Propagation changes applied after the mount (MS_SHARED, MS_PRIVATE, ... each maybe |MS_REC).
    pub propagation: Vec<u64>,
    /// The options that are not flags, joined by ','.
    pub data: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeviceKind {
    Char,
    Block,
    Fifo,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// Absolute path inside the container.
    pub path: PathBuf,
    pub kind: DeviceKind,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ProcessConfig {
    pub args: Vec<String>,
    pub env: Vec<String>,
    /// Absolute path inside the container.
    pub cwd: PathBuf,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub umask: Option<u32>,
    pub terminal: bool,
    pub capabilities: Capabilities,
    pub rlimits: Vec<Rlimit>,
    pub no_new_privileges: bool,
    /// The container's seccomp filter, compiled by the agent (an exec gets its container's).
    pub seccomp: Option<SeccompFilter>,
}

/// A compiled seccomp filter: classic BPF, one `struct sock_filter` (8 bytes, native layout)
/// per element, and the SECCOMP_FILTER_FLAG_* bits to load it with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SeccompFilter {
    pub program: Vec<u64>,
    pub flags: u32,
}

/// Capability sets as bit masks (bit n = capability number n).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Capabilities {
    pub bounding: u64,
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub ambient: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rlimit {
    /// `libc::RLIMIT_*`.
    pub resource: u32,
    pub soft: u64,
    pub hard: u64,
}
