//! The warm pool: fresh network, IPC and UTS namespaces made ahead of time, so that a launch
//! does not create them on its critical path (a new network namespace alone costs about half a
//! millisecond, with a long tail). Each set is made by unsharing them in the zygote itself,
//! keeping an fd to each, and stepping back into the zygote's own namespaces; only the zygote,
//! which is single-threaded, is affected, and only between those calls. A launch whose spec asks
//! for exactly the default new namespaces (the common case) clones with new mount and pid
//! namespaces only and joins the pooled three. A pid namespace cannot be pooled: the kernel
//! will not hand out a pid namespace that has no init yet. The mount namespace is always copied
//! at clone time too: a copy made earlier could miss host mounts made since (this host's / is
//! private, so nothing would propagate into it).

use nix::errno::Errno;
use nix::sched::{setns, unshare, CloneFlags};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use wire::zygote::{Namespace, NamespaceKind};

/// One set of fresh namespaces.
pub struct NsSet {
    pub net: OwnedFd,
    pub ipc: OwnedFd,
    pub uts: OwnedFd,
}

impl NsSet {
    /// The namespaces the child joins with setns.
    pub fn joins(&self) -> [(NamespaceKind, BorrowedFd<'_>); 3] {
        [
            (NamespaceKind::Network, self.net.as_fd()),
            (NamespaceKind::Ipc, self.ipc.as_fd()),
            (NamespaceKind::Uts, self.uts.as_fd()),
        ]
    }

    fn raw(&self) -> [RawFd; 3] {
        [
            self.net.as_raw_fd(),
            self.ipc.as_raw_fd(),
            self.uts.as_raw_fd(),
        ]
    }
}

pub struct NsPool {
    sets: Vec<NsSet>,
    target: usize,
    own_net: OwnedFd,
    own_ipc: OwnedFd,
    own_uts: OwnedFd,
}

const POOLED: CloneFlags = CloneFlags::CLONE_NEWNET
    .union(CloneFlags::CLONE_NEWIPC)
    .union(CloneFlags::CLONE_NEWUTS);

/// What a pooled launch still creates at clone time.
pub const CLONE_FLAGS: u64 = (libc::CLONE_NEWNS | libc::CLONE_NEWPID) as u64;

fn open_ns(name: &str) -> Result<OwnedFd, Errno> {
    let fd = nix::fcntl::open(
        format!("/proc/self/ns/{name}").as_str(),
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    // SAFETY: open returned a fresh fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Whether `namespaces` asks for exactly what the pool holds: new mount, pid, network, IPC and
/// UTS namespaces (a new cgroup namespace too, or not), and nothing joined.
pub fn eligible(namespaces: &[Namespace]) -> bool {
    let new = |k| namespaces.iter().any(|n| n.kind == k && !n.join);
    let wanted = [
        NamespaceKind::Mount,
        NamespaceKind::Pid,
        NamespaceKind::Network,
        NamespaceKind::Ipc,
        NamespaceKind::Uts,
    ];
    namespaces
        .iter()
        .all(|n| !n.join && (wanted.contains(&n.kind) || n.kind == NamespaceKind::Cgroup))
        && wanted.iter().all(|k| new(*k))
}

impl NsPool {
    pub fn new(target: usize) -> Result<NsPool, Errno> {
        Ok(NsPool {
            sets: Vec::new(),
            target,
            own_net: open_ns("net")?,
            own_ipc: open_ns("ipc")?,
            own_uts: open_ns("uts")?,
        })
    }

    pub fn take(&mut self) -> Option<NsSet> {
        self.sets.pop()
    }

    /// Our own namespaces' fds, which the pool steps back into.
    pub fn own_fds(&self) -> [RawFd; 3] {
        [
            self.own_net.as_raw_fd(),
            self.own_ipc.as_raw_fd(),
            self.own_uts.as_raw_fd(),
        ]
    }

    /// Every fd the pool holds, which a child closes before doing anything else.
    pub fn raw_fds(&self) -> Vec<RawFd> {
        self.sets.iter().flat_map(|s| s.raw()).collect()
    }

    pub fn wants_more(&self) -> bool {
        self.sets.len() < self.target
    }

    /// Makes one more set. A set that cannot be made disables the pool (launches then create
    /// their namespaces at clone time, as without a pool); failing to step back into our own
    /// namespaces is fatal, since every later child would inherit the wrong ones.
    pub fn fill_one(&mut self) -> Result<(), Errno> {
        if let Err(e) = unshare(POOLED) {
            eprintln!("zagent zygote: warm pool disabled: unshare: {e}");
            self.target = 0;
            return Ok(());
        }
        // Off the launch path: the launch's "loopback" step then finds lo up already.
        if let Err(e) = jail::init::loopback_up() {
            eprintln!("zagent zygote: warm pool: lo up: {e} (each launch brings it up itself)");
        }
        let opened = (|| {
            Ok::<_, Errno>(NsSet {
                net: open_ns("net")?,
                ipc: open_ns("ipc")?,
                uts: open_ns("uts")?,
            })
        })();
        self.restore()?;
        match opened {
            Ok(set) => self.sets.push(set),
            Err(e) => {
                eprintln!("zagent zygote: warm pool disabled: {e}");
                self.target = 0;
            }
        }
        Ok(())
    }

    fn restore(&self) -> Result<(), Errno> {
        setns(self.own_net.as_fd(), CloneFlags::CLONE_NEWNET)?;
        setns(self.own_ipc.as_fd(), CloneFlags::CLONE_NEWIPC)?;
        setns(self.own_uts.as_fd(), CloneFlags::CLONE_NEWUTS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wire::zygote::Namespace;

    fn ns(kind: NamespaceKind, join: bool) -> Namespace {
        Namespace { kind, join }
    }

    #[test]
    fn only_the_default_set_of_new_namespaces_is_eligible() {
        use NamespaceKind::*;
        let default: Vec<_> = [Pid, Network, Ipc, Uts, Mount]
            .iter()
            .map(|k| ns(*k, false))
            .collect();
        assert!(eligible(&default));
        let mut with_cgroup = default.clone();
        with_cgroup.push(ns(Cgroup, false));
        assert!(eligible(&with_cgroup));
        assert!(!eligible(&default[1..]), "no new pid namespace");
        let mut joined = default.clone();
        joined[1] = ns(Network, true);
        assert!(!eligible(&joined));
        let mut user = default.clone();
        user.push(ns(User, false));
        assert!(!eligible(&user));
    }
}
