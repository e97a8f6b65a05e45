//! Exec requests: clone a child that joins a running container. The zygote itself enters the
//! container's pid namespace for its next child only (setns on the init pidfd changes our
//! pid_for_children, which is put back right after the clone), so the exec'd process is in the
//! container's pid namespace without a second fork; the child joins the other namespaces and
//! the cgroup (`jail::init::prepare_exec`) and execs at once: an exec never parks.

use crate::child::{begin, exec, fail};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use wire::zygote::{ExecConfig, ExecFds};

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
    exec(&prepared, sync)
}
