//! The jail: everything that runs between the zygote's clone and the execve of a container's
//! process or of a process exec'd into a running container (`init::prepare_exec`), plus
//! the agent-side pieces that prepare for it (spec validation into a plain launch config, and
//! cgroup creation). It guarantees that a child either reaches `ready` with the jail built in
//! the documented order (see `init`), or reports the step that failed with its errno.

pub mod cgroups;
pub mod init;
pub mod passwd;
pub mod seccomp;
pub mod validate;

// The child side's steps; only `init` (and the error type) is the public face.
mod capabilities;
mod devices;
pub mod error;
mod home;
pub mod hooks;
mod identity;
pub mod mountinfo;
mod mounts;
mod namespaces;
mod paths;
mod process;
mod rlimits;
mod rootfs;
mod scheduling;
mod steps;
mod sys;
mod system;
mod terminal;
#[cfg(test)]
mod test_util;
pub mod userns;
