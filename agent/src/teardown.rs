//! Taking a container down: kill and reap every process of it, remove its cgroup and its state
//! dir. Shared by RemoveContainer, DestroySandbox, shutdown and abandoned creates, and by a
//! failed create for the cgroup alone.

use crate::container::{Container, State};
use crate::error::AgentError;
use crate::reaper::KILL_TIMEOUT;
use jail::cgroups::Cgroup;

/// Kills and reaps every process of `c`, removes its cgroup and state dir.
pub async fn container(c: &Container) -> Result<(), AgentError> {
    kill_and_reap(c).await?;
    remove_cgroup(c.cgroup.clone()).await?;
    match std::fs::remove_dir_all(&c.state_dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(AgentError::io(
                format!("remove {}", c.state_dir.display()),
                e,
            ))
        }
        _ => {}
    }
    // After the container is gone, before the remove answers (runtime spec, "Lifecycle").
    if !c.hooks.poststop.is_empty() {
        crate::hooks::run_poststop(&c.hooks).await;
    }
    Ok(())
}

async fn kill_and_reap(c: &Container) -> Result<(), AgentError> {
    if c.state() == State::Paused {
        // On cgroup v1 a frozen task does not die of SIGKILL until it is thawed. It may run
        // for a moment before the kill below; the kill rounds catch what it forks meanwhile.
        let cg = c.cgroup.clone();
        match tokio::task::spawn_blocking(move || cg.thaw()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(id = c.id, error = %e, "thawing the container's cgroup"),
            Err(e) => tracing::warn!(id = c.id, error = %e, "thawing the container's cgroup"),
        }
    }
    if c.state() != State::Stopped {
        if let Err(e) = c.cgroup.kill_all(libc::SIGKILL) {
            tracing::warn!(id = c.id, error = %e, "killing the container's cgroup");
        }
    }
    for p in c.processes.values() {
        if !p.finished() {
            let _ = p.pidfd.signal(libc::SIGKILL);
        }
        // A process whose status could not be had is as dead as we can make it (the reaper
        // logged why): go on.
        let _ = tokio::time::timeout(KILL_TIMEOUT, p.wait())
            .await
            .map_err(|_| {
                AgentError::Timeout(format!("process {} of {} did not die", p.pid, c.id))
            })?;
    }
    Ok(())
}

/// Cgroup removal retries EBUSY for up to a second (the kernel lags behind the last exit), so
/// it runs on the blocking pool, not on a runtime worker.
pub async fn remove_cgroup(cg: Cgroup) -> Result<(), AgentError> {
    tokio::task::spawn_blocking(move || cg.remove())
        .await
        .map_err(|source| AgentError::Task {
            what: "cgroup removal",
            source,
        })??;
    Ok(())
}
