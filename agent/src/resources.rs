//! StatsContainer and UpdateContainer: a container's cgroup figures
//! (`jail::cgroups::Cgroup::stats`, read with no container lock held) and the interfaces of
//! its network namespace (`netstats`, through its init process), and its limits changed
//! (`Cgroup::update`), both on the blocking pool. The conversions from and into Kata's messages
//! are the RPC layer's (`rpc/stats.rs`, `rpc/mod.rs`).

use crate::agent::Agent;
use crate::error::AgentError;
use crate::netstats::NetDev;
use jail::cgroups::CgroupStats;

/// Where the agent reads a container's network figures.
const PROC: &str = "/proc";

impl Agent {
    /// The figures of a created, running, paused or stopped (not yet removed) container: its
    /// cgroup's, and its network namespace's interfaces (none once its init process is gone).
    pub async fn stats(&self, id: &str) -> Result<(CgroupStats, Vec<NetDev>), AgentError> {
        let entry = self.registry.get(id)?;
        let (cg, init) = {
            let c = entry.lock().await;
            (c.cgroup.clone(), c.init.clone())
        };
        let stats = tokio::task::spawn_blocking(move || {
            let cgroup = cg.stats()?;
            // Once the file is open, a live pidfd means the pid was still the container's.
            let alive = || init.pidfd.signal(0).is_ok();
            let network = crate::netstats::read(std::path::Path::new(PROC), init.pid, alive)?;
            Ok::<_, AgentError>((cgroup, network))
        })
        .await
        .map_err(|source| AgentError::Task {
            what: "container stats",
            source,
        })??;
        Ok(stats)
    }
}

impl Agent {
    /// UpdateContainer: `res` (already checked) written into the cgroup of a container that
    /// has not stopped. The container lock is held while writing, so two updates do not
    /// interleave their files.
    pub async fn update(&self, id: &str, res: jail::cgroups::Resources) -> Result<(), AgentError> {
        let entry = self.registry.get(id)?;
        let c = entry.lock().await;
        if c.state() == crate::container::State::Stopped {
            return Err(AgentError::State {
                id: id.into(),
                state: "stopped",
                op: "update its resources",
            });
        }
        let cg = c.cgroup.clone();
        tokio::task::spawn_blocking(move || cg.update(&res))
            .await
            .map_err(|source| AgentError::Task {
                what: "cgroup update",
                source,
            })??;
        Ok(())
    }
}
