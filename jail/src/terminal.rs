//! Step "terminal" (only when `process.terminal`): a pty allocated from the container's own
//! devpts, its slave made the process's controlling terminal and stdio, and its master handed
//! back (in `Prepared`) for the agent to relay. This module owns how the pty is opened and wired;
//! the order relative to the other steps is `init`'s.
//!
//! It runs with "/" already the container's root (after pivot_root for a container, after
//! joining the mount namespace for an exec), so `/dev/ptmx` is the container's (a symlink to
//! `pts/ptmx` of its `newinstance` devpts) and `tty` inside prints a /dev/pts path that exists
//! there; and it runs while still root, before the identity change. As in runc:
//!  - the slave's owner, group and mode are left to devpts (its `gid=` and `mode=` options); the
//!    identity step then gives the slave to the process's uid along with the rest of stdio
//!    (`identity::switch_user`, runc's fixStdioPermissions), keeping the group.
//!  - the window size is set when the config has one.
//!  - a container's process (not an exec) also gets the slave bind-mounted onto /dev/console.
//!  - the slave is dup'ed onto 0, 1 and 2, which closes the stdio the zygote put there.
//!  - TIOCSCTTY (`make_controlling`, after `init::finish`'s setsid) comes last, in the process
//!    that will exec: a
//!    child that joins a pid namespace clones that process after the jail is built, and a
//!    session whose leader exits loses its controlling terminal.

use crate::error::{JailError, Step};
use crate::sys;
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::mount::MsFlags;
use nix::sys::stat::{makedev, Mode, SFlag};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

/// The pty multiplexer's device number (TTYAUX_MAJOR, 2), whether reached as the devpts
/// instance's own `pts/ptmx` or as a /dev/ptmx device node.
const PTMX_MAJOR: u64 = 5;
const PTMX_MINOR: u64 = 2;

fn err(what: impl Into<String>) -> impl FnOnce(Errno) -> JailError {
    let what = what.into();
    move |errno| JailError::new(Step::Terminal, what, errno)
}

/// Where the pty ends up besides stdio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Console {
    /// Container init: also bind the slave onto /dev/console (runc, crun and youki do).
    BindDevConsole,
    /// Exec into a running container: /dev/console stays the init's.
    StdioOnly,
}

/// Allocates the pty and makes its slave the stdio of this process (the controlling terminal
/// comes later: `make_controlling`). Returns the master (O_CLOEXEC), which the caller must pass to the agent.
pub fn setup(size: Option<(u16, u16)>, console: Console) -> Result<OwnedFd, JailError> {
    let master = open_master()?;
    let (slave, number) = open_slave(master.as_fd())?;
    if let Some((rows, cols)) = size {
        sys::set_window_size(slave.as_fd(), rows, cols)
            .map_err(err(format!("set the window size to {rows}x{cols}")))?;
    }
    if console == Console::BindDevConsole {
        bind_dev_console(number)?;
    }
    for target in 0..=2 {
        nix::unistd::dup2(slave.as_raw_fd(), target)
            .map_err(err(format!("dup2 /dev/pts/{number} onto fd {target}")))?;
    }
    // `slave` (the O_CLOEXEC original) is closed here; only 0, 1 and 2 keep the slave open.
    Ok(master)
}

/// Step "controlling-terminal", in the session leader `init::finish` made: the pty slave on fd 0
/// becomes its controlling terminal. Needs no privilege: the slave was opened O_NOCTTY, so it is
/// no session's terminal yet.
pub fn make_controlling() -> Result<(), JailError> {
    let stdin = std::io::stdin();
    sys::set_controlling_tty(stdin.as_fd())
        .map_err(err("make the pty on fd 0 the controlling terminal"))
}

/// Opens /dev/ptmx of the current root and checks that it is the pty multiplexer: in an exec,
/// the container's own processes could have replaced /dev/ptmx, and we are still root with every
/// capability here. O_NOCTTY: opening it must not give us a controlling terminal by accident.
fn open_master() -> Result<OwnedFd, JailError> {
    let what = "open /dev/ptmx (is /dev/pts a devpts mount?)";
    let master =
        sys::open(Path::new("/dev/ptmx"), OFlag::O_RDWR | OFlag::O_NOCTTY).map_err(err(what))?;
    let st = nix::sys::stat::fstat(master.as_raw_fd()).map_err(err(what))?;
    if !is_ptmx(st.st_mode, st.st_rdev) {
        return Err(err("/dev/ptmx is not the pty multiplexer (char 5:2)")(
            Errno::ENOTTY,
        ));
    }
    sys::unlockpt(master.as_fd()).map_err(err("unlockpt"))?;
    Ok(master)
}

fn is_ptmx(mode: libc::mode_t, rdev: libc::dev_t) -> bool {
    mode & SFlag::S_IFMT.bits() == SFlag::S_IFCHR.bits() && rdev == makedev(PTMX_MAJOR, PTMX_MINOR)
}

/// The slave, O_RDWR|O_NOCTTY|O_CLOEXEC, and its number. Through TIOCGPTPEER, which needs no
/// path; on kernels before 4.13 (EINVAL or ENOTTY) by /dev/pts/N, as runc always does.
fn open_slave(master: BorrowedFd<'_>) -> Result<(OwnedFd, u32), JailError> {
    let number = sys::pty_number(master).map_err(err("get the pty number (TIOCGPTN)"))?;
    let flags = OFlag::O_RDWR | OFlag::O_NOCTTY;
    let slave = match sys::open_pty_peer(master, flags) {
        Err(Errno::EINVAL | Errno::ENOTTY) => {
            let path = format!("/dev/pts/{number}");
            sys::open(Path::new(&path), flags).map_err(err(format!("open {path}")))?
        }
        other => other.map_err(err("open the pty slave (TIOCGPTPEER)"))?,
    };
    Ok((slave, number))
}

/// runc's mountConsole: /dev/console (created as an empty file if missing) gets the slave
/// bind-mounted on top. A symlink or directory there is refused rather than followed.
fn bind_dev_console(number: u32) -> Result<(), JailError> {
    let dev = sys::open(Path::new("/dev"), OFlag::O_PATH | OFlag::O_DIRECTORY)
        .map_err(err("open /dev for /dev/console"))?;
    let dir = Some(dev.as_raw_fd());
    match nix::sys::stat::fstatat(dir, "console", AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => {
            let kind = st.st_mode & SFlag::S_IFMT.bits();
            if kind == SFlag::S_IFLNK.bits() || kind == SFlag::S_IFDIR.bits() {
                return Err(err("/dev/console is a symlink or directory")(Errno::EEXIST));
            }
        }
        Err(Errno::ENOENT) => {
            let mode = Mode::from_bits_truncate(0o600);
            nix::sys::stat::mknodat(dir, "console", SFlag::S_IFREG, mode, 0)
                .map_err(err("create /dev/console"))?;
        }
        Err(e) => return Err(err("stat /dev/console")(e)),
    }
    let source = format!("/dev/pts/{number}");
    nix::mount::mount(
        Some(source.as_str()),
        "/dev/console",
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(err(format!("bind {source} onto /dev/console")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_char_5_2_is_the_multiplexer() {
        let chr = SFlag::S_IFCHR.bits() | 0o666;
        assert!(is_ptmx(chr, makedev(5, 2)));
        assert!(!is_ptmx(chr, makedev(5, 0)), "/dev/tty");
        assert!(!is_ptmx(chr, makedev(136, 2)), "a pty slave");
        assert!(!is_ptmx(SFlag::S_IFBLK.bits() | 0o666, makedev(5, 2)));
        assert!(!is_ptmx(SFlag::S_IFREG.bits() | 0o666, 0));
    }

    #[test]
    fn the_peer_of_a_host_pty_is_its_slave() {
        // Unprivileged, on the host's /dev/ptmx: allocate a pty and check that the peer is its
        // slave. (setsid/dup2 would change the test process: the root tests cover `setup`.)
        let master = open_master().expect("a test machine has a usable /dev/ptmx");
        let (slave, number) = open_slave(master.as_fd()).unwrap();
        sys::set_window_size(slave.as_fd(), 24, 80).unwrap();
        let st = nix::sys::stat::fstat(slave.as_raw_fd()).unwrap();
        assert_eq!(st.st_mode & SFlag::S_IFMT.bits(), SFlag::S_IFCHR.bits());
        let flags = nix::fcntl::fcntl(slave.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFD).unwrap();
        assert_ne!(flags & libc::FD_CLOEXEC, 0);
        let name = std::fs::read_link(sys::fd_path(slave.as_fd())).unwrap();
        assert!(name.ends_with(format!("pts/{number}")), "{name:?}");
        nix::unistd::write(&master, b"x\n").unwrap();
        let mut buf = [0u8; 8];
        let n = nix::unistd::read(slave.as_raw_fd(), &mut buf).unwrap();
        assert_eq!(&buf[..n], b"x\n");
    }
}
