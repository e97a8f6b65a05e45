//! GetMetrics against a fake /proc in a temp dir: every figure where Kata's agent puts it, in
//! its units, and a file that cannot be read leaves only its own metrics out.

use super::*;
use std::fs;

const MEMINFO: &str = "MemTotal:       24684228 kB
MemFree:        10886076 kB
Active(anon):     123456 kB
SReclaimable:     400000 kB
KReclaimable:     400000 kB
Committed_AS:    5000000 kB
HugePages_Total:       0
Hugepagesize:       2048 kB
DirectMap2M:    10000000 kB
Zswapped:              0 kB
";

const STAT: &str = "cpu  1000 20 300 40000 50 0 6 0 0 0
cpu0 500 10 150 20000 25 0 3 0 0 0
cpu1 500 10 150 20000 25 0 3 0 0 0
intr 123 4 5
ctxt 99999
btime 1700000000
";

const DISKSTATS: &str = "\
 254       0 vda 9000 10 800000 2000 4000 500 90000 7000 0 6000 9000 0 0 0 0 300 40
   7       0 loop0 5 0 10 1 0 0 0 0 0 1 1
";

const NETDEV: &str = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:  123456     100    0    0    0     0          0         0   123456     100    0    0    0     0       0          0
  eth0: 9999999    5000    1    2    0     0          0         3  888888     4000    0    5    0     0       0          0
";

const SELF_STAT: &str = "4242 (zagent (x) y) S 1 4242 4242 0 -1 4194560 1000 0 0 0 \
250 130 7 9 20 0 6 0 12345 104857600 2560 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0";

const SELF_STATUS: &str = "Name:\tzagent
State:\tS (sleeping)
VmPeak:\t  110000 kB
VmRSS:\t   10240 kB
RssAnon:\t    6000 kB
Threads:\t6
voluntary_ctxt_switches:\t150
nonvoluntary_ctxt_switches:\t7
";

const SELF_IO: &str = "rchar: 1000\nwchar: 2000\nsyscr: 30\nsyscw: 40\nread_bytes: 4096\n\
write_bytes: 8192\ncancelled_write_bytes: 0\n";

fn fake_proc() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path();
    fs::write(p.join("meminfo"), MEMINFO).unwrap();
    fs::write(p.join("stat"), STAT).unwrap();
    fs::write(p.join("diskstats"), DISKSTATS).unwrap();
    fs::create_dir(p.join("net")).unwrap();
    fs::write(p.join("net/dev"), NETDEV).unwrap();
    fs::write(p.join("vmstat"), "nr_free_pages 2700000\npgfault 123\n").unwrap();
    fs::write(p.join("loadavg"), "0.52 0.31 0.20 2/345 6789\n").unwrap();
    fs::create_dir_all(p.join("self/fd")).unwrap();
    fs::write(p.join("self/stat"), SELF_STAT).unwrap();
    fs::write(p.join("self/status"), SELF_STATUS).unwrap();
    fs::write(p.join("self/io"), SELF_IO).unwrap();
    for fd in ["0", "1", "2"] {
        fs::write(p.join("self/fd").join(fd), "").unwrap();
    }
    tmp
}

fn host(root: &Path) -> Host {
    Host {
        proc_root: root.to_owned(),
        ticks: 100,
        page_size: 4096,
    }
}

fn snapshot() -> Snapshot {
    Snapshot {
        containers: vec![("created", 1), ("running", 2), ("paused", 0)],
        zygote_restarts: 3,
        oom_events: 4,
        oom_dropped: 1,
    }
}

/// The value of the sample `name{labels}` (labels exactly as the text has them).
fn sample(text: &str, series: &str) -> f64 {
    let line = text
        .lines()
        .find(|l| l.strip_prefix(series).is_some_and(|r| r.starts_with(' ')))
        .unwrap_or_else(|| panic!("no sample {series} in:\n{text}"));
    line[series.len()..].trim().parse().unwrap()
}

#[test]
fn guest_figures_are_where_and_in_the_units_kata_puts_them() {
    let tmp = fake_proc();
    let m = Metrics::new("zygote");
    let text = m.render(&snapshot(), &host(tmp.path())).unwrap();
    let kib = 1024.0;
    assert_eq!(
        sample(&text, "kata_guest_meminfo{item=\"mem_total\"}"),
        24684228.0 * kib
    );
    assert_eq!(
        sample(&text, "kata_guest_meminfo{item=\"active_anon\"}"),
        123456.0 * kib
    );
    for item in ["s_reclaimable", "k_reclaimable", "committed_as", "zswapped"] {
        sample(&text, &format!("kata_guest_meminfo{{item=\"{item}\"}}"));
    }
    assert_eq!(
        sample(&text, "kata_guest_meminfo{item=\"hugepages_total\"}"),
        0.0
    );
    assert_eq!(
        sample(&text, "kata_guest_meminfo{item=\"direct_map_2M\"}"),
        10000000.0 * kib
    );
    // 1000 ticks at 100 Hz are 10 s.
    assert_eq!(
        sample(&text, "kata_guest_cpu_time{cpu=\"total\",item=\"user\"}"),
        10000.0
    );
    assert_eq!(
        sample(&text, "kata_guest_cpu_time{cpu=\"1\",item=\"system\"}"),
        1500.0
    );
    assert!(!text.contains("cpu=\"intr\""), "only cpu lines");
    let disk = |d: &str, i: &str| {
        sample(
            &text,
            &format!("kata_guest_diskstat{{disk=\"{d}\",item=\"{i}\"}}"),
        )
    };
    assert_eq!(disk("vda", "sectors_read"), 800000.0);
    assert_eq!(disk("vda", "time_flushing"), 40.0);
    assert_eq!(disk("loop0", "weighted_time_in_progress"), 1.0);
    assert!(
        !text.contains("disk=\"loop0\",item=\"discards\""),
        "an old kernel's missing fields are not made up"
    );
    let net = |d: &str, i: &str| {
        sample(
            &text,
            &format!("kata_guest_netdev_stat{{interface=\"{d}\",item=\"{i}\"}}"),
        )
    };
    assert_eq!(net("eth0", "recv_bytes"), 9999999.0);
    assert_eq!(net("eth0", "recv_multicast"), 3.0);
    assert_eq!(net("eth0", "sent_drop"), 5.0);
    assert_eq!(net("lo", "sent_packets"), 100.0);
    assert_eq!(sample(&text, "kata_guest_vm_stat{item=\"pgfault\"}"), 123.0);
    assert_eq!(sample(&text, "kata_guest_load{item=\"load5\"}"), 0.31);
    assert_eq!(sample(&text, "kata_guest_tasks{item=\"max\"}"), 345.0);
}

#[test]
fn the_agents_own_figures_and_state() {
    let tmp = fake_proc();
    let m = Metrics::new("reexec");
    m.observe(Kind::Container, Stage::Clone, Duration::from_micros(300));
    m.observe(Kind::Container, Stage::Clone, Duration::from_micros(500));
    m.observe(Kind::Exec, Stage::JailToReady, Duration::from_millis(2));
    let text = m.render(&snapshot(), &host(tmp.path())).unwrap();
    assert_eq!(sample(&text, "kata_agent_threads"), 6.0);
    // (250 + 130) ticks at 100 Hz.
    assert_eq!(sample(&text, "kata_agent_total_time"), 3.8);
    assert_eq!(sample(&text, "kata_agent_total_vm"), 104857600.0);
    assert_eq!(sample(&text, "kata_agent_total_rss"), 2560.0 * 4096.0);
    assert_eq!(sample(&text, "kata_agent_proc_stat{item=\"cstime\"}"), 9.0);
    assert_eq!(
        sample(&text, "kata_agent_proc_status{item=\"vmrss\"}"),
        10240.0
    );
    assert_eq!(
        sample(
            &text,
            "kata_agent_proc_status{item=\"nonvoluntary_ctxt_switches\"}"
        ),
        7.0
    );
    assert!(!text.contains("item=\"threads\""), "not a memory line");
    assert_eq!(
        sample(&text, "kata_agent_io_stat{item=\"write_bytes\"}"),
        8192.0
    );
    assert_eq!(sample(&text, "zagent_open_fds"), 3.0);
    assert_eq!(sample(&text, "zagent_containers{state=\"running\"}"), 2.0);
    assert_eq!(sample(&text, "zagent_containers{state=\"paused\"}"), 0.0);
    assert_eq!(sample(&text, "zagent_zygote_restarts_total"), 3.0);
    assert_eq!(sample(&text, "zagent_oom_events_total"), 4.0);
    assert_eq!(sample(&text, "zagent_oom_events_dropped_total"), 1.0);
    let clone = "kind=\"container\",stage=\"clone\",launcher=\"reexec\"";
    assert_eq!(
        sample(
            &text,
            &format!("zagent_launch_stage_seconds_count{{{clone}}}")
        ),
        2.0
    );
    let sum = sample(
        &text,
        &format!("zagent_launch_stage_seconds_sum{{{clone}}}"),
    );
    assert!((sum - 0.0008).abs() < 1e-9, "{sum}");
    // 300 µs is above the 200 µs bucket, within 400 µs.
    let bucket = |le: &str| {
        sample(
            &text,
            &format!("zagent_launch_stage_seconds_bucket{{{clone},le=\"{le}\"}}"),
        )
    };
    assert_eq!(bucket("0.0002"), 0.0);
    assert_eq!(bucket("0.0004"), 1.0);
    assert_eq!(bucket("+Inf"), 2.0);
    let exec = "kind=\"exec\",stage=\"jail_to_ready\",launcher=\"reexec\"";
    assert_eq!(
        sample(
            &text,
            &format!("zagent_launch_stage_seconds_count{{{exec}}}")
        ),
        1.0
    );
    assert_eq!(sample(&text, "kata_agent_scrape_count_total"), 1.0);
    let again = m.render(&snapshot(), &host(tmp.path())).unwrap();
    assert_eq!(sample(&again, "kata_agent_scrape_count_total"), 2.0);
}

#[test]
fn the_text_is_prometheus_0_0_4_with_help_and_type_once_per_family() {
    let tmp = fake_proc();
    let text = Metrics::new("zygote")
        .render(&snapshot(), &host(tmp.path()))
        .unwrap();
    assert!(!text.contains("# EOF"), "OpenMetrics, not 0.0.4");
    let mut families = std::collections::HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(
                ["gauge", "counter", "histogram"].contains(&kind),
                "{kind} is a type Go's expfmt 0.0.4 parser may not take"
            );
            assert!(families.insert(name.to_owned()), "{name} twice");
        } else if !line.starts_with("# HELP ") {
            let name = line.split(['{', ' ']).next().unwrap();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|f| families.contains(*f)))
                .unwrap_or(name);
            assert!(families.contains(family), "{line}: no TYPE before it");
        }
    }
}

#[test]
fn an_unreadable_file_leaves_out_only_its_metrics() {
    let tmp = fake_proc();
    fs::remove_file(tmp.path().join("diskstats")).unwrap();
    fs::remove_dir_all(tmp.path().join("self")).unwrap();
    fs::write(tmp.path().join("loadavg"), "garbage").unwrap();
    let text = Metrics::new("zygote")
        .render(&snapshot(), &host(tmp.path()))
        .unwrap();
    for gone in [
        "kata_guest_diskstat",
        "kata_agent_threads",
        "zagent_open_fds",
    ] {
        assert!(!text.contains(gone), "{gone}");
    }
    assert!(!text.contains("kata_guest_load"));
    sample(&text, "kata_guest_meminfo{item=\"mem_free\"}");
    sample(&text, "zagent_containers{state=\"created\"}");
}

#[test]
fn this_machines_proc_parses() {
    let text = Metrics::new("zygote")
        .render(&snapshot(), &Host::local())
        .unwrap();
    assert!(sample(&text, "kata_guest_meminfo{item=\"mem_total\"}") > 0.0);
    assert!(sample(&text, "kata_guest_cpu_time{cpu=\"0\",item=\"idle\"}") > 0.0);
    assert!(sample(&text, "kata_agent_threads") >= 1.0);
    assert!(sample(&text, "zagent_open_fds") >= 3.0);
    sample(
        &text,
        "kata_guest_netdev_stat{interface=\"lo\",item=\"recv_bytes\"}",
    );
}
