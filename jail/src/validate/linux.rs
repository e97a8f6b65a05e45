//! The `linux` section of the spec, minus mounts and cgroups: namespaces, identity, devices,
//! masked and read-only paths, sysctls and rootfs propagation.

use super::{check_path_nul, check_str_nul, is_clean_absolute, ValidateError};
use oci_spec::runtime::{Linux, LinuxDevice, LinuxDeviceType, LinuxNamespaceType, Spec};
use std::collections::HashSet;
use std::path::PathBuf;
use wire::zygote::{Device, DeviceKind, Namespace, NamespaceKind};

/// The converted `linux` section (and the hostname, which depends on the namespaces).
pub(super) struct LinuxConfig {
    pub namespaces: Vec<Namespace>,
    pub join: Vec<(NamespaceKind, PathBuf)>,
    pub hostname: Option<String>,
    pub domainname: Option<String>,
    pub rootfs_propagation: u64,
    pub devices: Vec<Device>,
    pub masked_paths: Vec<PathBuf>,
    pub readonly_paths: Vec<PathBuf>,
    pub sysctl: Vec<(String, String)>,
}

pub(super) fn convert(spec: &Spec) -> Result<LinuxConfig, ValidateError> {
    let linux = spec.linux().as_ref();
    let (namespaces, join) = namespaces(linux)?;
    let has = |kind| namespaces.iter().any(|ns: &Namespace| ns.kind == kind);
    // pivot_root in the zygote's mount namespace would take the agent's root away; the child
    // refuses it too, but only after a clone.
    if !has(NamespaceKind::Mount) {
        return Err(ValidateError::MountNamespaceRequired);
    }
    let hostname = uts_name("hostname", spec.hostname(), has(NamespaceKind::Uts))?;
    let domainname = uts_name("domainname", spec.domainname(), has(NamespaceKind::Uts))?;
    let sysctl = sysctl(linux, &has)?;
    Ok(LinuxConfig {
        rootfs_propagation: rootfs_propagation(
            linux.and_then(|l| l.rootfs_propagation().as_deref()),
        )?,
        devices: devices(
            linux
                .and_then(|l| l.devices().as_deref())
                .unwrap_or_default(),
        )?,
        masked_paths: absolute_paths(
            "linux.maskedPaths",
            linux.and_then(|l| l.masked_paths().as_deref()),
        )?,
        readonly_paths: absolute_paths(
            "linux.readonlyPaths",
            linux.and_then(|l| l.readonly_paths().as_deref()),
        )?,
        namespaces,
        join,
        hostname,
        domainname,
        sysctl,
    })
}

type Namespaces = (Vec<Namespace>, Vec<(NamespaceKind, PathBuf)>);

fn namespaces(linux: Option<&Linux>) -> Result<Namespaces, ValidateError> {
    let mut seen = HashSet::new();
    let mut namespaces = Vec::new();
    let mut join = Vec::new();
    for ns in linux
        .and_then(|l| l.namespaces().as_deref())
        .unwrap_or_default()
    {
        let kind = match ns.typ() {
            LinuxNamespaceType::Pid => NamespaceKind::Pid,
            LinuxNamespaceType::Network => NamespaceKind::Network,
            LinuxNamespaceType::Mount => NamespaceKind::Mount,
            LinuxNamespaceType::Ipc => NamespaceKind::Ipc,
            LinuxNamespaceType::Uts => NamespaceKind::Uts,
            LinuxNamespaceType::Cgroup => NamespaceKind::Cgroup,
            LinuxNamespaceType::User => NamespaceKind::User,
            other => return Err(ValidateError::UnsupportedNamespace(other.to_string())),
        };
        if !seen.insert(kind) {
            return Err(ValidateError::DuplicateNamespace(ns.typ().to_string()));
        }
        // An empty path is how some tools spell "no path" (runc treats it the same way).
        let path = ns.path().as_ref().filter(|p| !p.as_os_str().is_empty());
        if let Some(path) = path {
            check_path_nul("linux.namespaces path", path)?;
            if !path.is_absolute() {
                let kind = ns.typ().to_string();
                return Err(ValidateError::RelativeNamespacePath {
                    kind,
                    path: path.clone(),
                });
            }
            join.push((kind, path.clone()));
        }
        namespaces.push(Namespace {
            kind,
            join: path.is_some(),
        });
    }
    Ok((namespaces, join))
}

/// Like runc, refuses to set a hostname or domainname without a uts namespace of the
/// container's own (new or joined): it would rename the host.
fn uts_name(
    field: &'static str,
    name: &Option<String>,
    has_uts: bool,
) -> Result<Option<String>, ValidateError> {
    let Some(name) = name.as_ref().filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    check_str_nul(field, name)?;
    if !has_uts {
        return Err(ValidateError::UtsNamespaceRequired(field));
    }
    Ok(Some(name.clone()))
}

fn rootfs_propagation(value: Option<&str>) -> Result<u64, ValidateError> {
    let flags = match value.unwrap_or("") {
        "" => libc::MS_REC | libc::MS_SLAVE,
        "private" => libc::MS_PRIVATE,
        "rprivate" => libc::MS_REC | libc::MS_PRIVATE,
        "slave" => libc::MS_SLAVE,
        "rslave" => libc::MS_REC | libc::MS_SLAVE,
        "shared" => libc::MS_SHARED,
        "rshared" => libc::MS_REC | libc::MS_SHARED,
        "unbindable" => libc::MS_UNBINDABLE,
        "runbindable" => libc::MS_REC | libc::MS_UNBINDABLE,
        other => return Err(ValidateError::RootfsPropagation(other.to_owned())),
    };
    Ok(super::ms(flags))
}

/// The devices every OCI container gets (runtime-spec, "Default Devices"); /dev/ptmx, /dev/fd
/// and the stdio links are the child's job.
fn default_devices() -> Vec<Device> {
    // runc's order: in a user namespace, where they are bind mounts, it shows in mountinfo.
    [
        ("null", 1, 3),
        ("random", 1, 8),
        ("full", 1, 7),
        ("tty", 5, 0),
        ("zero", 1, 5),
        ("urandom", 1, 9),
    ]
    .into_iter()
    .map(|(name, major, minor)| Device {
        path: PathBuf::from("/dev").join(name),
        kind: DeviceKind::Char,
        major,
        minor,
        mode: 0o666,
        uid: 0,
        gid: 0,
    })
    .collect()
}

/// The defaults (unless the spec lists the same path, which wins), then the spec's devices.
fn devices(spec_devices: &[LinuxDevice]) -> Result<Vec<Device>, ValidateError> {
    let mut converted = Vec::with_capacity(spec_devices.len());
    let mut seen = HashSet::new();
    for dev in spec_devices {
        let device = device(dev)?;
        if !seen.insert(device.path.clone()) {
            return Err(ValidateError::DuplicateDevice(device.path));
        }
        converted.push(device);
    }
    let mut all: Vec<Device> = default_devices()
        .into_iter()
        .filter(|d| !seen.contains(&d.path))
        .collect();
    all.extend(converted);
    Ok(all)
}

fn device(dev: &LinuxDevice) -> Result<Device, ValidateError> {
    let path = dev.path();
    check_path_nul("linux.devices path", path)?;
    if !is_clean_absolute(path) {
        return Err(ValidateError::DevicePath(path.clone()));
    }
    let kind = match dev.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => DeviceKind::Char,
        LinuxDeviceType::B => DeviceKind::Block,
        LinuxDeviceType::P => DeviceKind::Fifo,
        other => {
            let kind = other.as_str().to_owned();
            return Err(ValidateError::DeviceType {
                path: path.clone(),
                kind,
            });
        }
    };
    let (Ok(major), Ok(minor)) = (u64::try_from(dev.major()), u64::try_from(dev.minor())) else {
        let (major, minor) = (dev.major(), dev.minor());
        return Err(ValidateError::DeviceNumber {
            path: path.clone(),
            major,
            minor,
        });
    };
    // A fifo has no device number; keeping a stray one would only confuse the debug dump.
    let (major, minor) = if kind == DeviceKind::Fifo {
        (0, 0)
    } else {
        (major, minor)
    };
    Ok(Device {
        path: path.clone(),
        kind,
        major,
        minor,
        // Only the permission bits: the child adds the file type from `kind`.
        mode: dev.file_mode().unwrap_or(0o666) & 0o7777,
        uid: dev.uid().unwrap_or(0),
        gid: dev.gid().unwrap_or(0),
    })
}

fn absolute_paths(
    field: &'static str,
    paths: Option<&[String]>,
) -> Result<Vec<PathBuf>, ValidateError> {
    paths
        .unwrap_or_default()
        .iter()
        .map(|p| {
            check_str_nul(field, p)?;
            let path = PathBuf::from(p);
            if !path.is_absolute() {
                return Err(ValidateError::RelativePath { field, path });
            }
            Ok(path)
        })
        .collect()
}

/// runc's rule: only sysctls that live in a namespace the container has of its own may be set.
fn sysctl(
    linux: Option<&Linux>,
    has: &dyn Fn(NamespaceKind) -> bool,
) -> Result<Vec<(String, String)>, ValidateError> {
    let mut out = Vec::new();
    for (key, value) in linux
        .and_then(|l| l.sysctl().as_ref())
        .into_iter()
        .flatten()
    {
        check_str_nul("linux.sysctl key", key)?;
        check_str_nul(&format!("linux.sysctl {key:?} value"), value)?;
        // Keys may be spelled with '/' (as under /proc/sys); an empty component would also
        // be how a ".." tries to climb out of /proc/sys.
        let dotted = key.replace('/', ".");
        if dotted.split('.').any(str::is_empty) {
            return Err(ValidateError::SysctlKey(key.clone()));
        }
        let (kind, namespace) = sysctl_namespace(&dotted)
            .ok_or_else(|| ValidateError::SysctlNotNamespaced(key.clone()))?;
        if !has(kind) {
            return Err(ValidateError::SysctlNamespaceMissing {
                key: key.clone(),
                namespace,
            });
        }
        out.push((key.clone(), value.clone()));
    }
    out.sort();
    Ok(out)
}

fn sysctl_namespace(key: &str) -> Option<(NamespaceKind, &'static str)> {
    const IPC: [&str; 8] = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    if IPC.contains(&key) || key.starts_with("fs.mqueue.") {
        Some((NamespaceKind::Ipc, "ipc"))
    } else if key.starts_with("net.") {
        Some((NamespaceKind::Network, "network"))
    } else if key == "kernel.hostname" || key == "kernel.domainname" {
        Some((NamespaceKind::Uts, "uts"))
    } else {
        None
    }
}
