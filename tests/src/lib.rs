//! Test harness for the integration tiers: the built binaries, a busybox bundle made by
//! `zagent-ctl bundle`, an agent under test on a unix socket in a temp dir (stopped and checked
//! for leftovers on drop), and a ttrpc client with one method per RPC.

pub mod agent;
pub mod bench;
pub mod bundle;
pub mod conformance;
pub mod fuzz_bodies;
pub mod guest;
pub mod leftovers;
pub mod modgraph;
pub mod procs;
pub mod rootfs_copy;
pub mod soak;

use std::path::PathBuf;

/// A built binary of the workspace (`cargo build --workspace --bins` must have run; .ci/run and
/// the README's test command do).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test binary>
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} not built: run `cargo build --workspace --bins` first",
        path.display()
    );
    path
}

/// Root tests fail (never pass silently) when not run as root.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test requires root (run the suite as root)"
    );
}

/// An id unique to this test process and call, so parallel tests never share a cgroup.
pub fn unique_id(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}
