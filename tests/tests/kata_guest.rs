//! Tier 2 (root): the guest-wide RPCs a Kata shim calls (issue 9), over ttrpc: CopyFile under
//! the storage root, GetVolumeStats, ReseedRandomDev, AddSwap's device lookup,
//! RemoveStaleVirtiofsShareMounts, and the refusals
//! of SetGuestDateTime and OnlineCPUMem input that is out of range. (Setting the clock or
//! onlining CPUs of the shared test host for real would change the machine; their sysfs and
//! clock logic is unit-tested.)

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;
use tests::agent::{code, Launcher, TestAgent};
use ttrpc::Code;

fn ctx() -> ttrpc::context::Context {
    ttrpc::context::with_timeout(Duration::from_secs(30).as_nanos() as i64)
}

tests::both_launchers!(guest_rpcs_do_what_kata_s_agent_does);
async fn guest_rpcs_do_what_kata_s_agent_does(l: Launcher) {
    let root = tempfile::Builder::new()
        .prefix("zagent-guest")
        .tempdir()
        .unwrap();
    let root_arg = root.path().to_str().unwrap().to_owned();
    let a = TestAgent::start_opts(l, &["--storage-root", &root_arg]).await;

    let target = root.path().join("shared/containers/c1/resolv.conf");
    let mut copy = wire::agent::CopyFileRequest::new();
    copy.path = target.display().to_string();
    copy.file_size = 12;
    copy.file_mode = 0o100644;
    copy.dir_mode = 0o755;
    copy.uid = -1;
    copy.gid = -1;
    copy.data = b"nameserver 1".to_vec();
    a.client.copy_file(ctx(), &copy).await.expect("CopyFile");
    assert_eq!(std::fs::read(&target).unwrap(), b"nameserver 1");
    assert_eq!(
        std::fs::metadata(&target).unwrap().permissions().mode() & 0o777,
        0o644
    );
    copy.path = "/etc/zagent-copy-test".into();
    assert_eq!(
        code(&a.client.copy_file(ctx(), &copy).await),
        Code::INVALID_ARGUMENT
    );
    assert!(!std::path::Path::new("/etc/zagent-copy-test").exists());

    let mut vol = wire::agent::VolumeStatsRequest::new();
    vol.volume_guest_path = root.path().display().to_string();
    let stats = a
        .client
        .get_volume_stats(ctx(), &vol)
        .await
        .expect("GetVolumeStats");
    assert_eq!(stats.usage.len(), 2);
    assert!(stats.usage[0].total >= stats.usage[0].used);

    let mut seed = wire::agent::ReseedRandomDevRequest::new();
    seed.data = vec![7u8; 32];
    a.client
        .reseed_random_dev(ctx(), &seed)
        .await
        .expect("ReseedRandomDev");

    let mut time = wire::agent::SetGuestDateTimeRequest::new();
    time.Sec = -5;
    let r = a.client.set_guest_date_time(ctx(), &time).await;
    assert_eq!(code(&r), Code::INVALID_ARGUMENT, "{r:?}");
    let mut cpus = wire::agent::OnlineCPUMemRequest::new();
    cpus.cpu_only = true;
    a.client
        .online_cpu_mem(ctx(), &cpus)
        .await
        .expect("OnlineCPUMem with nothing to do");

    // AddSwap looks the disk up in the machine's sysfs: no PCI device sits behind slot 1d of a
    // device at slot 1e (its swapon on a real disk is the agent's root unit test).
    let mut swap = wire::agent::AddSwapRequest::new();
    swap.PCIPath = vec![0x1e, 0x1d];
    let r = a.client.add_swap(ctx(), &swap).await;
    assert_eq!(code(&r), Code::NOT_FOUND, "{r:?}");
    swap.PCIPath = vec![];
    let r = a.client.add_swap(ctx(), &swap).await;
    assert_eq!(code(&r), Code::INVALID_ARGUMENT, "{r:?}");

    // RemoveStaleVirtiofsShareMounts stats the share's mounts, as Kata's agent: none goes away.
    let share = Unmount(root.path().join("shared/containers/vfs"));
    std::fs::create_dir_all(&share.0).unwrap();
    nix::mount::mount(
        Some("tmpfs"),
        &share.0,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        Some("size=1m"),
    )
    .expect("mount a tmpfs as a share");
    let req = wire::agent::RemoveStaleVirtiofsShareMountsRequest::new();
    a.client
        .remove_stale_virtiofs_share_mounts(ctx(), &req)
        .await
        .expect("RemoveStaleVirtiofsShareMounts");
    let mounts = tests::leftovers::host_mount_points();
    assert!(mounts.contains(&share.0), "the share is still mounted");
}

/// A mount point unmounted on drop, on every path out of the test.
struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}
