//! Attack suite (root, both launchers): what a hostile container or a buggy shim tried against
//! the joining paths and the spec's inputs. Each test runs the attack itself:
//!  - a CAP_SYS_PTRACE container racing `/proc/N/root` of every process it can see while
//!    processes join it (100 execs) or join its pid namespace (20 creates): it must never reach
//!    the host's root (a marker file outside every rootfs);
//!  - uid, gid and additional gid 4294967295 (`(uid_t)-1`, "unchanged", i.e. root);
//!  - a FIFO, a regular file, a device node and a namespace of the wrong kind as namespace paths;
//!  - `rootfsPropagation: rshared`, which a propagation change after pivot_root undid.

use oci_spec::runtime::{LinuxNamespaceBuilder, LinuxNamespaceType, Spec};
use std::path::Path;
use std::time::{Duration, Instant};
use tests::agent::{code, message, Launcher, TestAgent};
use tests::{bundle, procs, unique_id};
use ttrpc::Code;

/// A host directory outside every rootfs, holding `secret`: reading it from inside a
/// container is an escape.
struct Marker(tempfile::TempDir);

impl Marker {
    fn new() -> Marker {
        let dir = tempfile::Builder::new()
            .prefix("zagent-escape")
            .tempdir()
            .unwrap();
        std::fs::write(dir.path().join("secret"), "HOSTSECRET\n").unwrap();
        Marker(dir)
    }

    fn path(&self) -> &Path {
        self.0.path()
    }

    fn written_from_inside(&self) -> bool {
        self.path().join("pwned").exists()
    }
}

/// A container whose every capability set has CAP_SYS_PTRACE, running shell builtins only (no
/// fork per probe, so it is fast) that read and write the marker through `/proc/N/root` of
/// every process it sees, forever.
fn racer_spec(marker: &Path) -> Spec {
    let m = marker.display();
    let script = format!(
        "while :; do for p in /proc/[0-9]*; do \
         {{ read -r x < $p/root{m}/secret && echo \"ESCAPE $p $x\"; }} 2>/dev/null; \
         {{ echo pwned > $p/root{m}/pwned; }} 2>/dev/null; done; done"
    );
    let mut spec = bundle::spec(&["sh", "-c", &script]);
    let mut process = spec.process().clone().unwrap();
    let mut caps = process.capabilities().clone().unwrap();
    let add = |set: Option<oci_spec::runtime::Capabilities>| {
        let mut set = set.unwrap_or_default();
        set.insert(oci_spec::runtime::Capability::SysPtrace);
        Some(set)
    };
    caps.set_bounding(add(caps.bounding().clone()));
    caps.set_effective(add(caps.effective().clone()));
    caps.set_permitted(add(caps.permitted().clone()));
    process.set_capabilities(Some(caps));
    spec.set_process(Some(process));
    spec
}

/// Starts the racer and returns its id and init pid (on the host).
async fn start_racer(a: &TestAgent, marker: &Marker) -> (String, i32) {
    let id = unique_id("racer");
    a.create(&id, &racer_spec(marker.path())).await.unwrap();
    a.start_container(&id).await.unwrap();
    let (_, pid, _) = a.info(&id).await.unwrap();
    (id, pid)
}

/// Stops the racer and returns what it printed (it only prints on an escape).
async fn racer_output(a: &TestAgent, id: &str) -> String {
    a.signal(id, 9).await.unwrap();
    a.wait(id).await.unwrap();
    let out = a.read_all(id, false).await.unwrap();
    a.remove(id).await.unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

fn process(args: &[&str]) -> oci_spec::runtime::Process {
    bundle::spec(args).process().clone().unwrap()
}

tests::both_launchers!(exec_is_never_visible_with_the_host_root);
async fn exec_is_never_visible_with_the_host_root(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    let marker = Marker::new();
    let (racer, _) = start_racer(&a, &marker).await;
    for i in 0..100 {
        let exec_id = format!("e{i}");
        a.exec(&racer, &exec_id, &process(&["true"])).await.unwrap();
        assert_eq!(a.wait_exec(&racer, &exec_id).await.unwrap(), 0);
    }
    let out = racer_output(&a, &racer).await;
    assert!(!out.contains("ESCAPE"), "the racer reached the host: {out}");
    assert!(!marker.written_from_inside(), "the racer wrote a host file");
    assert!(procs::zombies_of(a.pid()).is_empty());
}

/// A spec whose pid namespace is that of `pid`'s.
fn sharing_pid_ns(args: &[&str], pid: i32) -> Spec {
    let mut spec = bundle::spec(args);
    let mut linux = spec.linux().clone().unwrap();
    let mut nss = linux.namespaces().clone().unwrap();
    for ns in nss
        .iter_mut()
        .filter(|n| n.typ() == LinuxNamespaceType::Pid)
    {
        *ns = LinuxNamespaceBuilder::default()
            .typ(LinuxNamespaceType::Pid)
            .path(format!("/proc/{pid}/ns/pid"))
            .build()
            .unwrap();
    }
    linux.set_namespaces(Some(nss));
    spec.set_linux(Some(linux));
    spec
}

tests::both_launchers!(create_into_a_shared_pid_namespace_is_never_visible_with_the_host_root);
async fn create_into_a_shared_pid_namespace_is_never_visible_with_the_host_root(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    let marker = Marker::new();
    let (racer, racer_pid) = start_racer(&a, &marker).await;
    for _ in 0..20 {
        let id = unique_id("shared");
        a.create(&id, &sharing_pid_ns(&["true"], racer_pid))
            .await
            .unwrap();
        a.remove(&id).await.unwrap();
    }
    let out = racer_output(&a, &racer).await;
    assert!(!out.contains("ESCAPE"), "the racer reached the host: {out}");
    assert!(!marker.written_from_inside(), "the racer wrote a host file");
    assert!(procs::zombies_of(a.pid()).is_empty());
}

tests::both_launchers!(a_container_sharing_a_pid_namespace_sees_its_processes_only);
async fn a_container_sharing_a_pid_namespace_sees_its_processes_only(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    let first = unique_id("pidowner");
    a.create(&first, &bundle::spec(&["sleep", "1000"]))
        .await
        .unwrap();
    a.start_container(&first).await.unwrap();
    let (_, pid, _) = a.info(&first).await.unwrap();
    let script = "cat /proc/1/cmdline | tr '\\0' ' '; echo; echo $$; ls -d /proc/[0-9]* | wc -l";
    let spec = sharing_pid_ns(&["sh", "-c", script], pid);
    let (status, out, err) = a.run(&unique_id("pidjoiner"), &spec).await;
    assert_eq!(status, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0].trim(),
        "sleep 1000",
        "its pid 1 is the first container's init"
    );
    assert_ne!(lines[1], "1");
    let visible: usize = lines[2].trim().parse().unwrap();
    assert!(
        visible <= 4,
        "its /proc shows the shared namespace, not the host's: {visible} processes"
    );
    a.remove(&first).await.unwrap();
    assert!(procs::zombies_of(a.pid()).is_empty());
}

tests::both_launchers!(id_minus_one_never_means_root);
async fn id_minus_one_never_means_root(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    let minus_one = 4294967295u32;
    let users = [
        oci_spec::runtime::UserBuilder::default()
            .uid(minus_one)
            .gid(1000u32)
            .build()
            .unwrap(),
        oci_spec::runtime::UserBuilder::default()
            .uid(1000u32)
            .gid(minus_one)
            .build()
            .unwrap(),
        oci_spec::runtime::UserBuilder::default()
            .uid(1000u32)
            .gid(1000u32)
            .additional_gids(vec![5u32, minus_one])
            .build()
            .unwrap(),
    ];
    let running = unique_id("idrun");
    a.create(&running, &bundle::spec(&["sleep", "100"]))
        .await
        .unwrap();
    a.start_container(&running).await.unwrap();
    for (i, user) in users.into_iter().enumerate() {
        let mut spec = bundle::spec(&["id"]);
        let mut p = spec.process().clone().unwrap();
        p.set_user(user);
        spec.set_process(Some(p.clone()));
        let id = unique_id("idm1");
        let r = a.create(&id, &spec).await;
        assert_eq!(code(&r), Code::INVALID_ARGUMENT, "create: {}", message(&r));
        assert!(message(&r).contains("4294967295"), "{}", message(&r));
        assert!(a.info(&id).await.is_none());
        let r = a.exec(&running, &format!("x{i}"), &p).await;
        assert_eq!(code(&r), Code::INVALID_ARGUMENT, "exec: {}", message(&r));
    }
    a.remove(&running).await.unwrap();
}

/// A spec that joins the network namespace at `path`.
fn with_net_ns(path: &Path) -> Spec {
    let mut spec = bundle::spec(&["true"]);
    let mut linux = spec.linux().clone().unwrap();
    let mut nss = linux.namespaces().clone().unwrap();
    for ns in nss
        .iter_mut()
        .filter(|n| n.typ() == LinuxNamespaceType::Network)
    {
        *ns = LinuxNamespaceBuilder::default()
            .typ(LinuxNamespaceType::Network)
            .path(path.to_path_buf())
            .build()
            .unwrap();
    }
    linux.set_namespaces(Some(nss));
    spec.set_linux(Some(linux));
    spec
}

tests::both_launchers!(namespace_paths_that_are_not_namespaces_are_refused_promptly);
async fn namespace_paths_that_are_not_namespaces_are_refused_promptly(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, "not a namespace").unwrap();
    let ipc = format!("/proc/{}/ns/ipc", a.pid());
    let paths = [
        fifo.clone(),
        fifo,
        file.clone(),
        "/dev/null".into(),
        ipc.into(),
    ];
    let t0 = Instant::now();
    // All at once, as many as the agent has workers and more: none may hold a worker.
    let creates = paths.iter().map(|p| {
        let id = unique_id("nsbad");
        let spec = with_net_ns(p);
        let a = &a;
        async move { (id.clone(), a.create(&id, &spec).await) }
    });
    let health = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let ctx = ttrpc::context::with_timeout(Duration::from_secs(2).as_nanos() as i64);
        a.health.check(ctx, &Default::default()).await
    };
    let (results, health) = tokio::join!(futures::future::join_all(creates), health);
    health.expect("Health.Check answers while the creates are refused");
    for ((id, r), path) in results.into_iter().zip(&paths) {
        assert_eq!(
            code(&r),
            Code::INVALID_ARGUMENT,
            "{path:?}: {}",
            message(&r)
        );
        assert!(message(&r).contains("namespace"), "{}", message(&r));
        assert!(a.info(&id).await.is_none());
        assert!(!a.state_dir.join(&id).exists());
    }
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t0.elapsed()
    );
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "not a namespace",
        "the file is untouched"
    );
}

tests::both_launchers!(rootfs_propagation_shared_is_kept_after_pivot_root);
async fn rootfs_propagation_shared_is_kept_after_pivot_root(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    let root_line = |spec: Spec| {
        let a = &a;
        async move {
            let (status, out, err) = a.run(&unique_id("prop"), &spec).await;
            assert_eq!(status, 0, "{err}");
            // mountinfo: ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - ...
            out.lines()
                .find(|l| l.split_whitespace().nth(4) == Some("/"))
                .map(str::to_owned)
                .unwrap_or_else(|| panic!("no / in {out}"))
        }
    };
    let mut spec = bundle::spec(&["cat", "/proc/self/mountinfo"]);
    let mut linux = spec.linux().clone().unwrap();
    linux.set_rootfs_propagation(Some("rshared".into()));
    spec.set_linux(Some(linux));
    let shared = root_line(spec).await;
    assert!(shared.contains(" shared:"), "rshared asked: {shared}");
    let default = root_line(bundle::spec(&["cat", "/proc/self/mountinfo"])).await;
    assert!(
        !default.contains(" shared:"),
        "the default is rslave: {default}"
    );
    assert!(procs::mounts_under(bundle::rootfs()).is_empty());
}
