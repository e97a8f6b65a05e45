//! Tier 2 (root): GetMetrics (issue 9) against a real agent: Prometheus text with the agent's
//! own figures (as /proc shows the agent process), containers by state, the launch latency
//! histograms fed by real launches, zygote restarts, and the guest's /proc figures under
//! Kata's names.

use std::time::Duration;
use tests::agent::{Launcher, TestAgent};
use tests::{bundle, procs, unique_id};

async fn scrape(a: &TestAgent) -> String {
    let ctx = ttrpc::context::with_timeout(Duration::from_secs(10).as_nanos() as i64);
    a.client
        .get_metrics(ctx, &Default::default())
        .await
        .expect("GetMetrics")
        .metrics
}

/// The value of the sample `series` (name and labels exactly as the text has them).
fn sample(text: &str, series: &str) -> f64 {
    let line = text
        .lines()
        .find(|l| l.strip_prefix(series).is_some_and(|r| r.starts_with(' ')))
        .unwrap_or_else(|| panic!("no sample {series} in:\n{text}"));
    line[series.len()..].trim().parse().unwrap()
}

fn stage_count(text: &str, kind: &str, stage: &str, launcher: &str) -> f64 {
    sample(
        text,
        &format!(
            "zagent_launch_stage_seconds_count{{kind=\"{kind}\",stage=\"{stage}\",launcher=\"{launcher}\"}}"
        ),
    )
}

tests::both_launchers!(metrics_show_the_agent_its_containers_and_launches);
async fn metrics_show_the_agent_its_containers_and_launches(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    let (running, created) = (unique_id("mrun"), unique_id("mnew"));
    a.create(&running, &bundle::spec(&["sleep", "100"]))
        .await
        .unwrap();
    a.start_container(&running).await.unwrap();
    a.create(&created, &bundle::spec(&["true"])).await.unwrap();
    let process = bundle::spec(&["true"]).process().clone().unwrap();
    a.exec(&running, "e1", &process).await.unwrap();
    assert_eq!(a.wait_exec(&running, "e1").await.unwrap(), 0);
    let text = scrape(&a).await;
    let state = |s: &str| sample(&text, &format!("zagent_containers{{state=\"{s}\"}}"));
    assert_eq!(state("running"), 1.0);
    assert_eq!(state("created"), 1.0);
    assert_eq!(state("paused"), 0.0);
    let launcher = l.arg();
    for stage in ["conversion", "cgroup", "clone", "jail_to_ready"] {
        assert_eq!(
            stage_count(&text, "container", stage, launcher),
            2.0,
            "{stage}"
        );
    }
    assert_eq!(stage_count(&text, "container", "start", launcher), 1.0);
    assert_eq!(stage_count(&text, "exec", "clone", launcher), 1.0);
    assert_eq!(stage_count(&text, "exec", "jail_to_ready", launcher), 1.0);
    // The agent process as /proc shows it.
    let threads = procs::threads(a.pid()) as f64;
    assert!(sample(&text, "kata_agent_threads") >= 1.0);
    assert!(
        (sample(&text, "kata_agent_threads") - threads).abs() <= 2.0,
        "threads: /proc says {threads}"
    );
    let fds = sample(&text, "zagent_open_fds");
    let seen = procs::fd_count(a.pid()) as f64;
    assert!((fds - seen).abs() <= 3.0, "fds {fds}, /proc says {seen}");
    assert!(sample(&text, "kata_agent_total_rss") > 0.0);
    // The guest, under Kata's names and units.
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let total_kb: f64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        sample(&text, "kata_guest_meminfo{item=\"mem_total\"}"),
        total_kb * 1024.0
    );
    assert!(sample(&text, "kata_guest_cpu_time{cpu=\"total\",item=\"user\"}") > 0.0);
    sample(
        &text,
        "kata_guest_netdev_stat{interface=\"lo\",item=\"recv_bytes\"}",
    );
    assert_eq!(sample(&text, "kata_agent_scrape_count_total"), 1.0);
    for id in [running, created] {
        a.remove(&id).await.unwrap();
    }
    let text = scrape(&a).await;
    assert_eq!(sample(&text, "kata_agent_scrape_count_total"), 2.0);
    assert_eq!(sample(&text, "zagent_containers{state=\"running\"}"), 0.0);
}

/// A zygote that dies is replaced, and the metrics count it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_zygote_restarts() {
    let a = TestAgent::start().await;
    assert_eq!(
        sample(&scrape(&a).await, "zagent_zygote_restarts_total"),
        0.0
    );
    let zygote = procs::zygote_of(a.pid()).expect("zygote");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(zygote),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    // The next launch runs on the successor.
    let id = unique_id("mzyg");
    let (status, _, _) = a.run(&id, &bundle::spec(&["true"])).await;
    assert_eq!(status, 0);
    assert_eq!(
        sample(&scrape(&a).await, "zagent_zygote_restarts_total"),
        1.0
    );
}
