//! Cgroup membership (step 1) and namespaces (step 2): which namespaces the child joins and in
//! what order, and the cgroup namespace it creates after joining its cgroups. The namespaces
//! that are new (other than cgroup) were created by the zygote's clone3; a joined pid namespace
//! was handled by the zygote too (it only affects children).

use crate::error::JailError;
use crate::mounts::io_errno;
use nix::errno::Errno;
use nix::sched::CloneFlags;
use std::io::Write;
use std::os::fd::BorrowedFd;
use std::path::PathBuf;
use wire::zygote::{ContainerConfig, NamespaceKind};

/// Step 1: move the child into its cgroups (host paths: we have not pivoted yet).
pub fn join_cgroups(procs: &[PathBuf]) -> Result<(), JailError> {
    for path in procs {
        let write = || {
            std::fs::OpenOptions::new()
                .write(true)
                .open(path)?
                .write_all(b"0")
        };
        write().map_err(|e| JailError::Cgroup {
            path: path.clone(),
            errno: io_errno(&e),
        })?;
    }
    Ok(())
}

pub fn has(cfg: &ContainerConfig, kind: NamespaceKind) -> bool {
    cfg.namespaces.iter().any(|n| n.kind == kind)
}

pub fn is_new(cfg: &ContainerConfig, kind: NamespaceKind) -> bool {
    cfg.namespaces.iter().any(|n| n.kind == kind && !n.join)
}

/// Join order: the user namespace first (joining it is what grants the capabilities needed for
/// namespaces it owns), the mount namespace last (after it, paths of the caller's mount
/// namespace are gone).
fn rank(kind: NamespaceKind) -> u8 {
    match kind {
        NamespaceKind::User => 0,
        NamespaceKind::Ipc => 1,
        NamespaceKind::Uts => 2,
        NamespaceKind::Network => 3,
        NamespaceKind::Cgroup => 4,
        NamespaceKind::Pid => 5,
        NamespaceKind::Mount => 6,
    }
}

fn clone_flag(kind: NamespaceKind) -> CloneFlags {
    match kind {
        NamespaceKind::Mount => CloneFlags::CLONE_NEWNS,
        NamespaceKind::Pid => CloneFlags::CLONE_NEWPID,
        NamespaceKind::Uts => CloneFlags::CLONE_NEWUTS,
        NamespaceKind::Ipc => CloneFlags::CLONE_NEWIPC,
        NamespaceKind::Network => CloneFlags::CLONE_NEWNET,
        NamespaceKind::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        NamespaceKind::User => CloneFlags::CLONE_NEWUSER,
    }
}

fn name(kind: NamespaceKind) -> &'static str {
    match kind {
        NamespaceKind::Mount => "mount",
        NamespaceKind::Pid => "pid",
        NamespaceKind::Uts => "uts",
        NamespaceKind::Ipc => "ipc",
        NamespaceKind::Network => "network",
        NamespaceKind::Cgroup => "cgroup",
        NamespaceKind::User => "user",
    }
}

/// Step 2: setns into each joined namespace, then unshare a new cgroup namespace if asked for
/// (after step 1, so that the container's cgroup becomes the namespace's root).
pub fn enter(
    cfg: &ContainerConfig,
    join: &[(NamespaceKind, BorrowedFd<'_>)],
) -> Result<(), JailError> {
    let err = |what: String| move |errno| JailError::Namespaces { what, errno };
    if !has(cfg, NamespaceKind::Mount) {
        // pivot_root in the zygote's mount namespace would take the agent's root away.
        return Err(err("a mount namespace is required".into())(Errno::EINVAL));
    }
    if is_new(cfg, NamespaceKind::User) {
        return Err(err("new user namespaces are not supported".into())(
            Errno::EINVAL,
        ));
    }
    let mut ordered: Vec<_> = join.to_vec();
    ordered.sort_by_key(|(kind, _)| rank(*kind));
    for (kind, fd) in ordered {
        if kind == NamespaceKind::Pid {
            return Err(err("a pid namespace must be joined by the zygote".into())(
                Errno::EINVAL,
            ));
        }
        nix::sched::setns(fd, clone_flag(kind)).map_err(err(format!("setns {}", name(kind))))?;
    }
    if is_new(cfg, NamespaceKind::Cgroup) {
        nix::sched::unshare(CloneFlags::CLONE_NEWCGROUP)
            .map_err(err("unshare cgroup namespace".into()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use wire::zygote::Namespace;

    #[test]
    fn join_order_puts_user_first_and_mount_last() {
        let mut kinds = [
            NamespaceKind::Mount,
            NamespaceKind::Network,
            NamespaceKind::User,
            NamespaceKind::Cgroup,
            NamespaceKind::Ipc,
            NamespaceKind::Uts,
        ];
        kinds.sort_by_key(|k| rank(*k));
        assert_eq!(kinds.first(), Some(&NamespaceKind::User));
        assert_eq!(kinds.last(), Some(&NamespaceKind::Mount));
    }

    #[test]
    fn a_mount_namespace_is_required() {
        let cfg = ContainerConfig {
            namespaces: vec![Namespace {
                kind: NamespaceKind::Pid,
                join: false,
            }],
            ..Default::default()
        };
        let e = enter(&cfg, &[]).unwrap_err();
        assert_eq!((e.step(), e.errno()), ("namespaces", libc::EINVAL));
        assert_eq!(e.to_string(), "a mount namespace is required: EINVAL");
    }

    #[test]
    fn cgroup_write_failure_names_the_path() {
        let e = join_cgroups(&["/nonexistent/zagent/cgroup.procs".into()]).unwrap_err();
        assert_eq!((e.step(), e.errno()), ("cgroup", libc::ENOENT));
        assert_eq!(
            e.to_string(),
            "write \"0\" to /nonexistent/zagent/cgroup.procs: ENOENT"
        );
    }
}
