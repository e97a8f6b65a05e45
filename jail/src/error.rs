//! `JailError`: the one error type of the child side of the jail. It owns the mapping from a
//! failure to the stable step name and errno that travel to the agent in
//! `ChildEvent::Failed { step, errno, message }` (the message is the `Display` text).

use nix::errno::Errno;

/// The errno an `io::Error` carries (EIO for one made without an errno), for the places that
/// report a std I/O failure by its errno: the jail's steps, the zygote and the agent.
pub fn errno_of(e: &std::io::Error) -> Errno {
    e.raw_os_error().map_or(Errno::EIO, Errno::from_raw)
}

/// The jail's steps, in the order `init` documents; `name` is the stable string that travels to
/// the agent and on to the user's error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Dumpable,
    OomScoreAdj,
    Cgroup,
    Namespaces,
    UserNamespace,
    Loopback,
    Propagation,
    RootfsBind,
    Mount,
    Devices,
    Hook,
    PivotRoot,
    Terminal,
    ReadonlyRoot,
    Hostname,
    Sysctl,
    ReadonlyPaths,
    MaskedPaths,
    Identity,
    Rlimits,
    Scheduling,
    Umask,
    Seccomp,
    Capabilities,
    Cwd,
    NoNewPrivs,
    Session,
    Exec,
}

impl Step {
    /// The stable short name (`ChildEvent::Failed::step`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Dumpable => "dumpable",
            Self::OomScoreAdj => "oom-score-adj",
            Self::Cgroup => "cgroup",
            Self::Namespaces => "namespaces",
            Self::UserNamespace => "userns",
            Self::Loopback => "loopback",
            Self::Propagation => "propagation",
            Self::RootfsBind => "rootfs-bind",
            Self::Mount => "mount",
            Self::Devices => "devices",
            Self::Hook => "hooks",
            Self::PivotRoot => "pivot_root",
            Self::Terminal => "terminal",
            Self::ReadonlyRoot => "readonly-root",
            Self::Hostname => "hostname",
            Self::Sysctl => "sysctl",
            Self::ReadonlyPaths => "readonly-paths",
            Self::MaskedPaths => "masked-paths",
            Self::Identity => "identity",
            Self::Rlimits => "rlimits",
            Self::Scheduling => "scheduling",
            Self::Umask => "umask",
            Self::Seccomp => "seccomp",
            Self::Capabilities => "capabilities",
            Self::Cwd => "cwd",
            Self::NoNewPrivs => "no-new-privs",
            Self::Session => "session",
            Self::Exec => "exec",
        }
    }

    /// A `map_err` adapter: the errno of a failed call, with what was being done.
    pub fn err(self, what: impl Into<String>) -> impl FnOnce(Errno) -> JailError {
        let what = what.into();
        move |errno| JailError::new(self, what, errno)
    }
}

/// A failed jail step: which step, what was being done to what, and the errno the kernel gave.
///
/// The `Display` text never repeats the step name (it travels separately) and names the errno
/// symbolically (`ENOENT`), because that is what an operator greps for.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {errno:?}")]
pub struct JailError {
    step: Step,
    what: String,
    errno: Errno,
}

impl JailError {
    pub fn new(step: Step, what: impl Into<String>, errno: Errno) -> JailError {
        JailError {
            step,
            what: what.into(),
            errno,
        }
    }

    /// The step that failed.
    pub fn kind(&self) -> Step {
        self.step
    }

    /// The stable short name of the step that failed (`ChildEvent::Failed::step`).
    pub fn step(&self) -> &'static str {
        self.step.name()
    }

    /// The errno of the failure, as the raw positive number (`ChildEvent::Failed::errno`).
    pub fn errno(&self) -> i32 {
        self.errno as i32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_errno_and_message() {
        let e = JailError::new(Step::Mount, "mount /proc (proc) at /r/proc", Errno::ENOENT);
        assert_eq!((e.kind(), e.step()), (Step::Mount, "mount"));
        assert_eq!(e.errno(), libc::ENOENT);
        assert_eq!(e.to_string(), "mount /proc (proc) at /r/proc: ENOENT");

        let e = Step::Cgroup.err("write \"0\" to /sys/fs/cgroup/x/cgroup.procs")(Errno::EACCES);
        assert_eq!((e.step(), e.errno()), ("cgroup", libc::EACCES));
        assert_eq!(
            e.to_string(),
            "write \"0\" to /sys/fs/cgroup/x/cgroup.procs: EACCES"
        );
    }

    #[test]
    fn step_names_are_distinct() {
        use std::collections::HashSet;
        let all = [
            Step::Dumpable,
            Step::OomScoreAdj,
            Step::Cgroup,
            Step::Namespaces,
            Step::UserNamespace,
            Step::Loopback,
            Step::Propagation,
            Step::RootfsBind,
            Step::Mount,
            Step::Devices,
            Step::Hook,
            Step::PivotRoot,
            Step::Terminal,
            Step::ReadonlyRoot,
            Step::Hostname,
            Step::Sysctl,
            Step::ReadonlyPaths,
            Step::MaskedPaths,
            Step::Identity,
            Step::Rlimits,
            Step::Scheduling,
            Step::Umask,
            Step::Seccomp,
            Step::Capabilities,
            Step::Cwd,
            Step::NoNewPrivs,
            Step::Session,
            Step::Exec,
        ];
        let names: HashSet<_> = all.iter().map(|s| s.name()).collect();
        assert_eq!(names.len(), all.len());
        assert_eq!(Step::PivotRoot.name(), "pivot_root");
        assert_eq!(Step::UserNamespace.name(), "userns");
    }
}
