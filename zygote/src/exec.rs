//! Exec requests: clone a child that joins a running container. The child is born in the
//! zygote's own pid namespace, joins the container's cgroup and every namespace through the
//! init's pidfd (`jail::init::prepare_exec`: pid only as the namespace of its children) and
//! takes on the process's identity; then, last, it clones the process that is born inside the
//! container's pid namespace (`child::spawn_inside`), which execs at once: an exec never parks.

use crate::child::{begin, exec, fail};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use wire::zygote::{ExecConfig, ExecFds, NamespaceKind};

/// Runs in the cloned child. Never returns.
pub fn run(
    cfg: &ExecConfig,
    fds: Vec<OwnedFd>,
    zygote_channel: BorrowedFd<'_>,
    closes: &[RawFd],
) -> ! {
    let sync = fds[ExecFds::SYNC].as_fd();
    begin(zygote_channel, closes, sync, &fds[..3]);
    let mut prepared = match jail::init::prepare_exec(cfg, fds[ExecFds::INIT_PIDFD].as_fd()) {
        Ok(p) => p,
        Err(e) => fail(sync, e.step(), e.errno(), e.to_string()),
    };
    crate::child::send_console(&mut prepared, sync);
    if cfg.namespaces.contains(&NamespaceKind::Pid) {
        crate::child::spawn_inside(sync, &[sync.as_raw_fd()]);
    }
    crate::child::finish(&prepared, sync);
    exec(&prepared, sync)
}
