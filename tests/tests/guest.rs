//! The guest tier (root): a real VM (QEMU, Debian's kernel, cgroup v2 only) with zagent as its
//! PID 1, driven from the host over hybrid vsock as Kata's shim drives its agent. One boot for
//! the whole file (one test): the lifecycle; exec with stdin and stdout and with a terminal;
//! the cgroup v2 limits, kill-all and removal, each read back from the guest's own cgroupfs by
//! a watcher container that sees the guest's whole cgroup tree and its processes; the zygote
//! killed in the guest; the host's connection dropped and made again. A guest that cannot
//! boot fails the test, with the console's tail.

use oci_spec::runtime::{
    LinuxCpuBuilder, LinuxMemoryBuilder, LinuxNamespaceType, LinuxPidsBuilder,
    LinuxResourcesBuilder, MountBuilder, Spec,
};
use std::time::{Duration, Instant};
use tests::agent::TestAgent;
use tests::guest::Guest;

/// Without a cgroup or pid namespace, with the cgroup2 tree mounted read-only at
/// /sys/fs/cgroup: the container sees the guest's root cgroup and every container's, and every
/// process of the guest (it holds CAP_KILL, as runc's default spec gives).
fn watcher(guest: &Guest) -> Spec {
    let mut spec = guest.spec(&["sleep", "1000"]);
    let mut linux = spec.linux().clone().unwrap();
    let nss = linux.namespaces().clone().unwrap();
    let nss = nss
        .into_iter()
        .filter(|n| ![LinuxNamespaceType::Cgroup, LinuxNamespaceType::Pid].contains(&n.typ()));
    linux.set_namespaces(Some(nss.collect()));
    spec.set_linux(Some(linux));
    let mut mounts = spec.mounts().clone().unwrap();
    mounts.push(
        MountBuilder::default()
            .destination("/sys/fs/cgroup")
            .typ("cgroup")
            .source("cgroup")
            .options(
                ["nosuid", "noexec", "nodev", "ro"]
                    .map(String::from)
                    .to_vec(),
            )
            .build()
            .unwrap(),
    );
    spec.set_mounts(Some(mounts));
    spec
}

/// `sh -c script` run in the watcher (the bundle's process, other args); its stdout.
async fn look(guest: &Guest, a: &TestAgent, watcher: &str, script: &str) -> String {
    let exec_id = tests::unique_id("look");
    let process = guest.spec(&["sh", "-c", script]).process().clone().unwrap();
    a.exec(watcher, &exec_id, &process)
        .await
        .expect("exec in the watcher");
    let out = a.read_all_exec(watcher, &exec_id, false).await.unwrap();
    let status = a.wait_exec(watcher, &exec_id).await.unwrap();
    let out = String::from_utf8_lossy(&out).into_owned();
    assert_eq!(status, 0, "{script}: {out}");
    out
}

/// Polls `script` in the watcher until its output is `want` (5 s).
async fn look_until(guest: &Guest, a: &TestAgent, watcher: &str, script: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = look(guest, a, watcher, script).await;
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{script}: {got:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn limited(guest: &Guest) -> Spec {
    let mut spec = guest.spec(&["sh", "-c", "sleep 100 & sleep 100 & wait"]);
    let resources = LinuxResourcesBuilder::default()
        .memory(
            LinuxMemoryBuilder::default()
                .limit(64i64 << 20)
                .build()
                .unwrap(),
        )
        .pids(LinuxPidsBuilder::default().limit(16i64).build().unwrap())
        .cpu(
            LinuxCpuBuilder::default()
                .quota(50_000i64)
                .period(100_000u64)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let mut linux = spec.linux().clone().unwrap();
    linux.set_resources(Some(resources));
    // No pid namespace: only the cgroup can kill the two sleeps once sh is gone.
    let nss = linux.namespaces().clone().unwrap();
    let nss = nss
        .into_iter()
        .filter(|n| n.typ() != LinuxNamespaceType::Pid);
    linux.set_namespaces(Some(nss.collect()));
    spec.set_linux(Some(linux));
    spec
}

/// An exec's stdin reaches it and its stdout comes back; an exec with a terminal has a pts.
async fn exec_stdio_and_terminal(guest: &Guest, a: &TestAgent, w: &str) {
    let cat = guest.spec(&["cat"]).process().clone().unwrap();
    a.exec(w, "cat", &cat).await.expect("exec cat");
    a.write_stdin(w, "cat", b"through vsock\n").await.unwrap();
    a.close_stdin(w, "cat").await.unwrap();
    let out = a.read_all_exec(w, "cat", false).await.unwrap();
    assert_eq!(String::from_utf8_lossy(&out), "through vsock\n");
    assert_eq!(a.wait_exec(w, "cat").await.unwrap(), 0);
    let mut tty = guest.spec(&["tty"]).process().clone().unwrap();
    tty.set_terminal(Some(true));
    a.exec(w, "tty", &tty).await.expect("exec with a terminal");
    let out = a.read_all_exec(w, "tty", false).await.unwrap();
    let out = String::from_utf8_lossy(&out);
    assert!(out.starts_with("/dev/pts/"), "{out:?}");
    assert_eq!(a.wait_exec(w, "tty").await.unwrap(), 0);
}

/// The guest's zygote, killed from the watcher: the agent starts another, and creates work.
async fn zygote_killed(guest: &Guest, a: &TestAgent, w: &str) {
    let find = "for p in /proc/[0-9]*; do \
        [ \"$(cat $p/comm 2>/dev/null)\" = zagent-zygote ] && echo ${p#/proc/}; done; true";
    let before = look(guest, a, w, find).await;
    let pid = before.trim();
    assert!(
        pid.parse::<u32>().is_ok(),
        "one zygote in the guest: {before:?}"
    );
    look(guest, a, w, &format!("kill -9 {pid}")).await;
    let (status, out, _) = a.run("after-zygote", &guest.spec(&["echo", "again"])).await;
    assert_eq!((status, out.as_str()), (0, "again\n"));
    let after = look(guest, a, w, find).await;
    assert!(
        !after.trim().is_empty() && after.trim() != pid,
        "a new zygote: {after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_runs_containers_over_hvsock_with_real_cgroup_v2() {
    let started = Instant::now();
    let guest = Guest::boot();
    eprintln!("guest up in {:?} at {}", started.elapsed(), guest.addr);
    let a = guest.agent().await;

    let (status, out, err) = a.run("hello", &guest.spec(&["echo", "hello"])).await;
    assert_eq!((status, out.as_str(), err.as_str()), (0, "hello\n", ""));

    let w = "watcher";
    a.create(w, &watcher(&guest))
        .await
        .expect("create the watcher");
    a.start_container(w).await.expect("start the watcher");
    let controllers = look(&guest, &a, w, "cat /sys/fs/cgroup/cgroup.controllers").await;
    for c in ["cpu", "memory", "pids"] {
        assert!(
            controllers.split_whitespace().any(|x| x == c),
            "{controllers}"
        );
    }

    exec_stdio_and_terminal(&guest, &a, w).await;
    zygote_killed(&guest, &a, w).await;

    let id = "limited";
    a.create(id, &limited(&guest)).await.expect("create");
    a.start_container(id).await.expect("start");
    let cg = format!("/sys/fs/cgroup/zagent/{id}");
    let limits = look(
        &guest,
        &a,
        w,
        &format!("cd {cg} && cat memory.max pids.max cpu.max"),
    )
    .await;
    assert_eq!(limits, format!("{}\n16\n50000 100000\n", 64 << 20));
    // sh and its two sleeps, all in the container's cgroup.
    look_until(&guest, &a, w, &format!("wc -l < {cg}/cgroup.procs"), "3\n").await;

    a.signal(id, libc::SIGKILL as u32).await.unwrap();
    assert_eq!(a.wait(id).await.unwrap(), 137);
    look_until(&guest, &a, w, &format!("cat {cg}/cgroup.procs"), "").await;
    a.remove(id).await.expect("remove");
    look_until(
        &guest,
        &a,
        w,
        &format!("test -e {cg} && echo left || echo gone"),
        "gone\n",
    )
    .await;

    // The host's side goes away and comes back, as a restarted shim: the agent kept serving
    // and kept its containers.
    drop(a);
    let a = guest.agent().await;
    let state = a.info(w).await.expect("the watcher after reconnecting").0;
    assert_eq!(state, "running");
    a.signal(w, libc::SIGKILL as u32).await.unwrap();
    assert_eq!(a.wait(w).await.unwrap(), 137);
    a.remove(w).await.expect("remove the watcher");
    assert!(a.info(w).await.is_none());
    let console = guest.console();
    assert!(!console.contains("panic"), "guest console:\n{console}");
    eprintln!("guest test done in {:?}", started.elapsed());
}
