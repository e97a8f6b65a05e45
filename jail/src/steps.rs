//! The seam between the jail's order and its system calls. `init` decides which step comes
//! when; each step's kernel work is one method of `Steps`. `Kernel` is the real implementation
//! (each method calls the step's own module, which owns the syscalls); the recording double in
//! `init/order_tests.rs` lets the documented order, and what a failing step stops, be tested
//! without root and without touching the machine.
//!
//! A method per step, not per syscall: what has to hold is the order of the steps (the threat
//! model depends on it: nothing host-side left by pivot_root, identity after the mounts,
//! seccomp last), while what each step does with the kernel is tested as root against the real
//! one (a syscall double would only re-state the kernel's semantics, e.g. path resolution).

use crate::error::JailError;
use crate::mounts::{MountContext, Root};
use crate::terminal::Console;
use crate::{
    capabilities, devices, home, hooks, identity, mounts, namespaces, rlimits, rootfs, scheduling,
    seccomp, system, terminal, userns,
};
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use wire::zygote::{
    Capabilities, ContainerConfig, Hook, Mount, NamespaceKind, ProcessConfig, Rlimit, SeccompFilter,
};

type Result<T = ()> = std::result::Result<T, JailError>;

/// One method per step (or part of a step) of `init`; see there for why each comes where.
pub(crate) trait Steps {
    /// What `bind_rootfs` yields and the mount steps and the pivot take.
    type Root;

    fn non_dumpable(&mut self) -> Result;
    fn oom_score_adj(&mut self, value: Option<i32>) -> Result;
    fn join_cgroups(&mut self, procs: &[PathBuf]) -> Result;
    fn become_root_in_userns(&mut self) -> Result;
    fn unshare_in_userns(&mut self, cfg: &ContainerConfig) -> Result;
    fn enter_namespaces(
        &mut self,
        cfg: &ContainerConfig,
        join: &[(NamespaceKind, BorrowedFd<'_>)],
    ) -> Result;
    fn join_namespaces(&mut self, join: &[(NamespaceKind, BorrowedFd<'_>)]) -> Result;
    fn join_container(&mut self, kinds: &[NamespaceKind], init_pidfd: BorrowedFd<'_>) -> Result;
    fn loopback(&mut self, cfg: &ContainerConfig) -> Result;
    fn propagation(&mut self, propagation: u64, rootfs: &Path) -> Result;
    fn bind_rootfs(&mut self, rootfs: &Path) -> Result<Self::Root>;
    fn mount_all(&mut self, root: &Self::Root, mounts: &[Mount], ctx: MountContext) -> Result;
    fn devices(&mut self, root: &Self::Root, cfg: &ContainerConfig) -> Result;
    fn run_hooks(&mut self, kind: &str, hooks: &[Hook], state: &str) -> Result;
    fn pivot(&mut self, root: Self::Root) -> Result;
    fn root_propagation(&mut self, propagation: u64) -> Result;
    fn create_cwd(&mut self, cwd: &Path) -> Result;
    fn terminal(&mut self, size: Option<(u16, u16)>, console: Console) -> Result<OwnedFd>;
    fn readonly_root(&mut self) -> Result;
    fn names(&mut self, cfg: &ContainerConfig) -> Result;
    fn sysctls(&mut self, sysctls: &[(String, String)]) -> Result;
    fn readonly_paths(&mut self, paths: &[PathBuf]) -> Result;
    fn masked_paths(&mut self, paths: &[PathBuf]) -> Result;
    fn home_of(&mut self, uid: u32) -> Result<String>;
    fn rlimits(&mut self, limits: &[Rlimit]) -> Result;
    fn scheduling(&mut self, p: &ProcessConfig) -> Result;
    fn umask(&mut self, umask: Option<u32>) -> Result;
    fn seccomp(&mut self, filter: &SeccompFilter) -> Result;
    fn drop_bounding(&mut self, bounding: u64) -> Result;
    fn keep_caps(&mut self, keep: bool) -> Result;
    fn switch_user(&mut self, p: &ProcessConfig) -> Result;
    fn capabilities(&mut self, caps: &Capabilities) -> Result;
    fn change_dir(&mut self, cwd: &Path) -> Result;
    fn no_new_privs(&mut self, enabled: bool) -> Result;
    fn session(&mut self) -> Result;
    fn controlling_terminal(&mut self) -> Result;
}

/// The real steps, against the running kernel.
pub(crate) struct Kernel;

impl Steps for Kernel {
    type Root = Root;

    fn non_dumpable(&mut self) -> Result {
        capabilities::set_non_dumpable()
    }
    fn oom_score_adj(&mut self, value: Option<i32>) -> Result {
        system::set_oom_score_adj(value)
    }
    fn join_cgroups(&mut self, procs: &[PathBuf]) -> Result {
        namespaces::join_cgroups(procs)
    }
    fn become_root_in_userns(&mut self) -> Result {
        userns::become_root()
    }
    fn unshare_in_userns(&mut self, cfg: &ContainerConfig) -> Result {
        namespaces::unshare_in_userns(cfg)
    }
    fn enter_namespaces(
        &mut self,
        cfg: &ContainerConfig,
        join: &[(NamespaceKind, BorrowedFd<'_>)],
    ) -> Result {
        namespaces::enter(cfg, join)
    }
    fn join_namespaces(&mut self, join: &[(NamespaceKind, BorrowedFd<'_>)]) -> Result {
        namespaces::join_all(join)
    }
    fn join_container(&mut self, kinds: &[NamespaceKind], init_pidfd: BorrowedFd<'_>) -> Result {
        namespaces::join_container(kinds, init_pidfd)
    }
    fn loopback(&mut self, cfg: &ContainerConfig) -> Result {
        system::bring_up_loopback(cfg)
    }
    fn propagation(&mut self, propagation: u64, rootfs: &Path) -> Result {
        rootfs::set_propagation(propagation, rootfs)
    }
    fn bind_rootfs(&mut self, rootfs: &Path) -> Result<Root> {
        rootfs::bind_rootfs(rootfs)
    }
    fn mount_all(&mut self, root: &Root, list: &[Mount], ctx: MountContext) -> Result {
        mounts::mount_all(root, list, ctx)
    }
    fn devices(&mut self, root: &Root, cfg: &ContainerConfig) -> Result {
        devices::setup(root, cfg)
    }
    fn run_hooks(&mut self, kind: &str, list: &[Hook], state: &str) -> Result {
        hooks::run_all(kind, list, state)
    }
    fn pivot(&mut self, root: Root) -> Result {
        rootfs::pivot(root)
    }
    fn root_propagation(&mut self, propagation: u64) -> Result {
        rootfs::set_root_propagation(propagation)
    }
    fn create_cwd(&mut self, cwd: &Path) -> Result {
        identity::create_cwd(cwd)
    }
    fn terminal(&mut self, size: Option<(u16, u16)>, console: Console) -> Result<OwnedFd> {
        terminal::setup(size, console)
    }
    fn readonly_root(&mut self) -> Result {
        rootfs::make_root_readonly()
    }
    fn names(&mut self, cfg: &ContainerConfig) -> Result {
        system::set_names(cfg)
    }
    fn sysctls(&mut self, sysctls: &[(String, String)]) -> Result {
        system::set_sysctls(sysctls)
    }
    fn readonly_paths(&mut self, paths: &[PathBuf]) -> Result {
        rootfs::make_readonly(paths)
    }
    fn masked_paths(&mut self, paths: &[PathBuf]) -> Result {
        rootfs::mask(paths)
    }
    fn home_of(&mut self, uid: u32) -> Result<String> {
        home::home_of(uid)
    }
    fn rlimits(&mut self, limits: &[Rlimit]) -> Result {
        rlimits::apply(limits)
    }
    fn scheduling(&mut self, p: &ProcessConfig) -> Result {
        scheduling::apply(p)
    }
    fn umask(&mut self, umask: Option<u32>) -> Result {
        identity::set_umask(umask)
    }
    fn seccomp(&mut self, filter: &SeccompFilter) -> Result {
        seccomp::load(filter)
    }
    fn drop_bounding(&mut self, bounding: u64) -> Result {
        capabilities::drop_bounding(bounding)
    }
    fn keep_caps(&mut self, keep: bool) -> Result {
        capabilities::keep_across_setuid(keep)
    }
    fn switch_user(&mut self, p: &ProcessConfig) -> Result {
        identity::switch_user(p)
    }
    fn capabilities(&mut self, caps: &Capabilities) -> Result {
        capabilities::apply(caps)
    }
    fn change_dir(&mut self, cwd: &Path) -> Result {
        identity::change_dir(cwd)
    }
    fn no_new_privs(&mut self, enabled: bool) -> Result {
        capabilities::set_no_new_privs(enabled)
    }
    fn session(&mut self) -> Result {
        nix::unistd::setsid()
            .map(drop)
            .map_err(crate::error::Step::Session.err("setsid"))
    }
    fn controlling_terminal(&mut self) -> Result {
        terminal::make_controlling()
    }
}
