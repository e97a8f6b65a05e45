//! StatsContainer and UpdateContainer: a container's cgroup figures
//! (`jail::cgroups::Cgroup::stats`, read with no container lock held) and its limits changed
//! (`Cgroup::update`), both on the blocking pool. The conversions from and into Kata's messages
//! are the RPC layer's (`rpc/stats.rs`, `rpc/mod.rs`).

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
