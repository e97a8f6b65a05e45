//! Tier 2 (root): OCI hooks. Each kind runs at its point of the lifecycle, in the namespaces
//! the runtime spec names (prestart, createRuntime, poststart and poststop in the agent's;
//! createContainer and startContainer in the container's), with the state JSON on stdin; a
//! failing prestart, createRuntime, createContainer or startContainer hook fails its RPC and
//! leaves nothing, a failing poststart or poststop hook is only a warning, and a hook past its
//! timeout is killed.

use oci_spec::runtime::Spec;
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};
use tests::agent::{code, message, Launcher, TestAgent};
use tests::{bundle, leftovers, unique_id};
use ttrpc::Code;

fn patched(spec: &Spec, patch: impl FnOnce(&mut Value)) -> Spec {
    let mut value = serde_json::to_value(spec).expect("spec to JSON");
    patch(&mut value);
    serde_json::from_value(value).expect("patched spec parses")
}

/// A hook running `script` with /bin/sh (the host's, or the container's for startContainer).
fn sh(script: &str) -> Value {
    json!({ "path": "/bin/sh", "args": ["sh", "-c", script], "env": ["PATH=/bin:/usr/bin"] })
}

/// A hook that saves its stdin and its mount namespace as `<dir>/<name>.json` and `.mnt`, and
/// appends `name` to `<dir>/order`.
fn recorder(dir: &str, name: &str) -> Value {
    sh(&format!(
        "cat > {dir}/{name}.json; readlink /proc/self/ns/mnt > {dir}/{name}.mnt; \
         echo {name} >> {dir}/order"
    ))
}

fn read_json(dir: &Path, name: &str) -> Value {
    let text = std::fs::read_to_string(dir.join(format!("{name}.json")))
        .unwrap_or_else(|e| panic!("{name} hook left no state: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name} state {text:?}: {e}"))
}

tests::both_launchers!(every_hook_runs_at_its_point_in_its_namespaces);
async fn every_hook_runs_at_its_point_in_its_namespaces(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    let log = tempfile::Builder::new()
        .prefix("zagent-hooks")
        .tempdir()
        .unwrap();
    let host = log.path().to_str().unwrap().to_owned();
    let spec = patched(
        &bundle::spec(&["sh", "-c", "echo run >> /log/order"]),
        |s| {
            s["annotations"] = json!({ "org.example/k": "v" });
            s["mounts"].as_array_mut().unwrap().push(json!({
                "destination": "/log", "type": "bind", "source": host, "options": ["rbind", "rw"]
            }));
            s["hooks"] = json!({
                "prestart": [recorder(&host, "prestart")],
                "createRuntime": [recorder(&host, "createRuntime")],
                // Before pivot_root: the host's paths, in the container's mount namespace.
                "createContainer": [recorder(&host, "createContainer")],
                // After it: the container's /bin/sh and its /log.
                "startContainer": [recorder("/log", "startContainer")],
                "poststart": [recorder(&host, "poststart")],
                "poststop": [recorder(&host, "poststop")],
            });
        },
    );
    let id = unique_id("hooks");
    a.create(&id, &spec).await.expect("create");
    let (_, pid, _) = a.info(&id).await.expect("listed");
    a.start_container(&id).await.expect("start");
    assert_eq!(a.wait(&id).await.expect("wait"), 0);
    a.remove(&id).await.expect("remove");

    let order = std::fs::read_to_string(log.path().join("order")).unwrap();
    let order: Vec<&str> = order.lines().collect();
    // poststart runs once the process is running, so it may come before or after its line.
    let mut without_run = order.clone();
    without_run.retain(|l| *l != "run");
    assert_eq!(
        without_run,
        [
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop"
        ],
        "{order:?}"
    );
    let host_mnt = std::fs::read_link("/proc/self/ns/mnt").unwrap();
    for (name, status, in_runtime_ns) in [
        ("prestart", "creating", true),
        ("createRuntime", "creating", true),
        ("createContainer", "creating", false),
        ("startContainer", "created", false),
        ("poststart", "running", true),
        ("poststop", "stopped", true),
    ] {
        let state = read_json(log.path(), name);
        assert_eq!(state["id"], json!(id), "{name}: {state}");
        assert_eq!(state["status"], json!(status), "{name}: {state}");
        assert_eq!(state["annotations"]["org.example/k"], json!("v"), "{name}");
        assert_eq!(
            state.get("pid").is_some(),
            status != "stopped",
            "{name}: {state}"
        );
        let mnt = std::fs::read_to_string(log.path().join(format!("{name}.mnt"))).unwrap();
        assert_eq!(
            mnt.trim() == host_mnt.to_str().unwrap(),
            in_runtime_ns,
            "{name} ran in mount namespace {mnt}"
        );
    }
    // The runtime's hooks are told the container's pid as the host sees it.
    assert_eq!(read_json(log.path(), "poststart")["pid"], json!(pid));
    assert!(leftovers::cgroups_left(&id).is_empty());
}

tests::both_launchers!(a_failing_create_hook_fails_the_create_and_leaves_nothing);
async fn a_failing_create_hook_fails_the_create_and_leaves_nothing(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    let log = tempfile::Builder::new()
        .prefix("zagent-hooks")
        .tempdir()
        .unwrap();
    let host = log.path().to_str().unwrap().to_owned();
    for kind in ["prestart", "createRuntime", "createContainer"] {
        let spec = patched(&bundle::spec(&["true"]), |s| {
            s["hooks"] = json!({
                kind: [sh("echo refused by the hook >&2; exit 3")],
                "poststop": [recorder(&host, kind)],
            });
        });
        let id = unique_id("hookfail");
        let r = a.create(&id, &spec).await;
        assert_eq!(code(&r), Code::FAILED_PRECONDITION, "{kind}: {r:?}");
        let m = message(&r);
        assert!(
            m.contains(kind) && m.contains("refused by the hook"),
            "{kind}: {m}"
        );
        assert!(a.info(&id).await.is_none(), "{kind}: the container is gone");
        assert!(leftovers::cgroups_left(&id).is_empty(), "{kind}");
        // The lifecycle goes on at delete, which runs poststop.
        assert_eq!(read_json(log.path(), kind)["status"], json!("stopped"));
    }
}

tests::both_launchers!(a_failing_start_hook_fails_the_start_and_post_hooks_only_warn);
async fn a_failing_start_hook_fails_the_start_and_post_hooks_only_warn(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    let spec = patched(&bundle::spec(&["true"]), |s| {
        s["hooks"] = json!({ "startContainer": [sh("exit 5")] });
    });
    let id = unique_id("hookstart");
    a.create(&id, &spec).await.expect("create");
    let r = a.start_container(&id).await;
    assert_eq!(code(&r), Code::FAILED_PRECONDITION, "{r:?}");
    assert!(message(&r).contains("startContainer[0]"), "{}", message(&r));
    let (state, _, _) = a.info(&id).await.expect("listed");
    assert_eq!(state, "stopped");
    a.remove(&id).await.expect("remove");
    assert!(leftovers::cgroups_left(&id).is_empty());

    let spec = patched(&bundle::spec(&["true"]), |s| {
        s["hooks"] = json!({ "poststart": [sh("exit 1")], "poststop": [sh("exit 1")] });
    });
    let (status, _, err) = a.run(&unique_id("hookpost"), &spec).await;
    assert_eq!(status, 0, "{err}");
}

tests::both_launchers!(a_hook_past_its_timeout_is_killed_and_fails_the_create);
async fn a_hook_past_its_timeout_is_killed_and_fails_the_create(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    for kind in ["createRuntime", "createContainer"] {
        let spec = patched(&bundle::spec(&["true"]), |s| {
            let mut hook = sh("sleep 60");
            hook["timeout"] = json!(1);
            s["hooks"] = json!({ kind: [hook] });
        });
        let id = unique_id("hooktime");
        let started = Instant::now();
        let r = a.create(&id, &spec).await;
        assert_eq!(code(&r), Code::FAILED_PRECONDITION, "{kind}: {r:?}");
        assert!(started.elapsed() < Duration::from_secs(20), "{kind}");
        assert!(message(&r).contains("timed out"), "{kind}: {}", message(&r));
        assert!(leftovers::cgroups_left(&id).is_empty());
    }
}

tests::both_launchers!(bad_hooks_are_invalid_argument);
async fn bad_hooks_are_invalid_argument(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    let spec = patched(&bundle::spec(&["true"]), |s| {
        s["hooks"] = json!({ "poststop": [{ "path": "relative/hook" }] });
    });
    let r = a.create(&unique_id("hookbad"), &spec).await;
    assert_eq!(code(&r), Code::INVALID_ARGUMENT, "{r:?}");
    assert!(message(&r).contains("hooks.poststop[0]"), "{}", message(&r));
}
