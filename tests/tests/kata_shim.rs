//! Tier 2 (root): what a stock Kata shim relies on beyond create/start/wait (issue 9): an
//! empty WriteStdin as EOF, GetGuestDetails, Pause/Resume, StatsContainer (cgroup figures and
//! the interfaces of the container's network namespace), UpdateContainer.

use std::sync::{Arc, Mutex};
use std::time::Duration;
use tests::agent::{code, message, Launcher, TestAgent};
use tests::{bundle, unique_id};
use ttrpc::Code;

tests::both_launchers!(an_empty_write_stdin_is_eof);
async fn an_empty_write_stdin_is_eof(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    let id = unique_id("eof");
    a.create(&id, &bundle::spec(&["cat"])).await.unwrap();
    a.start_container(&id).await.unwrap();
    assert_eq!(a.write_stdin(&id, "", b"hello\n").await.unwrap(), 6);
    // runtime-rs closes stdin this way, never with CloseStdin.
    assert_eq!(a.write_stdin(&id, "", b"").await.unwrap(), 0);
    assert_eq!(a.read_all(&id, false).await.unwrap(), b"hello\n");
    assert_eq!(a.wait(&id).await.unwrap(), 0, "cat ends at EOF");
    // A second EOF is no error (the pipe is already closed).
    assert_eq!(a.write_stdin(&id, "", b"").await.unwrap(), 0);
    a.remove(&id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_write_stdin_on_a_terminal_sends_eof() {
    let a = TestAgent::start_with(Launcher::Zygote).await;
    let id = unique_id("ttyeof");
    let mut spec = bundle::spec(&["cat"]);
    let mut p = spec.process().clone().unwrap();
    p.set_terminal(Some(true));
    spec.set_process(Some(p));
    a.create(&id, &spec).await.unwrap();
    a.start_container(&id).await.unwrap();
    a.write_stdin(&id, "", b"").await.unwrap();
    assert_eq!(
        a.wait(&id).await.unwrap(),
        0,
        "cat ends at the terminal's EOF"
    );
    a.remove(&id).await.unwrap();
}

/// What runtime-rs asks at sandbox start, answered from the machine's own sysfs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_details_come_from_sysfs() {
    let a = TestAgent::start().await;
    let req = wire::agent::GuestDetailsRequest {
        mem_block_size: true,
        mem_hotplug_probe: true,
        ..Default::default()
    };
    let ctx = ttrpc::context::with_timeout(0);
    let r = a.client.get_guest_details(ctx, &req).await.unwrap();
    let memory = std::path::Path::new("/sys/devices/system/memory");
    let block = std::fs::read_to_string(memory.join("block_size_bytes"))
        .map(|t| u64::from_str_radix(t.trim(), 16).unwrap())
        .unwrap_or(0);
    assert_eq!(r.mem_block_size_bytes, block);
    assert_eq!(r.support_mem_hotplug_probe, memory.join("probe").exists());
    let d = r.agent_details.as_ref().expect("agent details");
    assert!(!d.version.is_empty());
    assert!(d.supports_seccomp);
    assert!(!d.init_daemon, "the test agent is not pid 1");
    let drivers = [
        "local",
        "ephemeral",
        "bind",
        "9p",
        "virtio-fs",
        "blk",
        "mmioblk",
        "scsi",
        "nvdimm",
    ];
    assert_eq!(d.storage_handlers, drivers, "the storage drivers served");
    assert!(d.device_handlers.is_empty(), "no device handler yet");
}

fn ctx() -> ttrpc::context::Context {
    ttrpc::context::with_timeout(0)
}

/// Collects the container's stdout in the background until EOF.
fn collect_stdout(a: &TestAgent, id: &str) -> Arc<Mutex<Vec<u8>>> {
    let out = Arc::new(Mutex::new(Vec::new()));
    let (client, sink) = (a.client.clone(), out.clone());
    let req = wire::agent::ReadStreamRequest {
        container_id: id.into(),
        len: 1 << 16,
        ..Default::default()
    };
    tokio::spawn(async move {
        while let Ok(r) = client.read_stdout(ctx(), &req).await {
            if r.data.is_empty() {
                break;
            }
            sink.lock().unwrap().extend(r.data);
        }
    });
    out
}

/// The last complete number the counter printed.
fn last_count(out: &Mutex<Vec<u8>>) -> u64 {
    let text = String::from_utf8_lossy(&out.lock().unwrap()).into_owned();
    let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
    complete
        .lines()
        .last()
        .map_or(0, |l| l.trim().parse().unwrap())
}

async fn pause(a: &TestAgent, id: &str) -> ttrpc::Result<()> {
    let req = wire::agent::PauseContainerRequest {
        container_id: id.into(),
        ..Default::default()
    };
    a.client.pause_container(ctx(), &req).await.map(|_| ())
}

async fn resume(a: &TestAgent, id: &str) -> ttrpc::Result<()> {
    let req = wire::agent::ResumeContainerRequest {
        container_id: id.into(),
        ..Default::default()
    };
    a.client.resume_container(ctx(), &req).await.map(|_| ())
}

const COUNTER: &str = "i=0; while :; do i=$((i+1)); echo $i; usleep 10000; done";

tests::both_launchers!(a_paused_container_stops_counting_and_resumes);
async fn a_paused_container_stops_counting_and_resumes(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    let id = unique_id("pause");
    a.create(&id, &bundle::spec(&["sh", "-c", COUNTER]))
        .await
        .unwrap();
    a.start_container(&id).await.unwrap();
    let out = collect_stdout(&a, &id);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(last_count(&out) > 0, "the counter runs");
    pause(&a, &id).await.unwrap();
    let freezer = format!("/sys/fs/cgroup/freezer/zagent/{id}/freezer.state");
    assert_eq!(std::fs::read_to_string(&freezer).unwrap().trim(), "FROZEN");
    assert_eq!(a.info(&id).await.unwrap().0, "paused");
    // What was written before the freeze has arrived by now.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let frozen_at = last_count(&out);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(last_count(&out), frozen_at, "no count while paused");
    let r = pause(&a, &id).await;
    assert_eq!(code(&r), Code::FAILED_PRECONDITION, "{}", message(&r));
    let r = a
        .exec(
            &id,
            "e",
            &bundle::spec(&["true"]).process().clone().unwrap(),
        )
        .await;
    assert_eq!(code(&r), Code::FAILED_PRECONDITION, "{}", message(&r));
    resume(&a, &id).await.unwrap();
    assert_eq!(std::fs::read_to_string(&freezer).unwrap().trim(), "THAWED");
    assert_eq!(a.info(&id).await.unwrap().0, "running");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(last_count(&out) > frozen_at, "counting again after resume");
    let r = resume(&a, &id).await;
    assert_eq!(code(&r), Code::FAILED_PRECONDITION, "{}", message(&r));
    // A kill of a paused container takes effect (as in Kata's agent, which thaws it).
    pause(&a, &id).await.unwrap();
    a.signal(&id, libc::SIGKILL as u32).await.unwrap();
    assert_eq!(a.wait(&id).await.unwrap(), 128 + libc::SIGKILL);
    a.remove(&id).await.unwrap();
    let r = pause(&a, &id).await;
    assert_eq!(code(&r), Code::NOT_FOUND, "{}", message(&r));
}

/// A created container can be paused too (as in Kata's agent); it cannot start until resumed,
/// and a paused container is removed without a resume.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_created_container_starts_after_resume_and_removes_paused() {
    let a = TestAgent::start().await;
    let id = unique_id("pausec");
    a.create(&id, &bundle::spec(&["sh", "-c", COUNTER]))
        .await
        .unwrap();
    pause(&a, &id).await.unwrap();
    let r = a.start_container(&id).await;
    assert_eq!(code(&r), Code::FAILED_PRECONDITION, "{}", message(&r));
    resume(&a, &id).await.unwrap();
    assert_eq!(a.info(&id).await.unwrap().0, "created");
    a.start_container(&id).await.unwrap();
    pause(&a, &id).await.unwrap();
    a.remove(&id).await.unwrap();
    assert!(a.info(&id).await.is_none());
}

tests::both_launchers!(stats_show_the_containers_usage);
async fn stats_show_the_containers_usage(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    let id = unique_id("stats");
    let mut spec = bundle::spec(&["sh", "-c", "sleep 100 & sleep 100"]);
    let resources = oci_spec::runtime::LinuxResourcesBuilder::default()
        .pids(
            oci_spec::runtime::LinuxPidsBuilder::default()
                .limit(50)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let mut linux = spec.linux().clone().unwrap();
    linux.set_resources(Some(resources));
    spec.set_linux(Some(linux));
    a.create(&id, &spec).await.unwrap();
    a.start_container(&id).await.unwrap();
    // Let the shell fork its two sleeps and use some cpu.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let req = wire::agent::StatsContainerRequest {
        container_id: id.clone(),
        ..Default::default()
    };
    let r = a.client.stats_container(ctx(), &req).await.unwrap();
    let s = r.cgroup_stats.as_ref().expect("cgroup stats");
    let pids = s.pids_stats.as_ref().unwrap();
    assert!(pids.current >= 1, "{pids:?}");
    assert_eq!(pids.limit, 50);
    let mem = s.memory_stats.as_ref().unwrap();
    let usage = mem.usage.as_ref().unwrap();
    assert!(usage.usage > 0, "{usage:?}");
    assert!(usage.limit > 0, "{usage:?}");
    assert!(!mem.stats.is_empty(), "memory.stat");
    let cpu = s.cpu_stats.as_ref().unwrap().cpu_usage.as_ref().unwrap();
    assert!(cpu.total_usage > 0, "{cpu:?}");
    a.signal(&id, libc::SIGKILL as u32).await.unwrap();
    a.wait(&id).await.unwrap();
    a.remove(&id).await.unwrap();
    let r = a.client.stats_container(ctx(), &req).await;
    assert_eq!(code(&r), Code::NOT_FOUND, "{}", message(&r));
}

async fn update(
    a: &TestAgent,
    id: &str,
    r: oci_spec::runtime::LinuxResources,
) -> ttrpc::Result<()> {
    let req = wire::agent::UpdateContainerRequest {
        container_id: id.into(),
        resources: Some(wire::oci::resources_to_grpc(&r)).into(),
        ..Default::default()
    };
    a.client.update_container(ctx(), &req).await.map(|_| ())
}

fn limits(memory: i64, pids: i64, quota: Option<i64>) -> oci_spec::runtime::LinuxResources {
    use oci_spec::runtime::{LinuxCpuBuilder, LinuxMemoryBuilder, LinuxPidsBuilder};
    let mut cpu = LinuxCpuBuilder::default();
    if let Some(quota) = quota {
        cpu = cpu.quota(quota).period(100_000u64);
    }
    oci_spec::runtime::LinuxResourcesBuilder::default()
        .memory(LinuxMemoryBuilder::default().limit(memory).build().unwrap())
        .pids(LinuxPidsBuilder::default().limit(pids).build().unwrap())
        .cpu(cpu.build().unwrap())
        .build()
        .unwrap()
}

tests::both_launchers!(update_changes_a_running_containers_limits);
async fn update_changes_a_running_containers_limits(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    let id = unique_id("update");
    let mut spec = bundle::spec(&["sleep", "100"]);
    let mut linux = spec.linux().clone().unwrap();
    linux.set_resources(Some(limits(64 << 20, 50, None)));
    spec.set_linux(Some(linux));
    a.create(&id, &spec).await.unwrap();
    a.start_container(&id).await.unwrap();
    let file = |c: &str, f: &str| {
        let path = format!("/sys/fs/cgroup/{c}/zagent/{id}/{f}");
        std::fs::read_to_string(&path).unwrap().trim().to_owned()
    };
    assert_eq!(
        file("memory", "memory.limit_in_bytes"),
        (64 << 20).to_string()
    );
    update(&a, &id, limits(128 << 20, 20, Some(50_000)))
        .await
        .unwrap();
    assert_eq!(
        file("memory", "memory.limit_in_bytes"),
        (128 << 20).to_string()
    );
    assert_eq!(file("pids", "pids.max"), "20");
    assert_eq!(file("cpu", "cpu.cfs_quota_us"), "50000");
    // Nonsense is refused before anything is written.
    let r = update(&a, &id, limits(32 << 20, -5, None)).await;
    assert_eq!(code(&r), Code::INVALID_ARGUMENT, "{}", message(&r));
    assert_eq!(
        file("memory", "memory.limit_in_bytes"),
        (128 << 20).to_string()
    );
    let r = update(&a, "no-such-container", limits(32 << 20, 5, None)).await;
    assert_eq!(code(&r), Code::NOT_FOUND, "{}", message(&r));
    a.signal(&id, libc::SIGKILL as u32).await.unwrap();
    a.wait(&id).await.unwrap();
    let r = update(&a, &id, limits(32 << 20, 5, None)).await;
    assert_eq!(code(&r), Code::FAILED_PRECONDITION, "{}", message(&r));
    a.remove(&id).await.unwrap();
}

/// The `lo` counters of a container, from StatsContainer's network list.
async fn lo_counters(a: &TestAgent, id: &str) -> wire::agent::NetworkStats {
    let req = wire::agent::StatsContainerRequest {
        container_id: id.into(),
        ..Default::default()
    };
    let ctx = ttrpc::context::with_timeout(Duration::from_secs(30).as_nanos() as i64);
    let r = a.client.stats_container(ctx, &req).await.unwrap();
    let names: Vec<&str> = r.network_stats.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["lo"], "a new network namespace has lo only");
    r.network_stats[0].clone()
}

tests::both_launchers!(stats_list_the_interfaces_of_the_containers_netns);
async fn stats_list_the_interfaces_of_the_containers_netns(l: Launcher) {
    use oci_spec::runtime::{Capability, LinuxCapabilitiesBuilder};
    let a = TestAgent::start_with(l).await;
    let id = unique_id("netstats");
    let mut spec = bundle::spec(&["sh", "-c", "ip link set lo up && exec sleep 100"]);
    let caps: std::collections::HashSet<_> = [Capability::NetAdmin, Capability::NetRaw].into();
    let mut process = spec.process().clone().unwrap();
    process.set_capabilities(Some(
        LinuxCapabilitiesBuilder::default()
            .bounding(caps.clone())
            .permitted(caps.clone())
            .effective(caps)
            .inheritable(std::collections::HashSet::new())
            .ambient(std::collections::HashSet::new())
            .build()
            .unwrap(),
    ));
    spec.set_process(Some(process.clone()));
    a.create(&id, &spec).await.unwrap();
    let before = lo_counters(&a, &id).await;
    a.start_container(&id).await.unwrap();
    // Until the container has brought lo up, ping fails: a few tries.
    process.set_args(Some(
        ["ping", "-c", "2", "127.0.0.1"].map(String::from).into(),
    ));
    let mut pinged = false;
    for n in 0..20 {
        let exec_id = format!("ping{n}");
        a.exec(&id, &exec_id, &process).await.unwrap();
        if a.wait_exec(&id, &exec_id).await.unwrap() == 0 {
            pinged = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(pinged, "ping 127.0.0.1 in the container never succeeded");
    let after = lo_counters(&a, &id).await;
    // Two echo requests and two replies went over lo, each sent and received there.
    assert!(
        after.rx_packets >= before.rx_packets + 4,
        "{before:?} {after:?}"
    );
    assert!(
        after.tx_packets >= before.tx_packets + 4,
        "{before:?} {after:?}"
    );
    assert!(after.rx_bytes > before.rx_bytes, "{before:?} {after:?}");
    assert!(after.tx_bytes > before.tx_bytes, "{before:?} {after:?}");
    // The host's own interfaces are not the container's.
    assert!(after.rx_packets < 1_000, "{after:?}");
    a.signal(&id, libc::SIGKILL as u32).await.unwrap();
    a.wait(&id).await.unwrap();
    let req = wire::agent::StatsContainerRequest {
        container_id: id.clone(),
        ..Default::default()
    };
    let ctx = ttrpc::context::with_timeout(Duration::from_secs(30).as_nanos() as i64);
    let r = a.client.stats_container(ctx, &req).await.unwrap();
    assert!(
        r.network_stats.is_empty(),
        "a stopped container has no netns"
    );
    a.remove(&id).await.unwrap();
}
