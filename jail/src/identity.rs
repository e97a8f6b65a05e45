//! Who the container's process is: its umask (step "umask"), its groups, gid and uid (step
//! "identity", with `capabilities` around it) and its working directory (step "cwd", after the
//! uid change so that the container user's own permissions decide whether it may enter it).

use crate::error::{JailError, Step};
use crate::sys;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::{Mode, SFlag};
use nix::unistd::{Gid, Uid};
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;
use wire::zygote::ProcessConfig;

/// runc's default when the config has none.
const DEFAULT_UMASK: u32 = 0o022;

/// Step "umask".
pub fn set_umask(umask: Option<u32>) -> Result<(), JailError> {
    let value = umask.unwrap_or(DEFAULT_UMASK);
    if value & !0o777 != 0 {
        return Err(JailError::new(
            Step::Umask,
            format!("umask {:#o}", value),
            Errno::EINVAL,
        ));
    }
    nix::sys::stat::umask(Mode::from_bits_truncate(value as libc::mode_t));
    Ok(())
}

fn err(what: String) -> impl FnOnce(Errno) -> JailError {
    move |errno| JailError::new(Step::Identity, what, errno)
}

/// setgroups (an empty list clears the zygote's), setresgid, setresuid. Stdio is handed to the
/// new uid first, as runc does, so that the process can reopen it through /proc/self/fd.
pub fn switch_user(p: &ProcessConfig) -> Result<(), JailError> {
    chown_stdio(p.uid)?;
    let groups: Vec<Gid> = p
        .additional_gids
        .iter()
        .map(|&g| Gid::from_raw(g))
        .collect();
    match nix::unistd::setgroups(&groups) {
        // A joined user namespace may deny setgroups; with no groups asked for, runc goes on
        // too (the namespace's creator chose what its processes keep).
        Err(Errno::EPERM)
            if groups.is_empty() && crate::userns::setgroups_denied(Path::new("/proc")) => {}
        done => done.map_err(err(format!("setgroups {:?}", p.additional_gids)))?,
    }
    let gid = Gid::from_raw(p.gid);
    nix::unistd::setresgid(gid, gid, gid).map_err(err(format!("setresgid {}", p.gid)))?;
    let uid = Uid::from_raw(p.uid);
    nix::unistd::setresuid(uid, uid, uid).map_err(err(format!("setresuid {}", p.uid)))
}

/// Gives stdio fds to `uid`, leaving /dev/null alone and tolerating what runc tolerates
/// (an unmapped owner, a read-only /dev).
fn chown_stdio(uid: u32) -> Result<(), JailError> {
    for fd in 0..=2 {
        let Ok(st) = nix::sys::stat::fstat(fd) else {
            continue;
        };
        let is_char = st.st_mode & SFlag::S_IFMT.bits() == SFlag::S_IFCHR.bits();
        let dev_null = is_char && st.st_rdev == nix::sys::stat::makedev(1, 3);
        if st.st_uid == uid || dev_null {
            continue;
        }
        match nix::unistd::fchown(fd, Some(Uid::from_raw(uid)), None) {
            Ok(()) | Err(Errno::EINVAL | Errno::EPERM | Errno::EROFS) => {}
            Err(e) => return Err(err(format!("chown stdio fd {fd} to uid {uid}"))(e)),
        }
    }
    Ok(())
}

/// Step "cwd" of a create, right after pivot_root: a missing cwd and its missing parents are
/// made (0755 before umask, owned by root), as runc does, so that a spec naming a directory the
/// image lacks still starts. Resolved inside the root without magic links, like the chdir. An
/// exec never creates its cwd (runc's exec does not either).
pub fn create_cwd(cwd: &Path) -> Result<(), JailError> {
    let err = |errno| {
        JailError::new(
            Step::Cwd,
            format!("chdir to cwd {}", (cwd.to_path_buf()).display()),
            errno,
        )
    };
    let root = sys::open(Path::new("/"), OFlag::O_PATH | OFlag::O_DIRECTORY).map_err(err)?;
    crate::paths::mkdir_all(root.as_fd(), &crate::paths::clean(cwd)).map_err(err)?;
    Ok(())
}

/// Step "cwd". Resolved without magic links, so that a cwd like /proc/self/fd/N cannot hand the
/// process a directory outside the container through an inherited fd.
pub fn change_dir(cwd: &Path) -> Result<(), JailError> {
    let err = |errno| {
        JailError::new(
            Step::Cwd,
            format!("chdir to cwd {}", (cwd.to_path_buf()).display()),
            errno,
        )
    };
    let root = sys::open(Path::new("/"), OFlag::O_PATH | OFlag::O_DIRECTORY).map_err(err)?;
    let rel = crate::paths::clean(cwd);
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel.as_path()
    };
    let flags = OFlag::O_PATH | OFlag::O_DIRECTORY;
    let dir = sys::openat2(root.as_fd(), rel, flags, 0, sys::RESOLVE_NO_MAGICLINKS).map_err(err)?;
    nix::unistd::fchdir(dir.as_raw_fd()).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn umask_out_of_range_is_einval() {
        let e = set_umask(Some(0o1777)).unwrap_err();
        assert_eq!((e.step(), e.errno()), ("umask", libc::EINVAL));
        assert_eq!(e.to_string(), "umask 0o1777: EINVAL");
    }

    #[test]
    fn missing_cwd_is_enoent() {
        let e = change_dir(Path::new("/nonexistent/zagent-cwd")).unwrap_err();
        assert_eq!((e.step(), e.errno()), ("cwd", libc::ENOENT));
        assert_eq!(
            e.to_string(),
            "chdir to cwd /nonexistent/zagent-cwd: ENOENT"
        );
    }
}
