//! Tier 2 (root): resource exhaustion from inside a container, for both launchers: a fork bomb
//! under a pids limit (it hits EAGAIN, the host and the agent are unaffected, removal kills it
//! all) and an allocation beyond a memory limit (OOM-killed, status 137).

use oci_spec::runtime::{LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResources, Spec};
use std::path::Path;
use std::time::{Duration, Instant};
use tests::agent::{Launcher, TestAgent};
use tests::leftovers::{assert_nothing_left, cgroups_left};
use tests::{bundle, unique_id};

fn with_resources(mut spec: Spec, edit: impl FnOnce(&mut LinuxResources)) -> Spec {
    let mut linux = spec.linux().clone().unwrap();
    let mut res = linux.resources().clone().unwrap_or_default();
    edit(&mut res);
    linux.set_resources(Some(res));
    spec.set_linux(Some(linux));
    spec
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The v1 controller dir `controller` of container `id` (this machine's layout).
fn v1(controller: &str, id: &str) -> std::path::PathBuf {
    Path::new("/sys/fs/cgroup")
        .join(controller)
        .join("zagent")
        .join(id)
}

/// Every level leaves a long sleeper behind and forks new levels without end; a failed fork
/// ends that shell only, so the cgroup stays full of sleepers (and orphans the init never reaps)
/// for removal to kill. The init forks the bomb once and becomes `sleep`, so it needs no fork of
/// its own afterwards.
const BOMB: &str = "f() { sleep 1000 & while :; do f & done; }; f & exec sleep 1000";

tests::both_launchers!(fork_bomb_under_a_pids_limit_stays_inside);
async fn fork_bomb_under_a_pids_limit_stays_inside(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    let id = unique_id("bomb");
    let spec = with_resources(bundle::spec(&["sh", "-c", BOMB]), |r| {
        r.set_pids(Some(LinuxPidsBuilder::default().limit(64).build().unwrap()));
    });
    a.create(&id, &spec).await.unwrap();
    let pids = v1("pids", &id);
    assert_eq!(read(&pids.join("pids.max")).trim(), "64");
    a.start_container(&id).await.unwrap();
    let until = Instant::now() + Duration::from_secs(3);
    let (mut max_seen, mut slowest) = (0u64, Duration::ZERO);
    while Instant::now() < until {
        let current: u64 = read(&pids.join("pids.current")).trim().parse().unwrap();
        max_seen = max_seen.max(current);
        // The agent answers, and the host can still fork.
        let t = Instant::now();
        a.health
            .check(
                ttrpc::context::with_timeout(5_000_000_000),
                &Default::default(),
            )
            .await
            .expect("Health.Check during the bomb");
        slowest = slowest.max(t.elapsed());
        assert!(std::process::Command::new("true")
            .status()
            .unwrap()
            .success());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let events = read(&pids.join("pids.events"));
    let refused: u64 = events
        .lines()
        .find_map(|l| l.strip_prefix("max "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    eprintln!(
        "{l:?}: bomb peak {max_seen} pids, {refused} forks refused, Health.Check <= {slowest:?}"
    );
    assert!(refused > 0, "the bomb never hit the limit: {events}");
    assert!((32..=64).contains(&max_seen), "peak {max_seen} pids");
    assert!(
        slowest < Duration::from_secs(2),
        "Health.Check took {slowest:?}"
    );
    let members: Vec<i32> = read(&pids.join("cgroup.procs"))
        .lines()
        .filter_map(|l| l.parse().ok())
        .collect();
    // How many are alive at this instant varies (failed forks end their shells); the bomb's
    // size is shown by the peak above. What matters here: there are some for removal to kill.
    assert!(members.len() > 1, "{members:?}");
    a.remove(&id).await.unwrap();
    // Every bomb process is gone (a reused pid would sit in another cgroup).
    for pid in members {
        let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        assert!(
            !cg.contains(&format!("zagent/{id}")),
            "{pid} survived: {cg}"
        );
    }
    assert!(cgroups_left(&id).is_empty());
    assert_nothing_left(&a, &id, &[bundle::rootfs()]).await;
}

/// Doubles a shell variable until the memory limit stops it.
const HOG: &str = "x=1; while :; do x=\"$x$x\"; done";

tests::both_launchers!(allocation_beyond_the_memory_limit_is_oom_killed);
async fn allocation_beyond_the_memory_limit_is_oom_killed(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    let id = unique_id("oom");
    let limit: i64 = 32 << 20;
    let spec = with_resources(bundle::spec(&["sh", "-c", HOG]), |r| {
        let m = LinuxMemoryBuilder::default()
            .limit(limit)
            .swap(limit)
            .build()
            .unwrap();
        r.set_memory(Some(m));
    });
    a.create(&id, &spec).await.unwrap();
    let memory = v1("memory", &id);
    assert_eq!(
        read(&memory.join("memory.limit_in_bytes")).trim(),
        limit.to_string()
    );
    if memory.join("memory.memsw.limit_in_bytes").exists() {
        let memsw = read(&memory.join("memory.memsw.limit_in_bytes"));
        assert_eq!(memsw.trim(), limit.to_string());
    }
    a.start_container(&id).await.unwrap();
    let status = tokio::time::timeout(Duration::from_secs(60), a.wait(&id))
        .await
        .expect("the hog was not stopped")
        .unwrap();
    assert_eq!(status, 137, "not SIGKILLed");
    let oom = read(&memory.join("memory.oom_control"));
    let kills: u64 = oom
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!(kills >= 1, "not the OOM killer: {oom}");
    let peak: u64 = read(&memory.join("memory.max_usage_in_bytes"))
        .trim()
        .parse()
        .unwrap();
    assert!(peak <= limit as u64, "peak {peak}");
    a.remove(&id).await.unwrap();
    assert_nothing_left(&a, &id, &[bundle::rootfs()]).await;
}
