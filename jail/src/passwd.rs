//! A container's user database, /etc/passwd and /etc/group, as runc's libcontainer reads it:
//! the files read safely from a container's root (never through a magic link or out of the
//! root, only a regular file, bounded), the two formats parsed (lines that do not parse are
//! skipped; the first matching entry wins), and runc's rules for a user spec `USER[:GROUP]`
//! (each a name or a number). The jail reads HOME from here in the child; the agent resolves
//! `exec --user NAME` from here, through the container's root as its init sees it.

use crate::sys;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

/// Reading stops here: a passwd file is a few KiB; a huge one must not stall a launch.
pub const MAX_BYTES: u64 = 4 << 20;

/// The highest id runc accepts in a user spec (ids are signed 32-bit in its world, and
/// 4294967295 is the kernel's "no change").
const MAX_ID: u32 = (1 << 31) - 1;

/// The text of `rel` (e.g. "etc/passwd") under `root`, resolved as if `root` were `/`
/// (symlinks and `..` cannot leave it, magic links are refused). None when it is missing or
/// not a regular file: a rootfs cannot hand us a FIFO to block on or a device to read.
pub fn read_in(root: BorrowedFd<'_>, rel: &Path) -> Result<Option<String>, Errno> {
    let flags = OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY;
    let resolve = sys::RESOLVE_IN_ROOT | sys::RESOLVE_NO_MAGICLINKS;
    let fd = match sys::openat2(root, rel, flags, 0, resolve) {
        Ok(fd) => fd,
        Err(Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP | Errno::ENXIO) => return Ok(None),
        Err(e) => return Err(e),
    };
    if crate::paths::file_type(fd.as_fd())? != nix::sys::stat::SFlag::S_IFREG {
        return Ok(None);
    }
    let mut bytes = Vec::new();
    std::fs::File::from(fd)
        .take(MAX_BYTES)
        .read_to_end(&mut bytes)
        .map_err(|e| crate::error::errno_of(&e))?;
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

/// One `name:password:uid:gid:gecos:home:shell` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry<'a> {
    pub name: &'a str,
    pub uid: u32,
    pub gid: u32,
    pub home: Option<&'a str>,
}

/// One `name:password:gid:member,member` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry<'a> {
    pub name: &'a str,
    pub gid: u32,
    pub members: Vec<&'a str>,
}

/// The entries of a passwd file that parse, in file order.
pub fn passwd_entries(text: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    text.lines().filter_map(|line| {
        let f: Vec<&str> = line.trim().split(':').collect();
        Some(PasswdEntry {
            name: f.first()?,
            uid: f.get(2)?.parse().ok()?,
            gid: f.get(3)?.parse().ok()?,
            home: f.get(5).copied(),
        })
    })
}

/// The entries of a group file that parse, in file order.
pub fn group_entries(text: &str) -> impl Iterator<Item = GroupEntry<'_>> {
    text.lines().filter_map(|line| {
        let f: Vec<&str> = line.trim().split(':').collect();
        Some(GroupEntry {
            name: f.first()?,
            gid: f.get(2)?.parse().ok()?,
            members: f
                .get(3)
                .map(|m| m.split(',').filter(|s| !s.is_empty()).collect())
                .unwrap_or_default(),
        })
    })
}

/// The home of the first entry with `uid` that has one (None without, or with a NUL, which
/// no environment entry can carry).
pub fn home_of(passwd: &str, uid: u32) -> Option<&str> {
    passwd_entries(passwd)
        .filter(|e| e.uid == uid)
        .find_map(|e| e.home)
        .filter(|h| !h.contains('\0'))
}

/// Who a user spec names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecUser {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups: those that list the user as a member, when the spec names no
    /// group (runc's implicit form).
    pub additional_gids: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    #[error("user spec {0:?}: use USER[:GROUP], each a name or a number")]
    BadSpec(String),
    #[error("no user {0:?} in the container's /etc/passwd")]
    NoSuchUser(String),
    #[error("no group {0:?} in the container's /etc/group")]
    NoSuchGroup(String),
    #[error("id {0} is out of range (0 to 2147483647)")]
    OutOfRange(u64),
}

/// An id given as a number: Some(Ok) in range, Some(Err) out of it, None for a name.
fn numeric(s: &str) -> Option<Result<u32, UserError>> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(match s.parse::<u64>() {
        Ok(n) if n <= u64::from(MAX_ID) => Ok(n as u32),
        Ok(n) => Err(UserError::OutOfRange(n)),
        Err(_) => Err(UserError::OutOfRange(u64::MAX)),
    })
}

/// Resolves `spec` (`USER[:GROUP]`) as runc does against the container's passwd and group
/// files (None: the file is missing). A user by name must have an entry; a user by number
/// need not, and then has gid 0 unless a group is given. Without a group, the gid is the
/// user's entry's and the user's memberships in the group file become supplementary groups.
/// A group by name must have an entry; a group by number need not.
pub fn resolve(
    spec: &str,
    passwd: Option<&str>,
    group: Option<&str>,
) -> Result<ExecUser, UserError> {
    let bad = || UserError::BadSpec(spec.into());
    let (user_arg, group_arg) = match spec.split_once(':') {
        Some((u, g)) if !g.contains(':') && !g.is_empty() => (u, Some(g)),
        Some(_) => return Err(bad()),
        None => (spec, None),
    };
    if user_arg.is_empty() || spec.contains('\0') {
        return Err(bad());
    }
    let uid_arg = numeric(user_arg).transpose()?;
    let entry = passwd.and_then(|text| {
        passwd_entries(text).find(|e| match uid_arg {
            Some(uid) => e.uid == uid,
            None => e.name == user_arg,
        })
    });
    let mut user = match (&entry, uid_arg) {
        (Some(e), _) => ExecUser {
            uid: e.uid,
            gid: e.gid,
            additional_gids: vec![],
        },
        (None, Some(uid)) => ExecUser {
            uid,
            gid: 0,
            additional_gids: vec![],
        },
        (None, None) => return Err(UserError::NoSuchUser(user_arg.into())),
    };
    let groups = || group.into_iter().flat_map(group_entries);
    match group_arg {
        Some(g) => {
            let gid_arg = numeric(g).transpose()?;
            let found = groups().find(|e| match gid_arg {
                Some(gid) => e.gid == gid,
                None => e.name == g,
            });
            user.gid = match (found, gid_arg) {
                (Some(e), _) => e.gid,
                (None, Some(gid)) => gid,
                (None, None) => return Err(UserError::NoSuchGroup(g.into())),
            };
        }
        None => {
            if let Some(e) = &entry {
                user.additional_gids = groups()
                    .filter(|g| g.members.contains(&e.name))
                    .map(|g| g.gid)
                    .collect();
            }
        }
    }
    Ok(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\nbad line\n\
                          u:x:1000:1000::/home/u:/bin/sh\ndup:x:1000:1001::/home/dup:/bin/sh\n\
                          short:x:7\nsvc:x:500:500::/srv:/bin/false\n";
    const GROUP: &str = "root:x:0:\nu:x:1000:\nwheel:x:10:u,svc\naudio:x:29:u\n\
                         staff:x:50:\nbroken\n";

    fn user(uid: u32, gid: u32, additional_gids: &[u32]) -> ExecUser {
        ExecUser {
            uid,
            gid,
            additional_gids: additional_gids.to_vec(),
        }
    }

    #[test]
    fn the_first_entry_of_the_uid_gives_home() {
        assert_eq!(home_of(PASSWD, 0), Some("/root"));
        assert_eq!(home_of(PASSWD, 1000), Some("/home/u"));
        assert_eq!(home_of(PASSWD, 7), None);
        assert_eq!(home_of(PASSWD, 1234), None);
    }

    #[test]
    fn a_name_takes_uid_gid_and_memberships_from_the_files() {
        let (p, g) = (Some(PASSWD), Some(GROUP));
        assert_eq!(resolve("u", p, g), Ok(user(1000, 1000, &[10, 29])));
        assert_eq!(resolve("svc", p, g), Ok(user(500, 500, &[10])));
        assert_eq!(resolve("root", p, g), Ok(user(0, 0, &[])));
        // A uid with an entry is that entry (the first of its uid), memberships included.
        assert_eq!(resolve("1000", p, g), Ok(user(1000, 1000, &[10, 29])));
        // A uid without one is fine, in group 0.
        assert_eq!(resolve("4242", p, g), Ok(user(4242, 0, &[])));
        assert_eq!(resolve("4242", None, None), Ok(user(4242, 0, &[])));
    }

    #[test]
    fn a_group_replaces_the_gid_and_drops_memberships() {
        let (p, g) = (Some(PASSWD), Some(GROUP));
        assert_eq!(resolve("u:staff", p, g), Ok(user(1000, 50, &[])));
        assert_eq!(resolve("u:29", p, g), Ok(user(1000, 29, &[])));
        assert_eq!(resolve("u:777", p, g), Ok(user(1000, 777, &[])));
        assert_eq!(resolve("4242:wheel", p, g), Ok(user(4242, 10, &[])));
        assert_eq!(resolve("4242:7", None, None), Ok(user(4242, 7, &[])));
    }

    #[test]
    fn unknown_names_and_bad_specs_are_refused() {
        let (p, g) = (Some(PASSWD), Some(GROUP));
        let no_user = |n: &str| Err(UserError::NoSuchUser(n.into()));
        assert_eq!(resolve("nobody", p, g), no_user("nobody"));
        assert_eq!(resolve("u", None, g), no_user("u"));
        assert_eq!(
            resolve("u:nogroup", p, g),
            Err(UserError::NoSuchGroup("nogroup".into()))
        );
        assert_eq!(
            resolve("u:wheel", p, None),
            Err(UserError::NoSuchGroup("wheel".into()))
        );
        for spec in ["", ":wheel", "u:", "u:wheel:x", "a\0b"] {
            assert_eq!(resolve(spec, p, g), Err(UserError::BadSpec(spec.into())));
        }
        assert_eq!(
            resolve("4294967295", p, g),
            Err(UserError::OutOfRange(4294967295))
        );
        assert_eq!(
            resolve("u:2147483648", p, g),
            Err(UserError::OutOfRange(2147483648))
        );
    }
}
