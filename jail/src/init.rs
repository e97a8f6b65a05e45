//! The child side of the jail: `prepare` builds the jail between the zygote's clone and the
//! child's `ready` report, and `exec` starts the container's process after the exec.fifo byte.
//! This module owns the order of the steps; each step lives in its own module. A failing step
//! stops everything and comes back as a `JailError` naming the step and the errno.
//!
//! The steps, in order (the name is `JailError::step`):
//!  1. "cgroup": write "0" into each cgroup.procs of the config (host paths).
//!  2. "namespaces": setns into the joined namespaces (user first, mount last), then unshare a
//!     new cgroup namespace if asked for, so the container's cgroup is its root.
//!  3. "propagation": "/" gets the rootfs propagation (default MS_REC|MS_SLAVE) so nothing
//!     mounted later reaches the host. Done for a joined mount namespace too, as runc does: the
//!     rootfs is then built inside that namespace exactly as in a new one.
//!  4. "rootfs-bind": the rootfs bind-mounted onto itself (a mount point for pivot_root).
//!  5. "mount": the config's mounts, each resolved inside the rootfs (`paths`).
//!  6. "devices": device nodes and the standard /dev symlinks.
//!  7. "pivot_root": into the rootfs; the old root is detached.
//!  8. "hostname": hostname and domainname.
//!  9. "sysctl": /proc/sys writes. Before the read-only paths (as in runc), because the usual
//!     read-only paths include /proc/sys.
//! 10. "oom-score-adj".
//! 11. "masked-paths": /dev/null or an empty read-only tmpfs on top.
//! 12. "readonly-paths": bound onto themselves read-only.
//! 13. "readonly-root": "/" read-only.
//! 14. "rlimits".
//! 15. "umask" (0o022 when unset, as runc).
//! 16. "capabilities" + "identity": bounding set shrunk, PR_SET_KEEPCAPS, setgroups, setresgid,
//!     setresuid, keepcaps cleared, then effective/permitted/inheritable and ambient set.
//! 17. "cwd": entered as the container user.
//! 18. "no-new-privs".
//!
//! Then (in `exec`, after the fifo) "exec": PATH lookup inside the new root, every fd above 2
//! marked close-on-exec, execve with exactly the configured environment. Seccomp, once
//! supported (validation refuses it for now), goes last, right before the execve.

use crate::{capabilities, devices, identity, mounts, namespaces, rlimits, rootfs, system};
use std::os::fd::BorrowedFd;
use wire::zygote::{ContainerConfig, NamespaceKind};

pub use crate::error::JailError;
pub use crate::process::Prepared;

/// Builds the jail in the documented order. `join` holds the fds of the namespaces to join
/// (same order as the config's `join: true` entries; a joined pid namespace was already handled
/// by the zygote and is not in this list). Must run in the freshly cloned child, as root, with
/// stdio already in place on 0, 1 and 2.
pub fn prepare(
    cfg: &ContainerConfig,
    join: &[(NamespaceKind, BorrowedFd<'_>)],
) -> Result<Prepared, JailError> {
    let prepared = Prepared::new(&cfg.process)?;
    namespaces::join_cgroups(&cfg.cgroup_procs)?;
    namespaces::enter(cfg, join)?;
    rootfs::set_propagation(cfg.rootfs_propagation, &cfg.rootfs)?;
    let root = rootfs::bind_rootfs(&cfg.rootfs)?;
    mounts::mount_all(
        &root,
        &cfg.mounts,
        namespaces::has(cfg, NamespaceKind::Cgroup),
    )?;
    devices::setup(&root, cfg)?;
    rootfs::pivot(root)?;
    system::set_names(cfg)?;
    system::set_sysctls(&cfg.sysctl)?;
    system::set_oom_score_adj(cfg.oom_score_adj)?;
    rootfs::mask(&cfg.masked_paths)?;
    rootfs::make_readonly(&cfg.readonly_paths)?;
    if cfg.readonly_root {
        rootfs::make_root_readonly()?;
    }
    rlimits::apply(&cfg.process.rlimits)?;
    identity::set_umask(cfg.process.umask)?;
    let caps = &cfg.process.capabilities;
    capabilities::drop_bounding(caps.bounding)?;
    capabilities::keep_across_setuid(true)?;
    identity::switch_user(&cfg.process)?;
    capabilities::keep_across_setuid(false)?;
    capabilities::apply(caps)?;
    identity::change_dir(&cfg.process.cwd)?;
    capabilities::set_no_new_privs(cfg.process.no_new_privileges)?;
    Ok(prepared)
}

/// After the exec.fifo byte: resolves args[0], marks every fd above 2 close-on-exec and
/// execve's. Returns only on failure (step "exec").
pub fn exec(prepared: &Prepared) -> JailError {
    crate::process::exec(prepared)
}

#[cfg(test)]
mod tests;
