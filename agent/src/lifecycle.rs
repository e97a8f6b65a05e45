//! The container lifecycle after create: start (release exec.fifo, learn whether execve
//! worked), signal, wait, remove (through `teardown`), DestroySandbox's remove-all and the
//! shutdown. Plain async functions on `Agent`; the RPC layer only converts messages
//! and errors.

use crate::agent::Agent;
use crate::child_sync::{follow, Carried};
use crate::container::State;
use crate::error::AgentError;
use crate::exec_fifo;
use crate::launch::READY_TIMEOUT;
use crate::reaper::KILL_TIMEOUT;
use crate::sequence::{LaunchEvent, LaunchState};
use std::sync::Arc;
use std::time::Duration;

impl Agent {
    /// StartContainer: release the parked child, then learn from the sync socket whether its
    /// execve worked (EOF) or failed (a `failed` event, e.g. the executable does not exist).
    pub async fn start(&self, id: &str) -> Result<(), AgentError> {
        let entry = self.registry.get(id)?;
        let mut c = entry.lock().await;
        c.check_startable()?;
        let (sync, seq) = c.sync.take().ok_or_else(|| AgentError::State {
            id: id.into(),
            state: "created",
            op: "start it twice",
        })?;
        let t_start = std::time::Instant::now();
        if let Err(e) = exec_fifo::release(&c.fifo) {
            let _ = tokio::time::timeout(Duration::from_secs(1), c.init.wait()).await;
            return Err(AgentError::State {
                id: id.into(),
                state: gone_state(&e),
                op: "start",
            });
        }
        let seq = seq.on(LaunchEvent::Release)?;
        let running = |s: &LaunchState| matches!(s, LaunchState::Running { .. });
        // Nothing is carried after `ready`: a `console` or `spawned` now is a protocol error.
        let mut carried = Carried::default();
        match follow(&sync, seq, READY_TIMEOUT, running, &mut carried).await {
            Ok(_) => {
                c.mark_started();
                let (kind, stage) = (
                    crate::metrics::Kind::Container,
                    crate::metrics::Stage::Start,
                );
                self.metrics.observe(kind, stage, t_start.elapsed());
                tracing::info!(id, pid = c.init.pid, "container started");
                c.init.log_exit(id, true);
                if !c.hooks.poststart.is_empty() {
                    crate::hooks::run_poststart(&c.hooks, c.init.pid).await;
                }
                Ok(())
            }
            Err(e) => {
                // The child exits right after reporting; reap it before answering.
                let _ = tokio::time::timeout(KILL_TIMEOUT, c.init.wait()).await;
                Err(e)
            }
        }
    }

    pub async fn signal(&self, id: &str, exec_id: &str, signal: u32) -> Result<(), AgentError> {
        if signal > 64 {
            return Err(AgentError::InvalidArgument(format!(
                "signal {signal} is not a valid signal"
            )));
        }
        let entry = self.registry.get(id)?;
        let mut c = entry.lock().await;
        let p = c.process(exec_id)?;
        if p.finished() {
            return Err(AgentError::Finished);
        }
        let is_init = Arc::ptr_eq(&p, &c.init);
        if is_init && signal != 0 && c.state() == State::Paused {
            return crate::pause::signal_paused(&mut c, signal as i32).await;
        }
        let mut killed_all = false;
        if is_init && signal == libc::SIGKILL as u32 {
            // Kill every process of the container, not only its init (as runc kill --all).
            match c.cgroup.kill_all(libc::SIGKILL) {
                Ok(()) => killed_all = true,
                Err(e) => tracing::warn!(id, error = %e, "killing the container's cgroup"),
            }
        }
        match p.pidfd.signal(signal as i32) {
            Ok(()) => Ok(()),
            // The cgroup kill got it first (and the reaper may have reaped it already).
            Err(nix::errno::Errno::ESRCH) if killed_all => Ok(()),
            Err(nix::errno::Errno::ESRCH) => Err(AgentError::Finished),
            Err(e) => Err(AgentError::io("pidfd_send_signal", e.into())),
        }
    }

    /// WaitProcess: the exit code; no lock is held while waiting.
    pub async fn wait(&self, id: &str, exec_id: &str) -> Result<i32, AgentError> {
        let entry = self.registry.get(id)?;
        let p = entry.lock().await.process(exec_id)?;
        p.wait().await
    }

    /// RemoveContainer: kill what still runs, reap it, remove the cgroup, the state dir and the
    /// registry entry.
    pub async fn remove(&self, id: &str) -> Result<(), AgentError> {
        let entry = self.registry.get(id)?;
        let mut c = entry.lock().await;
        crate::teardown::container(&mut c).await?;
        for p in c.processes.values() {
            p.log_exit_now(id, std::sync::Arc::ptr_eq(p, &c.init));
        }
        self.registry.remove(id);
        tracing::info!(id, "container removed");
        Ok(())
    }

    /// Waits for launches under way (bounded), then removes every container.
    pub async fn shutdown(&self) -> Result<(), AgentError> {
        if tokio::time::timeout(READY_TIMEOUT, self.inflight.write())
            .await
            .is_err()
        {
            tracing::error!("launches still under way at shutdown");
        }
        self.remove_all().await
    }

    /// Removes every container, going on past failures; returns the first one.
    pub async fn remove_all(&self) -> Result<(), AgentError> {
        let mut first = None;
        for (id, _) in self.registry.all() {
            if let Err(e) = self.remove(&id).await {
                tracing::error!(id, error = %e, "removing container");
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

fn gone_state(e: &exec_fifo::ReleaseError) -> &'static str {
    match e {
        exec_fifo::ReleaseError::Gone => "stopped (its process exited while parked)",
        exec_fifo::ReleaseError::Io(_) => "unreachable (exec.fifo failed)",
    }
}
