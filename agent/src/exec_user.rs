//! ExecProcess with a user given by name (`zagent-ctl exec --user NAME[:GROUP]`): Kata's
//! `User.Username` carries a user spec, which is resolved here against the container's own
//! /etc/passwd and /etc/group by runc's rules (`jail::passwd::resolve`) into the uid, gid and
//! supplementary groups the exec then runs with. The files are read through the container
//! init's root (/proc/PID/root, checked against its pidfd so a recycled pid cannot stand in),
//! resolved inside that root, on the blocking pool and bounded in time: the rootfs is the
//! workload's and may be hostile.

use crate::error::AgentError;
use crate::reaper::PidFd;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

/// How long reading the two files may take (a rootfs could serve them from a stalled FUSE).
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// The user spec of `process`, if it names its user that way.
pub fn spec(process: &oci_spec::runtime::Process) -> Option<&str> {
    process
        .user()
        .username()
        .as_deref()
        .filter(|s| !s.is_empty())
}

/// `process` with the user its spec names in the container whose init is `pid`: uid and gid
/// replaced, memberships added to its additional gids, the spec itself dropped.
pub async fn resolve(
    process: &oci_spec::runtime::Process,
    spec: &str,
    pid: i32,
    pidfd: PidFd,
) -> Result<oci_spec::runtime::Process, AgentError> {
    let read = tokio::task::spawn_blocking(move || read_files(pid, &pidfd));
    let (passwd, group) = tokio::time::timeout(READ_TIMEOUT, read)
        .await
        .map_err(|_| AgentError::Timeout("reading the container's /etc/passwd".into()))?
        .map_err(|source| AgentError::Task {
            what: "reading /etc/passwd",
            source,
        })??;
    let found = jail::passwd::resolve(spec, passwd.as_deref(), group.as_deref())?;
    let mut user = process.user().clone();
    let mut gids = user.additional_gids().clone().unwrap_or_default();
    for gid in found.additional_gids {
        if !gids.contains(&gid) {
            gids.push(gid);
        }
    }
    user.set_uid(found.uid);
    user.set_gid(found.gid);
    user.set_additional_gids(Some(gids));
    user.set_username(None);
    let mut resolved = process.clone();
    resolved.set_user(user);
    Ok(resolved)
}

/// The container's /etc/passwd and /etc/group (None: missing or not a regular file).
fn read_files(pid: i32, pidfd: &PidFd) -> Result<(Option<String>, Option<String>), AgentError> {
    let root = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
        .open(format!("/proc/{pid}/root"))
        .map_err(|e| AgentError::io("opening the container's root", e))?;
    // The pid was the init's when the root was opened only if the init is still alive now.
    if pidfd.signal(0).is_err() {
        return Err(AgentError::Finished);
    }
    let read = |name: &str| {
        jail::passwd::read_in(root.as_fd(), Path::new(name)).map_err(|errno| {
            AgentError::io(format!("reading the container's /{name}"), errno.into())
        })
    };
    Ok((read("etc/passwd")?, read("etc/group")?))
}
