//! CreateContainer's path: reserve the id, validate, then (in a task of its own, so a client
//! that goes away halfway cannot leave half a container) make the state dir, cgroup, fifo,
//! pipes and sync socket, launch, and follow the child's sync events to `ready`. The finished
//! container is handed back to the RPC through a oneshot: if the RPC is gone by then (client
//! disconnected, or its deadline passed and ttrpc dropped the handler), the task takes the
//! whole container down again and only then frees the id.

use crate::child_sync::SyncSocket;
use crate::container::{Container, Process};
use crate::error::AgentError;
use crate::launcher::{LaunchError, LaunchRequest, Launched};
use crate::lifecycle::{remove_cgroup, Agent, KILL_TIMEOUT};
use crate::reaper::{self, PidFd};
use crate::{exec_fifo, io};
use jail::cgroups::Cgroup;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use wire::zygote::{ChildEvent, Reply};
use zygote::sequence::{Kind, LaunchEvent, LaunchState};

/// How long a child may take to build its jail before create gives up on it.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

impl Agent {
    pub async fn create(
        self: &Arc<Self>,
        id: String,
        exec_id: String,
        spec: oci_spec::runtime::Spec,
    ) -> Result<(), AgentError> {
        jail::validate::check_id(&id)?;
        let reservation = self.registry.reserve(&id)?;
        let validated = jail::validate::validate_with(&id, &spec, &self.seccomp_filters)?;
        if validated.config.process.terminal && !self.terminals {
            return Err(AgentError::Unsupported("process.terminal".into()));
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let agent = self.clone();
        let inflight = self.inflight.clone().read_owned().await;
        tokio::spawn(async move {
            let _inflight = inflight;
            let result = agent.launch(&id, exec_id, validated).await;
            // On failure the reservation is dropped here, after `launch` undid everything.
            if let Err(Ok((reservation, container))) = tx.send(result.map(|c| (reservation, c))) {
                tracing::warn!(id, "create abandoned by its client; removing the container");
                if let Err(e) = agent.teardown(&container).await {
                    tracing::error!(id, error = %e, "removing an abandoned container");
                }
                drop(reservation); // frees the id only once everything is gone
            }
        });
        let (reservation, container) = rx
            .await
            .map_err(|e| AgentError::io("create task", std::io::Error::other(e)))??;
        // No await between here and the fill: the handler cannot be dropped in between.
        reservation.fill(container);
        Ok(())
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

    /// Asks the launcher for the child, with fresh pipes, sync socket and exec.fifo fd. If the
    /// zygote died before it cloned anything for us (no child announced itself), the request
    /// never reached it: one retry on its successor is safe. If a child was cloned, it is
    /// killed and reaped, and the create fails.
    async fn clone_child(
        &self,
        config: &wire::zygote::ContainerConfig,
        fifo: &Path,
        join_ns: &[OwnedFd],
    ) -> Result<(Launched, SyncSocket, io::Stdio), AgentError> {
        for attempt in 1.. {
            let (child_stdio, stdio) = io::pipes()?;
            let (sync_ours, sync_theirs) = wire::channel::pair()
                .map_err(|e| AgentError::io("sync socket", std::io::Error::other(e)))?;
            let sync = SyncSocket::new(sync_ours).map_err(|e| AgentError::io("sync socket", e))?;
            let dup = |fd: &OwnedFd| {
                fd.try_clone()
                    .map_err(|e| AgentError::io("dup namespace fd", e))
            };
            let req = LaunchRequest {
                config: config.clone(),
                stdin: child_stdio.stdin,
                stdout: child_stdio.stdout,
                stderr: child_stdio.stderr,
                sync: sync_theirs,
                exec_fifo: exec_fifo::open_for_child(fifo)
                    .map_err(|e| AgentError::io("exec.fifo", e))?,
                join_ns: join_ns.iter().map(dup).collect::<Result<_, _>>()?,
            };
            // The request (and with it our copies of the child's ends) is gone after this.
            match self.launcher.launch(req).await {
                Ok(launched) => return Ok((launched, sync, stdio)),
                Err(e) if matches!(e, LaunchError::ZygoteDied) && attempt == 1 => {
                    if reap_orphan(&sync, &e).await {
                        return Err(e.into());
                    }
                    tracing::warn!(
                        "the zygote died before handling a launch; retrying on its successor"
                    );
                }
                Err(e) => {
                    reap_orphan(&sync, &e).await;
                    return Err(e.into());
                }
            }
        }
        unreachable!("the loop returns")
    }

    async fn launch_steps(
        &self,
        id: &str,
        exec_id: String,
        v: jail::validate::Validated,
        undo: &mut Undo,
    ) -> Result<Container, AgentError> {
        let t0 = std::time::Instant::now();
        let join_ns = crate::nsfile::open_all(&v.join_namespaces).await?;
        let state_dir = self.state_dir.join(id);
        std::fs::create_dir(&state_dir).map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => AgentError::Exists(id.into()),
            _ => AgentError::io(format!("create {}", state_dir.display()), e),
        })?;
        undo.state_dir = Some(state_dir.clone());
        let mut config = v.config;
        config.cgroup_procs = self.layout.join_files(&v.cgroup_path)?;
        undo.cgroup = Some(self.layout.create(&v.cgroup_path, &v.resources)?);
        // Once the cgroup is ours (never before: it could be another's that `create` refused)
        // and before any process exists, so that a restart after our death finds it.
        crate::recovery::write_record(&state_dir, id, &v.cgroup_path)
            .map_err(|e| AgentError::io("writing the recovery record", e))?;
        write_debug_config(&state_dir, &config);
        let namespaces = config.namespaces.iter().map(|n| n.kind).collect();
        let seccomp = config.process.seccomp.clone();
        let fifo = exec_fifo::create(&state_dir).map_err(|e| AgentError::io("exec.fifo", e))?;
        let t_prepared = t0.elapsed();
        let (launched, sync, stdio) = self.clone_child(&config, &fifo, &join_ns).await?;
        let t_launched = t0.elapsed();
        let seq = LaunchState::Requested(Kind::Container)
            .on(LaunchEvent::Zygote(Reply::Launched { pid: launched.pid }))
            .map_err(protocol)?;
        let cloned = Watched::new(launched.pid, launched.pidfd)?;
        undo.processes.push(cloned.clone());
        let mut carried = Carried::default();
        let ready = |s: &LaunchState| matches!(s, LaunchState::Ready { .. });
        let followed = follow(&sync, seq, READY_TIMEOUT, ready, &mut carried).await;
        // The process that goes on, which replaced the cloned one in a joined pid namespace.
        let child = match carried.spawned.take() {
            Some(spawned) => {
                undo.processes.push(spawned.clone());
                spawned
            }
            None => cloned,
        };
        let seq = followed?;
        // Per-stage timings for profiling (microseconds since the launch began).
        tracing::debug!(
            id,
            prepared = t_prepared.as_micros() as u64,
            launched = t_launched.as_micros() as u64,
            ready = t0.elapsed().as_micros() as u64,
            "create stages"
        );
        let stdio = match carried.console {
            Some(master) => stdio.into_console(master)?,
            None => stdio,
        };
        let process = Process {
            exec_id,
            pid: child.pid,
            pidfd: child.pidfd,
            exit: child.exit,
            stdio,
        };
        let cgroup = undo.cgroup.take().expect("cgroup was created above");
        let mut container = Container::new(id.into(), process, cgroup, state_dir, fifo, namespaces);
        container.sync = Some((sync, seq));
        container.seccomp = seccomp;
        *undo = Undo::default();
        Ok(container)
    }
}

/// A launched process whose exit the reaper is already watching.
#[derive(Clone)]
pub struct Watched {
    pub pid: i32,
    pub pidfd: PidFd,
    pub exit: tokio::sync::watch::Receiver<Option<i32>>,
}

impl Watched {
    pub fn new(pid: i32, pidfd: OwnedFd) -> Result<Watched, AgentError> {
        let pidfd = PidFd(Arc::new(pidfd));
        let exit = reaper::watch(pidfd.clone()).map_err(|e| AgentError::io("watch pidfd", e))?;
        Ok(Watched { pid, pidfd, exit })
    }

    /// SIGKILL, then wait (bounded) until the reaper has it.
    pub async fn kill(mut self) {
        let _ = self.pidfd.signal(libc::SIGKILL);
        let _ = tokio::time::timeout(KILL_TIMEOUT, self.exit.wait_for(|c| c.is_some())).await;
    }
}

/// What the child's sync events carried besides the state: the pty master of a `console`
/// event, and the process of a `spawned` one (already watched, so it is reaped whatever
/// happens next). Kept by the caller even when `follow` fails, so that it can kill it.
#[derive(Default)]
pub struct Carried {
    pub console: Option<OwnedFd>,
    pub spawned: Option<Watched>,
}

/// Follows the child's sync events from `seq` until `done(state)` holds, collecting what they
/// carry into `carried`. A `failed` event or an early EOF is the error.
pub async fn follow(
    sync: &SyncSocket,
    mut seq: LaunchState,
    limit: Duration,
    done: impl Fn(&LaunchState) -> bool,
    carried: &mut Carried,
) -> Result<LaunchState, AgentError> {
    let deadline = tokio::time::Instant::now() + limit;
    while !done(&seq) {
        let ev = tokio::time::timeout_at(deadline, sync.next())
            .await
            .map_err(|_| AgentError::Timeout("waiting for the container process".into()))?
            .map_err(|e| AgentError::io("sync socket", std::io::Error::other(e)))?;
        let ev = match ev {
            Some((ChildEvent::Console, fd)) => {
                carried.console = fd;
                LaunchEvent::Child(ChildEvent::Console)
            }
            Some((ChildEvent::Spawned { pid }, Some(fd))) => {
                // Watched before the state machine judges the event: whatever it says, the
                // process exists and is ours to reap.
                carried.spawned = Some(Watched::new(pid, fd)?);
                LaunchEvent::Child(ChildEvent::Spawned { pid })
            }
            Some((ev, _)) => LaunchEvent::Child(ev),
            None => LaunchEvent::SyncClosed,
        };
        seq = match seq.on(ev).map_err(protocol)? {
            LaunchState::Failed {
                step,
                errno,
                message,
            } => return Err(AgentError::jail(&step, errno, &message)),
            next => next,
        };
    }
    Ok(seq)
}

/// The zygote died after our request reached it: a child may exist that nobody told us about.
/// It announces itself with its own pidfd first thing, so kill and reap it through that; EOF
/// means no child holds the sync socket (every copy of its end is closed by now).
/// Returns whether a child may exist (it did, and was killed; or we could not tell).
pub async fn reap_orphan(sync: &SyncSocket, e: &LaunchError) -> bool {
    if !matches!(e, LaunchError::ZygoteDied) {
        return false;
    }
    // Every process that announces itself (`started`, and a `spawned` one if it got that far)
    // is killed, until EOF says no process holds the other end any more.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut found = false;
    loop {
        let fd = match tokio::time::timeout_at(deadline, sync.next()).await {
            Ok(Ok(None)) => return found, // EOF: no process holds the other end
            Ok(Ok(Some((ChildEvent::Started | ChildEvent::Spawned { .. }, Some(fd))))) => fd,
            Ok(Ok(Some(_))) => continue,
            _ => return true,
        };
        found = true;
        match Watched::new(0, fd) {
            Ok(orphan) => {
                orphan.kill().await;
                tracing::warn!("killed and reaped a child orphaned by the zygote's death");
            }
            Err(e) => tracing::error!(error = %e, "watching an orphaned child"),
        }
    }
}

pub fn protocol(e: zygote::sequence::SequenceError) -> AgentError {
    AgentError::io("launch protocol", std::io::Error::other(e.to_string()))
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
    /// The cloned child and, if it spawned one, the process inside a joined pid namespace.
    processes: Vec<Watched>,
}

impl Undo {
    async fn run(self) {
        for process in self.processes {
            process.kill().await;
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
