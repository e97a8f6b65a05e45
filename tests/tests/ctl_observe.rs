//! Tier 2 (root): zagent-ctl's verbs for a running container and the agent (issue 9):
//! `stats`, `update`, `pause`, `resume`, `events`, `metrics`, against a real agent, with their
//! effects checked on the host's cgroup files.

use std::time::Duration;
use tests::agent::{Launcher, TestAgent};
use tests::{bundle, unique_id};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn cgroup_file(controller: &str, id: &str, file: &str) -> String {
    let path = format!("/sys/fs/cgroup/{controller}/zagent/{id}/{file}");
    std::fs::read_to_string(&path).unwrap().trim().to_owned()
}

/// The value of `key` in `stats` output.
fn stat(out: &str, key: &str) -> u64 {
    out.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {key} in:\n{out}"))
        .parse()
        .unwrap()
}

tests::both_launchers!(ctl_stats_update_pause_resume);
async fn ctl_stats_update_pause_resume(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    let id = unique_id("cobs");
    a.create(&id, &bundle::spec(&["sh", "-c", "sleep 100 & sleep 100"]))
        .await
        .unwrap();
    a.start_container(&id).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    let out = a.ctl(&["stats", &id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stats = text(&out.stdout);
    assert!(stat(&stats, "pids.current") >= 2, "{stats}");
    assert!(stat(&stats, "memory.usage_bytes") > 0, "{stats}");
    assert!(stat(&stats, "cpu.total_ns") > 0, "{stats}");
    assert!(stats.contains("memory.stat.rss "), "{stats}");

    let out = a.ctl(&["update", &id, "--memory", "96m", "--pids-limit", "20"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        cgroup_file("memory", &id, "memory.limit_in_bytes"),
        (96u64 << 20).to_string()
    );
    assert_eq!(cgroup_file("pids", &id, "pids.max"), "20");
    // From a file, with a flag over one of its values.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("resources.json");
    let json = r#"{"pids": {"limit": 30}, "cpu": {"quota": 20000, "period": 100000}}"#;
    std::fs::write(&file, json).unwrap();
    let out = a.ctl(&[
        "update",
        &id,
        "-r",
        file.to_str().unwrap(),
        "--cpu-quota",
        "40000",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(cgroup_file("pids", &id, "pids.max"), "30");
    assert_eq!(cgroup_file("cpu", &id, "cpu.cfs_quota_us"), "40000");
    assert!(text(&a.ctl(&["stats", &id]).stdout).contains("pids.limit 30"));
    // Nonsense is the agent's INVALID_ARGUMENT, one line naming the RPC.
    let out = a.ctl(&["update", &id, "--pids-limit", "-5"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("UpdateContainer") && err.contains("INVALID_ARGUMENT"),
        "{err}"
    );
    let out = a.ctl(&["update", &id, "--memory", "lots"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("not a size"),
        "{}",
        text(&out.stderr)
    );

    let out = a.ctl(&["pause", &id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(cgroup_file("freezer", &id, "freezer.state"), "FROZEN");
    assert!(text(&a.ctl(&["ps"]).stdout)
        .lines()
        .any(|l| l.starts_with(&id) && l.contains("paused")));
    let out = a.ctl(&["pause", &id]);
    assert!(
        text(&out.stderr).contains("FAILED_PRECONDITION"),
        "{}",
        text(&out.stderr)
    );
    let out = a.ctl(&["resume", &id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(cgroup_file("freezer", &id, "freezer.state"), "THAWED");
    a.remove(&id).await.unwrap();
    let out = a.ctl(&["stats", &id]);
    assert!(
        text(&out.stderr).contains("StatsContainer") && text(&out.stderr).contains("NOT_FOUND"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_events_prints_the_oom_killed_containers_id() {
    let a = TestAgent::start().await;
    let events = std::process::Command::new(tests::bin("zagent-ctl"))
        .args(["--addr", &a.addr, "events", "--count", "1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let id = unique_id("coom");
    a.create(&id, &bundle::oom_spec()).await.unwrap();
    a.start_container(&id).await.unwrap();
    assert_eq!(a.wait(&id).await.unwrap(), 128 + libc::SIGKILL);
    let out = tokio::task::spawn_blocking(move || events.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), format!("{id}\n"));
    a.remove(&id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_metrics_prints_the_prometheus_text() {
    let a = TestAgent::start().await;
    let (status, _, _) = a.run(&unique_id("cmet"), &bundle::spec(&["true"])).await;
    assert_eq!(status, 0);
    let out = a.ctl(&["metrics"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let metrics = text(&out.stdout);
    assert!(
        metrics.contains("# TYPE zagent_launch_stage_seconds histogram"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "zagent_launch_stage_seconds_count{kind=\"container\",stage=\"start\",launcher=\"zygote\"} 1\n"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("kata_agent_scrape_count_total 1\n"),
        "{metrics}"
    );
}

/// Every new verb explains itself with examples (no agent needed).
#[test]
fn ctl_new_verbs_have_help_with_examples() {
    for verb in ["stats", "update", "pause", "resume", "events", "metrics"] {
        let out = std::process::Command::new(tests::bin("zagent-ctl"))
            .args([verb, "--help"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{verb}");
        let help = text(&out.stdout);
        assert!(help.contains("Example"), "{verb}: {help}");
        assert!(
            help.contains(&format!("zagent-ctl {verb}")),
            "{verb}: {help}"
        );
    }
}
