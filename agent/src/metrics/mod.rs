//! GetMetrics: Prometheus text (format 0.0.4, what Kata's shims parse with Go's `expfmt`) of
//! the agent's own figures and the guest's, encoded with `prometheus-client`.
//!
//! Names follow Kata's agent where it has the figure: `kata_agent_*` for the agent process
//! (threads, cpu time, vm and rss, `proc_status`, `io_stat`, `proc_stat` items, the scrape
//! count) and `kata_guest_*` for the guest (`meminfo` in bytes, `cpu_time` in milliseconds per
//! cpu and "total", `diskstat`, `netdev_stat`, `vm_stat`, `load`, `tasks`). What Kata's agent
//! does not have is `zagent_*`: open fds, containers by state, zygote restarts, OOM events, and
//! the launch latency histograms by stage and launcher. Counters carry the `_total` suffix the
//! format requires (so Kata's `kata_agent_scrape_count` is `kata_agent_scrape_count_total`).
//!
//! The histograms live as long as the agent (`Metrics`); everything else is read at each
//! scrape into a registry of its own, so an interface or disk that went away is not reported
//! for ever. A /proc file that cannot be read leaves its metrics out (logged, rate-limited).

mod procfs;
#[cfg(test)]
mod tests;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::time::Duration;

/// A step of a launch whose duration is observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// CreateContainer: the protobuf spec to the launch config (validation, seccomp filter).
    Conversion,
    /// CreateContainer: the cgroup made and its limits written.
    Cgroup,
    /// The launcher's round trip until the child exists (zygote clone or re-exec'd helper).
    Clone,
    /// The child's jail, until it is parked (`ready`; for an exec: until it has exec'd).
    JailToReady,
    /// StartContainer: exec.fifo released until the container's process has exec'd.
    Start,
}

impl Stage {
    fn name(self) -> &'static str {
        match self {
            Stage::Conversion => "conversion",
            Stage::Cgroup => "cgroup",
            Stage::Clone => "clone",
            Stage::JailToReady => "jail_to_ready",
            Stage::Start => "start",
        }
    }
}

/// Which launch a stage belongs to: a container (CreateContainer, StartContainer) or an exec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Container,
    Exec,
}

type StageLabels = [(&'static str, &'static str); 3];
type FloatGauge = Gauge<f64, AtomicU64>;

/// The metrics that outlive a scrape (see the module doc).
pub struct Metrics {
    launcher: &'static str,
    scrapes: Counter,
    stages: Family<StageLabels, Histogram>,
}

/// 25 µs to about 0.8 s, doubling: a conversion takes tens of µs, a clone hundreds, a jail
/// about a millisecond, and a loaded machine ten times more.
fn stage_histogram() -> Histogram {
    Histogram::new(exponential_buckets(25e-6, 2.0, 16))
}

impl Metrics {
    pub fn new(launcher: &'static str) -> Metrics {
        let stages = Family::new_with_constructor(stage_histogram as fn() -> Histogram);
        Metrics {
            launcher,
            scrapes: Counter::default(),
            stages,
        }
    }

    /// Records one stage's duration: a read-locked lookup and the histogram's short lock.
    pub fn observe(&self, kind: Kind, stage: Stage, took: Duration) {
        let kind = match kind {
            Kind::Container => "container",
            Kind::Exec => "exec",
        };
        let labels = [
            ("kind", kind),
            ("stage", stage.name()),
            ("launcher", self.launcher),
        ];
        self.stages
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }
}

/// The agent's state at a scrape.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Containers by state name, every state listed (0 when none).
    pub containers: Vec<(&'static str, u64)>,
    pub zygote_restarts: u64,
    pub oom_events: u64,
    pub oom_dropped: u64,
}

/// Where the figures come from: the /proc root (injectable for tests) and the two system
/// constants its numbers are in.
#[derive(Debug, Clone)]
pub struct Host {
    pub proc_root: PathBuf,
    /// USER_HZ, the unit of cpu times in /proc.
    pub ticks: u64,
    pub page_size: u64,
}

impl Host {
    /// This machine's /proc.
    pub fn local() -> Host {
        use nix::unistd::{sysconf, SysconfVar};
        let var = |v, default| match sysconf(v) {
            Ok(Some(n)) if n > 0 => n as u64,
            _ => default,
        };
        Host {
            proc_root: PathBuf::from("/proc"),
            ticks: var(SysconfVar::CLK_TCK, 100),
            page_size: var(SysconfVar::PAGE_SIZE, 4096),
        }
    }
}

impl Metrics {
    /// One scrape: the text GetMetrics returns. Reads /proc: blocking, call it off the runtime.
    pub fn render(&self, snap: &Snapshot, host: &Host) -> Result<String, std::fmt::Error> {
        self.scrapes.inc();
        let mut reg = Registry::default();
        reg.register(
            "kata_agent_scrape_count",
            "Metrics scrape count",
            self.scrapes.clone(),
        );
        agent_state(&mut reg, snap);
        reg.register(
            "zagent_launch_stage_seconds",
            "Launch latency by kind, stage and launcher",
            self.stages.clone(),
        );
        agent_process(&mut reg, host);
        guest(&mut reg, host);
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &reg)?;
        Ok(out)
    }
}

fn agent_state(reg: &mut Registry, snap: &Snapshot) {
    let rows = snap
        .containers
        .iter()
        .map(|(state, n)| (vec![("state", state.to_string())], *n as f64))
        .collect();
    family(reg, "zagent_containers", "Containers by state", rows);
    counter(
        reg,
        "zagent_zygote_restarts",
        "Zygotes started after the first one died",
        snap.zygote_restarts,
    );
    counter(
        reg,
        "zagent_oom_events",
        "OOM events seen in containers' memory cgroups",
        snap.oom_events,
    );
    counter(
        reg,
        "zagent_oom_events_dropped",
        "OOM events dropped because nobody polled and the queue was full",
        snap.oom_dropped,
    );
}

/// The agent process's own figures, from `<proc>/self`.
fn agent_process(reg: &mut Registry, host: &Host) {
    let me = host.proc_root.join("self");
    if let Some(stat) = read(&me.join("stat")).and_then(|t| procfs::self_stat(&t)) {
        let ticks = host.ticks.max(1) as f64;
        gauge(
            reg,
            "kata_agent_threads",
            "Agent process threads",
            stat.threads,
        );
        let cpu = (stat.utime + stat.stime) / ticks;
        gauge(
            reg,
            "kata_agent_total_time",
            "Agent process total time",
            cpu,
        );
        gauge(
            reg,
            "kata_agent_total_vm",
            "Agent process total VM size",
            stat.vsize,
        );
        let rss = stat.rss * host.page_size as f64;
        gauge(
            reg,
            "kata_agent_total_rss",
            "Agent process total RSS size",
            rss,
        );
        let items = [
            ("utime", stat.utime),
            ("stime", stat.stime),
            ("cutime", stat.cutime),
            ("cstime", stat.cstime),
        ];
        let rows = items
            .into_iter()
            .map(|(k, v)| (vec![("item", k.to_owned())], v))
            .collect();
        family(
            reg,
            "kata_agent_proc_stat",
            "Agent process statistics",
            rows,
        );
    }
    if let Some(text) = read(&me.join("status")) {
        let rows = item_rows(procfs::status(&text));
        family(reg, "kata_agent_proc_status", "Agent process status", rows);
    }
    if let Some(text) = read(&me.join("io")) {
        let rows = item_rows(procfs::key_values(&text));
        family(
            reg,
            "kata_agent_io_stat",
            "Agent process IO statistics",
            rows,
        );
    }
    match open_fds(&me.join("fd")) {
        Ok(n) => gauge(reg, "zagent_open_fds", "Agent process open fds", n as f64),
        Err(e) => unreadable(&me.join("fd"), &e.into()),
    }
}

/// The entries of a /proc/<pid>/fd dir, less the one this listing opens.
fn open_fds(dir: &Path) -> nix::Result<usize> {
    use nix::fcntl::OFlag;
    use std::os::fd::AsRawFd;
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let mut d = nix::dir::Dir::open(dir, flags, nix::sys::stat::Mode::empty())?;
    let own = d.as_raw_fd().to_string();
    let mut n = 0;
    for entry in d.iter() {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." && name != own.as_bytes() {
            n += 1;
        }
    }
    Ok(n)
}

fn guest(reg: &mut Registry, host: &Host) {
    let root = &host.proc_root;
    if let Some(text) = read(&root.join("meminfo")) {
        let rows = item_rows(procfs::meminfo(&text));
        family(
            reg,
            "kata_guest_meminfo",
            "Statistics about memory usage in the system",
            rows,
        );
    }
    if let Some(text) = read(&root.join("stat")) {
        let rows = procfs::cpu_times(&text, host.ticks)
            .into_iter()
            .map(|(cpu, item, v)| (vec![("cpu", cpu), ("item", item.to_owned())], v))
            .collect();
        family(reg, "kata_guest_cpu_time", "Guest CPU statistics", rows);
    }
    if let Some(text) = read(&root.join("diskstats")) {
        let rows = per_device("disk", procfs::diskstats(&text));
        family(
            reg,
            "kata_guest_diskstat",
            "Disks statistics in system",
            rows,
        );
    }
    if let Some(text) = read(&root.join("net/dev")) {
        let rows = per_device("interface", procfs::netdev(&text));
        family(
            reg,
            "kata_guest_netdev_stat",
            "Guest net devices statistics",
            rows,
        );
    }
    if let Some(text) = read(&root.join("vmstat")) {
        let rows = item_rows(procfs::key_values(&text));
        family(
            reg,
            "kata_guest_vm_stat",
            "Guest virtual memory statistics",
            rows,
        );
    }
    if let Some((load, cur, max)) = read(&root.join("loadavg")).and_then(|t| procfs::loadavg(&t)) {
        let names = ["load1", "load5", "load15"];
        let rows = item_rows(names.iter().map(|n| n.to_string()).zip(load).collect());
        family(reg, "kata_guest_load", "Guest system load", rows);
        let rows = item_rows(vec![("cur".into(), cur), ("max".into(), max)]);
        family(reg, "kata_guest_tasks", "Guest system tasks", rows);
    }
}

type Labels = Vec<(&'static str, String)>;

fn item_rows(values: Vec<(String, f64)>) -> Vec<(Labels, f64)> {
    values
        .into_iter()
        .map(|(item, v)| (vec![("item", item)], v))
        .collect()
}

fn per_device(label: &'static str, values: Vec<(String, &'static str, f64)>) -> Vec<(Labels, f64)> {
    values
        .into_iter()
        .map(|(dev, item, v)| (vec![(label, dev), ("item", item.to_owned())], v))
        .collect()
}

/// A gauge family of this scrape's values; left out when it has none.
fn family(reg: &mut Registry, name: &str, help: &str, rows: Vec<(Labels, f64)>) {
    if rows.is_empty() {
        return;
    }
    let fam = Family::<Labels, FloatGauge>::default();
    for (labels, value) in rows {
        fam.get_or_create(&labels).set(value);
    }
    reg.register(name, help, fam);
}

fn gauge(reg: &mut Registry, name: &str, help: &str, value: f64) {
    let g = FloatGauge::default();
    g.set(value);
    reg.register(name, help, g);
}

fn counter(reg: &mut Registry, name: &str, help: &str, value: u64) {
    let c: Counter = Counter::default();
    c.inc_by(value);
    reg.register(name, help, c);
}

static UNREADABLE_LOGGED: crate::ratelimit::LogLimiter = crate::ratelimit::LogLimiter::new();

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .map_err(|e| unreadable(path, &e))
        .ok()
}

fn unreadable(path: &Path, e: &std::io::Error) {
    if let crate::ratelimit::Verdict::Log { suppressed } = UNREADABLE_LOGGED.check() {
        tracing::warn!(path = %path.display(), error = %e, suppressed, "metrics: left out");
    }
}
