//! The Kata sandbox: what CreateSandbox sets up and what CreateContainer then changes in each
//! spec, as Kata's agent does (its `update_container_namespaces`). A Kata shim strips the
//! namespaces the VM provides from the specs it sends (the pid one, and the host paths of the
//! others, which mean nothing in the guest). Inside a sandbox zagent therefore:
//! - gives every container IPC and UTS namespaces shared by the whole sandbox (made at
//!   CreateSandbox, the UTS one carrying the sandbox's hostname), in place of whatever the
//!   spec's `ipc` and `uts` entries say: pods share both;
//! - gives a container without a pid namespace a new one, or, when CreateSandbox or
//!   CreateContainer asked for `sandbox_pidns`, the sandbox's shared one, whose pid 1 is
//!   zagent's own (`pidns_init`, started by the first call that asks for it), as the Go
//!   kata-agent's pause process was: no container's exit takes the others' pid 1 away.
//!
//! Outside a sandbox (zagent-ctl, runc-style use) specs run as they are.
//! The shared namespaces are made by a short-lived thread of their own, which unshares them,
//! sets the hostname in the new UTS namespace, opens both and ends: no thread of the agent is
//! left in another namespace, and the fds keep the namespaces alive until DestroySandbox.

use crate::error::AgentError;
use crate::pidns_init::PidnsInit;
use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType, Spec};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

/// The sandbox CreateSandbox made.
#[derive(Debug)]
pub struct Sandbox {
    pub id: String,
    /// CreateSandbox asked that all its containers share one pid namespace.
    pub shared_pidns: bool,
    /// The shared pid namespace and its init, once something asked for it.
    pidns: Option<PidnsInit>,
    shared: Option<SharedNs>,
    /// CreateSandbox's storages, held for the sandbox's life.
    pub storages: Vec<std::sync::Arc<crate::storage::Mounted>>,
}

/// The sandbox-wide IPC and UTS namespaces, held open.
#[derive(Debug)]
pub struct SharedNs {
    ipc: OwnedFd,
    uts: OwnedFd,
}

impl SharedNs {
    /// Makes them on a thread of their own (see the module doc).
    pub fn new(hostname: &str) -> Result<SharedNs, AgentError> {
        let hostname = hostname.to_owned();
        let made = std::thread::spawn(move || -> Result<SharedNs, nix::Error> {
            use nix::sched::{unshare, CloneFlags};
            unshare(CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWUTS)?;
            if !hostname.is_empty() {
                nix::unistd::sethostname(&hostname)?;
            }
            let open = |kind: &str| {
                let path = format!("/proc/thread-self/ns/{kind}");
                std::fs::File::open(path)
                    .map(OwnedFd::from)
                    .map_err(|e| jail::error::errno_of(&e))
            };
            Ok(SharedNs {
                ipc: open("ipc")?,
                uts: open("uts")?,
            })
        })
        .join()
        .map_err(|_| AgentError::TaskLost("sandbox namespaces"))?;
        made.map_err(|errno| AgentError::io("sandbox IPC and UTS namespaces", errno.into()))
    }

    /// A path this process can open to reach `fd`'s namespace.
    fn path(fd: &OwnedFd) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
    }
}

impl Sandbox {
    pub fn new(id: String, shared_pidns: bool, shared: Option<SharedNs>) -> Sandbox {
        Sandbox {
            id,
            shared_pidns,
            pidns: None,
            shared,
            storages: Vec::new(),
        }
    }

    /// Whether a container that does (or does not) ask for `sandbox_pidns` needs the shared
    /// pid namespace, and it is not there yet: the caller then starts one (`set_pidns`).
    pub fn lacks_pidns(&self, sandbox_pidns: bool) -> bool {
        (sandbox_pidns || self.shared_pidns) && self.pidns.is_none()
    }

    /// The shared pid namespace; a second one (two creates raced to start it) is dropped,
    /// which ends it.
    pub fn set_pidns(&mut self, init: PidnsInit) {
        self.pidns.get_or_insert(init);
    }

    /// Kata's changes to the namespaces of a container created in this sandbox (module doc).
    pub fn adjust(&self, spec: &mut Spec, sandbox_pidns: bool) -> Result<(), AgentError> {
        let pid_path = if sandbox_pidns || self.shared_pidns {
            match &self.pidns {
                Some(init) => Some(SharedNs::path(init.ns())),
                None => {
                    return Err(AgentError::State {
                        id: self.id.clone(),
                        state: "without its shared pid namespace",
                        op: "share it (sandbox_pidns)",
                    })
                }
            }
        } else {
            None
        };
        let mut linux = spec.linux().clone().unwrap_or_default();
        let mut namespaces = linux.namespaces().clone().unwrap_or_default();
        for ns in namespaces.iter_mut() {
            let shared = match (ns.typ(), &self.shared) {
                (LinuxNamespaceType::Ipc, Some(s)) => Some(SharedNs::path(&s.ipc)),
                (LinuxNamespaceType::Uts, Some(s)) => Some(SharedNs::path(&s.uts)),
                _ => continue,
            };
            ns.set_path(shared);
        }
        let has_pid = namespaces
            .iter()
            .any(|n| n.typ() == LinuxNamespaceType::Pid);
        if !has_pid {
            let mut pid = LinuxNamespace::default();
            pid.set_typ(LinuxNamespaceType::Pid);
            pid.set_path(pid_path);
            namespaces.push(pid);
        } else if let Some(path) = pid_path {
            let pid = namespaces
                .iter_mut()
                .find(|n| n.typ() == LinuxNamespaceType::Pid);
            pid.expect("has_pid").set_path(Some(path));
        }
        linux.set_namespaces(Some(namespaces));
        spec.set_linux(Some(linux));
        if self.shared.is_some() {
            // The sandbox's UTS namespace carries the sandbox's hostname; a container that
            // joins it does not rename the pod (Kata's agent sets a hostname only in a new one).
            spec.set_hostname(None);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(namespaces: serde_json::Value) -> Spec {
        serde_json::from_value(json!({
            "ociVersion": "1.0.2",
            "root": { "path": "/r" },
            "linux": { "namespaces": namespaces }
        }))
        .unwrap()
    }

    fn kinds(spec: &Spec) -> Vec<(String, Option<String>)> {
        let ns = spec.linux().as_ref().unwrap().namespaces().clone().unwrap();
        ns.iter()
            .map(|n| {
                let path = n.path().as_ref().map(|p| p.display().to_string());
                (n.typ().to_string(), path)
            })
            .collect()
    }

    #[test]
    fn a_container_without_a_pid_namespace_gets_a_new_one() {
        let sb = Sandbox::new("s".into(), false, None);
        let mut s = spec(json!([{ "type": "mount" }, { "type": "network", "path": "/x" }]));
        sb.adjust(&mut s, false).unwrap();
        assert_eq!(
            kinds(&s),
            [
                ("mnt".into(), None),
                ("net".into(), Some("/x".into())),
                ("pid".into(), None)
            ]
        );
    }

    #[test]
    fn the_shared_pid_namespace_is_needed_when_either_call_asks_and_until_it_is_there() {
        let sb = Sandbox::new("s".into(), false, None);
        assert!(!sb.lacks_pidns(false));
        assert!(sb.lacks_pidns(true), "CreateContainer asks");
        let sb = Sandbox::new("s".into(), true, None);
        assert!(sb.lacks_pidns(false), "CreateSandbox asked");
    }

    #[test]
    fn adjusting_for_a_shared_pid_namespace_that_is_not_there_is_refused() {
        let sb = Sandbox::new("s".into(), false, None);
        let e = sb
            .adjust(&mut spec(json!([{ "type": "mount" }])), true)
            .unwrap_err();
        assert_eq!(e.code(), ttrpc::Code::FAILED_PRECONDITION);
        let mut own = spec(json!([{ "type": "mount" }]));
        sb.adjust(&mut own, false).unwrap();
        assert_eq!(kinds(&own)[1], ("pid".into(), None), "a new one of its own");
    }
}
