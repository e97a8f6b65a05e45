//! Tier 2 (root): Kata storages (issue 9). CreateContainer and CreateSandbox mount what their
//! `storages` ask (tmpfs, bind, a block device through `mmioblk`, a directory) under the
//! storage root, once per mount point however many containers use it, and unmount it when its
//! last user goes; bad storages are INVALID_ARGUMENT and leave nothing.

use oci_spec::runtime::Spec;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tests::agent::{code, Launcher, TestAgent};
use tests::{bundle, leftovers, unique_id};
use ttrpc::Code;

fn ctx() -> ttrpc::context::Context {
    ttrpc::context::with_timeout(Duration::from_secs(30).as_nanos() as i64)
}

fn storage(
    driver: &str,
    source: &str,
    fstype: &str,
    options: &[&str],
    at: &Path,
) -> wire::agent::Storage {
    let mut s = wire::agent::Storage::new();
    s.driver = driver.into();
    s.source = source.into();
    s.fstype = fstype.into();
    s.options = options.iter().map(|o| o.to_string()).collect();
    s.mount_point = at.display().to_string();
    s
}

/// `script` with each of `binds` (a storage's mount point) bound at /s<i> in the container.
fn spec(script: &str, binds: &[&Path]) -> Spec {
    let mut value = serde_json::to_value(bundle::spec(&["sh", "-c", script])).unwrap();
    for (i, at) in binds.iter().enumerate() {
        value["mounts"].as_array_mut().unwrap().push(json!({
            "destination": format!("/tmp/s{i}"), "type": "bind", "source": at,
            "options": ["rbind", "rw"]
        }));
    }
    serde_json::from_value(value).unwrap()
}

async fn create(
    a: &TestAgent,
    id: &str,
    spec: &Spec,
    storages: Vec<wire::agent::Storage>,
) -> ttrpc::Result<()> {
    let mut req = wire::agent::CreateContainerRequest::new();
    req.container_id = id.into();
    req.exec_id = id.into();
    req.storages = storages;
    req.OCI = protobuf::MessageField::some(wire::oci::spec_to_grpc(spec));
    a.create_raw(req).await
}

fn mounted(at: &Path) -> bool {
    leftovers::host_mount_points().iter().any(|m| m == at)
}

/// A loop device with an ext4 filesystem holding `hello`, detached on drop.
struct LoopDisk {
    dev: PathBuf,
    _file: tempfile::NamedTempFile,
}

impl LoopDisk {
    fn new() -> LoopDisk {
        let file = tempfile::NamedTempFile::new().unwrap();
        file.as_file().set_len(8 << 20).unwrap();
        let run = |cmd: &str, args: &[&str]| {
            let out = std::process::Command::new(cmd).args(args).output().unwrap();
            assert!(out.status.success(), "{cmd} {args:?}: {out:?}");
            String::from_utf8(out.stdout).unwrap()
        };
        let path = file.path().to_str().unwrap();
        run("mkfs.ext4", &["-q", "-F", path]);
        let dev = run("losetup", &["--find", "--show", path])
            .trim()
            .to_owned();
        LoopDisk {
            dev: dev.into(),
            _file: file,
        }
    }
}

impl Drop for LoopDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("losetup")
            .arg("-d")
            .arg(&self.dev)
            .status();
    }
}

tests::both_launchers!(storages_are_mounted_once_shared_and_unmounted_with_their_last_user);
async fn storages_are_mounted_once_shared_and_unmounted_with_their_last_user(l: Launcher) {
    let root = tempfile::Builder::new()
        .prefix("zagent-storage")
        .tempdir()
        .unwrap();
    let root_arg = root.path().to_str().unwrap().to_owned();
    let a = TestAgent::start_opts(l, &["--storage-root", &root_arg]).await;
    let disk = LoopDisk::new();
    let host_dir = tempfile::tempdir().unwrap();
    std::fs::write(host_dir.path().join("from-host"), "h\n").unwrap();
    let (eph, bind, blk) = (
        root.path().join("eph"),
        root.path().join("bind"),
        root.path().join("blk"),
    );
    let storages = || {
        vec![
            storage("ephemeral", "", "", &["size=1m"], &eph),
            storage(
                "bind",
                host_dir.path().to_str().unwrap(),
                "",
                &["ro"],
                &bind,
            ),
            storage("mmioblk", disk.dev.to_str().unwrap(), "ext4", &[], &blk),
        ]
    };
    let first = unique_id("st1");
    let script =
        "echo one > /tmp/s0/shared; cat /tmp/s1/from-host; echo disk > /tmp/s2/d; sleep 30";
    create(&a, &first, &spec(script, &[&eph, &bind, &blk]), storages())
        .await
        .expect("create first");
    a.start_container(&first).await.unwrap();
    for at in [&eph, &bind, &blk] {
        assert!(mounted(at), "{} mounted", at.display());
    }
    let second = unique_id("st2");
    let reader = "for i in $(seq 50); do [ -f /tmp/s0/shared ] && break; sleep 0.1; done; cat /tmp/s0/shared";
    create(
        &a,
        &second,
        &spec(reader, &[&eph]),
        vec![storage("ephemeral", "", "", &[], &eph)],
    )
    .await
    .expect("create second");
    a.start_container(&second).await.unwrap();
    let out = a.read_all(&second, false).await.unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out),
        "one\n",
        "the same tmpfs, mounted once"
    );
    assert_eq!(a.wait(&second).await.unwrap(), 0);
    a.remove(&second).await.unwrap();
    assert!(mounted(&eph), "the first container still uses it");
    a.signal(&first, 9).await.unwrap();
    a.wait(&first).await.unwrap();
    a.remove(&first).await.unwrap();
    for at in [&eph, &bind, &blk] {
        assert!(
            !mounted(at),
            "{} unmounted with its last user",
            at.display()
        );
        assert!(!at.exists(), "{} removed", at.display());
    }
    assert!(
        std::fs::read_dir(host_dir.path()).unwrap().count() == 1,
        "a ro bind stays untouched"
    );
}

tests::both_launchers!(bad_storages_are_invalid_argument_and_leave_nothing);
async fn bad_storages_are_invalid_argument_and_leave_nothing(l: Launcher) {
    let root = tempfile::Builder::new()
        .prefix("zagent-storage")
        .tempdir()
        .unwrap();
    let root_arg = root.path().to_str().unwrap().to_owned();
    let a = TestAgent::start_opts(l, &["--storage-root", &root_arg]).await;
    let ok = root.path().join("ok");
    let cases = [
        (
            storage("floppy", "", "", &[], &root.path().join("f")),
            Code::INVALID_ARGUMENT,
        ),
        (
            storage("ephemeral", "", "", &[], Path::new("/etc/zagent-test")),
            Code::INVALID_ARGUMENT,
        ),
        (
            storage(
                "mmioblk",
                "/dev/zagent-no-such-disk",
                "ext4",
                &[],
                &root.path().join("b"),
            ),
            Code::NOT_FOUND,
        ),
    ];
    for (bad, want) in cases {
        let id = unique_id("stbad");
        let r = create(
            &a,
            &id,
            &spec("true", &[]),
            vec![storage("ephemeral", "", "", &[], &ok), bad],
        )
        .await;
        assert_eq!(code(&r), want, "{r:?}");
        assert!(!mounted(&ok) && !ok.exists(), "all or nothing");
        assert!(a.info(&id).await.is_none());
    }
    // What CreateContainer can carry but zagent does not do yet is refused, not dropped.
    let mut req = wire::agent::CreateContainerRequest::new();
    req.container_id = unique_id("stdev");
    req.devices = vec![wire::agent::Device::new()];
    req.OCI = protobuf::MessageField::some(wire::oci::spec_to_grpc(&spec("true", &[])));
    let r = a.create_raw(req).await;
    assert_eq!(code(&r), Code::UNIMPLEMENTED, "{r:?}");
    // The sandbox's storages live until DestroySandbox.
    let mut sb = wire::agent::CreateSandboxRequest::new();
    sb.sandbox_id = unique_id("sb");
    sb.storages = vec![storage("ephemeral", "", "", &[], &ok)];
    a.client
        .create_sandbox(ctx(), &sb)
        .await
        .expect("CreateSandbox");
    assert!(mounted(&ok));
    // UpdateEphemeralMounts: a new size for the tmpfs, as a grown emptyDir limit.
    let mut upd = wire::agent::UpdateEphemeralMountsRequest::new();
    upd.storages = vec![storage("ephemeral", "", "", &["size=2m"], &ok)];
    a.client
        .update_ephemeral_mounts(ctx(), &upd)
        .await
        .expect("UpdateEphemeralMounts");
    let size = nix::sys::statvfs::statvfs(&ok).unwrap();
    assert_eq!(size.blocks() * size.fragment_size(), 2 << 20);
    upd.storages = vec![storage("ephemeral", "", "", &[], &root.path().join("none"))];
    let r = a.client.update_ephemeral_mounts(ctx(), &upd).await;
    assert_eq!(code(&r), Code::NOT_FOUND, "{r:?}");
    a.client
        .destroy_sandbox(ctx(), &Default::default())
        .await
        .expect("DestroySandbox");
    assert!(!mounted(&ok) && !ok.exists());
}
