//! The child side of the jail: `prepare` builds the jail between the zygote's clone and the
//! child's `ready` report, `prepare_exec` joins a running container for ExecProcess, and `exec`
//! starts the process after the exec.fifo byte (or right away, for an exec). This module owns
//! the order of the steps; each step lives in its own module. A failing step stops everything
//! and comes back as a `JailError` naming the step and the errno. Each step's kernel work goes
//! through the `Steps` seam (`steps.rs`), so that `order_tests` checks the order below, and
//! what a failure stops, without root.
//!
//! `prepare`, the steps in order (the name is `JailError::step`):
//!  0. "oom-score-adj": the config's value (0 when the spec has none, so the zygote's is never
//!     kept), first, while /proc is still the host's: this child is always visible there, but
//!     not in the proc of a pid namespace it joins (its spawned process inherits the value).
//!  1. "cgroup": write "0" into each cgroup.procs of the config (host paths).
//!  2. "namespaces": setns into the joined namespaces (user first, mount last; a joined pid
//!     namespace only becomes that of our children), then unshare a new cgroup namespace if
//!     asked for, so the container's cgroup is its root.
//!     Then "loopback": `lo` up in a new network namespace (runc does; the warm pool's
//!     namespaces are new ones too, and are joined by now).
//!  3. "propagation": "/" gets the rootfs propagation (default MS_REC|MS_SLAVE) so nothing
//!     mounted later reaches the host. Done for a joined mount namespace too, as runc does: the
//!     rootfs is then built inside that namespace exactly as in a new one.
//!  4. "rootfs-bind": the rootfs bind-mounted onto itself (a mount point for pivot_root).
//!  5. "mount": the config's mounts, each resolved inside the rootfs (`paths`). With a joined
//!     pid namespace, proc is mounted for that namespace (`pidns=`), not for ours.
//!  6. "devices": device nodes and the standard /dev symlinks.
//!     Then "hooks": with `prestart` or `createRuntime` hooks, the child stops (`HooksDue`) while
//!     the agent runs them in its own namespaces; then the `createContainer` hooks, run from
//!     here, in the container's namespaces, paths resolved on the host (runc's order).
//!  7. "pivot_root": into the rootfs; the old root is made a recursive slave and detached;
//!     then "propagation" once more: the spec's `rootfsPropagation` on the new "/" (runc).
//!     Then "cwd": a missing cwd is created (mode 0755, owned by root, inside the new root),
//!     as runc does, while we are root and before "/" may become read-only.
//!  8. "terminal" (only with `process.terminal`): a pty from the container's /dev/ptmx, its slave
//!     on /dev/console and stdio; the master kept for `take_console`.
//!     Where runc does it: after the rootfs is pivoted into (so the pty is the container's own
//!     devpts), before the rootfs is finalized (read-only) and before the identity change
//!     (creating /dev/console and the bind need root).
//!  9. "readonly-root": "/" read-only. Before the read-only and masked paths, in runc's order
//!     (its finalizeRootfs): a bind copies the flags of the mount it comes from, so /dev/null
//!     bound over a masked file is read-only when /dev/null lives on a read-only root (a spec
//!     without a /dev mount), as with runc.
//! 10. "hostname": hostname and domainname.
//! 11. "sysctl": /proc/sys writes. Before the read-only paths (as in runc), because the usual
//!     read-only paths include /proc/sys.
//! 12. "readonly-paths": bound onto themselves read-only.
//! 13. "masked-paths": /dev/null or an empty read-only tmpfs on top; after the read-only paths
//!     (runc's order), so a masked path under a read-only one is masked once, on top, rather
//!     than copied into the read-only bind.
//! 14. "identity" (HOME only): HOME from the container's /etc/passwd when the environment has
//!     none (runc; the uid's entry, else "/"), read before rlimits and seccomp can get in the
//!     way. Then "rlimits", then "scheduling" (personality, I/O priority, scheduler).
//! 15. "umask" (0o022 when unset, as runc), then "seccomp" when the process keeps the right to
//!     gain privileges (no no_new_privs): loading a filter then needs CAP_SYS_ADMIN, which the
//!     next steps drop; the rest of our code runs under the container's filter.
//! 16. "capabilities" + "identity": bounding set shrunk, PR_SET_KEEPCAPS, stdio (a terminal's
//!     slave included) given to the uid, setgroups, setresgid, setresuid, keepcaps cleared, then
//!     effective/permitted/inheritable and ambient set.
//! 17. "cwd": entered as the container user.
//! 18. "no-new-privs".
//!
//! With a user namespace (new, or joined by path) the jail is built by two processes. The child
//! the zygote cloned, in the zygote's own namespaces and still root on the host, runs
//! `prepare_outside_userns`: "oom-score-adj", "cgroup", "rlimits" (a hard limit can only be
//! raised from the initial user namespace) and "namespaces" (setns into every joined namespace
//! but pid, the user one first). It then clones the process born in the new user and pid
//! namespaces, writes that process's uid_map and gid_map from outside (step "userns"), sends
//! its pidfd as `spawned` and exits. That process runs `prepare`: "userns" (setresgid and
//! setresuid 0: root inside, no longer the unmapped host root), "namespaces" (the new mount,
//! UTS, IPC and network namespaces unshared now, so that the user namespace owns them; a joined
//! pid namespace; the cgroup namespace), then steps 2 (loopback) to 18 as above, without the
//! rlimits. Devices are bind mounts of the host's nodes there.
//!
//! `prepare_exec`, the steps in order, in a child the zygote cloned in its own pid namespace
//! (so that nothing in the container can see it while it still holds anything of the host's):
//!  0. "dumpable": PR_SET_DUMPABLE 0 first, so that nothing can ptrace this process or open its
//!     /proc/PID files while it still holds agent state. Then "oom-score-adj", as for a
//!     container (the spawned process inherits it).
//!  1. "cgroup": as for a container (host paths, so before the mount namespace is joined).
//!  2. "namespaces": every namespace of the container in one setns on the init's pidfd (pid
//!     only for our children); "/" and the cwd become the container's root. With a user
//!     namespace, "rlimits" comes before this and "userns" (root inside) right after it.
//!  3. "terminal" (only with `process.terminal`): as for a container, without /dev/console.
//!  4. "identity" (HOME only), "rlimits", "scheduling", "umask", "capabilities" + "identity",
//!     "cwd", "no-new-privs": exactly as steps 14 to 18 of a container (the cwd is never
//!     created).
//!
//! Then, when a pid namespace was joined (every exec into a container with one, and a create
//! that shares another's), the caller clones the process that is born inside it ("spawn", in the
//! zygote) and only that process goes on. `finish` runs in the process that will exec:
//! "session" (setsid, always: no container process may share the agent's process group), then
//! with a terminal "controlling-terminal" (TIOCSCTTY on the pty slave; in this process, since a
//! session whose leader exits would lose its terminal). Then (in `exec`, after the fifo for a container) "exec": PATH lookup
//! inside the new root, every fd above 2 marked close-on-exec, the exec's test pause if any,
//! "seccomp" with no_new_privs (right before execve, so none of our code runs under the filter),
//! execve with exactly the configured environment.

use crate::steps::{Kernel, Steps};
use crate::terminal::Console;
use crate::{hooks, mounts, namespaces, userns};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;
use wire::zygote::{ContainerConfig, ExecConfig, NamespaceKind, ProcessConfig};

pub use crate::error::{JailError, Step};
pub use crate::process::Prepared;

/// Builds the jail in the documented order. `join` holds the fds of the namespaces to join
/// (same order as the config's `join: true` entries, plus the warm pool's). Must run in the
/// freshly cloned child, as root, with stdio already in place on 0, 1 and 2.
/// `runtime_hooks` is called at the hooks' point when the config has `prestart` or
/// `createRuntime` hooks: it hands over to the agent, which runs them, and returns once it may
/// go on.
pub fn prepare(
    cfg: &ContainerConfig,
    join: &[(NamespaceKind, BorrowedFd<'_>)],
    runtime_hooks: &mut dyn FnMut() -> Result<(), JailError>,
) -> Result<Prepared, JailError> {
    prepare_with(&mut Kernel, cfg, join, runtime_hooks)
}

/// `prepare`'s order, over any `Steps` (the kernel's, or a test's recording double).
pub(crate) fn prepare_with<S: Steps>(
    s: &mut S,
    cfg: &ContainerConfig,
    join: &[(NamespaceKind, BorrowedFd<'_>)],
    runtime_hooks: &mut dyn FnMut() -> Result<(), JailError>,
) -> Result<Prepared, JailError> {
    let mut prepared = Prepared::new(&cfg.process)?;
    let userns = userns::in_use(cfg);
    if userns {
        s.become_root_in_userns()?;
        s.unshare_in_userns(cfg)?;
    } else {
        s.oom_score_adj(cfg.oom_score_adj)?;
        s.join_cgroups(&cfg.cgroup_procs)?;
    }
    s.enter_namespaces(cfg, join)?;
    s.loopback(cfg)?;
    s.propagation(cfg.rootfs_propagation, &cfg.rootfs)?;
    let root = s.bind_rootfs(&cfg.rootfs)?;
    let ctx = mounts::MountContext {
        cgroupns: namespaces::has(cfg, NamespaceKind::Cgroup),
        joined_pid_ns: join
            .iter()
            .find(|(kind, _)| *kind == NamespaceKind::Pid)
            .map(|(_, fd)| fd.as_raw_fd()),
    };
    s.mount_all(&root, &cfg.mounts, ctx)?;
    s.devices(&root, cfg)?;
    run_create_hooks(s, cfg, runtime_hooks)?;
    s.pivot(root)?;
    s.root_propagation(cfg.rootfs_propagation)?;
    s.create_cwd(&cfg.process.cwd)?;
    if cfg.process.terminal {
        let master = s.terminal(cfg.console_size, Console::BindDevConsole)?;
        prepared.set_console(master);
    }
    if cfg.readonly_root {
        s.readonly_root()?;
    }
    s.names(cfg)?;
    s.sysctls(&cfg.sysctl)?;
    s.readonly_paths(&cfg.readonly_paths)?;
    s.masked_paths(&cfg.masked_paths)?;
    become_process(s, &cfg.process, &mut prepared, !userns)?;
    Ok(prepared)
}

/// Step "hooks" of a create: the runtime's (`prestart`, `createRuntime`, by the agent through
/// `runtime_hooks`), then `createContainer`, run from here: in the container's namespaces,
/// before pivot_root, so that their paths resolve on the host (runc's order).
fn run_create_hooks<S: Steps>(
    s: &mut S,
    cfg: &ContainerConfig,
    runtime_hooks: &mut dyn FnMut() -> Result<(), JailError>,
) -> Result<(), JailError> {
    if cfg.hooks.runtime_hooks_due {
        runtime_hooks()?;
    }
    let hooks = &cfg.hooks.create_container;
    if !hooks.is_empty() {
        let state = hooks::state_json(&cfg.hooks.state, "creating", Some(own_pid()));
        s.run_hooks("createContainer", hooks, &state)?;
    }
    Ok(())
}

/// Step "hooks" of a start: `startContainer`, after the exec.fifo byte and before the process,
/// in the container (paths resolve inside it), as the container's user (runc's order).
pub fn run_start_hooks(cfg: &ContainerConfig) -> Result<(), JailError> {
    let hooks = &cfg.hooks.start_container;
    if hooks.is_empty() {
        return Ok(());
    }
    let state = hooks::state_json(&cfg.hooks.state, "created", Some(own_pid()));
    Kernel.run_hooks("startContainer", hooks, &state)
}

/// Our pid as the hooks see it (they run in our pid namespace).
fn own_pid() -> i32 {
    nix::unistd::getpid().as_raw()
}

/// The steps of a container with a user namespace that need the host's privileges, run by the
/// child outside that namespace before it clones the process born inside it (which then runs
/// `prepare` with only the pid namespace left in `join`): "oom-score-adj", "cgroup", "rlimits"
/// (raising a hard limit takes CAP_SYS_RESOURCE in the initial user namespace; runc sets them
/// from outside too) and "namespaces": setns into the joined ones but pid, user first, so
/// that what is created next is owned by the joined user namespace.
pub fn prepare_outside_userns(
    cfg: &ContainerConfig,
    join: &[(NamespaceKind, BorrowedFd<'_>)],
) -> Result<(), JailError> {
    prepare_outside_userns_with(&mut Kernel, cfg, join)
}

pub(crate) fn prepare_outside_userns_with<S: Steps>(
    s: &mut S,
    cfg: &ContainerConfig,
    join: &[(NamespaceKind, BorrowedFd<'_>)],
) -> Result<(), JailError> {
    s.oom_score_adj(cfg.oom_score_adj)?;
    s.join_cgroups(&cfg.cgroup_procs)?;
    s.rlimits(&cfg.process.rlimits)?;
    s.join_namespaces(join)
}

/// Joins the running container in the documented order. Must run in a single-threaded child
/// that the zygote cloned in its own pid namespace, as root in the initial user
/// namespace, with stdio already on 0, 1 and 2. `init_pidfd` is a pidfd of the container's init.
pub fn prepare_exec(cfg: &ExecConfig, init_pidfd: BorrowedFd<'_>) -> Result<Prepared, JailError> {
    prepare_exec_with(&mut Kernel, cfg, init_pidfd)
}

pub(crate) fn prepare_exec_with<S: Steps>(
    s: &mut S,
    cfg: &ExecConfig,
    init_pidfd: BorrowedFd<'_>,
) -> Result<Prepared, JailError> {
    s.non_dumpable()?;
    s.oom_score_adj(cfg.oom_score_adj)?;
    let mut prepared = Prepared::new(&cfg.process)?;
    prepared.set_pause_before_exec(Duration::from_millis(cfg.test_pause_before_exec_ms.into()));
    s.join_cgroups(&cfg.cgroup_procs)?;
    // Inside a user namespace the hard limits could no longer be raised (see
    // `prepare_outside_userns`): set them first.
    let userns = cfg.namespaces.contains(&NamespaceKind::User);
    if userns {
        s.rlimits(&cfg.process.rlimits)?;
    }
    s.join_container(&cfg.namespaces, init_pidfd)?;
    if userns {
        s.become_root_in_userns()?;
    }
    if cfg.process.terminal {
        let master = s.terminal(cfg.console_size, Console::StdioOnly)?;
        prepared.set_console(master);
    }
    become_process(s, &cfg.process, &mut prepared, !userns)?;
    Ok(prepared)
}

/// The process's own settings, identical for a container and an exec: "rlimits", "scheduling",
/// "umask", "capabilities" + "identity", "cwd", "no-new-privs"; before all of them, HOME from
/// the container's /etc/passwd when the environment has none (step "identity").
/// `rlimits`: false when they were set before entering a user namespace.
fn become_process<S: Steps>(
    s: &mut S,
    p: &ProcessConfig,
    prepared: &mut Prepared,
    rlimits: bool,
) -> Result<(), JailError> {
    // First: a seccomp profile loaded below may forbid the open, and rlimits may be tight.
    if prepared.lacks_home() {
        let home = s.home_of(p.uid)?;
        prepared.set_home(&home)?;
    }
    if rlimits {
        s.rlimits(&p.rlimits)?;
    }
    s.scheduling(p)?;
    s.umask(p.umask)?;
    if let (Some(filter), false) = (&p.seccomp, p.no_new_privileges) {
        // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: now, while we have it
        // (runc does the same). With no_new_privs it is loaded right before execve instead.
        s.seccomp(filter)?;
    }
    let caps = &p.capabilities;
    s.drop_bounding(caps.bounding)?;
    s.keep_caps(true)?;
    s.switch_user(p)?;
    s.keep_caps(false)?;
    s.capabilities(caps)?;
    s.change_dir(&p.cwd)?;
    s.no_new_privs(p.no_new_privileges)
}

/// `lo` up in the calling process's network namespace: for the zygote's warm pool, which brings
/// up each pooled namespace's loopback when it makes it, so that the "loopback" step of a
/// launch finds it up (one SIOCGIFFLAGS) instead of paying for it (around a millisecond of
/// kernel work, routes and addresses) on the launch path.
pub fn loopback_up() -> Result<(), nix::errno::Errno> {
    crate::sys::set_link_up("lo")
}

/// The steps of the process that will exec, after any spawn: "session", then
/// "controlling-terminal" with a terminal. Every container and exec process leads a session of
/// its own, as with runc: left in the agent's process group, a container process could signal
/// the zygote and the agent with kill(0, sig), which reaches a process group across pid
/// namespaces.
pub fn finish(prepared: &Prepared) -> Result<(), JailError> {
    finish_with(&mut Kernel, prepared)
}

pub(crate) fn finish_with<S: Steps>(s: &mut S, prepared: &Prepared) -> Result<(), JailError> {
    s.session()?;
    if prepared.has_terminal() {
        s.controlling_terminal()?;
    }
    Ok(())
}

/// After the exec.fifo byte (for an exec: right after `prepare_exec`): resolves args[0], marks
/// every fd above 2 close-on-exec, sleeps the exec's test pause if any, and execve's. Returns
/// only on failure (step "exec").
pub fn exec(prepared: &Prepared) -> JailError {
    crate::process::exec(prepared)
}

#[cfg(test)]
mod exec_tests;
#[cfg(test)]
mod order_tests;
#[cfg(test)]
mod tests;
