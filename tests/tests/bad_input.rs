//! Tier 2 (root): bad input gets the right ttrpc code, the agent keeps serving, and nothing
//! (process, state dir, cgroup) is left behind.

use std::path::Path;
use tests::agent::{code, message, Launcher, TestAgent};
use tests::{bundle, unique_id};
use ttrpc::Code;

/// The agent still answers, and nothing of `id` is left.
async fn assert_clean(a: &TestAgent, id: &str) {
    a.health
        .check(ttrpc::context::with_timeout(0), &Default::default())
        .await
        .expect("agent still serves");
    assert!(a.info(id).await.is_none(), "{id} still registered");
    assert!(
        !a.state_dir.join(id).exists(),
        "state dir of {id} left behind"
    );
    for h in ["memory", "pids", "cpu"] {
        let dir = format!("/sys/fs/cgroup/{h}/zagent/{id}");
        assert!(!Path::new(&dir).exists(), "{dir} left behind");
    }
    assert!(tests::procs::zombies_of(a.pid()).is_empty(), "zombies");
    assert!(
        tests::procs::mounts_under(bundle::rootfs()).is_empty(),
        "mounts left on the rootfs"
    );
    let children = tests::procs::children(a.pid());
    assert!(
        children.iter().all(|c| c.2 == "zagent-zygote"),
        "processes left: {children:?}"
    );
    assert!(
        children.len() <= 1,
        "more than the zygote left: {children:?}"
    );
}

tests::both_launchers!(invalid_ids_are_invalid_argument);
async fn invalid_ids_are_invalid_argument(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    let spec = bundle::spec(&["true"]);
    // Unique per test process where the id can carry it, so that a cgroup found below is
    // ours: the cgroup parent `zagent` is shared by every agent on the machine.
    let tag = unique_id("bad");
    let long = format!("{tag}{}", "x".repeat(256 - tag.len()));
    let ids = [
        String::new(),
        ".".into(),
        "..".into(),
        format!("{tag}/b"),
        format!("{tag}\0b"),
        format!("../{tag}"),
        long,
    ];
    for id in &ids {
        let r = a.create(id, &spec).await;
        assert_eq!(
            code(&r),
            Code::INVALID_ARGUMENT,
            "id {id:?}: {}",
            message(&r)
        );
    }
    // Nothing of any of them was made: the agent holds no container, its state dir is as
    // empty as at start, and no cgroup carries a name one of the ids would have made.
    let list = a
        .admin
        .list_containers(ttrpc::context::with_timeout(0), &Default::default())
        .await
        .unwrap();
    assert!(list.containers.is_empty(), "{:?}", list.containers);
    let entries: Vec<_> = std::fs::read_dir(&a.state_dir).unwrap().flatten().collect();
    assert!(entries.is_empty(), "state dir entries: {entries:?}");
    for id in &ids {
        // "a\0b" as a path would stop at the NUL; the others are paths as they are.
        let as_path = id.split('\0').next().unwrap_or_default();
        if as_path.is_empty() || as_path == "." || as_path == ".." {
            continue;
        }
        let made = tests::leftovers::cgroups_left(as_path);
        assert!(made.is_empty(), "cgroups for {id:?}: {made:?}");
        let first = as_path
            .split('/')
            .find(|c| !c.is_empty() && *c != "..")
            .unwrap();
        let made = tests::leftovers::cgroups_left(first);
        assert!(made.is_empty(), "cgroups for {id:?}: {made:?}");
    }
    assert_clean(&a, &tag).await;
}

tests::both_launchers!(second_create_is_already_exists_and_the_first_is_untouched);
async fn second_create_is_already_exists_and_the_first_is_untouched(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    let id = unique_id("dup");
    a.create(&id, &bundle::spec(&["sleep", "100"]))
        .await
        .unwrap();
    let r = a.create(&id, &bundle::spec(&["true"])).await;
    assert_eq!(code(&r), Code::ALREADY_EXISTS, "{}", message(&r));
    assert_eq!(a.info(&id).await.unwrap().0, "created");
    a.start_container(&id).await.unwrap();
    let r = a.create(&id, &bundle::spec(&["true"])).await;
    assert_eq!(code(&r), Code::ALREADY_EXISTS);
    assert_eq!(a.info(&id).await.unwrap().0, "running");
    a.remove(&id).await.unwrap();
    assert_clean(&a, &id).await;
}

tests::both_launchers!(unknown_ids_are_not_found);
async fn unknown_ids_are_not_found(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    assert_eq!(code(&a.start_container("nope").await), Code::NOT_FOUND);
    assert_eq!(code(&a.signal("nope", 9).await), Code::NOT_FOUND);
    assert_eq!(code(&a.wait("nope").await), Code::NOT_FOUND);
    assert_eq!(code(&a.remove("nope").await), Code::NOT_FOUND);
}

tests::both_launchers!(start_twice_or_after_stop_is_failed_precondition);
async fn start_twice_or_after_stop_is_failed_precondition(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    let id = unique_id("twice");
    a.create(&id, &bundle::spec(&["sleep", "100"]))
        .await
        .unwrap();
    a.start_container(&id).await.unwrap();
    assert_eq!(
        code(&a.start_container(&id).await),
        Code::FAILED_PRECONDITION
    );
    assert_eq!(a.info(&id).await.unwrap().0, "running");
    if let Err(e) = a.signal(&id, 9).await {
        panic!("signal: {e:?}; info {:?}", a.info(&id).await);
    }
    assert_eq!(a.wait(&id).await.unwrap(), 137);
    assert_eq!(
        code(&a.start_container(&id).await),
        Code::FAILED_PRECONDITION
    );
    assert_eq!(a.info(&id).await.unwrap().0, "stopped");
    // An invalid signal number, and a signal to a finished process.
    assert_eq!(code(&a.signal(&id, 200).await), Code::INVALID_ARGUMENT);
    assert_eq!(code(&a.signal(&id, 15).await), Code::NOT_FOUND);
    a.remove(&id).await.unwrap();
    assert_clean(&a, &id).await;
}

// Each case edits the protobuf spec the way a careless host could send it.
tests::both_launchers!(invalid_specs_are_invalid_argument_and_launch_nothing);
async fn invalid_specs_are_invalid_argument_and_launch_nothing(l: Launcher) {
    use wire::agent::CreateContainerRequest;
    let a = TestAgent::start_with(l).await;
    let base = wire::oci::spec_to_grpc(&bundle::spec(&["true"]));
    assert_eq!(
        code(&a.create("warm-up", &bundle::spec(&[])).await),
        Code::INVALID_ARGUMENT
    );
    let fds = tests::procs::fd_count(a.pid());
    type Edit = fn(&mut wire::oci::Spec);
    let cases: Vec<(&str, Option<Edit>)> = vec![
        ("no spec", None),
        ("no process", Some(|s| s.Process = Default::default())),
        (
            "empty args",
            Some(|s| s.Process.mut_or_insert_default().Args.clear()),
        ),
        (
            "relative rootfs",
            Some(|s| s.Root.mut_or_insert_default().Path = "rootfs".into()),
        ),
        (
            "missing rootfs",
            Some(|s| s.Root.mut_or_insert_default().Path = "/nonexistent/rootfs".into()),
        ),
        ("no root", Some(|s| s.Root = Default::default())),
        (
            "relative cwd",
            Some(|s| s.Process.mut_or_insert_default().Cwd = "tmp".into()),
        ),
        (
            "cwd under /proc/self/fd",
            Some(|s| s.Process.mut_or_insert_default().Cwd = "/proc/self/fd/3".into()),
        ),
        (
            "unknown capability",
            Some(|s| {
                s.Process
                    .mut_or_insert_default()
                    .Capabilities
                    .mut_or_insert_default()
                    .Bounding
                    .push("CAP_BOGUS".into())
            }),
        ),
        (
            "rlimit soft above hard",
            Some(|s| {
                let r = &mut s.Process.mut_or_insert_default().Rlimits[0];
                r.Soft = r.Hard + 1;
            }),
        ),
    ];
    for (what, edit) in cases {
        let id = unique_id("bad");
        let mut req = CreateContainerRequest::new();
        req.container_id = id.clone();
        req.exec_id = id.clone();
        if let Some(edit) = edit {
            let mut spec = base.clone();
            edit(&mut spec);
            req.OCI = protobuf::MessageField::some(spec);
        }
        let r = a.create_raw(req).await;
        assert_eq!(code(&r), Code::INVALID_ARGUMENT, "{what}: {}", message(&r));
        assert_clean(&a, &id).await;
    }
    assert!(tests::procs::children(a.pid())
        .iter()
        .all(|c| c.2 != "sh" && c.2 != "true"));
    assert_eq!(tests::procs::fd_count(a.pid()), fds, "agent fds leaked");
}

tests::both_launchers!(a_missing_bind_source_fails_create_with_step_and_errno);
async fn a_missing_bind_source_fails_create_with_step_and_errno(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    let id = unique_id("bind");
    let mut spec = bundle::spec(&["true"]);
    let mut mounts = spec.mounts().clone().unwrap();
    mounts.push(
        oci_spec::runtime::MountBuilder::default()
            .destination("/mnt")
            .typ("bind")
            .source("/nonexistent/source")
            .options(vec!["rbind".to_string(), "ro".to_string()])
            .build()
            .unwrap(),
    );
    spec.set_mounts(Some(mounts));
    let r = a.create(&id, &spec).await;
    assert_eq!(code(&r), Code::FAILED_PRECONDITION, "{}", message(&r));
    let m = message(&r);
    assert!(m.contains("mount") && m.contains("ENOENT"), "{m}");
    assert_clean(&a, &id).await;
}

tests::both_launchers!(proc_as_a_symlink_in_the_rootfs_fails_create);
async fn proc_as_a_symlink_in_the_rootfs_fails_create(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    let root = tempfile::Builder::new()
        .prefix("zagent-evil")
        .tempdir()
        .unwrap();
    for d in ["bin", "dev", "sys", "tmp"] {
        std::fs::create_dir(root.path().join(d)).unwrap();
    }
    std::fs::copy(
        bundle::rootfs().join("bin/busybox"),
        root.path().join("bin/busybox"),
    )
    .unwrap();
    std::os::unix::fs::symlink("/tmp", root.path().join("proc")).unwrap();
    let mut spec = bundle::spec(&["true"]);
    let mut r = spec.root().clone().unwrap();
    r.set_path(root.path().to_owned());
    spec.set_root(Some(r));
    let id = unique_id("symlink");
    let res = a.create(&id, &spec).await;
    assert_eq!(code(&res), Code::FAILED_PRECONDITION, "{}", message(&res));
    let m = message(&res);
    assert!(m.contains("/proc") && m.contains("step"), "{m}");
    assert_clean(&a, &id).await;
    assert!(tests::procs::mounts_under(root.path()).is_empty());
}

tests::both_launchers!(a_missing_executable_fails_start_and_the_container_ends_stopped);
async fn a_missing_executable_fails_start_and_the_container_ends_stopped(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    let id = unique_id("noexec");
    a.create(&id, &bundle::spec(&["/bin/does-not-exist"]))
        .await
        .unwrap();
    let r = a.start_container(&id).await;
    assert_eq!(code(&r), Code::FAILED_PRECONDITION, "{}", message(&r));
    assert!(message(&r).contains("ENOENT"), "{}", message(&r));
    let (state, _, exit) = a.info(&id).await.unwrap();
    assert_eq!(state, "stopped");
    assert_eq!(exit, Some(127));
    assert_eq!(a.wait(&id).await.unwrap(), 127);
    a.remove(&id).await.unwrap();
    assert_clean(&a, &id).await;
}

tests::both_launchers!(a_container_killed_while_parked_fails_start_promptly);
async fn a_container_killed_while_parked_fails_start_promptly(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    let id = unique_id("parkkill");
    a.create(&id, &bundle::spec(&["true"])).await.unwrap();
    a.signal(&id, libc::SIGKILL as u32).await.unwrap();
    assert_eq!(a.wait(&id).await.unwrap(), 137);
    let t = std::time::Instant::now();
    let r = a.start_container(&id).await;
    assert_eq!(code(&r), Code::FAILED_PRECONDITION, "{}", message(&r));
    assert!(t.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(a.info(&id).await.unwrap().0, "stopped");
    a.remove(&id).await.unwrap();
    assert_clean(&a, &id).await;
}
