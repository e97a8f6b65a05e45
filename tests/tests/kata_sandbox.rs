//! Tier 2 (root): the namespaces a Kata sandbox gives its containers (issue 9), as Kata's agent
//! does: a stock shim sends specs without a pid namespace and with host paths for the others;
//! inside a sandbox each container gets a pid namespace of its own (or, with `sandbox_pidns`,
//! the sandbox's, whose pid 1 is zagent's own init), and all of them share the sandbox's IPC and UTS namespaces, the UTS
//! one named after CreateSandbox's hostname.

use oci_spec::runtime::Spec;
use serde_json::json;
use std::time::Duration;
use tests::agent::{code, Launcher, TestAgent};
use tests::{bundle, unique_id};
use ttrpc::Code;

fn ctx() -> ttrpc::context::Context {
    ttrpc::context::with_timeout(Duration::from_secs(30).as_nanos() as i64)
}

/// `args` in a spec as a Kata shim sends it: no pid namespace; ipc and uts with the host's
/// paths (which mean nothing in a guest).
fn shim_spec(args: &[&str]) -> Spec {
    let mut value = serde_json::to_value(bundle::spec(args)).unwrap();
    value.as_object_mut().unwrap().remove("hostname");
    let host = |kind: &str| format!("/proc/{}/ns/{kind}", std::process::id());
    value["linux"]["namespaces"] = json!([
        { "type": "mount" }, { "type": "network" },
        { "type": "ipc", "path": host("ipc") }, { "type": "uts", "path": host("uts") }
    ]);
    serde_json::from_value::<Spec>(value).unwrap()
}

async fn create_sandbox(a: &TestAgent, hostname: &str, sandbox_pidns: bool) {
    let mut req = wire::agent::CreateSandboxRequest::new();
    req.sandbox_id = unique_id("sb");
    req.hostname = hostname.into();
    req.sandbox_pidns = sandbox_pidns;
    a.client
        .create_sandbox(ctx(), &req)
        .await
        .expect("CreateSandbox");
}

async fn destroy_sandbox(a: &TestAgent) {
    let req = wire::agent::DestroySandboxRequest::new();
    a.client
        .destroy_sandbox(ctx(), &req)
        .await
        .expect("DestroySandbox");
}

/// Runs `script` in a shim-style container of the sandbox and returns its stdout.
async fn run(a: &TestAgent, script: &str, sandbox_pidns: bool) -> String {
    let id = unique_id("sbc");
    let mut req = wire::agent::CreateContainerRequest::new();
    req.container_id = id.clone();
    req.exec_id = id.clone();
    req.sandbox_pidns = sandbox_pidns;
    req.OCI =
        protobuf::MessageField::some(wire::oci::spec_to_grpc(&shim_spec(&["sh", "-c", script])));
    a.create_raw(req).await.expect("create");
    a.start_container(&id).await.expect("start");
    let out = a.read_all(&id, false).await.expect("read");
    assert_eq!(a.wait(&id).await.expect("wait"), 0);
    a.remove(&id).await.expect("remove");
    String::from_utf8_lossy(&out).into_owned()
}

fn ns(kind: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{kind}"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

tests::both_launchers!(containers_of_a_sandbox_share_ipc_and_uts_and_get_a_pid_namespace);
async fn containers_of_a_sandbox_share_ipc_and_uts_and_get_a_pid_namespace(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    create_sandbox(&a, "pod-a", false).await;
    // A container that stays while the others run: a pid namespace that is alive (an ended
    // one's inode number can come back for the next).
    let held = unique_id("held");
    let mut req = wire::agent::CreateContainerRequest::new();
    req.container_id = held.clone();
    req.exec_id = held.clone();
    req.OCI = protobuf::MessageField::some(wire::oci::spec_to_grpc(&shim_spec(&["sleep", "60"])));
    a.create_raw(req).await.expect("create");
    let (_, held_pid, _) = a.info(&held).await.expect("listed");
    let held_ns = std::fs::read_link(format!("/proc/{held_pid}/ns/pid")).unwrap();
    let held_ns = held_ns.to_string_lossy().into_owned();
    let probe = "hostname; for n in ipc uts pid; do readlink /proc/self/ns/$n; done; echo $$";
    let one = run(&a, probe, false).await;
    let two = run(&a, probe, false).await;
    let (l1, l2): (Vec<&str>, Vec<&str>) = (one.lines().collect(), two.lines().collect());
    assert_eq!(l1[0], "pod-a", "{one}");
    assert_eq!(
        l1[1..3],
        l2[1..3],
        "the sandbox's IPC and UTS namespaces: {one} {two}"
    );
    assert_ne!(
        l1[1],
        ns("ipc"),
        "not the host's (the spec's path is ignored)"
    );
    assert_ne!(l1[2], ns("uts"));
    assert_ne!(l1[3], held_ns, "a pid namespace each: {one}");
    assert_ne!(l2[3], held_ns, "a pid namespace each: {two}");
    assert_ne!(l1[3], ns("pid"));
    assert_eq!(
        l1[4], "1",
        "the process is pid 1 of its own namespace: {one}"
    );
    destroy_sandbox(&a).await;
    // Outside a sandbox a spec runs as it is: no pid namespace means the agent's.
    let (_, out, _) = a
        .run(
            &unique_id("nosb"),
            &shim_spec(&["readlink", "/proc/self/ns/uts"]),
        )
        .await;
    assert_eq!(
        out.trim(),
        ns("uts"),
        "the spec's own uts path, joined as given"
    );
}

tests::both_launchers!(sandbox_pidns_is_one_namespace_whose_pid_1_is_zagent_s_own_init);
async fn sandbox_pidns_is_one_namespace_whose_pid_1_is_zagent_s_own_init(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    create_sandbox(&a, "pod-b", true).await;
    let infra = unique_id("infra");
    let mut req = wire::agent::CreateContainerRequest::new();
    req.container_id = infra.clone();
    req.exec_id = infra.clone();
    req.OCI = protobuf::MessageField::some(wire::oci::spec_to_grpc(&shim_spec(&["sleep", "60"])));
    a.create_raw(req).await.expect("create infra");
    a.start_container(&infra).await.expect("start infra");
    // Pid 1, the infra container's process beside it, our own pid, the namespace, and
    // whether pid 1's root (the host's, were it not sealed) can be reached.
    let probe = "cat /proc/1/comm; cat /proc/[0-9]*/comm | grep -c '^sleep$'; echo $$; \
                 readlink /proc/self/ns/pid; ls /proc/1/root/ >/dev/null 2>&1; echo root=$?";
    let out = run(&a, probe, false).await;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "zagent-init", "pid 1 is zagent's own init: {out}");
    assert_eq!(lines[1], "1", "the infra container's sleep is in it: {out}");
    assert_ne!(lines[2], "1");
    assert_eq!(lines[4], "root=1", "pid 1's root is out of reach: {out}");
    let pidns = lines[3].to_string();

    // The infra container's exit takes nothing with it: the namespace and its init stay.
    a.signal(&infra, 9).await.unwrap();
    a.wait(&infra).await.unwrap();
    a.remove(&infra).await.unwrap();
    let out = run(&a, "cat /proc/1/comm; readlink /proc/self/ns/pid", true).await;
    assert_eq!(out, format!("zagent-init\n{pidns}\n"));

    // DestroySandbox ends the namespace: no process is left in it.
    destroy_sandbox(&a).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while in_pidns(&pidns) > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "{pidns} outlived DestroySandbox"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How many processes of this machine are in the pid namespace `ns` ("pid:[INODE]").
fn in_pidns(ns: &str) -> usize {
    let procs = std::fs::read_dir("/proc").unwrap();
    procs
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter(|e| {
            let link = std::fs::read_link(e.path().join("ns/pid"));
            link.is_ok_and(|l| l.to_string_lossy() == ns)
        })
        .count()
}

tests::both_launchers!(a_second_sandbox_is_already_exists);
async fn a_second_sandbox_is_already_exists(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    create_sandbox(&a, "pod-c", false).await;
    let mut req = wire::agent::CreateSandboxRequest::new();
    req.sandbox_id = "other".into();
    let r = a.client.create_sandbox(ctx(), &req).await;
    assert_eq!(code(&r), Code::ALREADY_EXISTS, "{r:?}");
    let mut long = wire::agent::CreateSandboxRequest::new();
    long.hostname = "h".repeat(65);
    destroy_sandbox(&a).await;
    let r = a.client.create_sandbox(ctx(), &long).await;
    assert_eq!(code(&r), Code::INVALID_ARGUMENT, "{r:?}");
}
