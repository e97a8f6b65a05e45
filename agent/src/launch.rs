//! One launch, of a container child (CreateContainer) or of a process joining a running
//! container (ExecProcess): the same path for both. Make the process's pipes and sync socket,
//! hand the request to the launcher, watch the cloned pid at once, then follow the child's sync
//! events through the launch sequence until it is parked (`ready`, a container) or has exec'd
//! (`running`, an exec). On failure every process the launch made is killed and reaped before
//! the error is returned; what the caller made around the launch (state dir, cgroup) is the
//! caller's to take back.

use crate::child_sync::{follow, watched, Carried, SyncSocket};
use crate::error::AgentError;
use crate::launcher::{self, LaunchError, LaunchRequest, Launcher};
use crate::reaper::Watched;
use crate::sequence::{Kind, LaunchEvent, LaunchState};
use crate::{exec_fifo, io};
use jail::validate::RuntimeHooks;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::{Duration, Instant};
use wire::zygote::{ContainerConfig, ExecConfig, Reply, Request, ToChild};

/// How long a child may take to build its jail (or join a container and exec) before the
/// launch gives up on it.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// What to launch, borrowed from the caller: a fresh request (new pipes, sync socket and fd
/// copies) is built from it for each attempt, since an attempt consumes its fds.
pub enum Job<'a> {
    Container {
        config: &'a ContainerConfig,
        fifo: &'a Path,
        /// One fd per `config.namespaces` entry with `join: true`, in that order.
        join_ns: &'a [OwnedFd],
        /// Run when the child stops for them (`prestart`, `createRuntime`).
        hooks: &'a RuntimeHooks,
    },
    Exec {
        config: &'a ExecConfig,
        init_pidfd: &'a OwnedFd,
    },
}

impl Job<'_> {
    fn kind(&self) -> Kind {
        match self {
            Job::Container { .. } => Kind::Container,
            Job::Exec { .. } => Kind::Exec,
        }
    }

    /// A container is followed until it parks; an exec until it has exec'd.
    fn done(&self, state: &LaunchState) -> bool {
        match self {
            Job::Container { .. } => matches!(state, LaunchState::Ready { .. }),
            Job::Exec { .. } => matches!(state, LaunchState::Running { .. }),
        }
    }

    /// A create is retried once on the zygote's successor when the zygote died before cloning
    /// anything; an exec never was, and this restructuring keeps it so.
    fn attempts(&self) -> u32 {
        match self {
            Job::Container { .. } => 2,
            Job::Exec { .. } => 1,
        }
    }

    /// The frame and its fds in the protocol's order: stdio, sync, then the kind's own.
    fn request(&self, child: io::ChildStdio, sync: OwnedFd) -> Result<LaunchRequest, AgentError> {
        let mut fds = vec![child.stdin, child.stdout, child.stderr, sync];
        let dup =
            |fd: &OwnedFd, what: &'static str| fd.try_clone().map_err(|e| AgentError::io(what, e));
        let frame = match self {
            Job::Container {
                config,
                fifo,
                join_ns,
                ..
            } => {
                let fifo =
                    exec_fifo::open_for_child(fifo).map_err(|e| AgentError::io("exec.fifo", e))?;
                fds.push(fifo);
                for fd in join_ns.iter() {
                    fds.push(dup(fd, "dup namespace fd")?);
                }
                Request::Launch(Box::new((*config).clone()))
            }
            Job::Exec { config, init_pidfd } => {
                fds.push(dup(init_pidfd, "dup pidfd")?);
                Request::Exec(Box::new((*config).clone()))
            }
        };
        Ok(LaunchRequest { frame, fds })
    }
}

/// A launched process that got as far as its job asked: parked, or exec'd.
pub struct LaunchedProcess {
    /// The process that goes on: the cloned child, or the last one spawned (inside a user
    /// namespace, inside a joined pid namespace).
    pub process: Watched,
    pub stdio: io::Stdio,
    pub sync: SyncSocket,
    pub seq: LaunchState,
}

/// Launches `job` through `launcher` and follows it to its goal (see the module doc).
pub async fn launch(launcher: &dyn Launcher, job: Job<'_>) -> Result<LaunchedProcess, AgentError> {
    let t0 = Instant::now();
    let (launched, sync, stdio) = request(launcher, &job).await?;
    let t_launched = t0.elapsed();
    let cloned = watched(launched.pid, launched.pidfd)?;
    let mut carried = Carried::default();
    let followed = follow_to_goal(&job, &sync, launched.pid, &mut carried).await;
    // The process that goes on, which replaced the cloned one in a joined pid namespace.
    let (process, mut others) = match carried.spawned.take() {
        Some(spawned) => (spawned, vec![cloned]),
        None => (cloned, Vec::new()),
    };
    others.append(&mut carried.replaced);
    let ready = followed.and_then(|seq| {
        let stdio = match carried.console.take() {
            Some(master) => stdio.into_console(master)?,
            None => stdio,
        };
        Ok((seq, stdio))
    });
    let (seq, stdio) = match ready {
        Ok(ready) => ready,
        Err(e) => {
            process.kill().await;
            for other in others {
                other.kill().await;
            }
            return Err(e);
        }
    };
    // Per-stage timings for profiling (microseconds since the launch began).
    tracing::debug!(
        kind = ?job.kind(),
        launched = t_launched.as_micros() as u64,
        done = t0.elapsed().as_micros() as u64,
        "launch stages"
    );
    Ok(LaunchedProcess {
        process,
        stdio,
        sync,
        seq,
    })
}

/// Follows the child to the job's goal; a container that stops for the runtime's hooks gets
/// them run here (a failure ends the launch, which kills the child) and is told to proceed.
async fn follow_to_goal(
    job: &Job<'_>,
    sync: &SyncSocket,
    pid: i32,
    carried: &mut Carried,
) -> Result<LaunchState, AgentError> {
    let mut seq =
        LaunchState::Requested(job.kind()).on(LaunchEvent::Zygote(Reply::Launched { pid }))?;
    loop {
        let stop = |s: &LaunchState| job.done(s) || s.hooks_due();
        seq = follow(sync, seq, READY_TIMEOUT, stop, carried).await?;
        let (true, Job::Container { hooks, .. }) = (seq.hooks_due(), job) else {
            return Ok(seq); // the sequence only lets a container stop for hooks
        };
        crate::hooks::run_create(hooks, seq.pid().unwrap_or(pid)).await?;
        sync.send(&ToChild::Proceed)
            .map_err(|source| AgentError::Channel {
                what: "sync socket",
                source,
            })?;
        seq = seq.on(LaunchEvent::HooksRan)?;
    }
}

/// Asks the launcher for the child, with fresh pipes, sync socket and fds. If the zygote died
/// before it cloned anything for us (no child announced itself), the request never reached it:
/// a retry on its successor is safe, where the job allows one. If a child was cloned, it is
/// killed and reaped, and the launch fails.
async fn request(
    launcher: &dyn Launcher,
    job: &Job<'_>,
) -> Result<(launcher::Launched, SyncSocket, io::Stdio), AgentError> {
    let attempts = job.attempts();
    for attempt in 1.. {
        let (child_stdio, stdio) = io::pipes()?;
        let (sync_ours, sync_theirs) =
            wire::channel::pair().map_err(|source| AgentError::Channel {
                what: "sync socket",
                source,
            })?;
        let sync = SyncSocket::new(sync_ours).map_err(|e| AgentError::io("sync socket", e))?;
        let req = job.request(child_stdio, sync_theirs)?;
        // The request (and with it our copies of the child's ends) is gone after this.
        match launcher.launch(req).await {
            Ok(launched) => return Ok((launched, sync, stdio)),
            Err(LaunchError::ZygoteDied) if attempt < attempts => {
                if reap_orphan(&sync).await {
                    return Err(LaunchError::ZygoteDied.into());
                }
                tracing::warn!(
                    "the zygote died before handling a launch; retrying on its successor"
                );
            }
            Err(e) => {
                if matches!(e, LaunchError::ZygoteDied) {
                    reap_orphan(&sync).await;
                }
                return Err(e.into());
            }
        }
    }
    unreachable!("the loop returns")
}

/// The zygote died after our request reached it: a child may exist that nobody told us about.
/// It announces itself with its own pidfd first thing, so kill and reap it through that; EOF
/// means no child holds the sync socket (every copy of its end is closed by now).
/// Returns whether a child may exist (it did, and was killed; or we could not tell).
async fn reap_orphan(sync: &SyncSocket) -> bool {
    // Every process that announces itself (`started`, and a `spawned` one if it got that far)
    // is killed, until EOF says no process holds the other end any more.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut found = false;
    loop {
        use wire::zygote::ChildEvent;
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

#[cfg(test)]
#[path = "launch_tests.rs"]
mod tests;
