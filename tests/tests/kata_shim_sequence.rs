//! Tier 2 (root): a stock Kata shim's calls in a pod's life, in their real order (issue 9),
//! every reply checked and every effect read back from the host: the agent runs in a network
//! namespace of the test's own (the "guest's" network), with a veth link of a known MAC.
//! Health, guest details, interface and routes, a sandbox with a storage and a shared pid
//! namespace, the OOM long poll, two containers from `runc spec`-style specs as a shim sends
//! them (no pid namespace), stats, update, pause, resume, exec, an OOM kill seen by the long
//! poll, metrics, signals, waits, removes, destroy.

use oci_spec::runtime::Spec;
use serde_json::{json, Value};
use std::process::Command;
use std::time::Duration;
use tests::agent::{Launcher, TestAgent};
use tests::{bundle, leftovers, unique_id};
use wire::agent as pb;
use wire::types::{IPAddress, IPFamily, Interface, Route};

const MAC: &str = "02:00:00:aa:00:01";

fn ctx() -> ttrpc::context::Context {
    ttrpc::context::with_timeout(Duration::from_secs(30).as_nanos() as i64)
}

/// A named network namespace, deleted on drop.
struct NetNs(String);

impl NetNs {
    fn new() -> NetNs {
        let name = unique_id("zagent-shim");
        run("ip", &["netns", "add", &name]);
        NetNs(name)
    }

    fn ip_json(&self, args: &[&str]) -> Vec<Value> {
        let mut all = vec!["-n", &self.0, "-j"];
        all.extend_from_slice(args);
        serde_json::from_str(&run("ip", &all)).expect("ip -j output")
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().expect("spawn");
    assert!(out.status.success(), "{cmd} {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

fn cgroup_file(controller: &str, id: &str, file: &str) -> String {
    let path = format!("/sys/fs/cgroup/{controller}/zagent/{id}/{file}");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `spec` as a Kata shim sends it: the pid namespace taken out (the guest gives one).
fn as_shim_sends(spec: &Spec) -> pb::CreateContainerRequest {
    let mut v = serde_json::to_value(spec).unwrap();
    v["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["type"] != "pid");
    let spec: Spec = serde_json::from_value(v).unwrap();
    pb::CreateContainerRequest {
        OCI: Some(wire::oci::spec_to_grpc(&spec)).into(),
        ..Default::default()
    }
}

async fn create(
    a: &TestAgent,
    id: &str,
    spec: &Spec,
    sandbox_pidns: bool,
    storages: Vec<pb::Storage>,
) {
    let mut req = as_shim_sends(spec);
    req.container_id = id.into();
    req.exec_id = id.into();
    req.sandbox_pidns = sandbox_pidns;
    req.storages = storages;
    a.client
        .create_container(ctx(), &req)
        .await
        .expect("CreateContainer");
}

fn ephemeral(at: &std::path::Path) -> pb::Storage {
    pb::Storage {
        driver: "ephemeral".into(),
        mount_point: at.display().to_string(),
        ..Default::default()
    }
}

fn mounted(at: &std::path::Path) -> bool {
    leftovers::host_mount_points().iter().any(|m| m == at)
}

tests::both_launchers!(a_stock_shim_s_call_sequence);
async fn a_stock_shim_s_call_sequence(l: Launcher) {
    let ns = NetNs::new();
    let n = ns.0.as_str();
    run(
        "ip",
        &[
            "-n", n, "link", "add", "veth0", "address", MAC, "type", "veth", "peer", "name",
            "peer0",
        ],
    );
    run("ip", &["-n", n, "link", "set", "peer0", "up"]);
    let root = tempfile::Builder::new()
        .prefix("zagent-shimseq")
        .tempdir()
        .unwrap();
    let root_arg = root.path().to_str().unwrap().to_owned();
    let a = TestAgent::start_in_netns_with(l, n, &["--storage-root", &root_arg]).await;

    // Sandbox start: health, guest details.
    a.health
        .check(ctx(), &Default::default())
        .await
        .expect("Health.Check");
    let details = pb::GuestDetailsRequest {
        mem_block_size: true,
        mem_hotplug_probe: true,
        ..Default::default()
    };
    let d = a
        .client
        .get_guest_details(ctx(), &details)
        .await
        .expect("GetGuestDetails");
    assert!(d
        .agent_details
        .as_ref()
        .unwrap()
        .storage_handlers
        .contains(&"ephemeral".into()));

    // The guest's network: the interface by its MAC, then the routes.
    let iface = Interface {
        hwAddr: MAC.into(),
        name: "eth0".into(),
        mtu: 1400,
        IPAddresses: vec![IPAddress {
            family: IPFamily::v4.into(),
            address: "10.88.0.2".into(),
            mask: "24".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let req = pb::UpdateInterfaceRequest {
        interface: Some(iface).into(),
        ..Default::default()
    };
    let got = a
        .client
        .update_interface(ctx(), &req)
        .await
        .expect("UpdateInterface");
    assert_eq!((got.name.as_str(), got.mtu), ("eth0", 1400));
    let routes = vec![Route {
        gateway: "10.88.0.1".into(),
        device: "eth0".into(),
        family: IPFamily::v4.into(),
        ..Default::default()
    }];
    let req = pb::UpdateRoutesRequest {
        routes: Some(pb::Routes {
            Routes: routes,
            ..Default::default()
        })
        .into(),
        ..Default::default()
    };
    a.client
        .update_routes(ctx(), &req)
        .await
        .expect("UpdateRoutes");
    let host_routes = ns.ip_json(&["route"]);
    assert!(
        host_routes
            .iter()
            .any(|r| r["dst"] == "default" && r["gateway"] == "10.88.0.1"),
        "{host_routes:?}"
    );
    let listed = a
        .client
        .list_interfaces(ctx(), &Default::default())
        .await
        .unwrap();
    assert!(listed
        .Interfaces
        .iter()
        .any(|i| i.name == "eth0" && i.hwAddr == MAC));

    // The sandbox, with a storage and a shared pid namespace.
    let sb_storage = root.path().join("sandbox/shm");
    let sb = pb::CreateSandboxRequest {
        sandbox_id: unique_id("pod"),
        hostname: "pod-seq".into(),
        sandbox_pidns: true,
        storages: vec![ephemeral(&sb_storage)],
        ..Default::default()
    };
    a.client
        .create_sandbox(ctx(), &sb)
        .await
        .expect("CreateSandbox");
    assert!(mounted(&sb_storage));

    // The OOM long poll, on a connection of its own, as the shim keeps it.
    let poll = {
        let c = wire::connect::connect(&a.addr).await.unwrap();
        let client = wire::agent_ttrpc::AgentServiceClient::new(c);
        let forever = ttrpc::context::with_timeout(0);
        tokio::spawn(async move { client.get_oom_event(forever, &Default::default()).await })
    };

    // The infra container, then the app container sharing its pid namespace.
    let infra = unique_id("infra");
    create(&a, &infra, &bundle::spec(&["sleep", "300"]), false, vec![]).await;
    a.start_container(&infra).await.expect("start infra");
    let app = unique_id("app");
    let vol = root.path().join("app-vol");
    let mut app_spec = serde_json::to_value(bundle::spec(&["sh", "-c", "cat"])).unwrap();
    app_spec["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/tmp/vol", "type": "bind", "source": vol, "options": ["rbind", "rw"]
    }));
    let app_spec: Spec = serde_json::from_value(app_spec).unwrap();
    create(&a, &app, &app_spec, true, vec![ephemeral(&vol)]).await;
    a.start_container(&app).await.expect("start app");

    // Stats, update, pause, resume.
    let req = pb::StatsContainerRequest {
        container_id: app.clone(),
        ..Default::default()
    };
    let stats = a
        .client
        .stats_container(ctx(), &req)
        .await
        .expect("StatsContainer");
    let mem = stats.cgroup_stats.memory_stats.usage.usage;
    assert!(mem > 0, "memory usage {mem}");
    let limit = oci_spec::runtime::LinuxResourcesBuilder::default()
        .memory(
            oci_spec::runtime::LinuxMemoryBuilder::default()
                .limit(64 << 20)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let req = pb::UpdateContainerRequest {
        container_id: app.clone(),
        resources: Some(wire::oci::resources_to_grpc(&limit)).into(),
        ..Default::default()
    };
    a.client
        .update_container(ctx(), &req)
        .await
        .expect("UpdateContainer");
    assert_eq!(
        cgroup_file("memory", &app, "memory.limit_in_bytes").trim(),
        "67108864"
    );
    let req = pb::PauseContainerRequest {
        container_id: app.clone(),
        ..Default::default()
    };
    a.client
        .pause_container(ctx(), &req)
        .await
        .expect("PauseContainer");
    assert_eq!(
        cgroup_file("freezer", &app, "freezer.state").trim(),
        "FROZEN"
    );
    let req = pb::ResumeContainerRequest {
        container_id: app.clone(),
        ..Default::default()
    };
    a.client
        .resume_container(ctx(), &req)
        .await
        .expect("ResumeContainer");
    assert_eq!(
        cgroup_file("freezer", &app, "freezer.state").trim(),
        "THAWED"
    );

    // Exec: sees the sandbox's pid namespace (pid 1 is zagent's init, the infra's sleep is
    // there too) and hostname.
    let script = "cat /proc/1/comm; cat /proc/[0-9]*/comm | grep -c '^sleep$'; hostname; \
                  touch /tmp/vol/x";
    let p = bundle::spec(&["sh", "-c", script])
        .process()
        .clone()
        .unwrap();
    a.exec(&app, "e1", &p).await.expect("ExecProcess");
    assert_eq!(a.wait_exec(&app, "e1").await.unwrap(), 0);
    let out = a.read_all_exec(&app, "e1", false).await.unwrap();
    assert_eq!(String::from_utf8_lossy(&out), "zagent-init\n1\npod-seq\n");
    assert!(
        vol.join("x").exists(),
        "the exec wrote into the container's storage"
    );

    // An OOM kill, which the long poll reports.
    let oom = unique_id("oom");
    create(&a, &oom, &bundle::oom_spec(), false, vec![]).await;
    a.start_container(&oom)
        .await
        .expect("start the OOM container");
    assert_eq!(a.wait(&oom).await.unwrap(), 128 + libc::SIGKILL);
    let event = tokio::time::timeout(Duration::from_secs(30), poll)
        .await
        .expect("the long poll answered")
        .unwrap()
        .expect("GetOOMEvent");
    assert_eq!(event.container_id, oom);

    // Metrics, then the pod's end: signals, waits, removes, destroy.
    let m = a
        .client
        .get_metrics(ctx(), &Default::default())
        .await
        .expect("GetMetrics");
    assert!(
        m.metrics.contains("kata_agent_"),
        "{}",
        &m.metrics[..m.metrics.len().min(300)]
    );
    a.close_stdin(&app, "").await.expect("CloseStdin");
    assert_eq!(a.wait(&app).await.unwrap(), 0, "cat ends at EOF");
    a.signal(&infra, libc::SIGKILL as u32)
        .await
        .expect("SignalProcess");
    assert_eq!(a.wait(&infra).await.unwrap(), 128 + libc::SIGKILL);
    for id in [&oom, &app] {
        a.remove(id).await.expect("RemoveContainer");
        assert!(leftovers::cgroups_left(id).is_empty(), "{id}");
    }
    assert!(!mounted(&vol), "the app's storage went with it");
    a.client
        .destroy_sandbox(ctx(), &Default::default())
        .await
        .expect("DestroySandbox");
    assert!(
        a.info(&infra).await.is_none(),
        "DestroySandbox removed the infra container"
    );
    assert!(leftovers::cgroups_left(&infra).is_empty());
    assert!(!mounted(&sb_storage), "the sandbox's storage went with it");
}
