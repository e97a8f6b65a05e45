//! `Agent`: the state every RPC works on (the registry of containers, the launcher, the cgroup
//! layout, the state dir) and nothing else. Its operations live beside the RPC they serve, each
//! depending on this file and never the other way: `create` (CreateContainer), `exec`
//! (ExecProcess), `lifecycle` (StartContainer, SignalProcess, WaitProcess, RemoveContainer and
//! the teardown shared by remove, DestroySandbox, shutdown and abandoned creates).

use crate::launcher::Launcher;
use crate::registry::Registry;
use jail::cgroups::Layout;
use std::path::PathBuf;
use std::sync::Arc;

pub struct Agent {
    pub registry: Arc<Registry>,
    pub launcher: Arc<dyn Launcher>,
    pub layout: Layout,
    pub state_dir: PathBuf,
    /// Test hook (hidden agent flag): exec'd processes sleep this long before execve.
    pub test_exec_pause_ms: u32,
    /// Held (shared) by every launch task; shutdown takes it exclusively, so it waits for
    /// launches under way to finish or be taken back before removing what is left.
    pub inflight: Arc<tokio::sync::RwLock<()>>,
    /// Compiled seccomp filters of the profiles seen lately.
    pub seccomp_filters: jail::seccomp::FilterCache,
    /// OOM events of every container, for GetOOMEvent.
    pub oom: Arc<crate::oom::OomEvents>,
    /// The launch latency histograms and scrape count GetMetrics reports.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The Kata storages mounted for containers and the sandbox.
    pub storages: crate::storage::Storages,
    /// Our sealed binary, for the helpers the agent spawns besides the launcher's
    /// (`pidns_init`).
    pub exe: Arc<std::os::fd::OwnedFd>,
}
