//! Spec validation, owned by the agent side: turns an OCI runtime spec into the plain-data
//! `ContainerConfig` the child builds its jail from, plus the cgroup path and limits the agent
//! applies before the child exists. Anything this runtime cannot honour is refused here, with an
//! error naming the offending field, so that nothing is silently dropped at launch time and the
//! child never has to second-guess its config.

#[cfg(test)]
mod fidelity_tests;
mod hooks;
mod linux;
mod mounts;
mod resources;
#[cfg(test)]
mod tests;
mod userns;

pub use hooks::{RuntimeHooks, MAX_PER_KIND as MAX_HOOKS_PER_KIND};
pub use resources::{refuse_unified, update as update_resources, DEFAULT_CGROUP_PARENT};

use oci_spec::runtime::{Process, Spec};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use wire::zygote::{Capabilities, ContainerConfig, NamespaceKind, ProcessConfig, Rlimit};

/// The outcome of a successful validation: everything the agent needs to launch the container.
#[derive(Debug, Clone, PartialEq)]
pub struct Validated {
    /// The launch config; `cgroup_procs` is left empty: the agent fills it after creating the
    /// cgroup.
    pub config: ContainerConfig,
    /// Relative to the cgroup root(s), e.g. "zagent/<id>".
    pub cgroup_path: PathBuf,
    pub resources: crate::cgroups::Resources,
    /// Namespaces to join, in the order of the `config.namespaces` entries with `join: true`
    /// (the order their fds travel in a launch request).
    pub join_namespaces: Vec<(NamespaceKind, PathBuf)>,
    /// The hooks the agent runs (the child's are in `config.hooks`).
    pub hooks: RuntimeHooks,
}

/// Why a spec was refused. Every variant is an invalid argument from the user's point of view.
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    #[error("container id {0:?} is invalid: use 1 to 255 letters, digits, '_', '+', '-' or '.'")]
    InvalidId(String),
    #[error("process is missing")]
    MissingProcess,
    #[error("process.args is empty, or its first entry (the program) is")]
    EmptyArgs,
    #[error("process.cwd {0:?} is not an absolute path")]
    RelativeCwd(PathBuf),
    #[error("process.cwd {0:?} points into a /proc/<pid>/fd directory")]
    CwdInProcFd(PathBuf),
    #[error("{field} contains a NUL byte")]
    NulByte { field: String },
    #[error("{field} is not valid UTF-8")]
    NotUtf8 { field: String },
    #[error("process.env[{index}] {value:?} {reason}")]
    EnvEntry {
        index: usize,
        value: String,
        reason: &'static str,
    },
    #[error("process.capabilities: unknown capability {0:?}")]
    UnknownCapability(String),
    #[error("process.rlimits: {resource} soft limit {soft} is above its hard limit {hard}")]
    RlimitSoftAboveHard {
        resource: String,
        soft: u64,
        hard: u64,
    },
    #[error("process.oomScoreAdj {0} is outside -1000..=1000")]
    OomScoreAdj(i32),
    #[error("{field} = {value} is (uid_t)-1, which the kernel reads as \"unchanged\" (root)")]
    ReservedId { field: &'static str, value: u32 },
    #[error("root is missing")]
    MissingRoot,
    #[error("root.path {0:?} is not an absolute path")]
    RelativeRoot(PathBuf),
    #[error("root.path {path:?} cannot be accessed: {source}")]
    RootNotFound {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("root.path {0:?} is not a directory")]
    RootNotDirectory(PathBuf),
    #[error("linux.namespaces: {0} namespaces are not supported")]
    UnsupportedNamespace(String),
    #[error("linux.namespaces: {0} is listed more than once")]
    DuplicateNamespace(String),
    #[error("linux.namespaces: the {kind} namespace path {path:?} is not an absolute path")]
    RelativeNamespacePath { kind: String, path: PathBuf },
    #[error("linux.namespaces has no mount namespace: the rootfs is set up inside one")]
    MountNamespaceRequired,
    #[error("{field} {reason}")]
    IdMapping { field: &'static str, reason: String },
    #[error("linux.seccomp: {0}")]
    Seccomp(#[from] crate::seccomp::SeccompError),
    #[error("{field}: {reason}")]
    Hook { field: String, reason: String },
    #[error("{0} is set but the container has no uts namespace")]
    UtsNamespaceRequired(&'static str),
    #[error("linux.rootfsPropagation {0:?} is not one of private, rprivate, slave, rslave, shared, rshared, unbindable, runbindable")]
    RootfsPropagation(String),
    #[error("linux.sysctl key {0:?} is malformed")]
    SysctlKey(String),
    #[error("linux.sysctl {0:?} is not namespaced: setting it would change the host")]
    SysctlNotNamespaced(String),
    #[error("linux.sysctl {key:?} needs a {namespace} namespace")]
    SysctlNamespaceMissing {
        key: String,
        namespace: &'static str,
    },
    #[error("mounts[{index}].destination {destination:?} must be an absolute path without '..'")]
    MountDestination { index: usize, destination: PathBuf },
    #[error("mounts[{index}] ({destination:?}) has no type")]
    MountType { index: usize, destination: PathBuf },
    #[error("mounts[{index}] ({destination:?}) is a bind mount but its source {host_path:?} is not an absolute host path")]
    BindSource {
        index: usize,
        destination: PathBuf,
        host_path: Option<PathBuf>,
    },
    #[error("mounts[{index}] ({destination:?}): option {option:?} is not supported")]
    MountOption {
        index: usize,
        destination: PathBuf,
        option: String,
    },
    #[error("mounts[{index}] ({destination:?}): id-mapped mounts (uidMappings/gidMappings) are not supported")]
    MountIdMapping { index: usize, destination: PathBuf },
    #[error("linux.devices path {0:?} must be an absolute path without '..'")]
    DevicePath(PathBuf),
    #[error("linux.devices {path:?}: type {kind:?} cannot be created (use c, u, b or p)")]
    DeviceType { path: PathBuf, kind: String },
    #[error("linux.devices {path:?}: major {major} / minor {minor} must not be negative")]
    DeviceNumber {
        path: PathBuf,
        major: i64,
        minor: i64,
    },
    #[error("linux.devices {0:?} is listed more than once")]
    DuplicateDevice(PathBuf),
    #[error("{field} entry {path:?} is not an absolute path")]
    RelativePath { field: &'static str, path: PathBuf },
    #[error("linux.cgroupsPath {0:?} uses the systemd \"slice:prefix:name\" form, which is not supported")]
    SystemdCgroupsPath(PathBuf),
    #[error("linux.cgroupsPath {path:?} {reason}")]
    CgroupsPath { path: PathBuf, reason: &'static str },
    #[error("linux.resources.unified ({0}) is not supported: raw cgroup v2 files are not written (and a cgroup v1 host has none)")]
    Unified(String),
    #[error("linux.resources.{field} = {value}: {reason}")]
    Resource {
        field: &'static str,
        value: String,
        reason: &'static str,
    },
}

/// Checks `spec` for container `id` and converts it into the launch config (compiling its
/// seccomp profile, if any, every time: see `validate_with`).
pub fn validate(id: &str, spec: &Spec) -> Result<Validated, ValidateError> {
    validate_with(id, spec, &crate::seccomp::FilterCache::with_capacity(0))
}

/// `validate`, taking a compiled seccomp filter from `filters` when it has the spec's profile.
pub fn validate_with(
    id: &str,
    spec: &Spec,
    filters: &crate::seccomp::FilterCache,
) -> Result<Validated, ValidateError> {
    check_id(id)?;
    let process = spec
        .process()
        .as_ref()
        .ok_or(ValidateError::MissingProcess)?;
    let (rootfs, readonly_root) = root(spec)?;
    let linux = linux::convert(spec)?;
    let id_maps = userns::maps(spec.linux().as_ref(), &linux.namespaces)?;
    let (child_hooks, runtime_hooks) = hooks::convert(id, spec, &rootfs)?;
    let (cgroup_path, resources) = resources::convert(id, spec.linux().as_ref())?;
    let config = ContainerConfig {
        id: id.to_owned(),
        rootfs,
        readonly_root,
        rootfs_propagation: linux.rootfs_propagation,
        hostname: linux.hostname,
        domainname: linux.domainname,
        namespaces: linux.namespaces,
        mounts: mounts::convert(spec.mounts().as_deref().unwrap_or_default())?,
        devices: linux.devices,
        masked_paths: linux.masked_paths,
        readonly_paths: linux.readonly_paths,
        sysctl: linux.sysctl,
        cgroup_procs: Vec::new(),
        oom_score_adj: oom_score_adj(process)?,
        process: ProcessConfig {
            seccomp: seccomp(spec, filters)?,
            ..process_config(process)?
        },
        console_size: console_size(process),
        uid_mappings: id_maps.0.clone(),
        gid_mappings: id_maps.1.clone(),
        hooks: child_hooks,
    };
    userns::check_process_ids(&id_maps, &config.process)?;
    Ok(Validated {
        config,
        cgroup_path,
        resources,
        join_namespaces: linux.join,
        hooks: runtime_hooks,
    })
}

/// The container id rule, the one the agent applies too (to container ids before reserving
/// them, to exec ids, to state dir names at recovery): the id names the default cgroup and the
/// state dir, so it must be a single safe path component (runc's characters) that fits a file
/// name (NAME_MAX, 255 bytes).
pub fn check_id(id: &str) -> Result<(), ValidateError> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-' | '.');
    if id.is_empty() || id.len() > 255 || id == "." || id == ".." || !id.chars().all(ok_char) {
        return Err(ValidateError::InvalidId(id.to_owned()));
    }
    Ok(())
}

fn root(spec: &Spec) -> Result<(PathBuf, bool), ValidateError> {
    let root = spec.root().as_ref().ok_or(ValidateError::MissingRoot)?;
    let path = root.path();
    check_path_nul("root.path", path)?;
    if !path.is_absolute() {
        return Err(ValidateError::RelativeRoot(path.clone()));
    }
    let meta = std::fs::metadata(path).map_err(|source| ValidateError::RootNotFound {
        path: path.clone(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(ValidateError::RootNotDirectory(path.clone()));
    }
    Ok((path.clone(), root.readonly().unwrap_or(false)))
}

/// Always a value to write: left alone, the container would inherit the zygote's (the agent's)
/// score, and the Kata protocol cannot tell an explicit 0 from an absent one anyway.
fn oom_score_adj(process: &Process) -> Result<Option<i32>, ValidateError> {
    match process.oom_score_adj().unwrap_or(0) {
        v if !(-1000..=1000).contains(&v) => Err(ValidateError::OomScoreAdj(v)),
        v => Ok(Some(v)),
    }
}

/// The spec's initial terminal size as (rows, columns), when it gives one.
pub fn console_size(process: &Process) -> Option<(u16, u16)> {
    let b = process.console_size()?;
    let clamp = |v: u64| u16::try_from(v).unwrap_or(u16::MAX);
    Some((clamp(b.height()), clamp(b.width())))
}

/// `linux.seccomp` compiled to BPF, if the spec has one.
fn seccomp(
    spec: &Spec,
    filters: &crate::seccomp::FilterCache,
) -> Result<Option<wire::zygote::SeccompFilter>, ValidateError> {
    let profile = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref());
    Ok(profile.map(|p| filters.get(p)).transpose()?)
}

/// Checks one OCI process (a container's, or an exec's) and converts it.
pub fn process_config(process: &Process) -> Result<ProcessConfig, ValidateError> {
    let args = process.args().clone().unwrap_or_default();
    // An empty program would only fail in the child, at `Prepared::new`, after the namespaces
    // and the cgroup were made for it: refuse it here like no args at all (found by fuzzing).
    if args.first().is_none_or(String::is_empty) {
        return Err(ValidateError::EmptyArgs);
    }
    for (i, arg) in args.iter().enumerate() {
        check_str_nul(&format!("process.args[{i}]"), arg)?;
    }
    let env = process.env().clone().unwrap_or_default();
    for (i, var) in env.iter().enumerate() {
        check_str_nul(&format!("process.env[{i}]"), var)?;
        check_env_entry(i, var)?;
    }
    let user = process.user();
    check_ids(user)?;
    Ok(ProcessConfig {
        args,
        env,
        cwd: cwd(process.cwd())?,
        uid: user.uid(),
        gid: user.gid(),
        additional_gids: user.additional_gids().clone().unwrap_or_default(),
        umask: user.umask(),
        terminal: process.terminal().unwrap_or(false),
        capabilities: capabilities(process.capabilities().as_ref())?,
        rlimits: rlimits(process.rlimits().as_deref().unwrap_or_default())?,
        no_new_privileges: process.no_new_privileges().unwrap_or(false),
        seccomp: None,
    })
}

/// runc's rule: every entry is NAME=VALUE with a non-empty NAME. An entry without '=' would
/// reach execve as a string the program's getenv never finds.
fn check_env_entry(index: usize, var: &str) -> Result<(), ValidateError> {
    let reason = match var.split_once('=') {
        None => "has no '=' (use NAME=VALUE)",
        Some(("", _)) => "has an empty name",
        Some(_) => return Ok(()),
    };
    Err(ValidateError::EnvEntry {
        index,
        value: var.to_owned(),
        reason,
    })
}

/// `(uid_t)-1` and `(gid_t)-1` mean "leave unchanged" to setresuid/setresgid/setgroups, so a
/// process asking for id 4294967295 would keep the zygote's root: refuse it outright.
fn check_ids(user: &oci_spec::runtime::User) -> Result<(), ValidateError> {
    const UNCHANGED: u32 = u32::MAX;
    if user.uid() == UNCHANGED {
        return Err(ValidateError::ReservedId {
            field: "process.user.uid",
            value: UNCHANGED,
        });
    }
    if user.gid() == UNCHANGED {
        return Err(ValidateError::ReservedId {
            field: "process.user.gid",
            value: UNCHANGED,
        });
    }
    let extra = user.additional_gids().as_deref().unwrap_or_default();
    if extra.contains(&UNCHANGED) {
        let field = "process.user.additionalGids";
        return Err(ValidateError::ReservedId {
            field,
            value: UNCHANGED,
        });
    }
    Ok(())
}

fn cwd(cwd: &Path) -> Result<PathBuf, ValidateError> {
    if cwd.as_os_str().is_empty() {
        return Ok(PathBuf::from("/"));
    }
    check_path_nul("process.cwd", cwd)?;
    if !cwd.is_absolute() {
        return Err(ValidateError::RelativeCwd(cwd.to_owned()));
    }
    // A cwd inside /proc/<pid>/fd resolves to an fd the child may still hold open (the
    // CVE-2024-21626 escape): refuse the whole family, whatever the pid component says.
    let parts: Vec<Component> = cwd.components().take(4).collect();
    if let [Component::RootDir, Component::Normal(proc), _, Component::Normal(fd)] = parts[..] {
        if proc == "proc" && fd == "fd" {
            return Err(ValidateError::CwdInProcFd(cwd.to_owned()));
        }
    }
    Ok(cwd.to_owned())
}

fn capabilities(
    caps: Option<&oci_spec::runtime::LinuxCapabilities>,
) -> Result<Capabilities, ValidateError> {
    let Some(caps) = caps else {
        return Ok(Capabilities::default());
    };
    Ok(Capabilities {
        bounding: cap_mask(caps.bounding().as_ref())?,
        effective: cap_mask(caps.effective().as_ref())?,
        permitted: cap_mask(caps.permitted().as_ref())?,
        inheritable: cap_mask(caps.inheritable().as_ref())?,
        ambient: cap_mask(caps.ambient().as_ref())?,
    })
}

fn cap_mask(set: Option<&oci_spec::runtime::Capabilities>) -> Result<u64, ValidateError> {
    set.into_iter()
        .flatten()
        .try_fold(0u64, |mask, cap| Ok(mask | cap_bit(&format!("CAP_{cap}"))?))
}

/// Maps a kernel capability name ("CAP_SYS_ADMIN") to its bit. oci_spec already refuses names
/// it does not know; this catches the ones it knows but the caps crate (our numbering) does not.
pub(crate) fn cap_bit(name: &str) -> Result<u64, ValidateError> {
    name.parse::<caps::Capability>()
        .map(|cap| cap.bitmask())
        .map_err(|_| ValidateError::UnknownCapability(name.to_owned()))
}

fn rlimits(limits: &[oci_spec::runtime::PosixRlimit]) -> Result<Vec<Rlimit>, ValidateError> {
    limits
        .iter()
        .map(|limit| {
            if limit.soft() > limit.hard() {
                return Err(ValidateError::RlimitSoftAboveHard {
                    resource: limit.typ().to_string(),
                    soft: limit.soft(),
                    hard: limit.hard(),
                });
            }
            Ok(Rlimit {
                resource: rlimit_resource(limit.typ()),
                soft: limit.soft(),
                hard: limit.hard(),
            })
        })
        .collect()
}

// The libc constants are `__rlimit_resource_t` (u32) on glibc but c_int on musl.
#[allow(clippy::unnecessary_cast)]
fn rlimit_resource(typ: oci_spec::runtime::PosixRlimitType) -> u32 {
    use oci_spec::runtime::PosixRlimitType as T;
    (match typ {
        T::RlimitCpu => libc::RLIMIT_CPU,
        T::RlimitFsize => libc::RLIMIT_FSIZE,
        T::RlimitData => libc::RLIMIT_DATA,
        T::RlimitStack => libc::RLIMIT_STACK,
        T::RlimitCore => libc::RLIMIT_CORE,
        T::RlimitRss => libc::RLIMIT_RSS,
        T::RlimitNproc => libc::RLIMIT_NPROC,
        T::RlimitNofile => libc::RLIMIT_NOFILE,
        T::RlimitMemlock => libc::RLIMIT_MEMLOCK,
        T::RlimitAs => libc::RLIMIT_AS,
        T::RlimitLocks => libc::RLIMIT_LOCKS,
        T::RlimitSigpending => libc::RLIMIT_SIGPENDING,
        T::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        T::RlimitNice => libc::RLIMIT_NICE,
        T::RlimitRtprio => libc::RLIMIT_RTPRIO,
        T::RlimitRttime => libc::RLIMIT_RTTIME,
    }) as u32
}

/// `MS_*` flags as the config carries them.
// c_ulong is u64 only on 64-bit targets; the cast is there for the others.
#[allow(clippy::unnecessary_cast)]
pub(crate) const fn ms(flags: libc::c_ulong) -> u64 {
    flags as u64
}

/// Everything that ends up in a C string in the child must be free of NUL bytes, or the child
/// would fail far from the cause.
pub(crate) fn check_str_nul(field: &str, value: &str) -> Result<(), ValidateError> {
    if value.contains('\0') {
        return Err(ValidateError::NulByte {
            field: field.to_owned(),
        });
    }
    Ok(())
}

pub(crate) fn check_path_nul(field: &str, path: &Path) -> Result<(), ValidateError> {
    if path.as_os_str().as_bytes().contains(&0) {
        return Err(ValidateError::NulByte {
            field: field.to_owned(),
        });
    }
    Ok(())
}

/// Absolute and without any ".." component: a path that cannot climb out of wherever it is
/// resolved.
pub(crate) fn is_clean_absolute(path: &Path) -> bool {
    path.is_absolute() && !path.components().any(|c| c == Component::ParentDir)
}
