//! Per-container kernel settings: the loopback interface of a new network namespace (step
//! "loopback"), and, after pivot_root, hostname and domainname (step "hostname"), sysctls
//! ("sysctl"); oom_score_adj ("oom-score-adj") comes first of all. The /proc files are
//! opened only after checking that /proc really is a procfs, so that a rootfs that shadows /proc
//! cannot redirect the writes.

use crate::error::{JailError, Step};
use crate::namespaces;
use crate::sys;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::statfs::{fstatfs, PROC_SUPER_MAGIC};
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use wire::zygote::{ContainerConfig, NamespaceKind};

/// Step "hostname". Only in the container's own (new or joined) UTS namespace: otherwise this would
/// rename the host.
pub fn set_names(cfg: &ContainerConfig) -> Result<(), JailError> {
    let err = |what: String| move |errno| JailError::new(Step::Hostname, what, errno);
    let names = [("hostname", &cfg.hostname), ("domainname", &cfg.domainname)];
    for (which, value) in names {
        let Some(value) = value else { continue };
        if !namespaces::has(cfg, NamespaceKind::Uts) {
            return Err(err(format!("set {which} without a uts namespace"))(
                Errno::EINVAL,
            ));
        }
        let set = match which {
            "hostname" => nix::unistd::sethostname(value),
            _ => sys::setdomainname(value),
        };
        set.map_err(err(format!("set {which} to {value:?}")))?;
    }
    Ok(())
}

/// Step "loopback": `lo` up in a network namespace the container got new (from the clone or
/// from the zygote's warm pool: either way it is ours by now), so that 127.0.0.1 works, as
/// runc does for a network namespace without a path. A joined one is left as its owner set it.
pub fn bring_up_loopback(cfg: &ContainerConfig) -> Result<(), JailError> {
    if !namespaces::is_new(cfg, NamespaceKind::Network) {
        return Ok(());
    }
    sys::set_link_up("lo").map_err(Step::Loopback.err("bring the loopback interface up"))
}

/// An fd of /proc (the container's, after the pivot) that is verified to be a procfs.
fn proc_dir(sub: &str) -> Result<OwnedFd, Errno> {
    let fd = sys::open(Path::new(sub), OFlag::O_PATH | OFlag::O_DIRECTORY)?;
    if fstatfs(fd.as_fd())?.filesystem_type() != PROC_SUPER_MAGIC {
        return Err(Errno::EXDEV);
    }
    Ok(fd)
}

/// Writes `value` to `rel` under the procfs directory `dir`, never leaving it.
fn write_under(dir: &OwnedFd, rel: &Path, value: &str) -> Result<(), Errno> {
    let resolve = sys::RESOLVE_BENEATH | sys::RESOLVE_NO_SYMLINKS | sys::RESOLVE_NO_MAGICLINKS;
    let fd = sys::openat2(
        dir.as_fd(),
        rel,
        OFlag::O_WRONLY | OFlag::O_TRUNC,
        0,
        resolve,
    )?;
    std::fs::File::from(fd)
        .write_all(value.as_bytes())
        .map_err(|e| crate::error::errno_of(&e))
}

/// "net.ipv4.ip_forward" -> "net/ipv4/ip_forward". Dots become slashes, so no ".." survives.
pub fn sysctl_path(key: &str) -> PathBuf {
    PathBuf::from(key.replace('.', "/"))
}

/// Step "sysctl".
pub fn set_sysctls(sysctls: &[(String, String)]) -> Result<(), JailError> {
    if sysctls.is_empty() {
        return Ok(());
    }
    let err = |key: &str, value: &str| {
        let (key, value) = (key.to_string(), value.to_string());
        move |errno| JailError::new(Step::Sysctl, format!("set {} to {:?}", key, value), errno)
    };
    let (first_key, first_value) = &sysctls[0];
    let dir = proc_dir("/proc/sys").map_err(err(first_key, first_value))?;
    for (key, value) in sysctls {
        write_under(&dir, &sysctl_path(key), value).map_err(err(key, value))?;
    }
    Ok(())
}

/// Step "oom-score-adj".
pub fn set_oom_score_adj(value: Option<i32>) -> Result<(), JailError> {
    let Some(value) = value else { return Ok(()) };
    let err = |errno| {
        JailError::new(
            Step::OomScoreAdj,
            format!("write {} to /proc/self/oom_score_adj", value),
            errno,
        )
    };
    let dir = proc_dir("/proc/self").map_err(err)?;
    write_under(&dir, Path::new("oom_score_adj"), &value.to_string()).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysctl_keys_map_to_proc_sys_paths() {
        assert_eq!(
            sysctl_path("net.ipv4.ip_forward"),
            PathBuf::from("net/ipv4/ip_forward")
        );
        assert_eq!(sysctl_path("kernel/../x"), PathBuf::from("kernel///x"));
        assert!(!sysctl_path("..a..")
            .components()
            .any(|c| c == std::path::Component::ParentDir));
    }

    #[test]
    fn hostname_needs_a_uts_namespace() {
        let cfg = ContainerConfig {
            hostname: Some("x".into()),
            ..Default::default()
        };
        let e = set_names(&cfg).unwrap_err();
        assert_eq!((e.step(), e.errno()), ("hostname", libc::EINVAL));
    }

    #[test]
    fn a_non_proc_directory_is_refused() {
        assert_eq!(proc_dir("/").unwrap_err(), Errno::EXDEV);
    }
}
