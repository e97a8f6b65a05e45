//! Attack review, finding 7 (root): `--listen unix://PATH` never destroys what is at PATH. A
//! second agent on a live socket refuses to start and the first keeps serving; a regular file,
//! a directory or a symlink at PATH is left intact and the agent exits non-zero; a stale socket
//! (nobody listening) is replaced; at shutdown the agent removes the socket only if it is still
//! the one it bound.

use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use tests::agent::{Launcher, TestAgent};
use ttrpc::context;
use wire::health_ttrpc::HealthClient;

/// `zagent --listen unix://SOCK` with its own state dir, stderr captured.
fn spawn_agent(l: Launcher, sock: &Path, state: &Path) -> Child {
    tests::require_root();
    Command::new(tests::bin("zagent"))
        .arg("--listen")
        .arg(format!("unix://{}", sock.display()))
        .args(["--launcher", l.arg(), "--state-dir"])
        .arg(state)
        .env("ZAGENT_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn zagent")
}

/// Waits up to `limit` for the agent to exit; kills and reaps it if it does not.
fn exit_within(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(st) = child.try_wait().expect("try_wait") {
            return Some(st);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

fn stderr_of(child: &mut Child) -> String {
    use std::io::Read;
    let mut s = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut s);
    }
    s
}

/// Stops an agent this test started (SIGTERM, then SIGKILL) and reaps it.
fn stop(child: &mut Child) -> Option<ExitStatus> {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    exit_within(child, Duration::from_secs(15))
}

async fn health(addr: &str) -> bool {
    let r = tokio::time::timeout(Duration::from_secs(5), async {
        let c = ttrpc::r#async::Client::connect(addr).await?;
        let ctx = context::with_timeout(Duration::from_secs(5).as_nanos() as i64);
        HealthClient::new(c).check(ctx, &Default::default()).await
    })
    .await;
    matches!(r, Ok(Ok(_)))
}

async fn serves_within(addr: &str, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if health(addr).await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Starts an agent at `sock` expecting a refusal: it must exit non-zero within 20 s with a
/// message naming the path. Returns its stderr.
fn expect_refusal(l: Launcher, sock: &Path, state: &Path) -> String {
    let mut child = spawn_agent(l, sock, state);
    let st = exit_within(&mut child, Duration::from_secs(20));
    let err = stderr_of(&mut child);
    let st = st.unwrap_or_else(|| panic!("zagent kept running on {}: {err}", sock.display()));
    assert!(!st.success(), "zagent exited {st} on {}", sock.display());
    assert!(
        err.contains(&sock.display().to_string()),
        "the refusal does not name the path: {err}"
    );
    err
}

tests::both_launchers!(second_agent_on_a_live_socket_refuses_and_the_first_serves);
async fn second_agent_on_a_live_socket_refuses_and_the_first_serves(l: Launcher) {
    let first = TestAgent::start_with(l).await;
    let sock = first.addr.strip_prefix("unix://").unwrap().to_owned();
    let state2 = first.dir.path().join("state2");
    let err = expect_refusal(l, Path::new(&sock), &state2);
    assert!(
        err.contains("already"),
        "the refusal does not say an agent is already serving: {err}"
    );
    assert!(health(&first.addr).await, "the first agent lost its socket");
    let meta = std::fs::symlink_metadata(&sock).expect("the socket is still there");
    assert!(meta.file_type().is_socket());
}

tests::both_launchers!(regular_file_directory_and_symlink_are_left_intact);
async fn regular_file_directory_and_symlink_are_left_intact(l: Launcher) {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");

    let file = tmp.path().join("precious.txt");
    std::fs::write(&file, b"keep me").unwrap();
    let err = expect_refusal(l, &file, &state);
    assert!(err.contains("not a socket"), "{err}");
    assert_eq!(
        std::fs::read(&file).unwrap(),
        b"keep me",
        "the file was changed"
    );

    let dir = tmp.path().join("a-dir");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("inside"), b"x").unwrap();
    expect_refusal(l, &dir, &state);
    assert!(dir.join("inside").exists(), "the directory was changed");

    let link = tmp.path().join("link.sock");
    std::os::unix::fs::symlink(&file, &link).unwrap();
    expect_refusal(l, &link, &state);
    let meta = std::fs::symlink_metadata(&link).expect("the symlink is still there");
    assert!(meta.file_type().is_symlink());
    assert_eq!(std::fs::read(&file).unwrap(), b"keep me");
}

tests::both_launchers!(stale_socket_is_replaced_and_only_our_socket_removed_at_exit);
async fn stale_socket_is_replaced_and_only_our_socket_removed_at_exit(l: Launcher) {
    let tmp = tempfile::tempdir().unwrap();
    let sock = tmp.path().join("agent.sock");
    let addr = format!("unix://{}", sock.display());
    // A socket file nobody listens on: what a killed agent leaves behind.
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    assert!(std::fs::symlink_metadata(&sock)
        .unwrap()
        .file_type()
        .is_socket());

    let mut child = spawn_agent(l, &sock, &tmp.path().join("state"));
    let up = serves_within(&addr, Duration::from_secs(20)).await;
    if !up {
        let _ = stop(&mut child);
        panic!(
            "zagent did not replace the stale socket: {}",
            stderr_of(&mut child)
        );
    }
    // Someone else takes the path while the agent runs: at exit it is not ours to remove.
    std::fs::remove_file(&sock).unwrap();
    std::fs::write(&sock, b"not the agent's").unwrap();
    let st = stop(&mut child).expect("zagent did not stop on SIGTERM");
    assert!(
        st.success(),
        "zagent exited {st}: {}",
        stderr_of(&mut child)
    );
    assert_eq!(
        std::fs::read(&sock).ok().as_deref(),
        Some(&b"not the agent's"[..]),
        "the agent removed a file that was not its socket"
    );

    // Its own socket is removed at exit.
    std::fs::remove_file(&sock).unwrap();
    let mut child = spawn_agent(l, &sock, &tmp.path().join("state"));
    assert!(serves_within(&addr, Duration::from_secs(20)).await);
    let st = stop(&mut child).expect("zagent did not stop on SIGTERM");
    assert!(st.success(), "zagent exited {st}");
    assert!(!sock.exists(), "the agent left its socket behind");
}
