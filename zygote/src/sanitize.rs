//! Start-up hygiene for the zygote: it must be single-threaded, hold no fd but its channel
//! (moved off fd 0 and made close-on-exec, with /dev/null in its place), have a clean signal
//! mask and default dispositions, and be non-dumpable, since every child inherits all of these.

use crate::error::ZygoteError;
use nix::errno::Errno;
use nix::fcntl::{fcntl, open, FcntlArg, OFlag};
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::stat::Mode;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

/// Number of threads of the calling process, from `proc_root`/self/status.
pub fn thread_count(proc_root: &Path) -> Result<usize, ZygoteError> {
    let status = std::fs::read_to_string(proc_root.join("self/status")).map_err(|e| {
        ZygoteError::Sanitize {
            what: "read status",
            errno: jail::error::errno_of(&e),
        }
    })?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or(ZygoteError::Sanitize {
            what: "parse status",
            errno: Errno::EINVAL,
        })
}

/// Makes the process fit to fork containers from and returns the channel, which arrived as
/// `inherited` (normally fd 0).
pub fn sanitize(inherited: RawFd) -> Result<OwnedFd, ZygoteError> {
    let threads = thread_count(Path::new("/proc"))?;
    if threads != 1 {
        return Err(ZygoteError::NotSingleThreaded(threads));
    }
    let wrap = |what| move |errno| ZygoteError::Sanitize { what, errno };
    let moved = fcntl(inherited, FcntlArg::F_DUPFD_CLOEXEC(3)).map_err(wrap("dup channel"))?;
    // SAFETY: F_DUPFD_CLOEXEC returned a new fd that nothing else owns.
    let channel = unsafe { OwnedFd::from_raw_fd(moved) };
    let null = open("/dev/null", OFlag::O_RDWR, Mode::empty()).map_err(wrap("open /dev/null"))?;
    nix::unistd::dup2(null, 0).map_err(wrap("dup2 /dev/null"))?;
    close_all_but(&[0, 1, 2, channel.as_raw_fd()])?;
    reset_signals().map_err(wrap("reset signals"))?;
    // Non-dumpable, and so is every child until its execve: a process already inside a
    // container can then neither ptrace a joining child nor read its /proc files while it still
    // holds agent state (execve of a normal binary makes it dumpable again).
    nix::sys::prctl::set_dumpable(false).map_err(wrap("set dumpable"))?;
    // Exec'd from /proc/self/fd/N our comm would be "N"; name ourselves for ps and tests.
    nix::sys::prctl::set_name(c"zagent-zygote").map_err(wrap("set name"))?;
    Ok(channel)
}

/// Closes every fd not in `keep` (which must be sorted ascending).
fn close_all_but(keep: &[RawFd]) -> Result<(), ZygoteError> {
    let mut lo: u32 = 0;
    for &k in keep {
        if (k as u32) > lo {
            close_range(lo, k as u32 - 1)?;
        }
        lo = k as u32 + 1;
    }
    close_range(lo, u32::MAX)
}

fn close_range(first: u32, last: u32) -> Result<(), ZygoteError> {
    // SAFETY: close_range only closes fds in our own table; the kept fds are outside the range
    // and no Rust object owns any fd inside it (the zygote has just started).
    let r = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0u32) };
    if r < 0 {
        return Err(ZygoteError::Sanitize {
            what: "close_range",
            errno: Errno::last(),
        });
    }
    Ok(())
}

fn reset_signals() -> Result<(), Errno> {
    SigSet::empty().thread_set_mask()?;
    let dfl = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for sig in Signal::iterator() {
        if matches!(sig, Signal::SIGKILL | Signal::SIGSTOP) {
            continue;
        }
        // SAFETY: installing SIG_DFL runs no code of ours in a signal context.
        unsafe { sigaction(sig, &dfl) }?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_thread_count_from_a_fake_proc() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("self")).unwrap();
        std::fs::write(dir.path().join("self/status"), "Name:\tz\nThreads:\t3\n").unwrap();
        assert_eq!(thread_count(dir.path()).unwrap(), 3);
        std::fs::write(dir.path().join("self/status"), "Name:\tz\n").unwrap();
        assert!(thread_count(dir.path()).is_err());
    }
}
