//! What a run was and how it measured: the machine, the source commit, the plan, which
//! runtimes were measured (and why the others were not), and the method text that the report,
//! the JSON and the plot carry.

use super::model::{Meta, Report};
use super::Plan;
use std::path::Path;

/// The report before anything is measured: the machine, the source, the plan, the method.
/// `measured`: the runtimes this run measures; `not_measured`: the others, with why.
pub fn new_report(
    plan: &Plan,
    zagent: &Path,
    measured: &[String],
    not_measured: &[(String, String)],
) -> Report {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let meta = Meta {
        started_utc: utc_now(),
        wall_s: 0.0,
        mode: plan.mode.into(),
        command: std::env::args().collect(),
        bench_profile: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
        .into(),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .into(),
        cpu: cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
            .unwrap_or_default(),
        cpus: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        mem_total_kb: meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
            .unwrap_or(0),
        cgroups: cgroup_layout(),
        zagent: zagent.display().to_string(),
        zagent_version: String::new(),
        git_commit: git_commit(),
        runtimes: vec![],
        runtimes_not_measured: not_measured.to_vec(),
    };
    Report {
        meta,
        plan: plan.clone(),
        method: method(plan, measured, not_measured),
        latency: vec![],
        join: vec![],
        seccomp: vec![],
        throughput: vec![],
        memory: vec![],
        scaling: vec![],
        parking: vec![],
        warnings: vec![],
        error: None,
        interrupted: false,
    }
}

fn cgroup_layout() -> String {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let types: Vec<&str> = info
        .lines()
        .filter_map(|l| l.split(" - ").nth(1)?.split(' ').next())
        .collect();
    let v1 = types.iter().filter(|t| **t == "cgroup").count();
    let v2 = types.iter().filter(|t| **t == "cgroup2").count();
    match (v1, v2) {
        (0, _) => "cgroup v2 only".into(),
        (n, 0) => format!("cgroup v1 ({n} hierarchies)"),
        (n, _) => format!("hybrid: cgroup v1 ({n} hierarchies) + a cgroup2 mount; zagent uses v1 (and runc/crun, when measured, see v1 only)"),
    }
}

/// Seconds since the epoch as an RFC 3339 UTC time (civil-from-days, no date crate).
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = ((secs / 86400) as i64, secs % 86400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// How each phase measures, as the text, JSON and plot state it. runc and crun are described
/// only when this run measures them; otherwise one line says that, and why, instead.
fn method(plan: &Plan, measured: &[String], not_measured: &[(String, String)]) -> Vec<String> {
    let levels: Vec<String> = plan.parked_levels.iter().map(|l| l.to_string()).collect();
    let clients: Vec<String> = plan.clients.iter().map(|c| c.to_string()).collect();
    let rts = measured.join("/");
    let mut lines = vec![
        "Workload: /bin/true in the busybox bundle of `zagent-ctl bundle` with its default spec (new pid, net, ipc, uts, mount and cgroup namespaces; read-only root; /proc, /dev tmpfs, devpts, shm, mqueue, sysfs; masked and read-only paths; 3 capabilities; rlimit; no_new_privs).".into(),
        "zagent: one agent per launcher started by the bench (own socket and state dir), driven over ttrpc from one single-threaded tokio client, as a shim: CreateContainer, StartContainer (returns once the process exec'd), WaitProcess (status must be 0), RemoveContainer. A step is one RPC round trip; lifecycle = start of create to end of remove.".into(),
        "floor: a single-threaded helper: clone3(NEWNS|NEWPID|NEWUTS|NEWIPC|NEWNET), the child joins a pre-made cgroup in every v1 hierarchy, unshares its cgroup ns, makes / rslave, binds the rootfs onto itself, pivot_root(.,.), detaches the old root, execs /bin/true; the parent waits. No other mounts, devices, capabilities or cgroup creation: the least a launcher must do. One sample = clone to reap (compare with lifecycle).".into(),
        format!("Sequential latency: {} warm-up lifecycles per side excluded (kept in the JSON), then {} measured per side; sides take turns in batches of {}, the first side rotating each round, so drift hits all alike.", plan.warmup, plan.samples, plan.batch),
        "Percentiles are nearest-rank over every measured sample; nothing is dropped as an outlier. Ratios divide the same percentile of two sides.".into(),
        format!("Throughput: with {} concurrent clients (each its own ttrpc connection, lifecycles back to back), each launcher{} for {} window(s) of {:.1} s, sides alternating with rotating order; rate = lifecycles completed / time until the last one finished. Agents are warm from the latency phase.{}", clients.join(", "), if measured.is_empty() { String::new() } else { format!(" and {rts}") }, plan.rounds, plan.window_s, if measured.is_empty() { String::new() } else { format!(" {rts}: one runtime helper process per client (as in the latency phase, sharing one --root, ids unique per helper), each doing CLI lifecycles back to back for the window.") }),
        format!("Memory: with {} containers created but not started on each agent: PSS (/proc/PID/smaps_rollup) of every container child (pids from zagent.Admin ListContainers, checked to be the agent's children), the agent's and zygote's PSS before and after; marginal = (PSS of the agent's whole process tree after - before) / N. Kernel memory (page tables, namespaces, cgroups) is not in PSS.", plan.memory_parked),
        format!("Joining: one running container (/bin/sleep) per launcher; then, launchers taking turns in batches of {}, {} times each: ExecProcess of /bin/true into it (returns once the process exec'd) and its WaitProcess, and a CreateContainer whose spec joins that container's pid namespace by path, then its RemoveContainer (not timed).", plan.batch, plan.samples.min(200)),
        format!("Seccomp: per launcher, {} pairs of full lifecycles (after {} warm-up pairs), one without a profile and one whose spec carries Docker's default seccomp profile (tests/data/seccomp), alternating; launchers taking turns in batches of {}. The agent compiles a profile once and keeps the filter, so this is the cost of carrying and loading it.", plan.samples.min(200), super::seccomp::WARMUP, plan.batch),
        format!("Scaling: containers are parked on every agent at once (turns of 50) up to each level ({}); at each level {} lifecycles per launcher are measured, launchers taking turns. The create latency of every parked container is in the JSON (parking).{}", levels.join(", "), plan.scaling_samples, if plan.mode == "quick" { " Quick mode: smaller levels." } else { "" }),
        "Timestamps (at_ms in the JSON): each sample's start on the run's time line, as measured: by the bench for the agents, and stamped on CLOCK_MONOTONIC by the floor's and runtimes' helpers themselves.".into(),
    ];
    if !measured.is_empty() {
        lines.insert(2, format!("{rts}: `RT --root R create --bundle B --pid-file F ID` (stdio /dev/null), `RT start ID`, waitpid of the container process (the helper is a child subreaper), `RT delete ID`; every step includes the CLI's own process start. Run from a helper in a private mount namespace with the cgroup2 mount detached, so they see plain cgroup v1; cgroup named after the id."));
    }
    if !not_measured.is_empty() {
        let why: Vec<String> = not_measured
            .iter()
            .map(|(n, w)| format!("{n} ({w})"))
            .collect();
        lines.insert(
            2,
            format!(
                "Not measured: {}; no figure of this run stands for them.",
                why.join(", ")
            ),
        );
    }
    lines
}

/// The commit of the source tree the bench was built from, with "+ uncommitted changes" when
/// the tree differed from it, or why it is unknown (not a checkout, no git).
fn git_commit() -> String {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(&src)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let Some(head) = git(&["rev-parse", "HEAD"]) else {
        return format!("unknown (no git checkout at {})", src.display());
    };
    match git(&["status", "--porcelain", "--untracked-files=no"]) {
        Some(changes) if changes.is_empty() => head,
        Some(_) => format!("{head} + uncommitted changes"),
        None => format!("{head} (status unknown)"),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::bench::Options;

    /// An empty report of a quick plan, for other modules' tests.
    pub fn report() -> Report {
        new_report(&plan(), Path::new("/zagent"), &[], &[])
    }

    fn plan() -> Plan {
        Plan::new(&Options {
            quick: true,
            launchers: vec!["zygote".into()],
            addrs: vec![],
            runtimes: None,
            out: "/nonexistent".into(),
            zagent: None,
            zagent_ctl: None,
            samples: None,
        })
    }

    #[test]
    fn runtimes_not_measured_are_said_so_and_not_described() {
        let missing = [
            ("runc".to_string(), "not installed".to_string()),
            ("crun".to_string(), "not installed".to_string()),
        ];
        let r = new_report(&plan(), Path::new("/zagent"), &[], &missing);
        let method = r.method.join("\n");
        assert!(method.contains("Not measured: runc (not installed), crun (not installed)"));
        assert!(!method.contains("RT --root"), "{method}");
        assert!(!method.contains("runc/crun"), "{method}");
        let text = crate::bench::report::render(&r);
        assert!(
            text.contains("runc: not measured (not installed)"),
            "{text}"
        );
        let svg = crate::bench::plot::render(&r);
        assert!(svg.contains("crun: not measured (not installed)"));
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains(r#""runtimes_not_measured":[["runc","not installed"]"#));
        assert!(!r.meta.git_commit.is_empty());
    }

    #[test]
    fn measured_runtimes_are_described() {
        let missing = [("crun".to_string(), "not installed".to_string())];
        let r = new_report(&plan(), Path::new("/zagent"), &["runc".into()], &missing);
        let method = r.method.join("\n");
        assert!(method.contains("runc: `RT --root R create"), "{method}");
        assert!(
            method.contains("Not measured: crun (not installed)"),
            "{method}"
        );
    }
}
