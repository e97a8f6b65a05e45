//! Tier 2 (root): the stdio RPCs with Kata's semantics: stdin round trip, EOF after CloseStdin,
//! large output delivered byte for byte under back-pressure, output kept after exit, stdout
//! and stderr apart.

use std::time::{Duration, Instant};
use tests::agent::{code, message, Launcher, TestAgent};
use tests::{bundle, procs, unique_id};
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

/// The most a pipe can hold here without anyone asking for more (the default
/// `fs.pipe-max-size`, which bounds what F_SETPIPE_SZ may give an unprivileged pipe).
const PIPE_CAPACITY_MAX: u64 = 1 << 20;

/// Waits until the child `comm` of `parent` sleeps writing to a pipe and stays there, and
/// returns what it had written by then (`wchar` in /proc/PID/io). "Stays": its byte count
/// holds still over several looks, each of which also finds it asleep in the pipe write;
/// a writer whose output is drained goes on writing and never satisfies that.
async fn blocked_writer(parent: i32, comm: &str) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut still = 0;
    let mut last = None;
    loop {
        assert!(
            Instant::now() < deadline,
            "{comm} never stayed blocked on the pipe"
        );
        let pid = procs::children(parent)
            .into_iter()
            .find(|c| c.2 == comm)
            .map(|c| c.0);
        let looked = pid.and_then(|pid| Some((pipe_wait(pid)?, procs::wchar(pid)?)));
        match looked {
            Some((true, wchar)) if last == Some(wchar) => still += 1,
            Some((true, wchar)) => (still, last) = (0, Some(wchar)),
            _ => (still, last) = (0, None),
        }
        if still == 5 {
            return last.expect("a count was seen");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether `pid` sleeps in the kernel's pipe write (None once it is gone).
fn pipe_wait(pid: i32) -> Option<bool> {
    let wchan = std::fs::read_to_string(format!("/proc/{pid}/wchan")).ok()?;
    let state = procs::status_field(pid, "State")?;
    Some(state.starts_with('S') && wchan.contains("pipe_write"))
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
    // Nobody reads: the writer must end up blocked on the full pipe, not lose data, and the
    // agent must not drain the pipe into a buffer of its own.
    let (_, sh, _) = a.info(&id).await.unwrap();
    let written = blocked_writer(sh, "head").await;
    assert!(
        written <= PIPE_CAPACITY_MAX,
        "{written} bytes left the writer while nobody read: the agent buffers"
    );
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
