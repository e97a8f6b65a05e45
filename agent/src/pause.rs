//! PauseContainer / ResumeContainer: the container's cgroup frozen and thawed, as Kata's agent
//! does it, and what a signal to a paused container's init does (Kata's agent signals every
//! process of the cgroup and thaws it, so that a kill of a paused container takes effect).
//! Plain async functions on `Agent`; the freezing itself is `jail::cgroups`.

use crate::agent::Agent;
use crate::container::{Container, State};
use crate::error::AgentError;

impl Agent {
    /// Freezes a created or running container (Kata's agent pauses both) and returns once the
    /// kernel reports the cgroup frozen. The container lock is held meanwhile (bounded by
    /// `FREEZE_TIMEOUT`), so no start or exec slips in half way.
    pub async fn pause(&self, id: &str) -> Result<(), AgentError> {
        let entry = self.registry.get(id)?;
        let mut c = entry.lock().await;
        match c.state() {
            State::Created | State::Running => {}
            s => return Err(wrong_state(&c, s, "pause")),
        }
        let cg = c.cgroup.clone();
        blocking("freeze", move || cg.freeze()).await?;
        c.set_paused(true);
        Ok(())
    }

    /// Thaws a paused container back to created or running, whichever it was.
    pub async fn resume(&self, id: &str) -> Result<(), AgentError> {
        let entry = self.registry.get(id)?;
        let mut c = entry.lock().await;
        match c.state() {
            State::Paused => {}
            s => return Err(wrong_state(&c, s, "resume")),
        }
        thaw(&mut c).await
    }
}

/// A signal for a paused container's init: like Kata's agent, sent to every process in the
/// cgroup (they are frozen, so none forks or exits meanwhile), then the cgroup is thawed so
/// that the signal takes effect (on cgroup v1 even a SIGKILLed task stays frozen until then).
/// The container is running again afterwards, as in Kata's agent.
pub async fn signal_paused(c: &mut Container, signal: i32) -> Result<(), AgentError> {
    use nix::sys::signal::{kill, Signal};
    let sig = Signal::try_from(signal).map_err(|_| {
        AgentError::InvalidArgument(format!("signal {signal} is not a valid signal"))
    })?;
    for pid in c.cgroup.pids()? {
        match kill(nix::unistd::Pid::from_raw(pid), sig) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
            Err(e) => return Err(AgentError::io(format!("kill {pid}"), e.into())),
        }
    }
    thaw(c).await
}

/// Thaws the container's cgroup and records it so.
pub async fn thaw(c: &mut Container) -> Result<(), AgentError> {
    let cg = c.cgroup.clone();
    blocking("thaw", move || cg.thaw()).await?;
    c.set_paused(false);
    Ok(())
}

fn wrong_state(c: &Container, s: State, op: &'static str) -> AgentError {
    AgentError::State {
        id: c.id.clone(),
        state: s.name(),
        op,
    }
}

/// Freezing polls the kernel with short sleeps: on the blocking pool, not a runtime worker.
async fn blocking(
    what: &'static str,
    f: impl FnOnce() -> Result<(), jail::cgroups::CgroupError> + Send + 'static,
) -> Result<(), AgentError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|source| AgentError::Task { what, source })??;
    Ok(())
}
