//! Cgroup membership (step "cgroup") and namespaces (step "namespaces"): which namespaces the
//! child joins and in what order, and the cgroup namespace it creates after joining its cgroups.
//! The namespaces that are new (other than cgroup) were created by the zygote's clone3. A joined
//! pid namespace is joined here like the others, but it only becomes the namespace of our
//! children: the process born inside it is cloned after the whole jail is built.
//! For an exec, every namespace of the running container is joined at once through its init's
//! pidfd (`join_container`).

use crate::error::errno_of;
use crate::error::{JailError, Step};
use nix::errno::Errno;
use nix::sched::CloneFlags;
use std::io::Write;
use std::os::fd::BorrowedFd;
use std::path::PathBuf;
use wire::zygote::{ContainerConfig, NamespaceKind};

/// Step "cgroup": move the child into its cgroups (host paths: we have not pivoted yet).
pub fn join_cgroups(procs: &[PathBuf]) -> Result<(), JailError> {
    for path in procs {
        let write = || {
            std::fs::OpenOptions::new()
                .write(true)
                .open(path)?
                .write_all(b"0")
        };
        write().map_err(|e| {
            JailError::new(
                Step::Cgroup,
                format!("write \"0\" to {}", path.display()),
                errno_of(&e),
            )
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

/// Step "namespaces": setns into each joined namespace, then unshare a new cgroup namespace if
/// asked for (after step "cgroup", so that the container's cgroup becomes the namespace's root).
/// In a user namespace, `join` holds only what is left to join from inside it (the pid one):
/// the rest was joined by the child outside (`join_all`).
pub fn enter(
    cfg: &ContainerConfig,
    join: &[(NamespaceKind, BorrowedFd<'_>)],
) -> Result<(), JailError> {
    if !has(cfg, NamespaceKind::Mount) {
        // pivot_root in the zygote's mount namespace would take the agent's root away.
        return Err(JailError::new(
            Step::Namespaces,
            "a mount namespace is required",
            Errno::EINVAL,
        ));
    }
    join_all(join)?;
    if is_new(cfg, NamespaceKind::Cgroup) {
        nix::sched::unshare(CloneFlags::CLONE_NEWCGROUP)
            .map_err(|errno| JailError::new(Step::Namespaces, "unshare cgroup namespace", errno))?;
    }
    Ok(())
}

/// In a user namespace, the new mount, UTS, IPC and network namespaces of the config, made
/// by the process that is root inside it (the user and pid ones came with its clone; the
/// cgroup one comes in `enter`).
pub fn unshare_in_userns(cfg: &ContainerConfig) -> Result<(), JailError> {
    use NamespaceKind::*;
    let flags = [Mount, Uts, Ipc, Network]
        .into_iter()
        .filter(|&kind| is_new(cfg, kind))
        .fold(CloneFlags::empty(), |all, kind| all | clone_flag(kind));
    if flags.is_empty() {
        return Ok(());
    }
    nix::sched::unshare(flags).map_err(|errno| {
        JailError::new(
            Step::Namespaces,
            format!("unshare {flags:?} in the user namespace"),
            errno,
        )
    })
}

/// setns into each of `join`, the user namespace first (joining it is what grants the
/// capabilities needed for namespaces it owns), the mount namespace last. A pid namespace only
/// becomes that of our children: the process born in it is cloned once the jail is built (the
/// zygote's `spawn_inside`).
pub fn join_all(join: &[(NamespaceKind, BorrowedFd<'_>)]) -> Result<(), JailError> {
    let mut ordered: Vec<_> = join.to_vec();
    ordered.sort_by_key(|(kind, _)| rank(*kind));
    for (kind, fd) in ordered {
        nix::sched::setns(fd, clone_flag(kind)).map_err(|errno| {
            JailError::new(Step::Namespaces, format!("setns {}", kind.name()), errno)
        })?;
    }
    Ok(())
}

/// The CLONE_NEW* flags an exec joins through the init's pidfd: every namespace of the
/// container (its pid namespace only for our children, see `spawn_inside` in the zygote; its
/// user namespace first, which setns on a pidfd does by itself). A container without a mount
/// namespace is refused: the process would run on the agent's own root.
pub fn exec_join_flags(kinds: &[NamespaceKind]) -> Result<CloneFlags, JailError> {
    let err = |what: &str| JailError::new(Step::Namespaces, what, Errno::EINVAL);
    if !kinds.contains(&NamespaceKind::Mount) {
        return Err(err("the container has no mount namespace to join"));
    }
    Ok(kinds
        .iter()
        .fold(CloneFlags::empty(), |all, &k| all | clone_flag(k)))
}

/// Step "namespaces" of an exec: one setns(pidfd, flags), which joins all of them atomically
/// (Linux 5.8). Joining the mount namespace sets root and cwd to that namespace's root, with
/// whatever is mounted on top followed down (fs/namespace.c, mntns_install): the container's
/// rootfs, which its init pivot_root'ed onto. The chdir only makes "/" explicit.
pub fn join_container(
    kinds: &[NamespaceKind],
    init_pidfd: BorrowedFd<'_>,
) -> Result<(), JailError> {
    let flags = exec_join_flags(kinds)?;
    let names: Vec<&str> = kinds.iter().map(|&k| k.name()).collect();
    let what = format!("setns {} through the init pidfd", names.join(","));
    nix::sched::setns(init_pidfd, flags)
        .map_err(|errno| JailError::new(Step::Namespaces, what, errno))?;
    nix::unistd::chdir("/")
        .map_err(|errno| JailError::new(Step::Namespaces, "chdir to the container's /", errno))
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
    fn exec_joins_every_namespace_and_needs_a_mount_namespace() {
        use NamespaceKind::*;
        let flags = exec_join_flags(&[Pid, Mount, Uts, Ipc, Network, Cgroup]).unwrap();
        let want = CloneFlags::CLONE_NEWNS
            | CloneFlags::CLONE_NEWPID
            | CloneFlags::CLONE_NEWUTS
            | CloneFlags::CLONE_NEWIPC
            | CloneFlags::CLONE_NEWNET
            | CloneFlags::CLONE_NEWCGROUP;
        assert_eq!(flags, want);
        assert_eq!(exec_join_flags(&[Mount]).unwrap(), CloneFlags::CLONE_NEWNS);
        let e = exec_join_flags(&[Pid, Uts]).unwrap_err();
        assert_eq!((e.step(), e.errno()), ("namespaces", libc::EINVAL));
        assert_eq!(
            e.to_string(),
            "the container has no mount namespace to join: EINVAL"
        );
        let flags = exec_join_flags(&[Mount, User]).unwrap();
        assert_eq!(flags, CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUSER);
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
