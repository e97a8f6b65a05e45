//! A private, writable copy of the shared busybox rootfs in a temp dir, for tests that plant
//! symlinks or race renames inside a rootfs. The copy is deleted on drop unless something is
//! still mounted under it on the host: deleting recursively through a stray mount would reach
//! whatever was mounted there, so a copy with mounts left is kept (and the test's own leak
//! check reports the mount).

use crate::leftovers::host_mounts_at_or_under;
use oci_spec::runtime::Spec;
use std::path::{Path, PathBuf};

pub struct RootfsCopy {
    dir: Option<tempfile::TempDir>,
    rootfs: PathBuf,
}

impl RootfsCopy {
    /// `cp -a` of the shared rootfs into `<tmp>/zagent-rootfs*/rootfs`.
    pub fn new() -> RootfsCopy {
        let src = crate::bundle::rootfs();
        let dir = tempfile::Builder::new()
            .prefix("zagent-rootfs")
            .tempdir()
            .expect("tempdir");
        let rootfs = dir.path().join("rootfs");
        let out = std::process::Command::new("cp")
            .arg("-a")
            .arg(src)
            .arg(&rootfs)
            .output()
            .expect("run cp");
        assert!(
            out.status.success(),
            "cp -a {}: {}",
            src.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        RootfsCopy {
            dir: Some(dir),
            rootfs,
        }
    }

    pub fn path(&self) -> &Path {
        &self.rootfs
    }

    /// The temp dir holding the copy (the rootfs's parent), for the test's own scratch files.
    pub fn dir(&self) -> &Path {
        self.rootfs.parent().expect("rootfs parent")
    }

    /// The default spec with `args`, rooted at this copy.
    pub fn spec(&self, args: &[&str]) -> Spec {
        let mut spec = crate::bundle::spec(args);
        let mut root = spec.root().clone().expect("root");
        root.set_path(self.rootfs.clone());
        spec.set_root(Some(root));
        spec
    }
}

impl Default for RootfsCopy {
    fn default() -> Self {
        RootfsCopy::new()
    }
}

impl Drop for RootfsCopy {
    fn drop(&mut self) {
        let Some(dir) = self.dir.take() else {
            return;
        };
        let mounts = host_mounts_at_or_under(dir.path());
        if !mounts.is_empty() {
            eprintln!(
                "keeping {} (host mounts under it: {mounts:?})",
                dir.path().display()
            );
            let _ = dir.keep();
        }
    }
}
