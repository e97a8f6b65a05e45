//! Tier 2 (root): what runc does without the spec asking (issue 8's differences 2, 6, 8, 9
//! and 12): `lo` up, HOME, a missing cwd, the umask annotation, the v1 memory knobs, unknown
//! capability names and bundle-relative bind sources, each checked from inside the container
//! or through zagent-ctl.

use oci_spec::runtime::Spec;
use serde_json::{json, Value};
use tests::agent::{code, message as message_of, Launcher, TestAgent};
use tests::rootfs_copy::RootfsCopy;
use tests::{bundle, leftovers, unique_id};
use ttrpc::Code;

/// `spec` with `patch` applied to its JSON form.
fn patched(spec: &Spec, patch: impl FnOnce(&mut Value)) -> Spec {
    let mut value = serde_json::to_value(spec).expect("spec to JSON");
    patch(&mut value);
    serde_json::from_value(value).expect("patched spec parses")
}

fn sh(script: &str) -> Spec {
    bundle::spec(&["sh", "-c", script])
}

/// The agents a network namespace test needs: the zygote with its warm pool (pooled
/// namespaces) and without it (namespaces from the clone), or the re-exec launcher.
fn pool_variants(l: Launcher) -> &'static [&'static [&'static str]] {
    match l {
        Launcher::Zygote => &[&[], &["--warm-pool", "0"]],
        Launcher::Reexec => &[&[]],
    }
}

tests::both_launchers!(lo_is_up_in_a_new_network_namespace);
async fn lo_is_up_in_a_new_network_namespace(l: Launcher) {
    // A refused connection, not "Network is unreachable", shows that 127.0.0.1 is routed.
    let script = "cat /sys/class/net/lo/flags; wget -q -O- http://127.0.0.1:1/ 2>&1; true";
    for extra in pool_variants(l) {
        let a = TestAgent::start_opts(l, extra).await;
        for _ in 0..2 {
            let (status, out, err) = a.run(&unique_id("lo"), &sh(script)).await;
            assert_eq!(status, 0, "stderr: {err}");
            let flags = out.lines().next().and_then(|f| f.strip_prefix("0x"));
            let flags = u32::from_str_radix(flags.expect("lo flags"), 16).expect("hex flags");
            assert_eq!(flags & libc::IFF_UP as u32, 1, "{extra:?}: {out}");
            assert!(out.contains("Connection refused"), "{extra:?}: {out}");
        }
    }
}

/// A rootfs copy whose /etc/passwd gives uid 1000 a home of its own.
fn rootfs_with_user_1000() -> RootfsCopy {
    let copy = RootfsCopy::new();
    let passwd = copy.path().join("etc/passwd");
    let mut text = std::fs::read_to_string(&passwd).expect("read passwd");
    text.push_str("u:x:1000:1000::/home/u:/bin/sh\n");
    std::fs::write(&passwd, text).expect("write passwd");
    copy
}

/// `spec` run as `uid` with `env` (PATH added) instead of the spec's environment.
fn as_user(spec: &Spec, uid: u32, env: &[&str]) -> Spec {
    let mut env: Vec<String> = env.iter().map(|e| e.to_string()).collect();
    env.insert(0, "PATH=/bin:/usr/bin".into());
    patched(spec, |s| {
        s["process"]["user"] = json!({ "uid": uid, "gid": uid });
        s["process"]["env"] = json!(env);
    })
}

tests::both_launchers!(home_comes_from_the_containers_passwd_when_env_lacks_it);
async fn home_comes_from_the_containers_passwd_when_env_lacks_it(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    let copy = rootfs_with_user_1000();
    let probe = copy.spec(&["sh", "-c", "echo $HOME; env | grep -c ^HOME="]);
    let cases: [(u32, &[&str], &str); 5] = [
        (0, &[], "/root"),
        (1000, &[], "/home/u"),
        (1234, &[], "/"),
        (1000, &["HOME=/mine"], "/mine"),
        (0, &["HOME=/mine", "HOME="], "/root"),
    ];
    for (uid, env, want) in cases {
        let (status, out, err) = a.run(&unique_id("home"), &as_user(&probe, uid, env)).await;
        assert_eq!(status, 0, "stderr: {err}");
        assert_eq!(out, format!("{want}\n1\n"), "uid {uid} env {env:?}");
    }
    // An exec gets the same treatment (runc's exec does it too).
    let id = unique_id("home");
    a.create(&id, &copy.spec(&["sleep", "100"])).await.unwrap();
    a.start_container(&id).await.unwrap();
    for (n, (uid, want)) in [(1000, "/home/u"), (1234, "/")].into_iter().enumerate() {
        let spec = as_user(&copy.spec(&["sh", "-c", "echo $HOME"]), uid, &[]);
        let exec_id = format!("home{n}");
        a.exec(&id, &exec_id, spec.process().as_ref().unwrap())
            .await
            .unwrap();
        let out = a.read_all_exec(&id, &exec_id, false).await.unwrap();
        assert_eq!(a.wait_exec(&id, &exec_id).await.unwrap(), 0);
        assert_eq!(String::from_utf8_lossy(&out), format!("{want}\n"));
    }
    a.signal(&id, libc::SIGKILL as u32).await.unwrap();
    a.wait(&id).await.unwrap();
    a.remove(&id).await.unwrap();
    leftovers::assert_nothing_left(&a, &id, &[copy.dir()]).await;
}

tests::both_launchers!(a_missing_cwd_is_created_as_root_before_the_root_turns_read_only);
async fn a_missing_cwd_is_created_as_root_before_the_root_turns_read_only(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    let copy = RootfsCopy::new();
    // uid 1000 could not create it itself, and the root is read-only (the default spec).
    let spec = as_user(
        &copy.spec(&["sh", "-c", "pwd; stat -c '%a %u' . .. ../.."]),
        1000,
        &[],
    );
    let spec = patched(&spec, |s| s["process"]["cwd"] = json!("/work/a/../a/b"));
    assert_eq!(spec.root().as_ref().unwrap().readonly(), Some(true));
    let id = unique_id("cwd");
    a.create(&id, &spec).await.unwrap();
    a.start_container(&id).await.unwrap();
    let out = a.read_all(&id, false).await.unwrap();
    let err = a.read_all(&id, true).await.unwrap();
    assert_eq!(
        a.wait(&id).await.unwrap(),
        0,
        "{}",
        String::from_utf8_lossy(&err)
    );
    assert_eq!(
        String::from_utf8_lossy(&out),
        "/work/a/b\n755 0\n755 0\n755 0\n"
    );
    a.remove(&id).await.unwrap();
    assert!(copy.path().join("work/a/b").is_dir());
    leftovers::assert_nothing_left(&a, &id, &[copy.dir()]).await;
}

/// `zagent-ctl run` of `spec` (as a bundle of its own); (exit status, stdout, stderr).
fn ctl_run(a: &TestAgent, spec: &Spec, id: &str) -> (Option<i32>, String, String) {
    let b = bundle::bundle_dir(spec);
    let out = a.ctl(&["run", "--id", id, "--bundle", b.path().to_str().unwrap()]);
    let text = |v: &[u8]| String::from_utf8_lossy(v).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

tests::both_launchers!(process_user_umask_reaches_the_container_through_an_annotation);
async fn process_user_umask_reaches_the_container_through_an_annotation(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    let spec = patched(&sh("umask"), |s| {
        s["process"]["user"]["umask"] = json!(0o077)
    });
    let id = unique_id("umask");
    let (status, out, err) = ctl_run(&a, &spec, &id);
    assert_eq!((status, out.as_str()), (Some(0), "0077\n"), "stderr: {err}");
    leftovers::assert_nothing_left(&a, &id, &[]).await;
    // A host that sets the annotation itself gets the same, and a bad one is refused.
    let mut message = wire::oci::spec_to_grpc(&sh("umask"));
    message
        .Annotations
        .insert(wire::oci::UMASK_ANNOTATION.into(), "0027".into());
    let id = unique_id("umask");
    let mut req = wire::agent::CreateContainerRequest::new();
    req.container_id = id.clone();
    req.exec_id = id.clone();
    req.OCI = protobuf::MessageField::some(message.clone());
    a.create_raw(req.clone()).await.unwrap();
    a.start_container(&id).await.unwrap();
    assert_eq!(a.read_all(&id, false).await.unwrap(), b"0027\n");
    assert_eq!(a.wait(&id).await.unwrap(), 0);
    a.remove(&id).await.unwrap();
    message
        .Annotations
        .insert(wire::oci::UMASK_ANNOTATION.into(), "0o27".into());
    req.OCI = protobuf::MessageField::some(message);
    let r = a.create_raw(req).await;
    assert_eq!(code(&r), Code::INVALID_ARGUMENT, "{}", message_of(&r));
    assert!(
        message_of(&r).contains("io.zagent.umask"),
        "{}",
        message_of(&r)
    );
    leftovers::assert_nothing_left(&a, &id, &[]).await;
}

tests::both_launchers!(memory_reservation_swappiness_and_oom_killer_reach_the_v1_cgroup);
async fn memory_reservation_swappiness_and_oom_killer_reach_the_v1_cgroup(l: Launcher) {
    let memory = std::path::Path::new("/sys/fs/cgroup/memory");
    if !memory.join("memory.soft_limit_in_bytes").exists() {
        eprintln!("skipped: no cgroup v1 memory hierarchy on this host");
        return;
    }
    let a = TestAgent::start_with(l).await;
    let id = unique_id("mem");
    let spec = patched(&bundle::spec(&["sleep", "100"]), |s| {
        s["linux"]["resources"]["memory"] =
            json!({ "reservation": 33554432, "swappiness": 17, "disableOOMKiller": true });
    });
    a.create(&id, &spec).await.unwrap();
    let leaf = memory.join("zagent").join(&id);
    let read = |f: &str| std::fs::read_to_string(leaf.join(f)).unwrap();
    assert_eq!(read("memory.soft_limit_in_bytes"), "33554432\n");
    assert_eq!(read("memory.swappiness"), "17\n");
    assert!(
        read("memory.oom_control").contains("oom_kill_disable 1"),
        "{}",
        read("memory.oom_control")
    );
    a.remove(&id).await.unwrap();
    assert!(!leaf.exists());
    // Swappiness 0 would arrive as "unset" (proto3 has no presence): zagent-ctl refuses it.
    let zero = patched(&sh("true"), |s| {
        s["linux"]["resources"]["memory"] = json!({ "swappiness": 0 });
    });
    let (status, _, err) = ctl_run(&a, &zero, &id);
    assert_ne!(status, Some(0), "ran despite swappiness 0");
    assert!(err.contains("linux.resources.memory.swappiness"), "{err}");
    leftovers::assert_nothing_left(&a, &id, &[]).await;
}

tests::both_launchers!(ctl_skips_unknown_capability_names_with_a_warning);
async fn ctl_skips_unknown_capability_names_with_a_warning(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    let spec = sh("grep ^CapBnd /proc/self/status");
    let mut value = serde_json::to_value(&spec).unwrap();
    value["process"]["capabilities"]["bounding"] = json!(["CAP_KILL", "CAP_NOT_YET_INVENTED"]);
    let b = tempfile::tempdir().unwrap();
    // Written as JSON: oci-spec itself cannot hold the unknown name.
    std::fs::write(b.path().join("config.json"), value.to_string()).unwrap();
    let id = unique_id("unkcap");
    let out = a.ctl(&["run", "--id", &id, "--bundle", b.path().to_str().unwrap()]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout.trim(), "CapBnd:\t0000000000000020", "only CAP_KILL");
    assert!(
        stderr.contains("warning") && stderr.contains("CAP_NOT_YET_INVENTED"),
        "{stderr}"
    );
    leftovers::assert_nothing_left(&a, &id, &[]).await;
}

tests::both_launchers!(ctl_resolves_bind_sources_relative_to_the_bundle);
async fn ctl_resolves_bind_sources_relative_to_the_bundle(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    let spec = patched(&sh("cat /mnt/data/hello"), |s| {
        s["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/mnt/data", "source": "./shared/../data", "options": ["rbind", "ro"]
        }));
    });
    let b = bundle::bundle_dir(&spec);
    std::fs::create_dir(b.path().join("data")).unwrap();
    std::fs::write(b.path().join("data/hello"), "from the bundle\n").unwrap();
    let id = unique_id("relbind");
    let out = a.ctl(&["run", "--id", &id, "--bundle", b.path().to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "from the bundle\n");
    leftovers::assert_nothing_left(&a, &id, &[b.path()]).await;
}
