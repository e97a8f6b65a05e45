//! Tests of the validation rules that make zagent behave like runc on specs it used to accept
//! differently (issue 8): env entries, oomScoreAdj, device file modes, `resources.unified`,
//! the memory reservation, swappiness and OOM-killer switch.

use super::*;
use serde_json::{json, Value};

fn run(patch: impl FnOnce(&mut Value)) -> Result<Validated, ValidateError> {
    let dir = tempfile::tempdir().unwrap();
    let mut value = json!({
        "ociVersion": "1.0.2",
        "process": { "args": ["sh"], "cwd": "/", "user": { "uid": 0, "gid": 0 } },
        "root": { "path": dir.path() },
        "linux": { "namespaces": [{ "type": "pid" }, { "type": "mount" }] }
    });
    patch(&mut value);
    let spec: Spec = serde_json::from_value(value).expect("test spec must parse");
    validate("c1", &spec)
}

fn process_with_env(env: &[&str]) -> Result<ProcessConfig, ValidateError> {
    let process: Process = serde_json::from_value(json!({
        "args": ["sh"], "cwd": "/", "user": { "uid": 0, "gid": 0 }, "env": env
    }))
    .unwrap();
    process_config(&process)
}

#[test]
fn env_entries_must_be_name_equals_value() {
    let e = process_with_env(&["PATH=/bin", "JUSTANAME"]).unwrap_err();
    assert!(
        matches!(e, ValidateError::EnvEntry { index: 1, .. }),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "process.env[1] \"JUSTANAME\" has no '=' (use NAME=VALUE)"
    );
    let e = process_with_env(&["=value"]).unwrap_err();
    assert_eq!(e.to_string(), "process.env[0] \"=value\" has an empty name");
    let ok = process_with_env(&["EMPTY=", "A=b=c"]).unwrap();
    assert_eq!(ok.env, ["EMPTY=", "A=b=c"]);
    let e = run(|s| s["process"]["env"] = json!(["X"])).unwrap_err();
    assert!(
        matches!(e, ValidateError::EnvEntry { index: 0, .. }),
        "{e:?}"
    );
}

#[test]
fn oom_score_adj_is_always_written_zero_when_absent() {
    assert_eq!(run(|_| {}).unwrap().config.oom_score_adj, Some(0));
    let zero = run(|s| s["process"]["oomScoreAdj"] = json!(0)).unwrap();
    assert_eq!(zero.config.oom_score_adj, Some(0));
    let set = run(|s| s["process"]["oomScoreAdj"] = json!(-500)).unwrap();
    assert_eq!(set.config.oom_score_adj, Some(-500));
}

#[test]
fn a_device_without_file_mode_gets_0666() {
    let v = run(|s| {
        s["linux"]["devices"] =
            json!([{ "path": "/dev/fuse", "type": "c", "major": 10, "minor": 229 }])
    })
    .unwrap();
    let fuse = v
        .config
        .devices
        .iter()
        .find(|d| d.path == Path::new("/dev/fuse"));
    assert_eq!(fuse.unwrap().mode, 0o666);
}

#[test]
fn resources_unified_is_refused() {
    let e = run(|s| {
        s["linux"]["resources"] = json!({ "unified": { "pids.max": "10", "io.weight": "50" } })
    })
    .unwrap_err();
    assert!(matches!(e, ValidateError::Unified(_)), "{e:?}");
    assert!(
        e.to_string()
            .starts_with("linux.resources.unified (io.weight, pids.max) is not supported"),
        "{e}"
    );
    run(|s| s["linux"]["resources"] = json!({ "unified": {} })).unwrap();
}

#[test]
fn memory_reservation_swappiness_and_oom_killer_are_kept() {
    let memory = |m: Value| run(|s| s["linux"]["resources"] = json!({ "memory": m }));
    let v =
        memory(json!({ "reservation": 1024, "swappiness": 0, "disableOOMKiller": true })).unwrap();
    let r = &v.resources;
    assert_eq!(r.memory_reservation, Some(1024));
    assert_eq!(r.memory_swappiness, Some(0));
    assert!(r.memory_disable_oom_killer);
    let v = memory(json!({ "reservation": -1, "swappiness": u64::MAX })).unwrap();
    assert_eq!(v.resources.memory_reservation, Some(-1));
    assert_eq!(v.resources.memory_swappiness, None, "Go's -1: unset");
    let e = memory(json!({ "swappiness": 101 })).unwrap_err();
    assert!(e.to_string().contains("memory.swappiness"), "{e}");
    let e = memory(json!({ "reservation": -2 })).unwrap_err();
    assert!(e.to_string().contains("memory.reservation"), "{e}");
}

#[test]
fn a_scheduler_a_spawned_process_cannot_keep_is_refused_when_joining_a_pid_namespace() {
    let deadline = json!({"policy": "SCHED_DEADLINE", "runtime": 1_000_000u64,
                          "deadline": 2_000_000u64, "period": 3_000_000u64});
    let with = |join: bool, scheduler: Value| {
        run(move |s| {
            if join {
                s["linux"]["namespaces"][0]["path"] = json!("/proc/1/ns/pid");
            }
            s["process"]["scheduler"] = scheduler;
        })
    };
    assert!(
        with(false, deadline.clone()).is_ok(),
        "a new pid namespace: no spawn"
    );
    let e = with(true, deadline).unwrap_err();
    assert!(e.to_string().contains("SCHED_DEADLINE"), "{e}");
    let reset = json!({"policy": "SCHED_BATCH", "flags": ["SCHED_RESET_ON_FORK"]});
    let e = with(true, reset).unwrap_err();
    assert!(e.to_string().contains("scheduler.flags"), "{e}");
    assert!(with(true, json!({"policy": "SCHED_BATCH", "nice": 1})).is_ok());
}
