//! Busybox bundles for tests: made once per test process with `zagent-ctl bundle`, then each
//! test gets its own config.json (the rootfs is shared read-only: the default spec has a
//! read-only root, so tests never write into it).

use oci_spec::runtime::Spec;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

static ROOTFS: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();

/// The shared busybox rootfs of this test process.
pub fn rootfs() -> &'static Path {
    &ROOTFS
        .get_or_init(|| {
            let dir = tempfile::Builder::new()
                .prefix("zagent-bundle")
                .tempdir()
                .expect("tempdir");
            let out = std::process::Command::new(crate::bin("zagent-ctl"))
                .arg("bundle")
                .arg(dir.path())
                .output()
                .expect("run zagent-ctl bundle");
            assert!(
                out.status.success(),
                "zagent-ctl bundle: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let rootfs = dir.path().join("rootfs");
            (dir, rootfs)
        })
        .1
}

/// The default spec (as `zagent-ctl spec` writes it) with root.path pointing at the shared rootfs.
pub fn spec(args: &[&str]) -> Spec {
    let dir = rootfs().parent().expect("bundle dir");
    let mut spec = Spec::load(dir.join("config.json")).expect("load config.json");
    let mut root = spec.root().clone().expect("root");
    root.set_path(rootfs().to_owned());
    spec.set_root(Some(root));
    let mut process = spec.process().clone().expect("process");
    process.set_args(Some(args.iter().map(|s| s.to_string()).collect()));
    spec.set_process(Some(process));
    spec
}

/// A bundle dir of its own (config.json + a `rootfs` symlink to the shared rootfs) for
/// driving zagent-ctl.
pub fn bundle_dir(spec: &Spec) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("zagent-b")
        .tempdir()
        .expect("tempdir");
    spec.save(dir.path().join("config.json"))
        .expect("save config.json");
    dir
}
