//! Tier 2 (root): zagent-ctl's verbs against a real agent, its one-line errors, and the RPCs
//! zagent does not serve.

use tests::agent::{code, Launcher, TestAgent};
use tests::{bundle, unique_id};
use ttrpc::Code;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

tests::both_launchers!(create_ps_start_kill_wait_rm_through_ctl);
async fn create_ps_start_kill_wait_rm_through_ctl(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    let b = bundle::bundle_dir(&bundle::spec(&["sleep", "100"]));
    let id = unique_id("ctl");
    let out = a.ctl(&[
        "create",
        "--id",
        &id,
        "--bundle",
        b.path().to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let ps = text(&a.ctl(&["ps"]).stdout);
    let line = ps.lines().find(|l| l.starts_with(&id)).expect("listed");
    assert!(line.contains("created"), "{line}");
    assert!(a.ctl(&["start", &id]).status.success());
    assert!(text(&a.ctl(&["ps"]).stdout)
        .lines()
        .any(|l| l.starts_with(&id) && l.contains("running")));
    let out = a.ctl(&["rm", &id]);
    assert!(
        !out.status.success(),
        "rm of a running container without --force succeeded"
    );
    assert!(
        text(&out.stderr).contains("running"),
        "{}",
        text(&out.stderr)
    );
    let out = a.ctl(&["kill", &id, "KILL"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(a.ctl(&["wait", &id]).status.code(), Some(137));
    assert!(text(&a.ctl(&["ps"]).stdout)
        .lines()
        .any(|l| l.starts_with(&id) && l.contains("stopped") && l.ends_with("137")));
    assert!(a.ctl(&["rm", &id]).status.success());
    assert!(!text(&a.ctl(&["ps"]).stdout).contains(&id));
    // --force removes a running container.
    let id2 = unique_id("ctl");
    assert!(a
        .ctl(&[
            "create",
            "--id",
            &id2,
            "--bundle",
            b.path().to_str().unwrap()
        ])
        .status
        .success());
    assert!(a.ctl(&["start", &id2]).status.success());
    assert!(a.ctl(&["rm", "--force", &id2]).status.success());
    assert!(a.info(&id2).await.is_none());
}

tests::both_launchers!(ctl_errors_are_one_line_naming_the_rpc_and_code);
async fn ctl_errors_are_one_line_naming_the_rpc_and_code(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    let out = a.ctl(&["start", "no-such-container"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("StartContainer") && err.contains("NOT_FOUND"),
        "{err}"
    );
    let out = a.ctl(&["kill", "x", "NOSUCHSIGNAL"]);
    assert!(!out.status.success());
    let out = a.ctl(&["check"]);
    assert!(
        text(&out.stdout).contains("SERVING"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn ctl_spec_writes_a_default_config_once() {
    let dir = tempfile::tempdir().unwrap();
    let run = || {
        std::process::Command::new(tests::bin("zagent-ctl"))
            .args(["spec", "--bundle"])
            .arg(dir.path())
            .output()
            .unwrap()
    };
    assert!(run().status.success());
    let spec = oci_spec::runtime::Spec::load(dir.path().join("config.json")).unwrap();
    assert_eq!(spec.process().as_ref().unwrap().terminal(), Some(false));
    assert_eq!(
        spec.root().as_ref().unwrap().path().to_str(),
        Some("rootfs")
    );
    let again = run();
    assert!(
        !again.status.success(),
        "spec overwrote an existing config.json"
    );
}

tests::both_launchers!(unserved_rpcs_are_unimplemented_and_sandbox_rpcs_work);
async fn unserved_rpcs_are_unimplemented_and_sandbox_rpcs_work(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    let ctx = || ttrpc::context::with_timeout(0);
    let r = a
        .client
        .mem_agent_memcg_set(ctx(), &Default::default())
        .await;
    assert_eq!(code(&r), Code::UNIMPLEMENTED, "no memory agent");
    let r = a.client.set_policy(ctx(), &Default::default()).await;
    assert_eq!(code(&r), Code::UNIMPLEMENTED, "no policy engine: refused");
    let mut sb = wire::agent::CreateSandboxRequest::new();
    sb.sandbox_id = "sb".into();
    a.client.create_sandbox(ctx(), &sb).await.unwrap();
    assert_eq!(
        code(&a.client.create_sandbox(ctx(), &sb).await),
        Code::ALREADY_EXISTS
    );
    let id = unique_id("sb");
    a.create(&id, &bundle::spec(&["sleep", "100"]))
        .await
        .unwrap();
    a.start_container(&id).await.unwrap();
    a.client
        .destroy_sandbox(ctx(), &Default::default())
        .await
        .unwrap();
    assert!(
        a.info(&id).await.is_none(),
        "DestroySandbox left the container"
    );
    assert!(!std::path::Path::new(&format!("/sys/fs/cgroup/pids/zagent/{id}")).exists());
    a.client.create_sandbox(ctx(), &sb).await.unwrap();
    let v = a.health.version(ctx(), &Default::default()).await.unwrap();
    assert!(!v.agent_version.is_empty());
}

tests::both_launchers!(ctl_exec_streams_and_exits_with_the_status);
async fn ctl_exec_streams_and_exits_with_the_status(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    let id = unique_id("cex");
    a.create(&id, &bundle::spec(&["sleep", "100"]))
        .await
        .unwrap();
    a.start_container(&id).await.unwrap();
    let out = a.ctl(&[
        "exec",
        &id,
        "--env",
        "GREETING=hi",
        "--cwd",
        "/tmp",
        "--",
        "sh",
        "-c",
        "echo $GREETING from $(pwd); id -u; exit 5",
    ]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "hi from /tmp\n0\n");
    let out = a.ctl(&["exec", &id, "--user", "1000:1000", "--", "id"]);
    assert!(
        text(&out.stdout).starts_with("uid=1000 gid=1000"),
        "{}",
        text(&out.stdout)
    );
    a.remove(&id).await.unwrap();
}
