//! The bench's results as plain data: every sample of every phase, serialised as the JSON
//! file, and read back by the table and the plot. Times are nanoseconds in samples and
//! milliseconds in summaries.

use serde::{Deserialize, Serialize};

/// One lifecycle (or, for the floor, one clone-to-reap) as measured. A step the side does not
/// have (the floor has no separate create/start) is `None`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct StepSample {
    pub create_ns: Option<u64>,
    pub start_ns: Option<u64>,
    pub wait_ns: Option<u64>,
    pub remove_ns: Option<u64>,
    pub total_ns: u64,
    /// When the sample began, in ms since the bench started (for drift analysis), as
    /// measured: by the bench for the agents, stamped by the helper for the floor and runtimes.
    #[serde(default)]
    pub at_ms: f64,
    /// A helper's stamp of when the sample began (CLOCK_MONOTONIC ns), turned into `at_ms` by
    /// the bench on receipt; not in the report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mono_ns: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Create,
    Start,
    Wait,
    Remove,
    Lifecycle,
}

pub const STEPS: [Step; 5] = [
    Step::Create,
    Step::Start,
    Step::Wait,
    Step::Remove,
    Step::Lifecycle,
];

impl Step {
    pub fn name(self) -> &'static str {
        match self {
            Step::Create => "create",
            Step::Start => "start",
            Step::Wait => "wait",
            Step::Remove => "remove",
            Step::Lifecycle => "lifecycle",
        }
    }

    pub fn ns(self, s: &StepSample) -> Option<u64> {
        match self {
            Step::Create => s.create_ns,
            Step::Start => s.start_ns,
            Step::Wait => s.wait_ns,
            Step::Remove => s.remove_ns,
            Step::Lifecycle => Some(s.total_ns),
        }
    }
}

/// The step's samples in milliseconds.
pub fn step_ms(samples: &[StepSample], step: Step) -> Vec<f64> {
    samples
        .iter()
        .filter_map(|s| step.ns(s))
        .map(|ns| ns as f64 / 1e6)
        .collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SideKind {
    /// A zagent agent (zygote or reexec launcher) driven over ttrpc.
    Launcher,
    /// runc or crun driven through its CLI.
    Runtime,
    /// The bare clone + pivot_root + exec helper.
    Floor,
}

/// Sequential latency of one side: warm-up samples (excluded from every summary) and the
/// measured ones, in the order they were taken.
#[derive(Clone, Debug, Serialize)]
pub struct SideLatency {
    pub side: String,
    pub kind: SideKind,
    pub warmup: Vec<StepSample>,
    pub samples: Vec<StepSample>,
    /// Set when the side stopped early (a runtime or the floor failing); its samples so far
    /// are kept.
    pub failed: Option<String>,
}

/// One throughput window: `clients` concurrent clients doing full lifecycles for the window.
#[derive(Clone, Debug, Serialize)]
pub struct ThroughputRun {
    pub side: String,
    pub clients: usize,
    pub round: usize,
    pub completed: usize,
    pub elapsed_s: f64,
    pub per_second: f64,
    pub samples: Vec<StepSample>,
}

/// PSS and RSS of one process, from /proc/PID/smaps_rollup.
#[derive(Clone, Debug, Serialize)]
pub struct ProcMem {
    pub pid: i32,
    pub comm: String,
    pub pss_kb: u64,
    pub rss_kb: u64,
}

/// Memory of one agent with `parked` created-but-not-started containers.
#[derive(Clone, Debug, Serialize)]
pub struct MemoryResult {
    pub side: String,
    pub parked: usize,
    pub agent_before: ProcMem,
    pub agent_after: ProcMem,
    /// With the most containers the scaling phase parks (count, agent), when above `parked`.
    pub agent_at_max_parked: Option<(usize, ProcMem)>,
    /// After the scaling phase removed every parked container again.
    pub agent_after_remove: Option<ProcMem>,
    pub zygote_before: Option<ProcMem>,
    pub zygote_after: Option<ProcMem>,
    /// The container children (one per parked container), as listed by zagent.Admin.
    pub children: Vec<ProcMem>,
    /// Any other descendant of the agent that was not there before (for reexec: leftover
    /// `zagent init` helpers; expected empty).
    pub others: Vec<ProcMem>,
    /// Sum of the children's PSS / parked.
    pub children_pss_per_container_kb: f64,
    pub agent_growth_kb: i64,
    /// (everything the agent's process tree has after) - (what it had before), / parked.
    pub marginal_pss_per_container_kb: f64,
}

/// Sequential lifecycles on one agent while `parked` other containers are parked on it.
#[derive(Clone, Debug, Serialize)]
pub struct ScalingResult {
    pub side: String,
    pub parked: usize,
    pub samples: Vec<StepSample>,
}

/// Create latency of every container parked during the scaling phase, against how many were
/// already parked on that agent when it was created.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ParkingCurve {
    pub side: String,
    pub parked_before: Vec<usize>,
    pub create_ns: Vec<u64>,
}

/// The joining phase of one launcher: an exec into a running container, and a create that
/// shares its pid namespace.
#[derive(Clone, Debug, Serialize)]
pub struct JoinResult {
    pub side: String,
    /// ExecProcess round trip (returns once the process exec'd), ns.
    pub exec_ns: Vec<u64>,
    /// ExecProcess + WaitProcess, ns.
    pub exec_wait_ns: Vec<u64>,
    /// CreateContainer of a container sharing the running one's pid namespace, ns.
    pub shared_create_ns: Vec<u64>,
}

/// The seccomp phase of one launcher: lifecycles without a profile and with Docker's.
#[derive(Clone, Debug, Serialize)]
pub struct SeccompResult {
    pub side: String,
    /// Without a profile: CreateContainer round trip and whole lifecycle, ns.
    pub plain_create_ns: Vec<u64>,
    pub plain_total_ns: Vec<u64>,
    /// With Docker's default profile.
    pub docker_create_ns: Vec<u64>,
    pub docker_total_ns: Vec<u64>,
}

/// What the run was on and how it was configured.
#[derive(Clone, Debug, Serialize)]
pub struct Meta {
    pub started_utc: String,
    pub wall_s: f64,
    pub mode: String,
    pub command: Vec<String>,
    pub bench_profile: String,
    pub kernel: String,
    pub cpu: String,
    pub cpus: usize,
    pub mem_total_kb: u64,
    pub cgroups: String,
    pub zagent: String,
    pub zagent_version: String,
    /// The source the bench (and so, built together, zagent) came from: `git describe`-like
    /// commit, "+ uncommitted changes" when the tree differed, or why it is unknown.
    pub git_commit: String,
    /// The runtimes measured, with their versions.
    pub runtimes: Vec<(String, String)>,
    /// The runtimes not measured, with why (not installed, or left out by the mode).
    pub runtimes_not_measured: Vec<(String, String)>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub meta: Meta,
    pub plan: super::Plan,
    pub method: Vec<String>,
    pub latency: Vec<SideLatency>,
    pub throughput: Vec<ThroughputRun>,
    /// ExecProcess and pid-namespace-sharing create latency per launcher.
    pub join: Vec<JoinResult>,
    /// Lifecycles without and with Docker's seccomp profile per launcher.
    pub seccomp: Vec<SeccompResult>,
    pub memory: Vec<MemoryResult>,
    pub scaling: Vec<ScalingResult>,
    pub parking: Vec<ParkingCurve>,
    /// Things that went wrong without failing the run (a runtime refusing, leftovers).
    pub warnings: Vec<String>,
    /// Set when the zagent side failed and the run stopped early.
    pub error: Option<String>,
    /// Set when a signal stopped the run early (the results are partial).
    pub interrupted: bool,
}

impl Report {
    /// The sides of the throughput phase: the launchers, then runc/crun when they have windows.
    pub fn throughput_sides(&self) -> Vec<String> {
        self.latency
            .iter()
            .filter(|l| {
                l.kind == SideKind::Launcher
                    || (l.kind == SideKind::Runtime
                        && self.throughput.iter().any(|t| t.side == l.side))
            })
            .map(|l| l.side.clone())
            .collect()
    }
}
