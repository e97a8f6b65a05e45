//! StatsContainer: a container's cgroup figures (`jail::cgroups::Cgroup::stats`), read on the
//! blocking pool with no container lock held. The conversion into Kata's message is the RPC
//! layer's (`rpc/stats.rs`).

use crate::agent::Agent;
use crate::error::AgentError;
use jail::cgroups::CgroupStats;

impl Agent {
    /// The figures of a created, running, paused or stopped (not yet removed) container.
    pub async fn stats(&self, id: &str) -> Result<CgroupStats, AgentError> {
        let entry = self.registry.get(id)?;
        let cg = entry.lock().await.cgroup.clone();
        let stats = tokio::task::spawn_blocking(move || cg.stats())
            .await
            .map_err(|source| AgentError::Task {
                what: "cgroup stats",
                source,
            })??;
        Ok(stats)
    }
}
