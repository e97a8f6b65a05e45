//! Kata storages (the `storages` of CreateSandbox and CreateContainer): what the shim asks the
//! guest to mount before a container uses it, by driver: `local` (a directory), `ephemeral`
//! (a tmpfs), `bind`, `9p` and `virtio-fs` (a share by tag), `blk`/`mmioblk`, `scsi` and
//! `nvdimm` (a block device found in sysfs, then mounted). A mount point is mounted once and
//! shared: each user holds an `Arc<Mounted>`, the registry only a `Weak`, and the last user to
//! let go unmounts it (under the registry's lock, so a new user of the same mount point never
//! races the unmount). Mount points must lie under the storage root (`--storage-root`, Kata's
//! /run/kata-containers by default): a buggy shim must not mount over the guest's /etc. An
//! unknown driver is INVALID_ARGUMENT.

mod drivers;
mod options;

pub use drivers::pci_block_device;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

/// One storage as the shim describes it (converted from Kata's `Storage` message).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StorageSpec {
    pub driver: String,
    pub driver_options: Vec<String>,
    pub source: String,
    pub fstype: String,
    pub options: Vec<String>,
    pub mount_point: PathBuf,
}

/// The drivers served, as GetGuestDetails lists them.
pub const DRIVERS: [&str; 9] = [
    "local",
    "ephemeral",
    "bind",
    "9p",
    "virtio-fs",
    "blk",
    "mmioblk",
    "scsi",
    "nvdimm",
];

/// At most this many storages in one request.
pub const MAX_PER_REQUEST: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage driver {0:?} is not supported (local, ephemeral, bind, 9p, virtio-fs, blk, mmioblk, scsi, nvdimm)")]
    UnknownDriver(String),
    #[error("storage mount point {0:?} is not a clean absolute path under the storage root {1:?}")]
    MountPoint(PathBuf, PathBuf),
    #[error("storage {mount_point:?}: {what}")]
    Invalid { mount_point: PathBuf, what: String },
    #[error("storage {mount_point:?}: device for {source_name:?} not found: {what}")]
    DeviceNotFound {
        mount_point: PathBuf,
        source_name: String,
        what: String,
    },
    #[error("storage {mount_point:?}: {what}: {errno}")]
    Mount {
        mount_point: PathBuf,
        what: String,
        errno: nix::errno::Errno,
    },
    #[error("storage {0:?} is not mounted")]
    NotMounted(PathBuf),
    #[error("too many storages in one request ({0}, at most {MAX_PER_REQUEST})")]
    TooMany(usize),
}

/// A mounted storage; dropping the last handle unmounts it.
#[derive(Debug)]
pub struct Mounted {
    mount_point: PathBuf,
    driver: String,
    /// Whether something was mounted (a `local` storage is only a directory).
    mounted: bool,
    registry: Weak<Mutex<HashMap<PathBuf, Weak<Mounted>>>>,
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let registry = self.registry.upgrade();
        let _guard = registry
            .as_ref()
            .map(|r| r.lock().unwrap_or_else(|p| p.into_inner()));
        if self.mounted {
            if let Err(e) = nix::mount::umount2(&self.mount_point, nix::mount::MntFlags::MNT_DETACH)
            {
                tracing::warn!(mount_point = %self.mount_point.display(), error = %e, "unmounting a storage");
            }
        }
        // Only an empty directory goes: whatever a container left in a local one is its data.
        let _ = std::fs::remove_dir(&self.mount_point);
    }
}

/// The storages mounted now, by mount point.
pub struct Storages {
    root: PathBuf,
    sysfs: PathBuf,
    mounts: Arc<Mutex<HashMap<PathBuf, Weak<Mounted>>>>,
}

impl Storages {
    /// `root`: where mount points may be; `sysfs`: where block devices are looked up.
    pub fn new(root: PathBuf, sysfs: PathBuf) -> Storages {
        Storages {
            root,
            sysfs,
            mounts: Default::default(),
        }
    }

    /// Where mount points (and CopyFile's files) may be.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Mounts each of `specs` (or takes a share of it, if already mounted); all or nothing.
    pub fn acquire_all(&self, specs: &[StorageSpec]) -> Result<Vec<Arc<Mounted>>, StorageError> {
        if specs.len() > MAX_PER_REQUEST {
            return Err(StorageError::TooMany(specs.len()));
        }
        // On an error the handles taken so far drop here, which unmounts what was new.
        specs.iter().map(|s| self.acquire(s)).collect()
    }

    /// UpdateEphemeralMounts: each `ephemeral` storage, already mounted, remounted with its
    /// new options (Kata: an emptyDir's new size limit).
    pub fn remount_ephemeral(&self, specs: &[StorageSpec]) -> Result<(), StorageError> {
        if specs.len() > MAX_PER_REQUEST {
            return Err(StorageError::TooMany(specs.len()));
        }
        let mounts = self.mounts.lock().unwrap_or_else(|p| p.into_inner());
        for spec in specs {
            let mp = &spec.mount_point;
            let live = mounts.get(mp).and_then(Weak::upgrade);
            if spec.driver != "ephemeral" || live.as_ref().is_some_and(|m| m.driver != "ephemeral")
            {
                return Err(StorageError::Invalid {
                    mount_point: mp.clone(),
                    what: "only ephemeral storages can be updated".into(),
                });
            }
            if live.is_none() {
                return Err(StorageError::NotMounted(mp.clone()));
            }
            let (flags, data) = options::parse(&spec.options);
            let data = (!data.is_empty()).then_some(data.as_str());
            let flags = flags | nix::mount::MsFlags::MS_REMOUNT;
            nix::mount::mount(None::<&str>, mp, None::<&str>, flags, data).map_err(|errno| {
                StorageError::Mount {
                    mount_point: mp.clone(),
                    what: "remount".into(),
                    errno,
                }
            })?;
        }
        Ok(())
    }

    fn acquire(&self, spec: &StorageSpec) -> Result<Arc<Mounted>, StorageError> {
        let mp = &spec.mount_point;
        if !mp.starts_with(&self.root) || !is_clean_absolute(mp) || mp == &self.root {
            return Err(StorageError::MountPoint(mp.clone(), self.root.clone()));
        }
        if let Some(opt) = spec.driver_options.first() {
            return Err(StorageError::Invalid {
                mount_point: mp.clone(),
                what: format!("driver option {opt:?} is not supported"),
            });
        }
        let mut mounts = self.mounts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(existing) = mounts.get(mp).and_then(Weak::upgrade) {
            return Ok(existing);
        }
        let mounted = drivers::mount(spec, &self.sysfs)?;
        let handle = Arc::new(Mounted {
            mount_point: mp.clone(),
            driver: spec.driver.clone(),
            mounted,
            registry: Arc::downgrade(&self.mounts),
        });
        mounts.retain(|_, w| w.strong_count() > 0);
        mounts.insert(mp.clone(), Arc::downgrade(&handle));
        Ok(handle)
    }
}

fn is_clean_absolute(p: &Path) -> bool {
    use std::path::Component;
    p.is_absolute()
        && p.components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(root: &Path, name: &str) -> StorageSpec {
        StorageSpec {
            driver: "local".into(),
            options: vec!["mode=0750".into()],
            mount_point: root.join(name),
            ..Default::default()
        }
    }

    #[test]
    fn a_mount_point_is_shared_and_goes_with_its_last_user() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let s = Storages::new(root.path().into(), "/sys".into());
        let one = s.acquire_all(&[local(root.path(), "a")]).unwrap();
        let two = s.acquire_all(&[local(root.path(), "a")]).unwrap();
        assert!(Arc::ptr_eq(&one[0], &two[0]));
        let mode = std::fs::metadata(root.path().join("a"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o750);
        drop(one);
        assert!(root.path().join("a").exists(), "still used");
        drop(two);
        assert!(
            !root.path().join("a").exists(),
            "the last user took it away"
        );
    }

    #[test]
    fn bad_storages_are_refused_and_nothing_is_kept() {
        let root = tempfile::tempdir().unwrap();
        let s = Storages::new(root.path().into(), "/sys".into());
        let outside = StorageSpec {
            mount_point: "/etc".into(),
            ..local(root.path(), "x")
        };
        let e = crate::error::AgentError::from(s.acquire_all(&[outside]).unwrap_err());
        assert_eq!(e.code(), ttrpc::Code::INVALID_ARGUMENT, "{e}");
        let climbing = StorageSpec {
            mount_point: root.path().join("a/../../etc"),
            ..local(root.path(), "x")
        };
        assert_eq!(
            crate::error::AgentError::from(s.acquire_all(&[climbing]).unwrap_err()).code(),
            ttrpc::Code::INVALID_ARGUMENT
        );
        let unknown = StorageSpec {
            driver: "floppy".into(),
            ..local(root.path(), "y")
        };
        let e = s
            .acquire_all(&[local(root.path(), "ok"), unknown])
            .unwrap_err();
        assert!(e.to_string().contains("\"floppy\" is not supported"), "{e}");
        assert!(!root.path().join("ok").exists(), "all or nothing");
    }
}
