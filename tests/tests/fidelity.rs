//! Tier 2 (root): specs that runc runs one way and zagent used to run another (issue 8's
//! side-by-side findings), each checked from inside the container or from the host.

use oci_spec::runtime::Spec;
use serde_json::{json, Value};
use std::os::unix::fs::FileTypeExt;
use tests::agent::{code, message, Launcher, TestAgent};
use tests::rootfs_copy::RootfsCopy;
use tests::{bundle, leftovers, procs, unique_id};
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

/// One `Cap*:` line of /proc/self/status output, as a number.
fn cap_line(status: &str, name: &str) -> u64 {
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name} in {status:?}"));
    u64::from_str_radix(line.trim(), 16).expect("hex capability mask")
}

/// CAP_AUDIT_WRITE, CAP_KILL and CAP_NET_BIND_SERVICE: `runc spec`'s capabilities.
const RUNC_CAPS: u64 = (1 << 29) | (1 << 5) | (1 << 10);

tests::both_launchers!(runc_spec_default_capabilities_run_with_ambient_skipped);
async fn runc_spec_default_capabilities_run_with_ambient_skipped(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    let names = json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    // runc 1.1.5's `runc spec`: ambient as bounding, no inheritable set at all.
    let runc_115 = patched(&sh("grep ^Cap /proc/self/status"), |s| {
        s["process"]["capabilities"] = json!({
            "bounding": names, "effective": names, "permitted": names, "ambient": names
        });
    });
    let (status, out, err) = a.run(&unique_id("caps"), &runc_115).await;
    assert_eq!(status, 0, "stderr: {err}");
    assert_eq!(cap_line(&out, "CapEff"), RUNC_CAPS, "{out}");
    assert_eq!(cap_line(&out, "CapBnd"), RUNC_CAPS, "{out}");
    assert_eq!(cap_line(&out, "CapInh"), 0, "{out}");
    assert_eq!(cap_line(&out, "CapAmb"), 0, "{out}");
    // Older `runc spec`s also listed them as inheritable: then they are raised.
    let older = patched(&runc_115, |s| {
        s["process"]["capabilities"]["inheritable"] = names.clone();
    });
    let (status, out, err) = a.run(&unique_id("caps"), &older).await;
    assert_eq!(status, 0, "stderr: {err}");
    assert_eq!(cap_line(&out, "CapAmb"), RUNC_CAPS, "{out}");
}

/// Gives the agent (and its zygote, which it started with the agent's score) a score of
/// its own, so that a container inheriting it shows.
fn give_agent_an_oom_score(a: &TestAgent) {
    let pids = std::iter::once(a.pid()).chain(procs::zygote_of(a.pid()));
    for pid in pids {
        std::fs::write(format!("/proc/{pid}/oom_score_adj"), "100").expect("set oom_score_adj");
    }
}

tests::both_launchers!(oom_score_adj_is_the_specs_or_zero_never_the_agents);
async fn oom_score_adj_is_the_specs_or_zero_never_the_agents(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    give_agent_an_oom_score(&a);
    let script = "cat /proc/self/oom_score_adj";
    for (given, want) in [(None, "0"), (Some(0), "0"), (Some(500), "500")] {
        let spec = patched(&sh(script), |s| {
            if let Some(v) = given {
                s["process"]["oomScoreAdj"] = json!(v);
            }
        });
        let (status, out, err) = a.run(&unique_id("oom"), &spec).await;
        assert_eq!(status, 0, "stderr: {err}");
        assert_eq!(out.trim(), want, "oomScoreAdj {given:?}");
    }
}

tests::both_launchers!(a_device_without_file_mode_is_0666);
async fn a_device_without_file_mode_is_0666(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    let spec = patched(&sh("stat -c %a /dev/mynull /dev/private"), |s| {
        s["linux"]["devices"] = json!([
            { "path": "/dev/mynull", "type": "c", "major": 1, "minor": 3 },
            { "path": "/dev/private", "type": "c", "major": 1, "minor": 3, "fileMode": 0o600 }
        ]);
    });
    let (status, out, err) = a.run(&unique_id("devmode"), &spec).await;
    assert_eq!(status, 0, "stderr: {err}");
    assert_eq!(out, "666\n600\n");
}

tests::both_launchers!(a_device_over_an_existing_rootfs_file_is_refused_and_the_file_kept);
async fn a_device_over_an_existing_rootfs_file_is_refused_and_the_file_kept(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    let copy = RootfsCopy::new();
    let hostname = copy.path().join("etc/hostname");
    std::fs::create_dir_all(hostname.parent().unwrap()).unwrap();
    std::fs::write(&hostname, "from-the-bundle\n").unwrap();
    let spec = patched(&copy.spec(&["true"]), |s| {
        s["root"]["readonly"] = json!(true);
        s["linux"]["devices"] =
            json!([{ "path": "/etc/hostname", "type": "c", "major": 1, "minor": 3 }]);
    });
    let id = unique_id("devover");
    let r = a.create(&id, &spec).await;
    assert_eq!(code(&r), Code::FAILED_PRECONDITION, "{}", message(&r));
    let msg = message(&r);
    assert!(
        msg.contains("step \"devices\"") && msg.contains("EEXIST") && msg.contains("/etc/hostname"),
        "{msg}"
    );
    let kind = std::fs::symlink_metadata(&hostname).unwrap().file_type();
    assert!(kind.is_file() && !kind.is_char_device(), "{kind:?}");
    assert_eq!(
        std::fs::read_to_string(&hostname).unwrap(),
        "from-the-bundle\n"
    );
    leftovers::assert_nothing_left(&a, &id, &[copy.dir()]).await;
}

tests::both_launchers!(env_entries_without_equals_are_invalid_argument);
async fn env_entries_without_equals_are_invalid_argument(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    let id = unique_id("env");
    let bad = patched(&sh("true"), |s| {
        s["process"]["env"] = json!(["PATH=/bin", "NOEQUALS"]);
    });
    let r = a.create(&id, &bad).await;
    assert_eq!(code(&r), Code::INVALID_ARGUMENT, "{}", message(&r));
    assert!(message(&r).contains("process.env[1]"), "{}", message(&r));
    assert!(a.info(&id).await.is_none());

    a.create(&id, &bundle::spec(&["sleep", "100"]))
        .await
        .unwrap();
    a.start_container(&id).await.unwrap();
    let mut process = bundle::spec(&["true"]).process().clone().unwrap();
    process.set_env(Some(vec!["=nameless".into()]));
    let r = a.exec(&id, "bad-env", &process).await;
    assert_eq!(code(&r), Code::INVALID_ARGUMENT, "{}", message(&r));
    a.signal(&id, libc::SIGKILL as u32).await.unwrap();
    assert_eq!(a.wait(&id).await.unwrap(), 137);
    a.remove(&id).await.unwrap();
    leftovers::assert_nothing_left(&a, &id, &[]).await;
}

tests::both_launchers!(ctl_refuses_resources_unified_instead_of_dropping_it);
async fn ctl_refuses_resources_unified_instead_of_dropping_it(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    let spec = patched(&sh("true"), |s| {
        s["linux"]["resources"]["unified"] = json!({ "pids.max": "10" });
    });
    let b = bundle::bundle_dir(&spec);
    let id = unique_id("unified");
    let out = a.ctl(&[
        "create",
        "--id",
        &id,
        "--bundle",
        b.path().to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "created despite unified");
    assert!(stderr.contains("linux.resources.unified"), "{stderr}");
    leftovers::assert_nothing_left(&a, &id, &[]).await;
}
