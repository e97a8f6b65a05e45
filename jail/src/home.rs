//! HOME for a process whose environment has none (step "identity"): the home directory of its
//! uid's entry in the container's /etc/passwd, else "/", as runc does for containers and execs
//! alike. The file is read as root after the container's root became ours (pivot_root, or the
//! joined mount namespace of an exec), by `passwd::read_in` (never through a magic link, only a
//! regular file).

use crate::error::{JailError, Step};
use crate::passwd;
use crate::sys;
use nix::fcntl::OFlag;
use std::os::fd::AsFd;
use std::path::Path;

/// What runc's user lookup falls back to when the uid has no entry.
const DEFAULT_HOME: &str = "/";

/// The home of `uid` from the current root's /etc/passwd, "/" when there is no such file or
/// entry.
pub fn home_of(uid: u32) -> Result<String, JailError> {
    let err = |errno| JailError::new(Step::Identity, "read /etc/passwd for HOME", errno);
    let root = sys::open(Path::new("/"), OFlag::O_PATH | OFlag::O_DIRECTORY).map_err(err)?;
    let Some(text) = passwd::read_in(root.as_fd(), Path::new("etc/passwd")).map_err(err)? else {
        return Ok(DEFAULT_HOME.into());
    };
    Ok(passwd::home_of(&text, uid)
        .unwrap_or(DEFAULT_HOME)
        .to_owned())
}
