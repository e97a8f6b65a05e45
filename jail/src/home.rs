//! HOME for a process whose environment has none (step "identity"): the home directory of its
//! uid's entry in the container's /etc/passwd, else "/", as runc does for containers and execs
//! alike. The file is read as root after the container's root became ours (pivot_root, or the
//! joined mount namespace of an exec), never through a magic link, and only if it is a regular
//! file, so a rootfs cannot hand us a FIFO to block on or a host fd to read.

use crate::error::JailError;
use crate::sys;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use std::io::Read;
use std::os::fd::AsFd;
use std::path::Path;

/// What runc's user lookup falls back to when the uid has no entry.
const DEFAULT_HOME: &str = "/";

/// Reading stops here: a passwd file is a few KiB; a huge one must not stall the launch.
const MAX_PASSWD_BYTES: u64 = 4 << 20;

/// The home of `uid` from the current root's /etc/passwd, "/" when there is no such file or
/// entry.
pub fn home_of(uid: u32) -> Result<String, JailError> {
    let err = |errno| JailError::Identity {
        what: "read /etc/passwd for HOME".into(),
        errno,
    };
    let Some(text) = read_passwd().map_err(err)? else {
        return Ok(DEFAULT_HOME.into());
    };
    Ok(lookup(&text, uid).unwrap_or(DEFAULT_HOME).to_owned())
}

/// The file's text, None when it is missing or not a regular file.
fn read_passwd() -> Result<Option<String>, Errno> {
    let root = sys::open(Path::new("/"), OFlag::O_PATH | OFlag::O_DIRECTORY)?;
    let flags = OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY;
    let rel = Path::new("etc/passwd");
    let fd = match sys::openat2(root.as_fd(), rel, flags, 0, sys::RESOLVE_NO_MAGICLINKS) {
        Ok(fd) => fd,
        Err(Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP | Errno::ENXIO) => return Ok(None),
        Err(e) => return Err(e),
    };
    if crate::paths::file_type(fd.as_fd())? != nix::sys::stat::SFlag::S_IFREG {
        return Ok(None);
    }
    let mut bytes = Vec::new();
    std::fs::File::from(fd)
        .take(MAX_PASSWD_BYTES)
        .read_to_end(&mut bytes)
        .map_err(|e| crate::mounts::io_errno(&e))?;
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

/// The sixth field of the first `name:password:uid:gid:gecos:home:shell` line whose uid is
/// `uid` (runc: the first match wins). Lines that do not parse are skipped, as are homes with a
/// NUL, which no environment entry can carry.
fn lookup(text: &str, uid: u32) -> Option<&str> {
    text.lines().map(str::trim).find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        let matches = fields.get(2)?.parse::<u32>().ok()? == uid;
        let home = *fields.get(5)?;
        (matches && !home.contains('\0')).then_some(home)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_entry_of_the_uid_gives_home() {
        let text = "root:x:0:0:root:/root:/bin/sh\n\nbad line\nu:x:1000:1000::/home/u:/bin/sh\n\
                    dup:x:1000:1000::/home/dup:/bin/sh\nshort:x:7\n";
        assert_eq!(lookup(text, 0), Some("/root"));
        assert_eq!(lookup(text, 1000), Some("/home/u"));
        assert_eq!(lookup(text, 7), None);
        assert_eq!(lookup(text, 1234), None);
    }
}
