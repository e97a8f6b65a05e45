//! Tier 2 (root): restart recovery. An agent killed with SIGKILL leaves its running containers
//! behind (their processes, cgroups and state dirs); a new agent on the same state dir must
//! kill those processes, remove the cgroups and state dirs, log one warning per container, and
//! free the ids, all before it serves. A second agent on the state dir of one that still runs
//! must refuse to start rather than "recover" the live agent's containers.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tests::agent::{Launcher, TestAgent};
use tests::leftovers::{assert_nothing_left, cgroups_left};
use tests::{both_launchers, bundle, procs, unique_id};

/// The start time (clock ticks since boot, /proc/PID/stat field 22) of a live process; None
/// once it is gone or a zombie. With the pid, it names one process even across pid reuse.
fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm is in parentheses and may contain spaces: the fields after it start at the last ')'.
    let mut rest = stat[stat.rfind(')')? + 2..].split(' ');
    if rest.next()? == "Z" {
        return None;
    }
    rest.nth(18)?.parse().ok()
}

/// Every process in the container's cgroups, as (pid, start time).
fn cgroup_processes(id: &str) -> Vec<(i32, u64)> {
    let mut found = Vec::new();
    for dir in cgroups_left(id) {
        let text = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        for pid in text
            .split_whitespace()
            .filter_map(|w| w.parse::<i32>().ok())
        {
            if let Some(start) = start_time(pid).filter(|_| pid > 0) {
                if !found.iter().any(|(p, _)| *p == pid) {
                    found.push((pid, start));
                }
            }
        }
    }
    found
}

/// What the killed agent left, taken away on drop whatever the test concluded: the recorded
/// processes that still run as themselves (same pid and start time) are killed, and the
/// containers' (empty by then) cgroup dirs removed.
struct Leftovers {
    ids: Vec<String>,
    processes: Vec<(i32, u64)>,
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        for &(pid, start) in &self.processes {
            if start_time(pid) == Some(start) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for id in &self.ids {
            for dir in cgroups_left(id) {
                while std::fs::remove_dir(&dir).is_err() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }
}

/// The log without its colour codes (ESC [ ... m), which tracing adds even to a file.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            chars.by_ref().find(|c| *c == 'm');
        } else {
            out.push(c);
        }
    }
    out
}

async fn wait_gone(pid: i32, start: Option<u64>) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while start_time(pid).is_some() && start_time(pid) == start && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    start_time(pid).is_none() || start_time(pid) != start
}

async fn killed_agent_is_recovered_on_restart(l: Launcher) {
    let mut old = TestAgent::start_with(l).await;
    let zygote = procs::zygote_of(old.pid()).map(|z| (z, start_time(z)));
    let running: Vec<String> = (0..5).map(|_| unique_id("restart-run")).collect();
    let parked: Vec<String> = (0..5).map(|_| unique_id("restart-park")).collect();
    let spec = bundle::spec(&["sleep", "1000"]);
    let mut left = Leftovers {
        ids: running.iter().chain(&parked).cloned().collect(),
        processes: Vec::new(),
    };
    for id in &running {
        old.create(id, &spec).await.expect("create");
        old.start_container(id).await.expect("start");
    }
    for id in &parked {
        old.create(id, &spec).await.expect("create");
    }
    for id in &running {
        let (state, pid, _) = old.info(id).await.expect("listed");
        assert_eq!(state, "running");
        let found = cgroup_processes(id);
        assert!(
            found.iter().any(|(p, _)| *p == pid),
            "{id}: init {pid} not in its cgroup ({found:?})"
        );
        left.processes.extend(found);
    }
    for id in &parked {
        left.processes.extend(cgroup_processes(id));
    }
    // One is paused: its frozen tasks (on cgroup v1) die of SIGKILL only once thawed.
    let pause = wire::agent::PauseContainerRequest {
        container_id: running[0].clone(),
        ..Default::default()
    };
    let ctx = ttrpc::context::with_timeout(0);
    old.client
        .pause_container(ctx, &pause)
        .await
        .expect("pause");

    old.kill9();
    // The zygote exits on EOF of its channel (the reexec launcher has none).
    if let Some((pid, start)) = zygote {
        assert!(wait_gone(pid, start).await, "the zygote outlived the agent");
    }
    for id in &running {
        assert!(
            !cgroup_processes(id).is_empty(),
            "{id}: nothing left running after SIGKILL of the agent: nothing to recover"
        );
    }

    let log_path = old.dir.path().join("new-agent.stderr");
    let log = std::fs::File::create(&log_path).expect("create the log file");
    let new = TestAgent::start_in(l, Some(&old.state_dir), &[], Stdio::from(log)).await;
    // start_in returns once the agent answers Health.Check: recovery is over by then.
    for &(pid, start) in &left.processes {
        assert_ne!(
            start_time(pid),
            Some(start),
            "process {pid} of the killed agent's containers still runs: {:?}",
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
        );
    }
    for id in running.iter().chain(&parked) {
        assert_eq!(cgroups_left(id), Vec::<PathBuf>::new(), "cgroups of {id}");
        assert!(!old.state_dir.join(id).exists(), "state dir of {id} left");
    }
    let text = strip_ansi(&std::fs::read_to_string(&log_path).expect("read the new agent's log"));
    let warnings: Vec<&str> = text.lines().filter(|l| l.contains("WARN")).collect();
    for id in running.iter().chain(&parked) {
        let mine: Vec<&&str> = warnings
            .iter()
            .filter(|l| l.contains(&format!("id={id} ")))
            .collect();
        assert_eq!(mine.len(), 1, "one warning for {id} in:\n{text}");
        if running.contains(id) {
            assert!(mine[0].contains("killed=1"), "{id}: {}", mine[0]);
        }
    }
    // The ids are free again, and a container made with one is fully usable.
    for id in running.iter().chain(&parked) {
        new.create(id, &spec)
            .await
            .expect("create with a recovered id");
    }
    let id = &running[0];
    new.start_container(id).await.expect("start");
    for id in running.iter().chain(&parked) {
        new.remove(id).await.expect("remove");
        assert_nothing_left(&new, id, &[bundle::rootfs()]).await;
    }
    assert!(procs::mounts_under(Path::new(&old.state_dir)).is_empty());
}

both_launchers!(killed_agent_is_recovered_on_restart);

async fn second_agent_on_a_live_state_dir_is_refused(l: Launcher) {
    let first = TestAgent::start_with(l).await;
    let id = unique_id("restart-live");
    let spec = bundle::spec(&["sleep", "1000"]);
    first.create(&id, &spec).await.expect("create");
    first.start_container(&id).await.expect("start");
    let sock = first.dir.path().join("second.sock");
    let mut second = std::process::Command::new(tests::bin("zagent"))
        .arg("--listen")
        .arg(format!("unix://{}", sock.display()))
        .args(["--launcher", l.arg(), "--state-dir"])
        .arg(&first.state_dir)
        .env("ZAGENT_LOG", "warn")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the second zagent");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = second.try_wait().expect("try_wait") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = second.kill();
            let _ = second.wait();
            break None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut err = String::new();
    if let Some(mut e) = second.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut err);
    }
    let status = status.expect("the second agent did not exit");
    assert!(!status.success(), "the second agent started: {err}");
    assert!(err.contains("state dir"), "{err}");
    let (state, _, _) = first.info(&id).await.expect("still listed");
    assert_eq!(state, "running", "the first agent's container was touched");
    assert!(first.state_dir.join(&id).exists());
    first.remove(&id).await.expect("remove");
    assert_nothing_left(&first, &id, &[bundle::rootfs()]).await;
}

both_launchers!(second_agent_on_a_live_state_dir_is_refused);
