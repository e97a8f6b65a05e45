//! Tier 2 (root): many cycles leak nothing, and the zygote's death loses nothing.

use std::time::Duration;
use tests::agent::{Launcher, TestAgent};
use tests::{bundle, procs, unique_id};

async fn cycle(a: &TestAgent, spec: &oci_spec::runtime::Spec) {
    let id = unique_id("cyc");
    a.create(&id, spec).await.unwrap();
    a.start_container(&id).await.unwrap();
    assert_eq!(a.wait(&id).await.unwrap(), 0);
    a.remove(&id).await.unwrap();
}

tests::both_launchers!(two_hundred_cycles_leave_nothing_behind);
async fn two_hundred_cycles_leave_nothing_behind(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    let spec = bundle::spec(&["true"]);
    cycle(&a, &spec).await; // warm-up: lazily made runtime fds exist from here on
    let fds = procs::fd_count(a.pid());
    let zygote_fds = procs::zygote_of(a.pid()).map(procs::fd_count);
    for _ in 0..200 {
        cycle(&a, &spec).await;
    }
    assert!(
        procs::zombies_of(a.pid()).is_empty(),
        "zombies: {:?}",
        procs::zombies_of(a.pid())
    );
    let after = procs::fd_count(a.pid());
    assert_eq!(after, fds, "agent fds before {fds}, after {after}");
    let children = procs::children(a.pid());
    if l == Launcher::Zygote {
        let zygote = procs::zygote_of(a.pid()).expect("zygote");
        assert_eq!(procs::threads(zygote), 1);
        // stdio, its channel, its own namespaces and the warm pool's: the same count as before.
        assert_eq!(Some(procs::fd_count(zygote)), zygote_fds, "zygote fds");
        assert_eq!(children.len(), 1, "only the zygote remains: {children:?}");
    } else {
        assert!(
            children.is_empty(),
            "every `zagent init` was reaped: {children:?}"
        );
    }
    assert!(procs::mounts_under(bundle::rootfs()).is_empty());
    assert_eq!(
        std::fs::read_dir(&a.state_dir).unwrap().count(),
        0,
        "state dirs left"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zygote_killed_while_idle_is_replaced_and_running_containers_are_kept() {
    let a = TestAgent::start().await;
    let before = unique_id("before");
    a.create(&before, &bundle::spec(&["sleep", "100"]))
        .await
        .unwrap();
    a.start_container(&before).await.unwrap();
    let zygote = procs::zygote_of(a.pid()).expect("zygote");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(zygote),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let after = unique_id("after");
    a.create(&after, &bundle::spec(&["true"]))
        .await
        .expect("create after the zygote died");
    a.start_container(&after).await.unwrap();
    assert_eq!(a.wait(&after).await.unwrap(), 0);
    a.remove(&after).await.unwrap();
    let new_zygote = procs::zygote_of(a.pid()).expect("a new zygote");
    assert_ne!(new_zygote, zygote);
    assert!(
        !std::path::Path::new(&format!("/proc/{zygote}")).exists(),
        "old zygote not reaped"
    );
    assert_eq!(a.info(&before).await.unwrap().0, "running");
    a.signal(&before, libc::SIGKILL as u32).await.unwrap();
    let status = tokio::time::timeout(Duration::from_secs(10), a.wait(&before))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status, 137);
    a.remove(&before).await.unwrap();
    assert!(procs::zombies_of(a.pid()).is_empty());
}

#[test]
fn vsock_listens() {
    tests::require_root();
    let mut child = std::process::Command::new(tests::bin("zagent"))
        .args(["--listen", "vsock://-1:10240", "--state-dir"])
        .arg(tempfile::tempdir().unwrap().path())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let alive = child.try_wait().unwrap().is_none();
    let listening = std::fs::read_to_string("/proc/net/vsock").ok();
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let status = child.wait().unwrap();
    assert!(alive, "zagent exited on vsock listen: {status}");
    if let Some(table) = listening {
        // port 10240 is 0x2800 in the kernel's table
        assert!(
            table.to_lowercase().contains("2800"),
            "no vsock listener: {table}"
        );
    }
}
