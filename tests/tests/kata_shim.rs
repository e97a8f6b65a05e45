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
