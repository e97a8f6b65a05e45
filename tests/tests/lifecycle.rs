//! Tier 2 (root): the container lifecycle end to end through zagent, its zygote and the jail,
//! driven over ttrpc and through zagent-ctl.

use oci_spec::runtime::{
    LinuxBuilder, LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResourcesBuilder,
};
use tests::agent::{Launcher, TestAgent};
use tests::{bundle, procs, unique_id};

tests::both_launchers!(ctl_run_prints_output_and_exits_with_the_container_status);
async fn ctl_run_prints_output_and_exits_with_the_container_status(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    let b = bundle::bundle_dir(&bundle::spec(&["echo", "hello"]));
    let dir = b.path().to_str().unwrap();
    let out = a.ctl(&["run", "--bundle", dir]);
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n");
    let out = a.ctl(&["run", "--bundle", dir, "--", "sh", "-c", "exit 7"]);
    assert_eq!(
        out.status.code(),
        Some(7),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = a.ctl(&[
        "run",
        "--bundle",
        dir,
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2",
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("err\n"));
}

tests::both_launchers!(sigkill_reports_137_through_rpc_and_ctl_wait);
async fn sigkill_reports_137_through_rpc_and_ctl_wait(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    let id = unique_id("kill");
    a.create(&id, &bundle::spec(&["sleep", "100"]))
        .await
        .unwrap();
    a.start_container(&id).await.unwrap();
    a.signal(&id, libc::SIGKILL as u32).await.unwrap();
    assert_eq!(a.wait(&id).await.unwrap(), 137);
    let out = a.ctl(&["wait", &id]);
    assert_eq!(out.status.code(), Some(137));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "137");
    let out = a.ctl(&["rm", &id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(a.info(&id).await.is_none());
}

tests::both_launchers!(parked_child_is_a_child_of_zagent_until_start_then_pid_1);
async fn parked_child_is_a_child_of_zagent_until_start_then_pid_1(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    let id = unique_id("park");
    a.create(&id, &bundle::spec(&["sleep", "100"]))
        .await
        .unwrap();
    let (state, pid, _) = a.info(&id).await.unwrap();
    assert_eq!(state, "created");
    assert_eq!(
        procs::status_field(pid, "PPid").unwrap(),
        a.pid().to_string()
    );
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert!(
        !exe.to_string_lossy().contains("busybox"),
        "parked child already exec'd: {exe:?}"
    );
    assert!(
        exe.to_string_lossy().contains("memfd:zagent"),
        "parked child runs {exe:?}"
    );
    a.start_container(&id).await.unwrap();
    assert_eq!(a.info(&id).await.unwrap().0, "running");
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert!(exe.ends_with("bin/busybox"), "after start: {exe:?}");
    let nspid = procs::status_field(pid, "NSpid").unwrap();
    assert_eq!(nspid.split_whitespace().last(), Some("1"), "NSpid {nspid}");
    a.remove(&id).await.unwrap();
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .trim()
        .to_string()
}

tests::both_launchers!(cgroup_has_the_limits_and_exactly_the_processes_then_is_removed);
async fn cgroup_has_the_limits_and_exactly_the_processes_then_is_removed(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    let id = unique_id("cg");
    let mut spec = bundle::spec(&["sleep", "100"]);
    let resources = LinuxResourcesBuilder::default()
        .memory(
            LinuxMemoryBuilder::default()
                .limit(64i64 << 20)
                .build()
                .unwrap(),
        )
        .pids(LinuxPidsBuilder::default().limit(16i64).build().unwrap())
        .cpu(
            oci_spec::runtime::LinuxCpuBuilder::default()
                .shares(512u64)
                .quota(50_000i64)
                .period(100_000u64)
                .cpus("0")
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let mut linux = spec
        .linux()
        .clone()
        .unwrap_or_else(|| LinuxBuilder::default().build().unwrap());
    let mut resources = resources;
    resources.set_devices(linux.resources().as_ref().and_then(|r| r.devices().clone()));
    linux.set_resources(Some(resources));
    spec.set_linux(Some(linux));
    a.create(&id, &spec).await.unwrap();
    let (_, pid, _) = a.info(&id).await.unwrap();
    let mem = format!("/sys/fs/cgroup/memory/zagent/{id}");
    let pids = format!("/sys/fs/cgroup/pids/zagent/{id}");
    // Parked, the child is already in its cgroup.
    assert_eq!(read(&format!("{pids}/cgroup.procs")), pid.to_string());
    a.start_container(&id).await.unwrap();
    assert_eq!(
        read(&format!("{mem}/memory.limit_in_bytes")),
        (64u64 << 20).to_string()
    );
    assert_eq!(read(&format!("{pids}/pids.max")), "16");
    let cpu = format!("/sys/fs/cgroup/cpu/zagent/{id}");
    assert_eq!(read(&format!("{cpu}/cpu.shares")), "512");
    assert_eq!(read(&format!("{cpu}/cpu.cfs_quota_us")), "50000");
    assert_eq!(read(&format!("{cpu}/cpu.cfs_period_us")), "100000");
    assert_eq!(
        read(&format!("/sys/fs/cgroup/cpuset/zagent/{id}/cpuset.cpus")),
        "0"
    );
    // The default spec denies every device but the basics (as `runc spec` does).
    let devices = read(&format!("/sys/fs/cgroup/devices/zagent/{id}/devices.list"));
    assert!(devices.lines().any(|l| l == "c 1:3 rwm"), "{devices}");
    assert!(!devices.lines().any(|l| l == "a *:* rwm"), "{devices}");
    assert_eq!(read(&format!("{pids}/cgroup.procs")), pid.to_string());
    assert_eq!(read(&format!("{mem}/cgroup.procs")), pid.to_string());
    a.remove(&id).await.unwrap();
    for h in ["memory", "pids", "cpu", "freezer", "devices"] {
        let dir = format!("/sys/fs/cgroup/{h}/zagent/{id}");
        assert!(!std::path::Path::new(&dir).exists(), "{dir} left behind");
    }
}

const PROBE: &str = "hostname; echo ---; ls /proc/self/fd; echo ---; \
    grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs)' /proc/self/status; echo ---; \
    cat /proc/timer_list | wc -c; ls /proc/acpi 2>/dev/null | wc -l; echo ---; \
    (echo h > /proc/sysrq-trigger) 2>/dev/null && echo rw || echo ro; \
    (touch /probe-file) 2>/dev/null && echo rw || echo ro; echo ---; \
    cat /proc/mounts";

fn sections(out: &str) -> Vec<String> {
    out.split("---\n").map(str::to_string).collect()
}

tests::both_launchers!(inside_the_container_everything_is_as_the_spec_says);
async fn inside_the_container_everything_is_as_the_spec_says(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    let mut spec = bundle::spec(&["sh", "-c", PROBE]);
    spec.set_hostname(Some("probe-host".into()));
    let (status, out, err) = a.run(&unique_id("probe"), &spec).await;
    assert_eq!(status, 0, "stderr: {err}");
    let s = sections(&out);
    assert_eq!(s[0], "probe-host\n");
    assert_eq!(s[1], "0\n1\n2\n3\n", "fds in the container");
    let caps: Vec<&str> = s[2].lines().collect();
    // runc's defaults: CAP_AUDIT_WRITE (29), CAP_KILL (5), CAP_NET_BIND_SERVICE (10).
    assert_eq!(
        caps,
        [
            "CapInh:\t0000000000000000",
            "CapPrm:\t0000000020000420",
            "CapEff:\t0000000020000420",
            "CapBnd:\t0000000020000420",
            "CapAmb:\t0000000000000000",
            "NoNewPrivs:\t1",
        ]
    );
    assert_eq!(
        s[3], "0\n0\n",
        "masked file reads empty, masked dir is empty"
    );
    assert_eq!(s[4], "ro\nro\n", "read-only path and read-only root");
    let mounts = &s[5];
    for m in [
        "proc /proc proc rw",
        "tmpfs /dev tmpfs rw,nosuid",
        "devpts /dev/pts devpts rw,nosuid,noexec",
        "shm /dev/shm tmpfs rw,nosuid,nodev,noexec",
        "mqueue /dev/mqueue mqueue rw,nosuid,nodev,noexec",
        "sysfs /sys sysfs ro,nosuid,nodev,noexec",
    ] {
        assert!(mounts.contains(m), "missing {m:?} in\n{mounts}");
    }
}

tests::both_launchers!(capabilities_and_no_new_privs_follow_a_different_spec);
async fn capabilities_and_no_new_privs_follow_a_different_spec(l: Launcher) {
    use oci_spec::runtime::{Capability, LinuxCapabilitiesBuilder};
    let a = TestAgent::start_with(l).await;
    let mut spec = bundle::spec(&[
        "sh",
        "-c",
        "grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs)' /proc/self/status",
    ]);
    let set = |v: &[Capability]| v.iter().cloned().collect::<std::collections::HashSet<_>>();
    let mut process = spec.process().clone().unwrap();
    process.set_capabilities(Some(
        LinuxCapabilitiesBuilder::default()
            .bounding(set(&[
                Capability::Chown,
                Capability::SysAdmin,
                Capability::NetRaw,
            ]))
            .permitted(set(&[Capability::Chown, Capability::NetRaw]))
            .effective(set(&[Capability::Chown]))
            .inheritable(set(&[Capability::NetRaw]))
            .ambient(set(&[Capability::NetRaw]))
            .build()
            .unwrap(),
    ));
    process.set_no_new_privileges(Some(false));
    spec.set_process(Some(process));
    let (status, out, err) = a.run(&unique_id("caps"), &spec).await;
    assert_eq!(status, 0, "stderr: {err}");
    // CHOWN = 0, NET_RAW = 13, SYS_ADMIN = 21. The process runs as uid 0, so at execve the
    // kernel grants permitted = effective = bounding | inheritable (capabilities(7)); the
    // inheritable, ambient and bounding sets show the spec's values as they are.
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "CapInh:\t0000000000002000",
            "CapPrm:\t0000000000202001",
            "CapEff:\t0000000000202001",
            "CapBnd:\t0000000000202001",
            "CapAmb:\t0000000000002000",
            "NoNewPrivs:\t0",
        ]
    );
}

tests::both_launchers!(namespaces_are_joined_by_path);
async fn namespaces_are_joined_by_path(l: Launcher) {
    use oci_spec::runtime::{LinuxNamespaceBuilder, LinuxNamespaceType};
    let a = TestAgent::start_with(l).await;
    let first = unique_id("nsa");
    let mut spec = bundle::spec(&["sleep", "100"]);
    spec.set_hostname(Some("host-a".into()));
    a.create(&first, &spec).await.unwrap();
    a.start_container(&first).await.unwrap();
    let (_, pid, _) = a.info(&first).await.unwrap();
    let mut spec = bundle::spec(&["sh", "-c", "hostname; echo $$"]);
    spec.set_hostname(None);
    let mut linux = spec.linux().clone().unwrap();
    let mut nss = linux.namespaces().clone().unwrap();
    for ns in nss.iter_mut() {
        let name = match ns.typ() {
            LinuxNamespaceType::Uts => "uts",
            LinuxNamespaceType::Pid => "pid",
            LinuxNamespaceType::Network => "net",
            _ => continue,
        };
        *ns = LinuxNamespaceBuilder::default()
            .typ(ns.typ())
            .path(format!("/proc/{pid}/ns/{name}"))
            .build()
            .unwrap();
    }
    linux.set_namespaces(Some(nss));
    spec.set_linux(Some(linux));
    let (status, out, err) = a.run(&unique_id("nsb"), &spec).await;
    assert_eq!(status, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "host-a", "joined uts namespace");
    assert_ne!(
        lines[1], "1",
        "in the joined pid namespace the second container is not pid 1"
    );
    let host_ns = |p: &str| std::fs::read_link(p).unwrap();
    assert_ne!(
        host_ns(&format!("/proc/{pid}/ns/pid")),
        host_ns("/proc/self/ns/pid")
    );
    a.remove(&first).await.unwrap();
}

tests::both_launchers!(sigkill_kills_every_process_in_the_cgroup_without_a_pid_namespace);
async fn sigkill_kills_every_process_in_the_cgroup_without_a_pid_namespace(l: Launcher) {
    use oci_spec::runtime::LinuxNamespaceType;
    let a = TestAgent::start_with(l).await;
    let id = unique_id("killall");
    let mut spec = bundle::spec(&["sh", "-c", "sleep 100 & sleep 100 & wait"]);
    let mut linux = spec.linux().clone().unwrap();
    let nss: Vec<_> = linux
        .namespaces()
        .clone()
        .unwrap()
        .into_iter()
        .filter(|n| n.typ() != LinuxNamespaceType::Pid)
        .collect();
    linux.set_namespaces(Some(nss));
    spec.set_linux(Some(linux));
    a.create(&id, &spec).await.unwrap();
    a.start_container(&id).await.unwrap();
    let procs_file = format!("/sys/fs/cgroup/pids/zagent/{id}/cgroup.procs");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let pids = loop {
        let pids: Vec<i32> = read(&procs_file)
            .lines()
            .filter_map(|l| l.parse().ok())
            .collect();
        if pids.len() == 3 || std::time::Instant::now() > deadline {
            break pids;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(pids.len(), 3, "sh and two sleeps: {pids:?}");
    a.signal(&id, libc::SIGKILL as u32).await.unwrap();
    assert_eq!(a.wait(&id).await.unwrap(), 137);
    for p in &pids {
        let gone = (0..100).any(|_| {
            let alive = std::path::Path::new(&format!("/proc/{p}")).exists()
                && procs::status_field(*p, "State").is_some_and(|s| !s.starts_with('Z'));
            if alive {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            !alive
        });
        assert!(gone, "process {p} survived the kill");
    }
    a.remove(&id).await.unwrap();
}

fn exec_process(args: &[&str]) -> oci_spec::runtime::Process {
    bundle::spec(args).process().clone().unwrap()
}

/// The network namespaces the zygote holds in its warm pool: the `net:[inode]` links among its
/// fds, less its own network namespace (of which it keeps an fd to step back into).
fn pooled_nets(zygote: i32) -> std::collections::HashSet<std::path::PathBuf> {
    let own = std::fs::read_link(format!("/proc/{zygote}/ns/net")).unwrap();
    std::fs::read_dir(format!("/proc/{zygote}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter(|l| l.to_string_lossy().starts_with("net:") && *l != own)
        .collect()
}

/// With a warm pool, each container gets namespaces of its own from the pool, fresh and apart
/// from the host's and from each other's, also once the pool was used up and refilled. (All
/// are alive at once when compared: the kernel reuses a freed namespace's inode number.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooled_namespaces_are_fresh_and_never_shared() {
    let a = TestAgent::start_opts(Launcher::Zygote, &["--warm-pool", "2"]).await;
    // The pool is really there: 2 sets of (net, ipc, uts) fds beside the zygote's own 7
    // (stdio, its channel, and its own net, ipc and uts namespaces: it keeps none of a pid
    // namespace, since it never clones into one).
    let zygote = procs::zygote_of(a.pid()).expect("zygote");
    assert_eq!(
        procs::fd_count(zygote),
        7 + 2 * 3,
        "the zygote's fds with a pool of 2"
    );
    let first_pool = pooled_nets(zygote);
    assert_eq!(first_pool.len(), 2, "{first_pool:?}");
    let mut seen = std::collections::HashSet::new();
    let mut ids = Vec::new();
    let mut from_refills = 0;
    for i in 0..5 {
        // A full pool again (after the first round: refilled) before each create, so the
        // create takes a set the pool holds now, and no refill can slip in between.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let pool = loop {
            let pool = pooled_nets(zygote);
            if pool.len() == 2 {
                break pool;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the pool was not refilled after create {i}: {pool:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        };
        let id = unique_id("pool");
        let mut spec = bundle::spec(&["sleep", "100"]);
        spec.set_hostname(Some(format!("pooled-{i}")));
        a.create(&id, &spec).await.unwrap();
        a.start_container(&id).await.unwrap();
        let (_, pid, _) = a.info(&id).await.unwrap();
        let net = std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
        assert!(pool.contains(&net), "create {i} did not take a pooled set");
        from_refills += usize::from(!first_pool.contains(&net));
        for ns in ["net", "pid", "ipc", "uts", "mnt"] {
            let mine = std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).unwrap();
            assert_ne!(
                mine,
                std::fs::read_link(format!("/proc/self/ns/{ns}")).unwrap(),
                "{ns} is the host's"
            );
            assert!(
                seen.insert(mine.clone()),
                "{ns} namespace {mine:?} shared by two containers"
            );
        }
        assert_eq!(
            procs::status_field(pid, "NSpid")
                .unwrap()
                .split_whitespace()
                .last(),
            Some("1")
        );
        a.exec(&id, "h", &exec_process(&["hostname"]))
            .await
            .unwrap();
        assert_eq!(
            a.read_all_exec(&id, "h", false).await.unwrap(),
            format!("pooled-{i}\n").as_bytes()
        );
        ids.push(id);
    }
    // Two sets were there at the start, so at least three containers ran on sets that
    // refills made (the pool hands out its newest set first, so usually four).
    assert!(
        from_refills >= 3,
        "{from_refills} containers on refilled sets"
    );
    for id in ids {
        a.remove(&id).await.unwrap();
    }
}
