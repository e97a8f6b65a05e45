//! Tier 2 (root): what a stock Kata shim relies on beyond create/start/wait (issue 9): an
//! empty WriteStdin as EOF, GetGuestDetails, Pause/Resume, StatsContainer, UpdateContainer.

use tests::agent::{Launcher, TestAgent};
use tests::{bundle, unique_id};

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
    assert!(
        d.storage_handlers.is_empty(),
        "no storage driver is served yet"
    );
}
