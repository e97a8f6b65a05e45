//! clone3 for container children: CLONE_PARENT (so the agent, not the zygote, is the parent and
//! reaps them), CLONE_PIDFD (the agent waits on the pidfd, no pid-reuse races) and the new
//! namespaces. `exit_signal` must be 0 with CLONE_PARENT; the child then inherits the zygote's
//! own exit signal (SIGCHLD), which is what the agent expects.

use nix::errno::Errno;
use nix::unistd::Pid;
use std::os::fd::{FromRawFd, OwnedFd};
use wire::zygote::{Namespace, NamespaceKind};

/// `struct clone_args` from linux/sched.h (version 2, with `cgroup`).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

pub enum Forked {
    Parent { pid: Pid, pidfd: OwnedFd },
    Child,
}

/// Clone flags for the namespaces to create at clone time. The cgroup namespace is left to
/// the child, which unshares it after joining its cgroup; joined namespaces are set by setns.
pub fn namespace_flags(namespaces: &[Namespace]) -> u64 {
    let mut flags = 0;
    for ns in namespaces.iter().filter(|ns| !ns.join) {
        flags |= match ns.kind {
            NamespaceKind::Mount => libc::CLONE_NEWNS,
            NamespaceKind::Pid => libc::CLONE_NEWPID,
            NamespaceKind::Uts => libc::CLONE_NEWUTS,
            NamespaceKind::Ipc => libc::CLONE_NEWIPC,
            NamespaceKind::Network => libc::CLONE_NEWNET,
            NamespaceKind::User => libc::CLONE_NEWUSER,
            NamespaceKind::Cgroup => 0,
        } as u64;
    }
    flags
}

/// Clones a child with `ns_flags`. Like fork, the child continues from here on a copy of our
/// stack; that is sound only because the zygote has exactly one thread.
pub fn clone_child(ns_flags: u64) -> Result<Forked, Errno> {
    let flags = ns_flags | libc::CLONE_PARENT as u64 | libc::CLONE_PIDFD as u64;
    match clone3(flags, 0)? {
        (0, _) => Ok(Forked::Child),
        (pid, Some(pidfd)) => Ok(Forked::Parent {
            pid: Pid::from_raw(pid),
            pidfd,
        }),
        (_, None) => unreachable!("CLONE_PIDFD was asked for"),
    }
}

/// clone3 without a stack, the one raw clone of the workspace (the benchmark's floor uses it
/// too): the child returns here with 0, on a private copy of the caller's memory, as from
/// fork(); the parent gets the pid, and a pidfd when `flags` has CLONE_PIDFD. Sound only in a
/// single-threaded process: no lock can then be held by a thread the child lacks.
pub fn clone3(flags: u64, exit_signal: u64) -> Result<(i32, Option<OwnedFd>), Errno> {
    let mut pidfd: libc::c_int = -1;
    let mut args = CloneArgs {
        flags,
        pidfd: &mut pidfd as *mut libc::c_int as u64,
        exit_signal,
        ..Default::default()
    };
    // SAFETY: `args` is a valid clone_args of the size we pass; no CLONE_VM and no stack, so the
    // child gets a private copy of our address space and returns here like fork(); the pidfd
    // pointer stays valid for the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match ret {
        -1 => Err(Errno::last()),
        0 => Ok((0, None)),
        pid => {
            let pidfd = (flags & libc::CLONE_PIDFD as u64 != 0).then(|| {
                // SAFETY: with CLONE_PIDFD the kernel stored a new fd in `pidfd` that only we
                // own.
                unsafe { OwnedFd::from_raw_fd(pidfd) }
            });
            Ok((pid as i32, pidfd))
        }
    }
}

/// Clones a child with CLONE_PARENT, CLONE_PIDFD and `ns_flags` (0: in all our own
/// namespaces) through clone(2) rather than clone3: this runs under the container's seccomp
/// filter when the process keeps the right to gain privileges, and filters such as Docker's
/// answer clone3 with ENOSYS (to make libcs fall back) while they allow a clone without
/// namespace flags.
pub fn clone_in_place(ns_flags: u64) -> Result<Forked, Errno> {
    let mut pidfd: libc::c_int = -1;
    let flags =
        (libc::CLONE_PARENT | libc::CLONE_PIDFD) as libc::c_ulong | ns_flags as libc::c_ulong;
    // SAFETY: no CLONE_VM and no stack: the child gets a copy of our address space and returns
    // here like fork(), which is sound because this process has one thread. With CLONE_PIDFD
    // the kernel writes the pidfd through the third argument (parent_tid), valid for the call;
    // the child_tid and tls arguments are unused (0), whichever order the architecture has.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags,
            0usize,
            &mut pidfd as *mut libc::c_int,
            0usize,
            0usize,
        )
    };
    match ret {
        -1 => Err(Errno::last()),
        0 => Ok(Forked::Child),
        pid => {
            // SAFETY: with CLONE_PIDFD the kernel stored a new fd in `pidfd` that only we own.
            let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
            Ok(Forked::Parent {
                pid: Pid::from_raw(pid as i32),
                pidfd,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_cover_new_namespaces_only() {
        let ns = [
            Namespace {
                kind: NamespaceKind::Mount,
                join: false,
            },
            Namespace {
                kind: NamespaceKind::Pid,
                join: false,
            },
            Namespace {
                kind: NamespaceKind::Network,
                join: true,
            },
            Namespace {
                kind: NamespaceKind::Cgroup,
                join: false,
            },
        ];
        let f = namespace_flags(&ns);
        assert_eq!(f, (libc::CLONE_NEWNS | libc::CLONE_NEWPID) as u64);
    }
}
