//! Tier 2 (root): signals from inside a container never reach the agent's side. A process group
//! is not confined to a pid namespace: kill(0, sig) from a container process that shared the
//! agent's process group reached the zygote and the agent (found by the conformance suite:
//! `kill -TERM 0` in a container shut the agent down). Every container and exec process leads a
//! session of its own, as runc's do.

use std::time::Duration;
use tests::agent::{Launcher, TestAgent};
use tests::{bundle, procs, unique_id};

/// The agent answers, and its zygote (for the zygote launcher) is the one it started with.
async fn still_serving(a: &TestAgent, zygote: Option<i32>, after: &str) {
    let r = a
        .health
        .check(
            ttrpc::context::with_timeout(5_000_000_000),
            &Default::default(),
        )
        .await;
    assert!(r.is_ok(), "Health.Check after {after}: {r:?}");
    assert_eq!(
        procs::zygote_of(a.pid()),
        zygote,
        "the zygote after {after}"
    );
}

tests::both_launchers!(kill_zero_in_a_container_stays_in_the_container);
async fn kill_zero_in_a_container_stays_in_the_container(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    let zygote = procs::zygote_of(a.pid());
    assert_eq!(zygote.is_some(), l == Launcher::Zygote);
    // The container's process: its own session and process group (session id = its pid), then
    // SIGTERM and SIGKILL to its whole process group.
    let id = unique_id("killzero");
    let script = "read -r _ _ _ _ pgrp session _ < /proc/self/stat; \
        [ \"$pgrp\" = $$ ] && [ \"$session\" = $$ ] && echo own-session; \
        sleep 100 & kill -TERM 0; kill -KILL 0";
    let (status, out, err) = a.run(&id, &bundle::spec(&["sh", "-c", script])).await;
    assert_eq!(out, "own-session\n", "stderr: {err}");
    // The shell is pid 1 of its namespace, which signals from inside do not kill: it ends
    // normally once its group (the sleeper) got them.
    assert_eq!(status, 0, "stderr: {err}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    still_serving(&a, zygote, "kill 0 in a container").await;

    // An exec'd process, likewise.
    let id = unique_id("killzero-exec");
    a.create(&id, &bundle::spec(&["sleep", "100"]))
        .await
        .unwrap();
    a.start_container(&id).await.unwrap();
    let mut process = bundle::spec(&["sh", "-c", "kill -KILL 0"])
        .process()
        .clone()
        .unwrap();
    process.set_terminal(Some(false));
    a.exec(&id, "x", &process).await.unwrap();
    assert_eq!(a.wait_exec(&id, "x").await.unwrap(), 137);
    tokio::time::sleep(Duration::from_millis(200)).await;
    still_serving(&a, zygote, "kill 0 in an exec").await;
    a.signal(&id, libc::SIGKILL as u32).await.unwrap();
    a.wait(&id).await.unwrap();
    a.remove(&id).await.unwrap();
}
