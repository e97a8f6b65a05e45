//! `JailError`: the one error type of the child side of the jail. It owns the mapping from a
//! failure to the stable step name and errno that travel to the agent in
//! `ChildEvent::Failed { step, errno, message }` (the message is the `Display` text).

use nix::errno::Errno;
use std::path::PathBuf;

/// A failed jail step: which step, the errno the kernel gave, and what was being done to what.
///
/// The `Display` text never repeats the step name (it travels separately) and names the errno
/// symbolically (`ENOENT`), because that is what an operator greps for.
#[derive(Debug, thiserror::Error)]
pub enum JailError {
    #[error("{what}: {errno:?}")]
    Seccomp { what: String, errno: Errno },

    #[error("make the process non-dumpable: {errno:?}")]
    Dumpable { errno: Errno },

    #[error("write \"0\" to {}: {errno:?}", path.display())]
    Cgroup { path: PathBuf, errno: Errno },

    #[error("{what}: {errno:?}")]
    Namespaces { what: String, errno: Errno },

    #[error("{what}: {errno:?}")]
    UserNamespace { what: String, errno: Errno },

    #[error("{what}: {errno:?}")]
    Hook { what: String, errno: Errno },

    #[error("bring the loopback interface up: {errno:?}")]
    Loopback { errno: Errno },

    #[error("make / {what}: {errno:?}")]
    Propagation { what: String, errno: Errno },

    #[error("bind rootfs {} onto itself: {errno:?}", rootfs.display())]
    RootfsBind { rootfs: PathBuf, errno: Errno },

    #[error("{what}: {errno:?}")]
    Mount { what: String, errno: Errno },

    #[error("{what}: {errno:?}")]
    Devices { what: String, errno: Errno },

    #[error("{what}: {errno:?}")]
    PivotRoot { what: String, errno: Errno },

    #[error("mask {}: {errno:?}", path.display())]
    MaskedPaths { path: PathBuf, errno: Errno },

    #[error("make {} read-only: {errno:?}", path.display())]
    ReadonlyPaths { path: PathBuf, errno: Errno },

    #[error("remount / read-only: {errno:?}")]
    ReadonlyRoot { errno: Errno },

    #[error("{what}: {errno:?}")]
    Terminal { what: String, errno: Errno },

    #[error("setsid: {errno:?}")]
    Session { errno: Errno },

    #[error("{what}: {errno:?}")]
    Hostname { what: String, errno: Errno },

    #[error("set {key} to {value:?}: {errno:?}")]
    Sysctl {
        key: String,
        value: String,
        errno: Errno,
    },

    #[error("write {value} to /proc/self/oom_score_adj: {errno:?}")]
    OomScoreAdj { value: i32, errno: Errno },

    #[error("set rlimit {resource} to soft {soft} hard {hard}: {errno:?}")]
    Rlimits {
        resource: u32,
        soft: u64,
        hard: u64,
        errno: Errno,
    },

    #[error("umask {value:#o}: {errno:?}")]
    Umask { value: u32, errno: Errno },

    #[error("{what}: {errno:?}")]
    Identity { what: String, errno: Errno },

    #[error("{what}: {errno:?}")]
    Capabilities { what: String, errno: Errno },

    #[error("set no_new_privs: {errno:?}")]
    NoNewPrivs { errno: Errno },

    #[error("chdir to cwd {}: {errno:?}", path.display())]
    Cwd { path: PathBuf, errno: Errno },

    #[error("{what}: {errno:?}")]
    Exec { what: String, errno: Errno },
}

impl JailError {
    /// The stable short name of the step that failed (`ChildEvent::Failed::step`).
    pub fn step(&self) -> &'static str {
        match self {
            Self::Dumpable { .. } => "dumpable",
            Self::Cgroup { .. } => "cgroup",
            Self::Namespaces { .. } => "namespaces",
            Self::UserNamespace { .. } => "userns",
            Self::Hook { .. } => "hooks",
            Self::Loopback { .. } => "loopback",
            Self::Propagation { .. } => "propagation",
            Self::RootfsBind { .. } => "rootfs-bind",
            Self::Mount { .. } => "mount",
            Self::Devices { .. } => "devices",
            Self::PivotRoot { .. } => "pivot_root",
            Self::MaskedPaths { .. } => "masked-paths",
            Self::ReadonlyPaths { .. } => "readonly-paths",
            Self::ReadonlyRoot { .. } => "readonly-root",
            Self::Terminal { .. } => "terminal",
            Self::Session { .. } => "session",
            Self::Hostname { .. } => "hostname",
            Self::Sysctl { .. } => "sysctl",
            Self::OomScoreAdj { .. } => "oom-score-adj",
            Self::Rlimits { .. } => "rlimits",
            Self::Umask { .. } => "umask",
            Self::Identity { .. } => "identity",
            Self::Capabilities { .. } => "capabilities",
            Self::NoNewPrivs { .. } => "no-new-privs",
            Self::Cwd { .. } => "cwd",
            Self::Seccomp { .. } => "seccomp",
            Self::Exec { .. } => "exec",
        }
    }

    /// The errno of the failure, as the raw positive number (`ChildEvent::Failed::errno`).
    pub fn errno(&self) -> i32 {
        self.errno_value() as i32
    }

    fn errno_value(&self) -> Errno {
        match self {
            Self::Dumpable { errno }
            | Self::Cgroup { errno, .. }
            | Self::Namespaces { errno, .. }
            | Self::UserNamespace { errno, .. }
            | Self::Hook { errno, .. }
            | Self::Loopback { errno }
            | Self::Propagation { errno, .. }
            | Self::RootfsBind { errno, .. }
            | Self::Mount { errno, .. }
            | Self::Devices { errno, .. }
            | Self::PivotRoot { errno, .. }
            | Self::MaskedPaths { errno, .. }
            | Self::ReadonlyPaths { errno, .. }
            | Self::ReadonlyRoot { errno }
            | Self::Terminal { errno, .. }
            | Self::Session { errno }
            | Self::Hostname { errno, .. }
            | Self::Sysctl { errno, .. }
            | Self::OomScoreAdj { errno, .. }
            | Self::Rlimits { errno, .. }
            | Self::Umask { errno, .. }
            | Self::Identity { errno, .. }
            | Self::Capabilities { errno, .. }
            | Self::NoNewPrivs { errno }
            | Self::Cwd { errno, .. }
            | Self::Seccomp { errno, .. }
            | Self::Exec { errno, .. } => *errno,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_errno_and_message() {
        let e = JailError::Mount {
            what: "mount /proc (proc) at /r/proc".into(),
            errno: Errno::ENOENT,
        };
        assert_eq!(e.step(), "mount");
        assert_eq!(e.errno(), libc::ENOENT);
        assert_eq!(e.to_string(), "mount /proc (proc) at /r/proc: ENOENT");

        let e = JailError::Cgroup {
            path: "/sys/fs/cgroup/x/cgroup.procs".into(),
            errno: Errno::EACCES,
        };
        assert_eq!(e.step(), "cgroup");
        assert_eq!(
            e.to_string(),
            "write \"0\" to /sys/fs/cgroup/x/cgroup.procs: EACCES"
        );

        let e = JailError::Exec {
            what: "exec nope: not found in PATH".into(),
            errno: Errno::ENOENT,
        };
        assert_eq!((e.step(), e.errno()), ("exec", libc::ENOENT));
        assert_eq!(
            JailError::ReadonlyRoot {
                errno: Errno::EPERM
            }
            .step(),
            "readonly-root"
        );
        let e = JailError::Dumpable {
            errno: Errno::EINVAL,
        };
        assert_eq!((e.step(), e.errno()), ("dumpable", libc::EINVAL));
        assert_eq!(e.to_string(), "make the process non-dumpable: EINVAL");
        let e = JailError::Terminal {
            what: "open /dev/ptmx".into(),
            errno: Errno::ENOENT,
        };
        assert_eq!((e.step(), e.errno()), ("terminal", libc::ENOENT));
        assert_eq!(e.to_string(), "open /dev/ptmx: ENOENT");
        assert_eq!(
            JailError::NoNewPrivs {
                errno: Errno::EINVAL
            }
            .errno(),
            libc::EINVAL
        );
    }
}
