//! Busybox bundles for tests: one per build of `zagent-ctl`, made with `zagent-ctl bundle` under
//! the target dir and shared by every test process of that build; each test gets its own
//! config.json (the rootfs is shared read-only: the default spec has a read-only root, so tests
//! never write into it). Under the target dir rather than /tmp because a static is never
//! dropped: a temp dir per test process would be left behind by each.

use oci_spec::runtime::Spec;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

static ROOTFS: OnceLock<PathBuf> = OnceLock::new();

/// The shared busybox rootfs of this build.
pub fn rootfs() -> &'static Path {
    ROOTFS.get_or_init(|| shared_bundle().join("rootfs"))
}

/// `target/<profile>/zagent-test-bundle-<key>`, made once: the key names the zagent-ctl binary
/// (size and mtime), so a rebuilt zagent-ctl (whose default spec may differ) gets a new bundle.
/// Made in a temp dir beside it and renamed into place, so that test processes starting at
/// once never see half a bundle; the loser of that race uses the winner's.
fn shared_bundle() -> PathBuf {
    let ctl = crate::bin("zagent-ctl");
    let meta = std::fs::metadata(&ctl).expect("stat zagent-ctl");
    let dir = ctl.parent().expect("target dir");
    let name = format!(
        "zagent-test-bundle-{}-{}-{}",
        meta.size(),
        meta.mtime(),
        meta.mtime_nsec()
    );
    let path = dir.join(&name);
    if path.join("config.json").exists() {
        return path;
    }
    let tmp = tempfile::Builder::new()
        .prefix(".zagent-test-bundle")
        .tempdir_in(dir)
        .expect("tempdir in the target dir");
    let out = std::process::Command::new(&ctl)
        .arg("bundle")
        .arg(tmp.path())
        .output()
        .expect("run zagent-ctl bundle");
    assert!(
        out.status.success(),
        "zagent-ctl bundle: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    if std::fs::rename(tmp.path(), &path).is_err() {
        assert!(
            path.join("config.json").exists(),
            "no bundle at {}",
            path.display()
        );
    }
    remove_stale(dir, &name);
    path
}

/// Bundles of earlier builds of zagent-ctl (best effort: nothing of this build uses them).
fn remove_stale(dir: &Path, current: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("zagent-test-bundle-") && name != current {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
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

/// A container the kernel's OOM killer kills: dd's 64 MiB buffer, filled from /dev/zero,
/// cannot fit in a 16 MiB memory limit (nor go to swap: memory+swap has the same limit).
pub fn oom_spec() -> Spec {
    use oci_spec::runtime::{LinuxMemoryBuilder, LinuxResourcesBuilder};
    const LIMIT: i64 = 16 << 20;
    let mut spec = spec(&["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"]);
    let memory = LinuxMemoryBuilder::default()
        .limit(LIMIT)
        .swap(LIMIT)
        .build()
        .expect("memory limits");
    let resources = LinuxResourcesBuilder::default()
        .memory(memory)
        .build()
        .expect("resources");
    let mut linux = spec.linux().clone().expect("linux");
    linux.set_resources(Some(resources));
    spec.set_linux(Some(linux));
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
