//! exec.fifo: the parked child holds the only reader (the fd passed to it was opened O_RDWR,
//! and the agent and zygote close their copies), so StartContainer's non-blocking open for
//! writing fails with ENXIO exactly when the child is gone.

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

pub const NAME: &str = "exec.fifo";

/// Makes `dir`/exec.fifo and returns its path.
pub fn create(dir: &Path) -> std::io::Result<PathBuf> {
    let path = dir.join(NAME);
    nix::unistd::mkfifo(&path, Mode::from_bits_truncate(0o600))?;
    Ok(path)
}

/// The fd the child parks on. O_RDWR never blocks on a fifo; the descriptor must stay blocking
/// for the child's read.
pub fn open_for_child(path: &Path) -> std::io::Result<OwnedFd> {
    let fd = open(path, OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty())?;
    // SAFETY: open returned a fresh fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error("the container process is gone")]
    Gone,
    #[error("exec.fifo: {0}")]
    Io(#[from] Errno),
}

/// Lets the parked child exec: one byte into the fifo, then the fifo is removed.
pub fn release(path: &Path) -> Result<(), ReleaseError> {
    let fd = match open(
        path,
        OFlag::O_WRONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Err(Errno::ENXIO) | Err(Errno::ENOENT) => return Err(ReleaseError::Gone),
        other => other?,
    };
    // SAFETY: open returned a fresh fd that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let written = nix::unistd::write(&fd, &[0u8]);
    let _ = std::fs::remove_file(path);
    match written {
        Ok(1) => Ok(()),
        Err(Errno::EPIPE) => Err(ReleaseError::Gone),
        Err(e) => Err(e.into()),
        Ok(_) => Err(ReleaseError::Io(Errno::EIO)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_without_reader_is_gone_and_with_reader_delivers() {
        let dir = tempfile::tempdir().unwrap();
        let path = create(dir.path()).unwrap();
        drop(open_for_child(&path).unwrap());
        assert!(matches!(release(&path), Err(ReleaseError::Gone)));
        let dir = tempfile::tempdir().unwrap();
        let path = create(dir.path()).unwrap();
        let fd = open_for_child(&path).unwrap();
        release(&path).unwrap();
        assert!(!path.exists());
        let mut b = [9u8; 1];
        assert_eq!(
            nix::unistd::read(std::os::fd::AsRawFd::as_raw_fd(&fd), &mut b).unwrap(),
            1
        );
        assert_eq!(b[0], 0);
    }
}
