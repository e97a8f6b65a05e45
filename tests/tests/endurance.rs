//! Tier 2 (root): many cycles leak nothing, and the zygote's death loses nothing.

use std::time::{Duration, Instant};
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
    // Not more than after the warm-up: a leak grows the table. (It can be one less: an fd of
    // the warm-up's helper that was still closing when `fds` was counted.)
    let after = procs::fd_count(a.pid());
    assert!(after <= fds, "agent fds before {fds}, after {after}");
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

/// The agent's listening socket, checked from outside whatever the kernel offers: its fds are
/// copied into this process (pidfd_getfd) until one is an AF_VSOCK socket in listening state,
/// whose bound port is then read (getsockname). This needs neither a vsock diagnostics module
/// (no kernel lists vsock sockets in /proc) nor a peer: a guest cannot reach its own CID
/// without the loopback transport, and a connect to the host's side proves nothing here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vsock_listens() {
    tests::require_root();
    let state = tempfile::tempdir().unwrap();
    let log_path = state.path().join("agent.log");
    let mut child = std::process::Command::new(tests::bin("zagent"))
        .args(["--listen", "vsock://-1:10240", "--state-dir"])
        .arg(state.path().join("state"))
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let pid = child.id() as i32;
    let deadline = Instant::now() + Duration::from_secs(20);
    let port = loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("zagent exited on vsock listen: {status}\n{}", log());
        }
        if let Some(port) = vsock_listener_port(pid) {
            break Some(port);
        }
        if Instant::now() > deadline {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    );
    let status = child.wait().unwrap();
    assert_eq!(
        port,
        Some(10240),
        "no vsock listener on port 10240\n{}",
        log()
    );
    assert!(
        status.success(),
        "zagent after SIGTERM: {status}\n{}",
        log()
    );
}

/// The port of an AF_VSOCK socket in listening state among `pid`'s fds. A kernel that cannot
/// copy another process's fds (no pidfd_getfd: before 5.6) fails the test with that reason
/// rather than letting it pass unchecked.
fn vsock_listener_port(pid: i32) -> Option<u32> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    // SAFETY: pidfd_open with a pid and no flags returns a new fd or -1, touching no memory.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if pidfd < 0 {
        let e = std::io::Error::last_os_error();
        assert_eq!(e.raw_os_error(), Some(libc::ESRCH), "pidfd_open: {e}");
        return None;
    }
    // SAFETY: the fd was just returned to us and nothing else owns it.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as i32) };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    fds.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .find_map(|target| {
            // SAFETY: pidfd_getfd copies fd `target` of the process into a new fd of ours (or
            // returns -1); no memory of ours is involved.
            let fd = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), target, 0) };
            if fd < 0 {
                // EBADF: closed since the listing; ESRCH: the agent is gone (checked by the
                // caller). Anything else means this check cannot be made here.
                let e = std::io::Error::last_os_error();
                let benign = [libc::EBADF, libc::ESRCH];
                assert!(
                    benign.contains(&e.raw_os_error().unwrap_or(0)),
                    "pidfd_getfd cannot copy the agent's fds: {e}"
                );
                return None;
            }
            // SAFETY: as above, a fresh fd nothing else owns.
            let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
            listening_vsock_port(&fd)
        })
}

fn listening_vsock_port(fd: &std::os::fd::OwnedFd) -> Option<u32> {
    use std::os::fd::AsRawFd;
    let int_opt = |opt: i32| {
        let mut v: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt writes at most `len` bytes into `v`, an int of that size.
        let r = unsafe {
            libc::getsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&mut v as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        (r == 0).then_some(v)
    };
    if int_opt(libc::SO_DOMAIN)? != libc::AF_VSOCK || int_opt(libc::SO_ACCEPTCONN)? != 1 {
        return None;
    }
    // SAFETY: all-zero bytes are a valid sockaddr_vm.
    let mut addr: libc::sockaddr_vm = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_vm>() as libc::socklen_t;
    // SAFETY: getsockname writes at most `len` bytes into `addr`, a sockaddr_vm of that size.
    let r = unsafe {
        libc::getsockname(
            fd.as_raw_fd(),
            (&mut addr as *mut libc::sockaddr_vm).cast(),
            &mut len,
        )
    };
    (r == 0).then_some(addr.svm_port)
}
