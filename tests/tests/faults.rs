//! Tier 2 (root): faults in the middle of a launch. Each one must fail cleanly and promptly,
//! leave no zombie, fd, mount, cgroup or state dir behind, and let the next create work.

use std::path::Path;
use std::time::{Duration, Instant};
use tests::agent::{code, message, Launcher, TestAgent};
use tests::{bundle, procs, unique_id};
use ttrpc::Code;

fn cgroup_gone(id: &str) -> bool {
    ["memory", "pids", "cpu", "freezer"]
        .iter()
        .all(|h| !Path::new(&format!("/sys/fs/cgroup/{h}/zagent/{id}")).exists())
}

/// Nothing of `id` is left: registry, state dir, cgroup; no zombie children of the agent.
async fn assert_nothing_left(a: &TestAgent, id: &str) {
    assert!(a.info(id).await.is_none(), "{id} still registered");
    assert!(!a.state_dir.join(id).exists(), "state dir of {id} left");
    assert!(cgroup_gone(id), "cgroup of {id} left");
    assert!(
        procs::zombies_of(a.pid()).is_empty(),
        "zombies: {:?}",
        procs::zombies_of(a.pid())
    );
    assert!(procs::mounts_under(bundle::rootfs()).is_empty());
}

/// Polls `cond` every 10 ms until it holds (true) or `limit` passes (false).
async fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Retries a create while the previous attempt with the same id is still being taken down.
async fn create_eventually(a: &TestAgent, id: &str, spec: &oci_spec::runtime::Spec) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match a.create(id, spec).await {
            Ok(()) => return,
            Err(e)
                if Instant::now() < deadline
                    && code::<()>(&Err(e.clone())) == Code::ALREADY_EXISTS =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("retry of {id} failed: {e:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zygote_killed_between_clone_and_reply() {
    let a = TestAgent::start_opts(Launcher::Zygote, &["--test-zygote-pause-ms", "1000"]).await;
    let fds = procs::fd_count(a.pid());
    let zygote = procs::zygote_of(a.pid()).expect("zygote");
    let id = unique_id("zkill");
    let spec = bundle::spec(&["true"]);
    let create = a.create(&id, &spec);
    let killer = async {
        // The zygote has cloned (the child, born with CLONE_PARENT, is the agent's) and now
        // pauses before its reply: that is the moment to kill it.
        let cloned = wait_until(Duration::from_secs(20), || {
            procs::children(a.pid()).iter().any(|c| c.0 != zygote)
        })
        .await;
        assert!(cloned, "the zygote never cloned the container child");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(zygote),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        Instant::now()
    };
    let (r, killed_at) = tokio::join!(create, killer);
    assert!(
        killed_at.elapsed() < Duration::from_secs(6),
        "create did not fail promptly"
    );
    assert_eq!(code(&r), Code::UNAVAILABLE, "{}", message(&r));
    assert_nothing_left(&a, &id).await;
    // Only the new zygote is left among the agent's children: the orphaned child was reaped.
    let children = procs::children(a.pid());
    assert_eq!(children.len(), 1, "{children:?}");
    assert_ne!(children[0].0, zygote);
    a.create(&id, &spec).await.expect("the next create works");
    a.start_container(&id).await.unwrap();
    assert_eq!(a.wait(&id).await.unwrap(), 0);
    a.remove(&id).await.unwrap();
    assert_nothing_left(&a, &id).await;
    assert_eq!(procs::fd_count(a.pid()), fds, "agent fds leaked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_deadline_during_create_takes_everything_back() {
    let a = TestAgent::start_opts(Launcher::Zygote, &["--test-zygote-pause-ms", "600"]).await;
    let fds = procs::fd_count(a.pid());
    let id = unique_id("deadline");
    let spec = bundle::spec(&["true"]);
    let mut req = wire::agent::CreateContainerRequest::new();
    req.container_id = id.clone();
    req.exec_id = id.clone();
    req.OCI = protobuf::MessageField::some(wire::oci::spec_to_grpc(&spec));
    let ctx = ttrpc::context::with_timeout(Duration::from_millis(200).as_nanos() as i64);
    let r = a.client.create_container(ctx, &req).await;
    // The client's own timer may fire before the agent's DEADLINE_EXCEEDED arrives.
    let timed_out = code(&r) == Code::DEADLINE_EXCEEDED || message(&r).contains("deadline");
    assert!(timed_out, "{}", message(&r));
    // The launch finishes in the background and is then taken back; the id frees up after.
    create_eventually(&a, &id, &spec).await;
    a.start_container(&id).await.unwrap();
    assert_eq!(a.wait(&id).await.unwrap(), 0);
    a.remove(&id).await.unwrap();
    assert_nothing_left(&a, &id).await;
    let children = procs::children(a.pid());
    assert_eq!(children.len(), 1, "only the zygote: {children:?}");
    assert_eq!(procs::fd_count(a.pid()), fds, "agent fds leaked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_disconnect_during_create_takes_everything_back() {
    let a = TestAgent::start_opts(Launcher::Zygote, &["--test-zygote-pause-ms", "600"]).await;
    let id = unique_id("disconnect");
    let spec = bundle::spec(&["true"]);
    let fds = procs::fd_count(a.pid());
    {
        let c = ttrpc::r#async::Client::connect(&a.addr).await.unwrap();
        let client = wire::agent_ttrpc::AgentServiceClient::new(c);
        let mut req = wire::agent::CreateContainerRequest::new();
        req.container_id = id.clone();
        req.exec_id = id.clone();
        req.OCI = protobuf::MessageField::some(wire::oci::spec_to_grpc(&spec));
        let call = client.create_container(ttrpc::context::with_timeout(0), &req);
        // Give up on the call (and drop the connection) once the create is under way: its
        // state dir exists and the zygote has cloned the child (and pauses before replying).
        let zygote = procs::zygote_of(a.pid()).expect("zygote");
        let under_way = || {
            a.state_dir.join(&id).exists() && procs::children(a.pid()).iter().any(|c| c.0 != zygote)
        };
        tokio::select! {
            r = call => panic!("the create ended before the client left: {r:?}"),
            seen = wait_until(Duration::from_secs(20), under_way) => {
                assert!(seen, "the create never got under way");
            }
        }
    }
    // The launch finishes in the background (the zygote pauses 600 ms), then is taken back.
    let gone = || !a.state_dir.join(&id).exists() && cgroup_gone(&id);
    assert!(
        wait_until(Duration::from_secs(15), gone).await,
        "the abandoned create was not taken back"
    );
    assert_nothing_left(&a, &id).await;
    assert_eq!(procs::fd_count(a.pid()), fds, "agent fds leaked");
    create_eventually(&a, &id, &spec).await;
    a.remove(&id).await.unwrap();
    assert_nothing_left(&a, &id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_killed_takes_the_zygote_and_parked_children_with_it() {
    let mut a = TestAgent::start_with(Launcher::Zygote).await;
    let zygote = procs::zygote_of(a.pid()).expect("zygote");
    let id = unique_id("orphan");
    a.create(&id, &bundle::spec(&["true"])).await.unwrap();
    let (_, parked, _) = a.info(&id).await.unwrap();
    a.kill9();
    let alive = |pid: i32| {
        Path::new(&format!("/proc/{pid}")).exists()
            && procs::status_field(pid, "State").is_some_and(|s| !s.starts_with('Z'))
    };
    wait_until(Duration::from_secs(5), || !alive(zygote) && !alive(parked)).await;
    let (z, p) = (alive(zygote), alive(parked));
    // The agent's cgroup for the container is ours to clean now that the agent is gone.
    for h in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let _ = std::fs::remove_dir(h.path().join("zagent").join(&id));
    }
    assert!(!z, "the zygote outlived the agent");
    assert!(!p, "a parked child outlived the agent");
    assert!(cgroup_gone(&id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fds_dropped_by_the_zygote_fd_limit_are_detected_and_closed() {
    let a = TestAgent::start_with(Launcher::Zygote).await;
    let zygote = procs::zygote_of(a.pid()).expect("zygote");
    let before = procs::fd_count(zygote);
    let pid = nix::unistd::Pid::from_raw(zygote);
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: prlimit reading another process's limit into a valid struct.
    let got = unsafe {
        libc::prlimit(
            pid.as_raw(),
            libc::RLIMIT_NOFILE,
            std::ptr::null(),
            &mut old,
        )
    };
    assert_eq!(got, 0);
    let limit = |n: u64| {
        let lim = libc::rlimit {
            rlim_cur: n,
            rlim_max: old.rlim_max,
        };
        // SAFETY: prlimit on another process with a valid new limit and no old-limit pointer.
        let r = unsafe {
            libc::prlimit(
                pid.as_raw(),
                libc::RLIMIT_NOFILE,
                &lim,
                std::ptr::null_mut(),
            )
        };
        assert_eq!(r, 0, "prlimit: {}", std::io::Error::last_os_error());
    };
    // Room for the channel and a few fds, not for all five a launch brings.
    limit(before as u64 + 2);
    let id = unique_id("ctrunc");
    let r = a.create(&id, &bundle::spec(&["true"])).await;
    limit(old.rlim_cur);
    assert_eq!(code(&r), Code::INTERNAL, "{}", message(&r));
    assert!(message(&r).contains("MSG_CTRUNC"), "{}", message(&r));
    assert_eq!(
        procs::fd_count(zygote),
        before,
        "the zygote kept fds it received"
    );
    assert_nothing_left(&a, &id).await;
    assert_eq!(
        procs::zygote_of(a.pid()),
        Some(zygote),
        "the zygote survived"
    );
    a.create(&id, &bundle::spec(&["true"]))
        .await
        .expect("create after the limit is restored");
    a.remove(&id).await.unwrap();
}
