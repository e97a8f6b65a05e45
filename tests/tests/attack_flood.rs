//! Attack review, finding 5 (root): one client must not grow the agent without bound. A
//! pipelined Health.Check flood on a connection that never reads its replies, 20 concurrent
//! 4 MiB WriteStdin calls to a process that never reads its stdin, and a flood of failing
//! requests each leave the agent's RSS and its log bounded, and the agent keeps answering
//! Health.Check on another connection.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tests::agent::{code, message, Launcher, TestAgent};
use tests::{bundle, procs, unique_id};
use ttrpc::context;
use wire::health_ttrpc::HealthClient;

/// The most a flood may grow the agent's resident memory.
const MAX_GROWTH_KIB: u64 = 64 << 10;

fn rss_kib(pid: i32) -> u64 {
    let v = procs::status_field(pid, "VmRSS").expect("VmRSS of the agent");
    v.split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("VmRSS {v:?}"))
}

/// A protobuf length-delimited field (wire type 2) with a one-byte tag.
fn field(out: &mut Vec<u8>, tag: u8, data: &[u8]) {
    out.push(tag);
    let mut n = data.len();
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
    out.extend_from_slice(data);
}

/// One ttrpc REQUEST frame for grpc.Health/Check: the 10-byte header (length, stream id, type
/// 1, flags 0) and a ttrpc Request { service, method, payload = empty CheckRequest }.
fn health_frame(out: &mut Vec<u8>, stream_id: u32) {
    let mut req = Vec::new();
    field(&mut req, 0x0a, b"grpc.Health");
    field(&mut req, 0x12, b"Check");
    out.extend_from_slice(&(req.len() as u32).to_be_bytes());
    out.extend_from_slice(&stream_id.to_be_bytes());
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&req);
}

/// Writes up to `count` pipelined Health.Check requests, never reading a reply, until done or
/// `budget` has passed (the agent may stop reading: that is the back-pressure we want). Returns
/// the connection (still open) and how many frames were written whole.
fn flood(sock: &Path, count: u32, budget: Duration) -> (UnixStream, u32) {
    let mut s = UnixStream::connect(sock).expect("connect for the flood");
    s.set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + budget;
    let (mut sent, mut next) = (0u32, 0u32);
    let mut batch = Vec::new();
    health_frame(&mut batch, 1);
    let frame_len = batch.len();
    'outer: while next < count {
        batch.clear();
        let first = next;
        while next < count && next - first < 1000 {
            health_frame(&mut batch, 2 * next + 1);
            next += 1;
        }
        let mut off = 0;
        while off < batch.len() {
            if Instant::now() > deadline {
                sent += (off / frame_len) as u32;
                break 'outer;
            }
            match s.write(&batch[off..]) {
                Ok(n) => off += n,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("flood write: {e}"),
            }
        }
        sent += next - first;
    }
    (s, sent)
}

/// Health.Check on a fresh connection, answered within a few seconds.
async fn check_from_another_connection(addr: &str, when: &str) {
    let t0 = Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(5), async {
        let c = ttrpc::r#async::Client::connect(addr).await?;
        let ctx = context::with_timeout(Duration::from_secs(5).as_nanos() as i64);
        HealthClient::new(c).check(ctx, &Default::default()).await
    })
    .await;
    match r {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => panic!("Health.Check {when} failed: {e}"),
        Err(_) => panic!("Health.Check {when} not answered within 5 s"),
    }
    assert!(t0.elapsed() < Duration::from_secs(5));
}

fn lines_in(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .count()
}

/// The agent with its stderr in `dir/agent.log`, at the default log level.
async fn logged_agent(l: Launcher, dir: &Path) -> (TestAgent, std::path::PathBuf) {
    let log = dir.join("agent.log");
    let f = std::fs::File::create(&log).expect("agent log file");
    (TestAgent::start_stderr(l, &[], Stdio::from(f)).await, log)
}

tests::both_launchers!(health_flood_never_read_stays_bounded);
async fn health_flood_never_read_stays_bounded(l: Launcher) {
    let tmp = tempfile::tempdir().unwrap();
    let (a, log) = logged_agent(l, tmp.path()).await;
    let pid = a.pid();
    let sock = a.addr.strip_prefix("unix://").unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = rss_kib(pid);
    let lines_before = lines_in(&log);

    let path = std::path::PathBuf::from(&sock);
    let flood = tokio::task::spawn_blocking(move || flood(&path, 400_000, Duration::from_secs(12)));
    let mut peak = before;
    while !flood.is_finished() {
        peak = peak.max(rss_kib(pid));
        check_from_another_connection(&a.addr, "during the flood").await;
        peak = peak.max(rss_kib(pid));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (conn, sent) = flood.await.unwrap();
    assert!(sent >= 1000, "the flood wrote only {sent} requests");
    tokio::time::sleep(Duration::from_millis(500)).await;
    peak = peak.max(rss_kib(pid));
    check_from_another_connection(&a.addr, "after the flood, its connection open").await;
    drop(conn);
    tokio::time::sleep(Duration::from_millis(500)).await;
    check_from_another_connection(&a.addr, "after the flood connection closed").await;
    let growth = peak.saturating_sub(before);
    assert!(
        growth < MAX_GROWTH_KIB,
        "{sent} pipelined Health.Check grew the agent by {growth} KiB ({before} -> {peak} KiB)"
    );
    let logged = lines_in(&log) - lines_before;
    assert!(
        logged < 100,
        "the flood wrote {logged} log lines; the last ones:\n{}",
        last_lines(&log, 10)
    );
}

fn last_lines(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

tests::both_launchers!(write_stdin_flood_to_a_process_that_never_reads_stays_bounded);
async fn write_stdin_flood_to_a_process_that_never_reads_stays_bounded(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    let pid = a.pid();
    let id = unique_id("stdin-flood");
    a.create(&id, &bundle::spec(&["sleep", "1000"]))
        .await
        .unwrap();
    a.start_container(&id).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = rss_kib(pid);

    // Just under ttrpc's 4 MiB frame limit once wrapped in the request.
    let data = std::sync::Arc::new(vec![b'x'; (4 << 20) - 4096]);
    let mut calls = Vec::new();
    for _ in 0..20 {
        let client = a.client.clone();
        let (id, data) = (id.clone(), data.clone());
        calls.push(tokio::spawn(async move {
            let mut req = wire::agent::WriteStreamRequest::new();
            req.container_id = id;
            req.data = data.to_vec();
            let ctx = context::with_timeout(Duration::from_secs(120).as_nanos() as i64);
            client.write_stdin(ctx, &req).await.map(|r| r.len)
        }));
    }
    let mut peak = before;
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(6) {
        peak = peak.max(rss_kib(pid));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    check_from_another_connection(&a.addr, "with 20 WriteStdin pending").await;
    let mut refused = 0;
    for c in calls.iter_mut().filter(|c| c.is_finished()) {
        let r = c.await.unwrap();
        assert_eq!(code(&r), ttrpc::Code::RESOURCE_EXHAUSTED, "{}", message(&r));
        refused += 1;
    }
    let growth = peak.saturating_sub(before);
    assert!(
        growth < MAX_GROWTH_KIB,
        "20 pending 4 MiB WriteStdin grew the agent by {growth} KiB ({before} -> {peak} KiB)"
    );
    assert!(
        refused >= 19,
        "only {refused} of 20 concurrent WriteStdin were refused while one was in flight"
    );

    // Removal works and releases the write still in flight.
    a.signal(&id, 9).await.unwrap();
    a.wait(&id).await.unwrap();
    a.remove(&id).await.unwrap();
    for c in calls {
        if c.is_finished() {
            continue;
        }
        let r = tokio::time::timeout(Duration::from_secs(10), c).await;
        assert!(
            r.is_ok(),
            "a WriteStdin still hangs after its container was removed"
        );
    }
    check_from_another_connection(&a.addr, "after removal").await;
}

tests::both_launchers!(failing_requests_are_logged_at_a_bounded_rate);
async fn failing_requests_are_logged_at_a_bounded_rate(l: Launcher) {
    let tmp = tempfile::tempdir().unwrap();
    let (a, log) = logged_agent(l, tmp.path()).await;
    let lines_before = lines_in(&log);
    let mut tasks = Vec::new();
    for t in 0..16 {
        let client = a.client.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..200 {
                let mut req = wire::agent::WaitProcessRequest::new();
                req.container_id = format!("absent-{t}-{i}");
                let ctx = context::with_timeout(Duration::from_secs(30).as_nanos() as i64);
                let r = client.wait_process(ctx, &req).await;
                assert_eq!(code(&r), ttrpc::Code::NOT_FOUND, "{}", message(&r));
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // After a quiet moment the next failure is logged again, with what was left out.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let r = a.wait("absent-last").await;
    assert_eq!(code(&r), ttrpc::Code::NOT_FOUND);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let logged = lines_in(&log) - lines_before;
    assert!(
        logged < 200,
        "3200 failing requests wrote {logged} log lines; the last ones:\n{}",
        last_lines(&log, 10)
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("suppressed"),
        "no summary of the failures left out of the log:\n{}",
        last_lines(&log, 10)
    );
    assert!(
        text.contains("absent-last"),
        "the failure after the quiet moment was not logged"
    );
}
