//! The container lifecycle behind the RPCs: create (reserve, cgroup, pipes, launch, wait for
//! ready), start (release exec.fifo, learn whether execve worked), signal, wait, remove. Plain
//! async functions on `Agent`; the RPC layer only converts messages and errors.

use crate::child_sync::SyncSocket;
use crate::container::{Container, Process, State};
use crate::error::AgentError;
use crate::launcher::{LaunchRequest, Launcher};
use crate::reaper::{self, PidFd};
use crate::registry::{check_id, Registry};
use crate::{exec_fifo, io};
use jail::cgroups::{Cgroup, Layout};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use wire::zygote::Reply;
use zygote::sequence::{LaunchEvent, LaunchState};

/// How long a child may take to build its jail before create gives up on it.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long remove waits for a SIGKILLed container to be reaped.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Agent {
    pub registry: Arc<Registry>,
    pub launcher: Arc<dyn Launcher>,
    pub layout: Layout,
    pub state_dir: PathBuf,
}

impl Agent {
    /// CreateContainer. Runs to completion in its own task, so a client that goes away halfway
    /// cannot leave a half-made container behind.
    pub async fn create(
        self: &Arc<Self>,
        id: String,
        exec_id: String,
        spec: oci_spec::runtime::Spec,
    ) -> Result<(), AgentError> {
        check_id(&id)?;
        let reservation = self.registry.reserve(&id)?;
        let validated = jail::validate::validate(&id, &spec)?;
        if validated.config.process.terminal {
            return Err(AgentError::Unsupported("process.terminal".into()));
        }
        let agent = self.clone();
        let task = tokio::spawn(async move {
            let container = agent.launch(&id, exec_id, validated).await?;
            reservation.fill(container);
            Ok(())
        });
        task.await.map_err(|e| AgentError::io("create task", std::io::Error::other(e)))?
    }

    async fn launch(
        &self,
        id: &str,
        exec_id: String,
        v: jail::validate::Validated,
    ) -> Result<Container, AgentError> {
        let mut undo = Undo::default();
        let result = self.launch_steps(id, exec_id, v, &mut undo).await;
        if result.is_err() {
            undo.run().await;
        }
        result
    }

    async fn launch_steps(
        &self,
        id: &str,
        exec_id: String,
        v: jail::validate::Validated,
        undo: &mut Undo,
    ) -> Result<Container, AgentError> {
        let join_ns = open_namespaces(&v.join_namespaces)?;
        let state_dir = self.state_dir.join(id);
        std::fs::create_dir(&state_dir).map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => AgentError::Exists(id.into()),
            _ => AgentError::io(format!("create {}", state_dir.display()), e),
        })?;
        undo.state_dir = Some(state_dir.clone());
        let cgroup = self.layout.create(&v.cgroup_path, &v.resources)?;
        let mut config = v.config;
        config.cgroup_procs = cgroup.procs_files();
        undo.cgroup = Some(cgroup);
        write_debug_config(&state_dir, &config);
        let (fifo, fifo_fd) = exec_fifo::create(&state_dir).map_err(|e| AgentError::io("exec.fifo", e))?;
        let (child_stdio, stdio) = io::pipes()?;
        let (sync_ours, sync_theirs) =
            wire::channel::pair().map_err(|e| AgentError::io("sync socket", std::io::Error::other(e)))?;
        let req = LaunchRequest {
            config,
            stdin: child_stdio.stdin,
            stdout: child_stdio.stdout,
            stderr: child_stdio.stderr,
            sync: sync_theirs,
            exec_fifo: fifo_fd,
            join_ns,
        };
        let launched = self.launcher.launch(req).await?;
        let mut seq = LaunchState::Requested
            .on(LaunchEvent::Zygote(Reply::Launched { pid: launched.pid }))
            .map_err(protocol)?;
        let pidfd = PidFd(Arc::new(launched.pidfd));
        let exit = reaper::watch(pidfd.clone()).map_err(|e| AgentError::io("watch pidfd", e))?;
        let process = Process { exec_id, pid: launched.pid, pidfd, exit, stdio };
        undo.process = Some((process.pidfd.clone(), process.exit.clone()));
        let sync = SyncSocket::new(sync_ours).map_err(|e| AgentError::io("sync socket", e))?;
        seq = next_event(&sync, seq, READY_TIMEOUT).await?;
        debug_assert!(matches!(seq, LaunchState::Ready { .. }));
        let cgroup = undo.cgroup.take().expect("cgroup was created above");
        let mut container = Container::new(id.into(), process, cgroup, state_dir, fifo);
        container.sync = Some((sync, seq));
        *undo = Undo::default();
        Ok(container)
    }

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
        if let Err(e) = exec_fifo::release(&c.fifo) {
            let _ = tokio::time::timeout(Duration::from_secs(1), c.init.wait()).await;
            return Err(AgentError::State { id: id.into(), state: gone_state(&e), op: "start" });
        }
        let seq = seq.on(LaunchEvent::Release).map_err(protocol)?;
        match next_event(&sync, seq, READY_TIMEOUT).await {
            Ok(_) => {
                c.mark_started();
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
            return Err(AgentError::InvalidArgument(format!("signal {signal} is not a valid signal")));
        }
        let entry = self.registry.get(id)?;
        let c = entry.lock().await;
        let p = c.process(exec_id)?;
        if p.exit_code().is_some() {
            return Err(AgentError::Finished);
        }
        let is_init = Arc::ptr_eq(&p, &c.init);
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
        Ok(p.wait().await)
    }

    /// RemoveContainer: kill what still runs, reap it, remove the cgroup, the state dir and the
    /// registry entry.
    pub async fn remove(&self, id: &str) -> Result<(), AgentError> {
        let entry = self.registry.get(id)?;
        let c = entry.lock().await;
        kill_and_reap(&c).await?;
        remove_cgroup(c.cgroup.clone()).await?;
        if let Err(e) = std::fs::remove_dir_all(&c.state_dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                return Err(AgentError::io(format!("remove {}", c.state_dir.display()), e));
            }
        }
        self.registry.remove(id);
        Ok(())
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

async fn kill_and_reap(c: &Container) -> Result<(), AgentError> {
    if c.state() != State::Stopped {
        if let Err(e) = c.cgroup.kill_all(libc::SIGKILL) {
            tracing::warn!(id = c.id, error = %e, "killing the container's cgroup");
        }
    }
    for p in c.processes.values() {
        if p.exit_code().is_none() {
            let _ = p.pidfd.signal(libc::SIGKILL);
        }
        tokio::time::timeout(KILL_TIMEOUT, p.wait())
            .await
            .map_err(|_| AgentError::Timeout(format!("process {} of {} did not die", p.pid, c.id)))?;
    }
    Ok(())
}

/// Cgroup removal retries EBUSY for up to a second (the kernel lags behind the last exit), so
/// it runs on the blocking pool, not on a runtime worker.
async fn remove_cgroup(cg: Cgroup) -> Result<(), AgentError> {
    tokio::task::spawn_blocking(move || cg.remove())
        .await
        .map_err(|e| AgentError::io("cgroup removal task", std::io::Error::other(e)))??;
    Ok(())
}

fn gone_state(e: &exec_fifo::ReleaseError) -> &'static str {
    match e {
        exec_fifo::ReleaseError::Gone => "stopped (its process exited while parked)",
        exec_fifo::ReleaseError::Io(_) => "unreachable (exec.fifo failed)",
    }
}

fn protocol(e: zygote::sequence::SequenceError) -> AgentError {
    AgentError::io("launch protocol", std::io::Error::other(e.to_string()))
}

/// Waits for the child's next sync event (or EOF) and applies it to the launch sequence.
async fn next_event(sync: &SyncSocket, seq: LaunchState, limit: Duration) -> Result<LaunchState, AgentError> {
    let ev = tokio::time::timeout(limit, sync.next())
        .await
        .map_err(|_| AgentError::Timeout("waiting for the container process".into()))?
        .map_err(|e| AgentError::io("sync socket", std::io::Error::other(e)))?;
    let ev = match ev {
        Some(ev) => LaunchEvent::Child(ev),
        None => LaunchEvent::SyncClosed,
    };
    match seq.on(ev).map_err(protocol)? {
        LaunchState::Failed { step, errno, message } => Err(AgentError::jail(&step, errno, &message)),
        next => Ok(next),
    }
}

fn open_namespaces(paths: &[(wire::zygote::NamespaceKind, PathBuf)]) -> Result<Vec<std::os::fd::OwnedFd>, AgentError> {
    paths
        .iter()
        .map(|(kind, path)| {
            std::fs::File::open(path).map(std::os::fd::OwnedFd::from).map_err(|e| {
                AgentError::InvalidArgument(format!("{kind:?} namespace path {}: {e}", path.display()))
            })
        })
        .collect()
}

fn write_debug_config(dir: &Path, config: &wire::zygote::ContainerConfig) {
    match serde_json::to_vec_pretty(config) {
        Ok(json) => {
            if let Err(e) = std::fs::write(dir.join("config.json"), json) {
                tracing::warn!(error = %e, "writing the debug copy of the launch config");
            }
        }
        Err(e) => tracing::warn!(error = %e, "serialising the launch config"),
    }
}

/// What a failed create must take back, in reverse order of making.
#[derive(Default)]
struct Undo {
    state_dir: Option<PathBuf>,
    cgroup: Option<Cgroup>,
    process: Option<(PidFd, tokio::sync::watch::Receiver<Option<i32>>)>,
}

impl Undo {
    async fn run(self) {
        if let Some((pidfd, mut exit)) = self.process {
            let _ = pidfd.signal(libc::SIGKILL);
            let _ = tokio::time::timeout(KILL_TIMEOUT, exit.wait_for(|c| c.is_some())).await;
        }
        if let Some(cg) = self.cgroup {
            if let Err(e) = remove_cgroup(cg).await {
                tracing::error!(error = %e, "removing the cgroup of a failed create");
            }
        }
        if let Some(dir) = self.state_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
