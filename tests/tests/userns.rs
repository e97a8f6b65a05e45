//! Tier 2 (root): user namespaces. A container with `linux.uidMappings`/`gidMappings` runs as
//! root inside and as the mapped ids outside: what it writes into a bind-mounted host dir shows
//! the mapped owner on the host. Execs join the same namespace; a second container can join the
//! first one's by path; bad maps are INVALID_ARGUMENT before anything is made.

use oci_spec::runtime::Spec;
use serde_json::{json, Value};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use tests::agent::{code, message, Launcher, TestAgent};
use tests::rootfs_copy::RootfsCopy;
use tests::{leftovers, unique_id};
use ttrpc::Code;

const HOST_UID: u32 = 200_000;
const HOST_GID: u32 = 300_000;

fn patched(spec: &Spec, patch: impl FnOnce(&mut Value)) -> Spec {
    let mut value = serde_json::to_value(spec).expect("spec to JSON");
    patch(&mut value);
    serde_json::from_value(value).expect("patched spec parses")
}

/// The copy's spec with a new user namespace mapping 0..65536 to HOST_UID/HOST_GID onwards and
/// `shared` bind-mounted read-write at /shared.
fn userns_spec(copy: &RootfsCopy, shared: &Path, script: &str) -> Spec {
    patched(&copy.spec(&["sh", "-c", script]), |s| {
        let ns = s["linux"]["namespaces"].as_array_mut().unwrap();
        ns.push(json!({ "type": "user" }));
        s["linux"]["uidMappings"] =
            json!([{ "containerID": 0, "hostID": HOST_UID, "size": 65536 }]);
        s["linux"]["gidMappings"] =
            json!([{ "containerID": 0, "hostID": HOST_GID, "size": 65536 }]);
        s["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/shared", "type": "bind", "source": shared,
            "options": ["rbind", "rw"]
        }));
    })
}

/// A rootfs copy owned by the mapped root (as an image unpacked for a user namespace is), and
/// a host dir for the container to write into, owned by the mapped root too.
fn mapped_rootfs() -> (RootfsCopy, std::path::PathBuf) {
    let copy = RootfsCopy::new();
    let chown = |path: &Path| {
        let out = std::process::Command::new("chown")
            .args(["-R", "-h", &format!("{HOST_UID}:{HOST_GID}")])
            .arg(path)
            .output()
            .expect("run chown");
        assert!(out.status.success(), "chown: {out:?}");
    };
    chown(copy.path());
    let shared = copy.dir().join("shared");
    std::fs::create_dir(&shared).unwrap();
    chown(&shared);
    (copy, shared)
}

tests::both_launchers!(files_made_in_a_user_namespace_show_the_mapped_owner_on_the_host);
async fn files_made_in_a_user_namespace_show_the_mapped_owner_on_the_host(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    let (copy, shared) = mapped_rootfs();
    let script = "id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map; \
                  touch /shared/by-root; \
                  echo ok > /shared/made && ls -ln /dev/null | cut -c1-10";
    let spec = userns_spec(&copy, &shared, script);
    let id = unique_id("userns");
    let (status, out, err) = a.run(&id, &spec).await;
    assert_eq!(status, 0, "stdout: {out} stderr: {err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0..2], ["0", "0"], "{out}");
    let uid_map: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(uid_map, ["0", &HOST_UID.to_string(), "65536"], "{out}");
    let gid_map: Vec<&str> = lines[3].split_whitespace().collect();
    assert_eq!(gid_map, ["0", &HOST_GID.to_string(), "65536"], "{out}");
    assert_eq!(lines[4], "crw-rw-rw-", "/dev/null in the container: {out}");
    for name in ["by-root", "made"] {
        let meta = std::fs::metadata(shared.join(name)).expect("file made by the container");
        assert_eq!((meta.uid(), meta.gid()), (HOST_UID, HOST_GID), "{name}");
    }
    assert!(leftovers::cgroups_left(&id).is_empty());
}

tests::both_launchers!(a_mapped_user_and_an_exec_write_as_their_mapped_ids);
async fn a_mapped_user_and_an_exec_write_as_their_mapped_ids(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    let (copy, shared) = mapped_rootfs();
    std::fs::set_permissions(&shared, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let spec = patched(
        &userns_spec(&copy, &shared, "touch /shared/init; sleep 30"),
        |s| {
            s["process"]["user"] = json!({ "uid": 1000, "gid": 1000, "additionalGids": [5] });
        },
    );
    let id = unique_id("userns-exec");
    a.create(&id, &spec).await.expect("create");
    a.start_container(&id).await.expect("start");
    let exec = patched(&spec, |s| {
        s["process"]["args"] = json!(["sh", "-c", "touch /shared/exec; id -u; id -G"]);
        s["process"]["user"] = json!({ "uid": 2000, "gid": 3000 });
    });
    let process = exec.process().clone().unwrap();
    a.exec(&id, "e1", &process).await.expect("exec");
    assert_eq!(a.wait_exec(&id, "e1").await.expect("wait exec"), 0);
    let out = a
        .read_all_exec(&id, "e1", false)
        .await
        .expect("read exec stdout");
    assert_eq!(String::from_utf8_lossy(&out), "2000\n3000\n");
    let owner = |name: &str| {
        let meta = std::fs::metadata(shared.join(name)).expect(name);
        (meta.uid(), meta.gid())
    };
    assert_eq!(owner("init"), (HOST_UID + 1000, HOST_GID + 1000));
    assert_eq!(owner("exec"), (HOST_UID + 2000, HOST_GID + 3000));
    a.signal(&id, 9).await.expect("kill");
    a.wait(&id).await.expect("wait");
    a.remove(&id).await.expect("remove");
    assert!(leftovers::cgroups_left(&id).is_empty());
}

tests::both_launchers!(a_container_joins_another_s_user_namespace_by_path);
async fn a_container_joins_another_s_user_namespace_by_path(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    let (copy, shared) = mapped_rootfs();
    let first = unique_id("userns-a");
    a.create(&first, &userns_spec(&copy, &shared, "sleep 30"))
        .await
        .expect("create the first");
    a.start_container(&first).await.expect("start the first");
    let (_, pid, _) = a.info(&first).await.expect("first is listed");
    let path = format!("/proc/{pid}/ns/user");
    let second = patched(
        &copy.spec(&["sh", "-c", "touch /shared/joined; cat /proc/self/uid_map"]),
        |s| {
            s["linux"]["namespaces"]
                .as_array_mut()
                .unwrap()
                .push(json!({ "type": "user", "path": path }));
            s["mounts"].as_array_mut().unwrap().push(json!({
                "destination": "/shared", "type": "bind", "source": shared, "options": ["rbind"]
            }));
        },
    );
    let (status, out, err) = a.run(&unique_id("userns-b"), &second).await;
    assert_eq!(status, 0, "stdout: {out} stderr: {err}");
    let map: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(map, ["0", &HOST_UID.to_string(), "65536"]);
    let meta = std::fs::metadata(shared.join("joined")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (HOST_UID, HOST_GID));
    a.signal(&first, 9).await.expect("kill");
    a.wait(&first).await.expect("wait");
    a.remove(&first).await.expect("remove");
}

tests::both_launchers!(bad_maps_are_invalid_argument_and_leave_nothing);
async fn bad_maps_are_invalid_argument_and_leave_nothing(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    let (copy, shared) = mapped_rootfs();
    let good = userns_spec(&copy, &shared, "true");
    let cases = [
        (
            patched(&good, |s| s["process"]["user"]["uid"] = json!(70000)),
            "does not map id 70000",
        ),
        (
            patched(&good, |s| {
                s["linux"]["gidMappings"] = json!([]);
            }),
            "linux.gidMappings is empty",
        ),
        (
            patched(&good, |s| {
                s["linux"]["uidMappings"] = json!([
                    { "containerID": 0, "hostID": HOST_UID, "size": 10 },
                    { "containerID": 5, "hostID": 0, "size": 1 }
                ]);
            }),
            "overlap inside the container",
        ),
    ];
    for (spec, want) in cases {
        let id = unique_id("userns-bad");
        let r = a.create(&id, &spec).await;
        assert_eq!(code(&r), Code::INVALID_ARGUMENT, "{r:?}");
        assert!(message(&r).contains(want), "{}", message(&r));
        assert!(leftovers::cgroups_left(&id).is_empty());
    }
}

tests::both_launchers!(terminals_in_a_user_namespace_belong_to_the_mapped_user);
async fn terminals_in_a_user_namespace_belong_to_the_mapped_user(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    let (copy, shared) = mapped_rootfs();
    let script = "ls -ln $(tty) /dev/console; sleep 30";
    let spec = patched(&userns_spec(&copy, &shared, script), |s| {
        s["process"]["terminal"] = json!(true);
        s["process"]["user"] = json!({ "uid": 1000, "gid": 1000 });
    });
    let id = unique_id("userns-tty");
    a.create(&id, &spec).await.expect("create");
    a.start_container(&id).await.expect("start");
    let mut out = String::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while out.matches("\r\n").count() < 2 && std::time::Instant::now() < deadline {
        let mut req = wire::agent::ReadStreamRequest::new();
        req.container_id = id.clone();
        req.len = 4096;
        let got = a
            .client
            .read_stdout(ttrpc::context::with_timeout(20_000_000_000), &req)
            .await
            .expect("read the terminal");
        out.push_str(&String::from_utf8_lossy(&got.data));
    }
    // The process's pty and the console are the mapped user's, as seen inside (group tty, from
    // devpts's gid=5, as everywhere).
    let owners: Vec<(&str, &str)> = out
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() > 3).then(|| (f[2], f[3]))
        })
        .collect();
    assert_eq!(owners, [("1000", "5"), ("1000", "5")], "{out:?}");
    a.signal(&id, 9).await.expect("kill");
    a.wait(&id).await.expect("wait");
    a.remove(&id).await.expect("remove");
}
