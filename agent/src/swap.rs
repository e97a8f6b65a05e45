//! AddSwap, as Kata's agent serves it: the shim hot-plugs a virtio-blk disk holding a swap
//! area and names it by its PCI path; the agent finds its block device under the sysfs root
//! given (waiting briefly, as a hot-plugged disk can show up late) and turns swap on there
//! with swapon(2), no flags. The disk must already hold a swap signature (the shim's mkswap).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The most levels a PCI path has (the root bus, then bridges).
pub const MAX_PCI_DEPTH: usize = 8;
/// How long the block device may take to appear.
const DEVICE_WAIT: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum SwapError {
    #[error("PCI path {0:?}: {1}")]
    BadPciPath(Vec<u32>, &'static str),
    #[error("swap device at PCI path {path}: {why}")]
    NoDevice { path: String, why: String },
    #[error("swapon {dev:?}: {errno}")]
    Swapon {
        dev: PathBuf,
        errno: nix::errno::Errno,
    },
}

impl SwapError {
    pub fn code(&self) -> ttrpc::Code {
        match self {
            SwapError::BadPciPath(..) => ttrpc::Code::INVALID_ARGUMENT,
            SwapError::NoDevice { .. } => ttrpc::Code::NOT_FOUND,
            // EINVAL: no swap signature; EBUSY: already swap; EPERM: too many swap areas.
            SwapError::Swapon { .. } => ttrpc::Code::FAILED_PRECONDITION,
        }
    }
}

/// The slots of a PCI path: 1 to `MAX_PCI_DEPTH` of them, each a device number (0..=31).
fn slots(pci_path: &[u32]) -> Result<Vec<u8>, SwapError> {
    let bad = |why| SwapError::BadPciPath(pci_path.to_vec(), why);
    if pci_path.is_empty() {
        return Err(bad("empty"));
    }
    if pci_path.len() > MAX_PCI_DEPTH {
        return Err(bad("deeper than 8 levels"));
    }
    pci_path
        .iter()
        .map(|&s| u8::try_from(s).ok().filter(|s| *s < 32))
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(|| bad("a slot is not a PCI device number (0 to 31)"))
}

/// The block device at `pci_path` under `sysfs`, waited for up to `DEVICE_WAIT`.
pub fn find_device(sysfs: &Path, pci_path: &[u32]) -> Result<PathBuf, SwapError> {
    let slots = slots(pci_path)?;
    let deadline = Instant::now() + DEVICE_WAIT;
    loop {
        let why = match crate::storage::pci_block_device(sysfs, &slots) {
            Ok(dev) if dev.exists() => return Ok(dev),
            Ok(dev) => format!("{} does not exist", dev.display()),
            Err(why) => why,
        };
        if Instant::now() >= deadline {
            let path: Vec<String> = slots.iter().map(|s| format!("{s:02x}")).collect();
            return Err(SwapError::NoDevice {
                path: path.join("/"),
                why,
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// AddSwap: swap turned on at the block device found at `pci_path`.
pub fn add_swap(sysfs: &Path, pci_path: &[u32]) -> Result<PathBuf, SwapError> {
    let dev = find_device(sysfs, pci_path)?;
    let c = std::ffi::CString::new(dev.as_os_str().as_encoded_bytes()).map_err(|_| {
        SwapError::NoDevice {
            path: format!("{pci_path:?}"),
            why: "device path with a NUL".into(),
        }
    })?;
    // SAFETY: swapon reads the NUL-terminated path we own for the duration of the call; no flags.
    let r = unsafe { libc::swapon(c.as_ptr(), 0) };
    nix::errno::Errno::result(r).map_err(|errno| SwapError::Swapon {
        dev: dev.clone(),
        errno,
    })?;
    tracing::info!(dev = %dev.display(), "swap on");
    Ok(dev)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn bad_pci_paths_are_refused_and_a_missing_device_is_not_found() {
        for bad in [&[][..], &[32], &[1, 2, 3, 4, 5, 6, 7, 8, 9], &[0x100]] {
            let e = add_swap(Path::new("/nonexistent"), bad).unwrap_err();
            assert_eq!(e.code(), ttrpc::Code::INVALID_ARGUMENT, "{bad:?}: {e}");
        }
        let sys = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(sys.path().join("devices/pci0000:00/0000:00:02.0")).unwrap();
        let e = add_swap(sys.path(), &[2]).unwrap_err();
        assert_eq!(e.code(), ttrpc::Code::NOT_FOUND, "{e}");
        assert!(e.to_string().contains("no block device"), "{e}");
        let e = add_swap(sys.path(), &[3]).unwrap_err();
        assert!(e.to_string().contains("no PCI device at slot 03"), "{e}");
    }

    /// A loop device over a temp file, detached on drop (after swapoff, if it was swap).
    struct Loop {
        dev: PathBuf,
        _file: tempfile::NamedTempFile,
    }

    impl Drop for Loop {
        fn drop(&mut self) {
            if let Ok(c) = std::ffi::CString::new(self.dev.as_os_str().as_encoded_bytes()) {
                // SAFETY: swapoff reads the NUL-terminated path we own; EINVAL if not swap.
                unsafe { libc::swapoff(c.as_ptr()) };
            }
            let _ = Command::new("losetup").arg("-d").arg(&self.dev).status();
        }
    }

    fn run(cmd: &str, args: &[&str]) -> String {
        let out = Command::new(cmd).args(args).output().expect(cmd);
        assert!(out.status.success(), "{cmd} {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    fn loop_device(swap: bool) -> Loop {
        let file = tempfile::NamedTempFile::new_in("/var/tmp").unwrap();
        file.as_file().set_len(8 << 20).unwrap();
        let path = file.path().to_str().unwrap();
        if swap {
            run("mkswap", &[path]);
        }
        let dev = run("losetup", &["--find", "--show", path]).trim().into();
        Loop { dev, _file: file }
    }

    /// Root: a loop device holding a swap area, behind a fake PCI device in a temp sysfs,
    /// turned on (seen in /proc/swaps), then off and detached; a loop device without a swap
    /// signature is FAILED_PRECONDITION. Ignored without `--include-ignored` (it needs root and
    /// fails rather than passes without it).
    #[test]
    #[ignore = "requires root"]
    fn swap_goes_on_at_the_device_of_the_pci_path() {
        assert!(
            nix::unistd::geteuid().is_root(),
            "this test needs root (loop devices, swapon)"
        );
        let sys = tempfile::tempdir().unwrap();
        let disk = loop_device(true);
        let plain = loop_device(false);
        let name = |l: &Loop| l.dev.file_name().unwrap().to_owned();
        let pci = sys.path().join("devices/pci0000:00");
        let swap_block = pci.join("0000:00:02.0/0000:01:05.0/virtio3/block");
        std::fs::create_dir_all(swap_block.join(name(&disk))).unwrap();
        let plain_block = pci.join("0000:00:04.0/virtio4/block");
        std::fs::create_dir_all(plain_block.join(name(&plain))).unwrap();

        let dev = add_swap(sys.path(), &[2, 5]).unwrap();
        assert_eq!(dev, disk.dev);
        let swaps = std::fs::read_to_string("/proc/swaps").unwrap();
        assert!(swaps.contains(disk.dev.to_str().unwrap()), "{swaps}");
        let e = add_swap(sys.path(), &[2, 5]).unwrap_err();
        assert_eq!(
            e.code(),
            ttrpc::Code::FAILED_PRECONDITION,
            "already on: {e}"
        );
        let e = add_swap(sys.path(), &[4]).unwrap_err();
        assert_eq!(e.code(), ttrpc::Code::FAILED_PRECONDITION, "{e}");
        drop(disk);
        let swaps = std::fs::read_to_string("/proc/swaps").unwrap();
        assert!(!swaps.contains(dev.to_str().unwrap()), "{swaps}");
    }
}
