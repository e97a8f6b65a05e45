//! GetMetrics: the agent's state at this moment (containers by state, zygote restarts, OOM
//! event counts) handed with the /proc root to `metrics`, which reads /proc and encodes the
//! text on the blocking pool. No container lock is waited for: a container whose lock an
//! operation holds (a start, a pause) counts as `busy`, and ids reserved by creates under way
//! as `creating`.

use crate::agent::Agent;
use crate::error::AgentError;
use crate::metrics::{Host, Snapshot};
use std::sync::atomic::Ordering;

const STATES: [&str; 6] = [
    "creating", "created", "running", "paused", "stopped", "busy",
];

impl Agent {
    pub async fn metrics(&self) -> Result<String, AgentError> {
        let mut counts = STATES.map(|s| (s, 0u64));
        let mut count = |name: &str| {
            if let Some(slot) = counts.iter_mut().find(|(s, _)| *s == name) {
                slot.1 += 1;
            }
        };
        for (_, entry) in self.registry.all() {
            match entry.try_lock() {
                Ok(c) => count(c.state().name()),
                Err(_) => count("busy"),
            }
        }
        counts[0].1 = self.registry.creating() as u64;
        let snap = Snapshot {
            containers: counts.to_vec(),
            zygote_restarts: self.launcher.restarts(),
            oom_events: self.oom.seen.load(Ordering::Relaxed),
            oom_dropped: self.oom.dropped.load(Ordering::Relaxed),
        };
        let metrics = self.metrics.clone();
        let text = tokio::task::spawn_blocking(move || metrics.render(&snap, &Host::local()))
            .await
            .map_err(|source| AgentError::Task {
                what: "metrics",
                source,
            })??;
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::State;

    #[test]
    fn every_container_state_is_counted() {
        for s in [
            State::Created,
            State::Running,
            State::Paused,
            State::Stopped,
        ] {
            assert!(STATES.contains(&s.name()), "{}", s.name());
        }
    }
}
