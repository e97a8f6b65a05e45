//! Tier 2 (root): attacks through the rootfs's own contents, for both launchers, on a private
//! copy of the busybox rootfs: a bind-mount destination swapped with a symlink to a host
//! directory (RENAME_EXCHANGE) while creates run, and /proc, /dev or /sys replaced by symlinks
//! leading out. What must hold: no mount ever lands on a host path outside the rootfs, nothing
//! is written outside it, a refused create is a clean FAILED_PRECONDITION, nothing is left.

use oci_spec::runtime::{Mount, MountBuilder, Spec};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use tests::agent::{code, message, Launcher, TestAgent};
use tests::leftovers::{assert_nothing_left, host_mount_points, host_mounts_at_or_under};
use tests::rootfs_copy::RootfsCopy;
use tests::unique_id;
use ttrpc::Code;

/// The names in `dir`, sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn bind_mount(source: &Path, destination: &str) -> Mount {
    MountBuilder::default()
        .destination(destination)
        .typ("bind")
        .source(source)
        .options(vec!["rbind".to_string()])
        .build()
        .unwrap()
}

fn with_mount(mut spec: Spec, m: Mount) -> Spec {
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    mounts.push(m);
    spec.set_mounts(Some(mounts));
    spec
}

/// renameat2(RENAME_EXCHANGE) of two paths (both must exist).
fn exchange(a: &Path, b: &Path) -> nix::Result<()> {
    nix::fcntl::renameat2(None, a, None, b, nix::fcntl::RenameFlags::RENAME_EXCHANGE)
}

/// A thread swapping `dst` with each of `links` in turn (twice in a row, so that `dst` is a
/// directory again after every pair) until `stop`; counts the swaps.
fn swapper(
    dst: PathBuf,
    links: Vec<PathBuf>,
    stop: Arc<AtomicBool>,
    swaps: Arc<AtomicU64>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            for link in &links {
                for _ in 0..2 {
                    exchange(&dst, link).expect("RENAME_EXCHANGE");
                    swaps.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    })
}

/// The host's victim: an empty directory outside the rootfs that symlinks point at.
fn assert_victim_untouched(victim: &Path) {
    assert_eq!(host_mounts_at_or_under(victim), Vec::<PathBuf>::new());
    assert_eq!(
        entries(victim),
        Vec::<String>::new(),
        "written into the victim"
    );
}

tests::both_launchers!(bind_destination_swapped_with_a_symlink_never_mounts_on_the_host);
async fn bind_destination_swapped_with_a_symlink_never_mounts_on_the_host(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    let copy = RootfsCopy::new();
    let scratch = copy.dir().to_path_buf();
    let (source, victim) = (scratch.join("source"), scratch.join("victim"));
    std::fs::create_dir(&source).unwrap();
    std::fs::write(source.join("file"), "bind source").unwrap();
    std::fs::create_dir(&victim).unwrap();
    let mnt = copy.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let dst = mnt.join("dst");
    std::fs::create_dir(&dst).unwrap();
    // An absolute link and one climbing with "..", both at the host's victim.
    let climbing = format!(
        "{}{}",
        "../".repeat(16),
        victim.strip_prefix("/").unwrap().display()
    );
    let links = vec![mnt.join("abs"), mnt.join("rel")];
    std::os::unix::fs::symlink(&victim, &links[0]).unwrap();
    std::os::unix::fs::symlink(&climbing, &links[1]).unwrap();
    let spec = with_mount(copy.spec(&["true"]), bind_mount(&source, "/mnt/dst"));
    let stop = Arc::new(AtomicBool::new(false));
    let swaps = Arc::new(AtomicU64::new(0));
    let thread = swapper(dst.clone(), links, stop.clone(), swaps.clone());
    let (mut ok, mut refused) = (0, 0);
    for _ in 0..200 {
        let id = unique_id("race");
        let r = a.create(&id, &spec).await;
        if r.is_ok() {
            ok += 1;
            a.remove(&id).await.unwrap();
        } else {
            assert_eq!(code(&r), Code::FAILED_PRECONDITION, "{}", message(&r));
            assert!(message(&r).contains("mount"), "{}", message(&r));
            refused += 1;
        }
        assert_victim_untouched(&victim);
        assert_nothing_left(&a, &id, &[&scratch]).await;
    }
    stop.store(true, Ordering::Relaxed);
    thread.join().unwrap();
    let swaps = swaps.load(Ordering::Relaxed);
    eprintln!("{l:?}: 200 creates under {swaps} swaps: {ok} created, {refused} refused");
    // Both outcomes seen: the race was really run, and creates still work between swaps.
    assert!(
        refused > 0,
        "no create ever met the symlink ({swaps} swaps)"
    );
    assert!(ok > 0, "no create ever met the directory ({swaps} swaps)");
    assert_eq!(entries(&scratch), ["rootfs", "source", "victim"]);
    assert_eq!(entries(&source), ["file"]);
    assert_eq!(
        entries(&dst),
        Vec::<String>::new(),
        "the rootfs's dst was written"
    );
}

tests::both_launchers!(proc_dev_sys_symlinked_out_of_the_rootfs_never_mount_on_the_host);
async fn proc_dev_sys_symlinked_out_of_the_rootfs_never_mount_on_the_host(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    let etc_mounts = |mps: &[PathBuf]| {
        mps.iter()
            .filter(|m| m.as_path() == Path::new("/etc"))
            .count()
    };
    let etc_before = etc_mounts(&host_mount_points());
    let (mut ok, mut refused) = (0, 0);
    for dir in ["proc", "dev", "sys"] {
        for kind in ["absolute", "climbing", "relative-etc"] {
            let copy = RootfsCopy::new();
            let scratch = copy.dir().to_path_buf();
            let victim = scratch.join("victim");
            std::fs::create_dir(&victim).unwrap();
            let target = match kind {
                "absolute" => victim.display().to_string(),
                "climbing" => format!(
                    "{}{}",
                    "../".repeat(16),
                    victim.strip_prefix("/").unwrap().display()
                ),
                _ => "../../etc".to_string(),
            };
            let at = copy.path().join(dir);
            std::fs::remove_dir(&at).unwrap();
            std::os::unix::fs::symlink(&target, &at).unwrap();
            let id = unique_id("symdir");
            let r = a.create(&id, &copy.spec(&["true"])).await;
            if r.is_ok() {
                a.start_container(&id).await.unwrap();
                a.wait(&id).await.unwrap();
                a.remove(&id).await.unwrap();
                ok += 1;
            } else {
                let what = format!("/{dir} -> {target}: {}", message(&r));
                assert_eq!(code(&r), Code::FAILED_PRECONDITION, "{what}");
                refused += 1;
            }
            assert_victim_untouched(&victim);
            assert_eq!(
                etc_mounts(&host_mount_points()),
                etc_before,
                "mount on /etc"
            );
            assert_nothing_left(&a, &id, &[&scratch]).await;
            // The link itself is still the planted one: nothing replaced or followed it.
            assert_eq!(std::fs::read_link(&at).unwrap(), PathBuf::from(&target));
            assert_eq!(entries(&scratch), ["rootfs", "victim"]);
        }
    }
    eprintln!("{l:?}: symlinked /proc, /dev, /sys: {ok} created, {refused} refused");
}
