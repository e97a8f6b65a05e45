//! One container's record: its lifecycle state with typed transitions, its processes by exec id
//! (the init process under the exec id CreateContainer gave), its cgroup and state dir.
//! Stopped is not stored: a container is Stopped once its init process has an exit status.
//! Paused (PauseContainer froze its cgroup) is a flag over Created or Running, so that
//! ResumeContainer returns it to whichever it was.

use crate::error::AgentError;
use crate::io::Stdio;
use crate::reaper::{Exit, PidFd, Watched};
use jail::cgroups::Cgroup;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Created,
    Running,
    Paused,
    Stopped,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Created => "created",
            State::Running => "running",
            State::Paused => "paused",
            State::Stopped => "stopped",
        }
    }
}

pub struct Process {
    pub exec_id: String,
    pub pid: i32,
    pub pidfd: PidFd,
    pub exit: watch::Receiver<Option<Exit>>,
    pub stdio: Stdio,
    /// Whether its exit has been logged (see `log_exit`).
    exit_logged: Arc<AtomicBool>,
}

impl Process {
    pub fn new(exec_id: String, process: Watched, stdio: Stdio) -> Process {
        Process {
            exec_id,
            pid: process.pid,
            pidfd: process.pidfd,
            exit: process.exit,
            stdio,
            exit_logged: Default::default(),
        }
    }

    /// Logs the process's exit once, at INFO, when it comes (`init`: the container's own
    /// process), from a task started once the process runs (start, exec). Remove logs it too,
    /// before its own line, if that has not yet (both wake on the same exit), so the lines
    /// of a container come as created, started, exited, removed.
    pub fn log_exit(&self, id: &str, init: bool) {
        let mut exit = self.exit.clone();
        let line = ExitLine {
            id: id.into(),
            exec_id: self.exec_id.clone(),
            pid: self.pid,
            init,
            logged: self.exit_logged.clone(),
        };
        tokio::spawn(async move {
            // Err: the reaper is gone without a word (it logged why, or the agent is ending).
            if let Ok(done) = exit.wait_for(Option::is_some).await {
                let done = *done;
                line.write(done);
            }
        });
    }

    /// The exit line now, if the process has exited and it was not logged yet.
    pub fn log_exit_now(&self, id: &str, init: bool) {
        let done = *self.exit.borrow();
        if done.is_some() {
            let line = ExitLine {
                id: id.into(),
                exec_id: self.exec_id.clone(),
                pid: self.pid,
                init,
                logged: self.exit_logged.clone(),
            };
            line.write(done);
        }
    }

    /// Whether the process is done: exited, or beyond reaping (which the reaper logged).
    pub fn finished(&self) -> bool {
        self.exit.borrow().is_some()
    }

    /// The exit code, once the process has exited and been reaped.
    pub fn exit_code(&self) -> Option<i32> {
        self.exit.borrow().and_then(Result::ok)
    }

    /// Waits for the exit code without holding any lock; an error when the reaper could not
    /// have it.
    pub async fn wait(&self) -> Result<i32, AgentError> {
        let mut rx = self.exit.clone();
        let exit = match rx.wait_for(|c| c.is_some()).await {
            Ok(exit) => *exit,
            // The reaper task always sends before it ends; a closed channel means it is gone.
            Err(_) => None,
        };
        match exit {
            Some(Ok(code)) => Ok(code),
            Some(Err(source)) => Err(AgentError::Reap {
                pid: self.pid,
                source,
            }),
            None => Err(AgentError::TaskLost("reaper")),
        }
    }
}

/// What the exit line of one process says, and whether it was written.
struct ExitLine {
    id: String,
    exec_id: String,
    pid: i32,
    init: bool,
    logged: Arc<AtomicBool>,
}

impl ExitLine {
    fn write(&self, exit: Option<Exit>) {
        if self.logged.swap(true, Ordering::SeqCst) {
            return;
        }
        let (id, pid) = (&self.id, self.pid);
        let what = if self.init { "container" } else { "exec" };
        let exec_id = (!self.init).then_some(self.exec_id.as_str());
        match exit {
            Some(Ok(status)) => tracing::info!(id, exec_id, pid, status, "{what} exited"),
            Some(Err(e)) => {
                tracing::warn!(id, exec_id, pid, error = %e, "{what} exited, status unknown")
            }
            None => tracing::warn!(id, exec_id, pid, "{what} exited, status unknown"),
        }
    }
}

pub struct Container {
    pub id: String,
    started: bool,
    /// Its cgroup is frozen (PauseContainer), until ResumeContainer or a signal to its init.
    paused: bool,
    pub init: Arc<Process>,
    pub processes: HashMap<String, Arc<Process>>,
    pub cgroup: Cgroup,
    pub state_dir: PathBuf,
    pub fifo: PathBuf,
    /// The agent's end of the init child's sync socket, read once more at start to learn
    /// whether execve succeeded.
    pub sync: Option<(crate::child_sync::SyncSocket, crate::sequence::LaunchState)>,
    /// The kinds of the container's namespaces (new or joined), which an exec joins.
    pub namespaces: Vec<wire::zygote::NamespaceKind>,
    /// Exec ids whose launch is under way (reserved, not yet in `processes`).
    pub pending_execs: std::collections::HashSet<String>,
    /// What every exec into the container takes from the container's process.
    pub exec_defaults: ExecDefaults,
    /// The watch on its memory cgroup that GetOOMEvent hears from (none without a memory
    /// controller); teardown stops it before the cgroup goes.
    pub oom: Option<crate::oom::Watch>,
    /// The spec's hooks the agent runs after create: `poststart` and `poststop`.
    pub hooks: Arc<jail::validate::RuntimeHooks>,
    /// The Kata storages the container uses; unmounted when their last user goes.
    pub storages: Vec<Arc<crate::storage::Mounted>>,
}

/// The settings an exec'd process gets from its container's process: the compiled seccomp
/// filter (as in runc), the personality (`linux.personality` is the container's; runc 1.2
/// applies it to execs too), and the umask, I/O priority and scheduler, which the Kata protocol
/// has no field for in an exec's process: the exec gets the container's, as containerd's exec
/// (a copy of the container's process with other args) and `runc exec` without process.json do.
/// None of them is left to whatever the zygote has.
#[derive(Debug, Clone, Default)]
pub struct ExecDefaults {
    pub seccomp: Option<wire::zygote::SeccompFilter>,
    pub umask: Option<u32>,
    pub personality: Option<u32>,
    pub io_priority: Option<u16>,
    pub scheduler: Option<wire::zygote::SchedAttr>,
}

impl ExecDefaults {
    pub fn of(p: &wire::zygote::ProcessConfig) -> ExecDefaults {
        ExecDefaults {
            seccomp: p.seccomp.clone(),
            umask: p.umask,
            personality: p.personality,
            io_priority: p.io_priority,
            scheduler: p.scheduler,
        }
    }

    /// `exec`, with what the container's process decides for it: the filter and personality
    /// always, the rest unless the exec names its own (possible only without the protocol).
    pub fn apply(&self, exec: wire::zygote::ProcessConfig) -> wire::zygote::ProcessConfig {
        wire::zygote::ProcessConfig {
            seccomp: self.seccomp.clone(),
            personality: self.personality,
            umask: exec.umask.or(self.umask),
            io_priority: exec.io_priority.or(self.io_priority),
            scheduler: exec.scheduler.or(self.scheduler),
            ..exec
        }
    }
}

impl Container {
    pub fn new(
        id: String,
        init: Process,
        cgroup: Cgroup,
        state_dir: PathBuf,
        fifo: PathBuf,
        namespaces: Vec<wire::zygote::NamespaceKind>,
    ) -> Self {
        let init = Arc::new(init);
        let mut processes = HashMap::new();
        processes.insert(init.exec_id.clone(), init.clone());
        Container {
            id,
            started: false,
            paused: false,
            init,
            processes,
            cgroup,
            state_dir,
            fifo,
            sync: None,
            namespaces,
            pending_execs: Default::default(),
            exec_defaults: ExecDefaults::default(),
            oom: None,
            hooks: Default::default(),
            storages: Vec::new(),
        }
    }

    pub fn state(&self) -> State {
        match (self.init.finished(), self.paused, self.started) {
            (true, _, _) => State::Stopped,
            (false, true, _) => State::Paused,
            (false, false, true) => State::Running,
            (false, false, false) => State::Created,
        }
    }

    /// Created -> Running; anything else is FAILED_PRECONDITION.
    pub fn check_startable(&self) -> Result<(), AgentError> {
        match self.state() {
            State::Created => Ok(()),
            s => Err(AgentError::State {
                id: self.id.clone(),
                state: s.name(),
                op: "start",
            }),
        }
    }

    pub fn mark_started(&mut self) {
        self.started = true;
    }

    /// Records the cgroup frozen (true) or thawed (false).
    pub fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
    }

    /// The process for `exec_id`; "" means the init process, as in Kata.
    pub fn process(&self, exec_id: &str) -> Result<Arc<Process>, AgentError> {
        if exec_id.is_empty() {
            return Ok(self.init.clone());
        }
        self.processes
            .get(exec_id)
            .cloned()
            .ok_or_else(|| AgentError::ProcessNotFound {
                id: self.id.clone(),
                exec_id: exec_id.into(),
            })
    }
}
