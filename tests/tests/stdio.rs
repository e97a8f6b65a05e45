//! Tier 2 (root): the stdio RPCs with Kata's semantics: stdin round trip, EOF after CloseStdin,
//! large output delivered byte for byte under back-pressure, output kept after exit, stdout
//! and stderr apart.

use std::time::Duration;
use tests::agent::{code, message, Launcher, TestAgent};
use tests::{bundle, unique_id};
use ttrpc::Code;

tests::both_launchers!(stdin_round_trip_and_eof_after_close);
async fn stdin_round_trip_and_eof_after_close(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    let id = unique_id("cat");
    a.create(&id, &bundle::spec(&["cat"])).await.unwrap();
    a.start_container(&id).await.unwrap();
    assert_eq!(a.write_stdin(&id, "", b"hello ").await.unwrap(), 6);
    assert_eq!(a.write_stdin(&id, "", b"world\n").await.unwrap(), 6);
    a.close_stdin(&id, "").await.unwrap();
    let r = a.write_stdin(&id, "", b"late").await;
    assert_eq!(code(&r), Code::FAILED_PRECONDITION, "{}", message(&r));
    assert_eq!(a.read_all(&id, false).await.unwrap(), b"hello world\n");
    assert_eq!(a.wait(&id).await.unwrap(), 0, "cat ends after CloseStdin");
    a.remove(&id).await.unwrap();
}

fn pattern(len: usize) -> Vec<u8> {
    b"0123456789abcdef\n"
        .iter()
        .copied()
        .cycle()
        .take(len)
        .collect()
}

tests::both_launchers!(sixteen_mib_arrive_byte_for_byte_under_back_pressure);
async fn sixteen_mib_arrive_byte_for_byte_under_back_pressure(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    let id = unique_id("big");
    let len = 16 << 20;
    let script = format!("yes 0123456789abcdef | head -c {len}; echo done >&2");
    a.create(&id, &bundle::spec(&["sh", "-c", &script]))
        .await
        .unwrap();
    a.start_container(&id).await.unwrap();
    // Nobody reads for a while: the writer must block on the full pipe, not lose data.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        a.info(&id).await.unwrap().0,
        "running",
        "the writer cannot be done yet"
    );
    let (out, err) = tokio::join!(a.read_all(&id, false), a.read_all(&id, true));
    let out = out.unwrap();
    assert_eq!(out.len(), len);
    assert!(out == pattern(len), "stdout differs from what was written");
    assert_eq!(err.unwrap(), b"done\n", "stderr is kept apart");
    assert_eq!(a.wait(&id).await.unwrap(), 0);
    a.remove(&id).await.unwrap();
}

tests::both_launchers!(output_is_delivered_after_the_process_exited);
async fn output_is_delivered_after_the_process_exited(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    let id = unique_id("after");
    // Less than a pipe holds, so the process can finish before anyone reads.
    let len = 60_000;
    let script = format!("yes 0123456789abcdef | head -c {len}; echo e1 >&2; exit 3");
    a.create(&id, &bundle::spec(&["sh", "-c", &script]))
        .await
        .unwrap();
    a.start_container(&id).await.unwrap();
    assert_eq!(a.wait(&id).await.unwrap(), 3);
    assert!(a.read_all(&id, false).await.unwrap() == pattern(len));
    assert_eq!(a.read_all(&id, true).await.unwrap(), b"e1\n");
    // EOF stays EOF.
    assert!(a.read_all(&id, false).await.unwrap().is_empty());
    a.remove(&id).await.unwrap();
}
