//! Tier 2 (root): GetOOMEvent as a Kata shim loops on it (issue 9). A container with a small
//! memory limit allocates until the kernel's OOM killer kills it; the long poll answers with
//! its id: to a call already waiting, or, queued, to the next call; a call whose client left
//! takes no event with it; the agent stopping ends a waiting call; the watch goes with the
//! container (no fd left in the agent).

use std::time::Duration;
use tests::agent::{code, Launcher, TestAgent};
use tests::{bundle, unique_id};
use wire::agent_ttrpc::AgentServiceClient;

fn ctx() -> ttrpc::context::Context {
    ttrpc::context::with_timeout(0)
}

fn oom_kills(id: &str) -> u64 {
    let file = format!("/sys/fs/cgroup/memory/zagent/{id}/memory.oom_control");
    let text = std::fs::read_to_string(&file).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .map_or(0, |n| n.trim().parse().unwrap())
}

/// Runs the OOM container to its end: killed by SIGKILL, the kill counted by the kernel.
async fn run_oom(a: &TestAgent, id: &str) {
    a.create(id, &bundle::oom_spec()).await.unwrap();
    a.start_container(id).await.unwrap();
    let status = a.wait(id).await.unwrap();
    assert_eq!(status, 128 + libc::SIGKILL, "dd was not OOM-killed");
    assert!(oom_kills(id) >= 1, "the kernel counted no OOM kill");
}

/// A GetOOMEvent call in a task of its own, on a connection of its own.
async fn poll(a: &TestAgent) -> tokio::task::JoinHandle<ttrpc::Result<String>> {
    let c = ttrpc::r#async::Client::connect(&a.addr).await.unwrap();
    let client = AgentServiceClient::new(c);
    tokio::spawn(async move {
        let r = client.get_oom_event(ctx(), &Default::default()).await;
        r.map(|e| e.container_id)
    })
}

async fn answered(call: tokio::task::JoinHandle<ttrpc::Result<String>>) -> ttrpc::Result<String> {
    tokio::time::timeout(Duration::from_secs(30), call)
        .await
        .expect("the long poll answered in time")
        .unwrap()
}

tests::both_launchers!(an_oom_kill_answers_the_waiting_long_poll);
async fn an_oom_kill_answers_the_waiting_long_poll(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    let fds = tests::procs::fd_count(a.pid());
    let call = poll(&a).await;
    // The call waits: nothing has happened yet.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!call.is_finished(), "GetOOMEvent answered with no OOM");
    let id = unique_id("oom");
    run_oom(&a, &id).await;
    assert_eq!(answered(call).await.unwrap(), id);
    a.remove(&id).await.unwrap();
    // The poll's connection is gone too once the agent saw it close.
    let mut left = 0;
    for _ in 0..100 {
        left = tests::procs::fd_count(a.pid());
        if left == fds {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        left, fds,
        "the agent kept fds of the removed container (its OOM watch?)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oom_while_nobody_waits_is_queued_for_the_next_call() {
    let a = TestAgent::start().await;
    let id = unique_id("oomq");
    run_oom(&a, &id).await;
    // Removed before anyone asked: the event stays.
    a.remove(&id).await.unwrap();
    let r = tokio::time::timeout(
        Duration::from_secs(10),
        a.client.get_oom_event(ctx(), &Default::default()),
    )
    .await
    .expect("a queued event answers at once")
    .unwrap();
    assert_eq!(r.container_id, id);
    // Only one event for one kill: the next call waits.
    let call = poll(&a).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!call.is_finished(), "a second event for one OOM kill");
    call.abort();
}

/// The oldest waiting call gets the event; one whose client left gives up its place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_are_answered_oldest_first_and_a_departed_client_takes_nothing() {
    let a = TestAgent::start().await;
    let departed = poll(&a).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let older = poll(&a).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let newer = poll(&a).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The task owns the only client of its connection: aborting it closes the connection.
    departed.abort();
    let _ = departed.await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let first = unique_id("oom1");
    run_oom(&a, &first).await;
    assert_eq!(answered(older).await.unwrap(), first);
    assert!(!newer.is_finished());
    let second = unique_id("oom2");
    run_oom(&a, &second).await;
    assert_eq!(answered(newer).await.unwrap(), second);
    for id in [first, second] {
        a.remove(&id).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_call_ends_when_the_agent_stops() {
    let mut a = TestAgent::start().await;
    let call = poll(&a).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = tokio::task::block_in_place(|| a.stop());
    assert!(status.success(), "{status:?}");
    let r = answered(call).await;
    // Answered UNAVAILABLE, or the connection closed under it: never a container id.
    match &r {
        Err(ttrpc::Error::RpcStatus(_)) => assert_eq!(code(&r), ttrpc::Code::UNAVAILABLE),
        Err(_) => {}
        Ok(id) => panic!("an event {id:?} at shutdown"),
    }
}
