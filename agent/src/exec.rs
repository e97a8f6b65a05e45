//! ExecProcess: a new process in a running container, launched like a container child (through
//! the zygote, or a re-exec'd `zagent init`) but joining the container's namespaces through its
//! init's pidfd and its cgroup instead of building a jail. The exec id is reserved under the
//! container's lock and the launch runs without it, so other RPCs on the container go on.

use crate::agent::Agent;
use crate::container::{Process, State};
use crate::error::AgentError;
use crate::launch::{self, Job};
use crate::metrics::{Kind, Stage};
use std::sync::Arc;
use wire::zygote::{ExecConfig, NamespaceKind};

impl Agent {
    /// ExecProcess. Runs to completion in its own task, so a client that goes away halfway
    /// cannot leave a launched process unregistered or its exec id reserved forever.
    pub async fn exec(
        self: &Arc<Self>,
        id: &str,
        exec_id: &str,
        process: &oci_spec::runtime::Process,
    ) -> Result<(), AgentError> {
        let (agent, id, exec_id, process) = (
            self.clone(),
            id.to_owned(),
            exec_id.to_owned(),
            process.clone(),
        );
        let inflight = self.inflight.clone().read_owned().await;
        let task = tokio::spawn(async move {
            let _inflight = inflight;
            agent.exec_steps(&id, &exec_id, &process).await
        });
        task.await.map_err(|source| AgentError::Task {
            what: "exec",
            source,
        })?
    }

    async fn exec_steps(
        &self,
        id: &str,
        exec_id: &str,
        process: &oci_spec::runtime::Process,
    ) -> Result<(), AgentError> {
        crate::registry::check_exec_id(exec_id)?;
        let named;
        let process = match crate::exec_user::spec(process) {
            Some(spec) => {
                let (pid, pidfd) = {
                    let entry = self.registry.get(id)?;
                    let c = entry.lock().await;
                    (c.init.pid, c.init.pidfd.clone())
                };
                named = crate::exec_user::resolve(process, spec, pid, pidfd).await?;
                &named
            }
            None => process,
        };
        let pc = jail::validate::process_config(process)?;
        let oom_score_adj = jail::validate::oom_score_adj(process)?;
        let entry = self.registry.get(id)?;
        let req = {
            let mut c = entry.lock().await;
            match c.state() {
                State::Running => {}
                s => {
                    return Err(AgentError::State {
                        id: id.into(),
                        state: s.name(),
                        op: "exec into it",
                    })
                }
            }
            let pc = c.exec_defaults.apply(pc);
            if c.namespaces.contains(&NamespaceKind::Pid) {
                // The exec'd process is spawned into the container's pid namespace after the
                // scheduling step (see `check_spawned_scheduler`).
                jail::validate::check_spawned_scheduler(pc.scheduler.as_ref())?;
            }
            if c.processes.contains_key(exec_id) || !c.pending_execs.insert(exec_id.into()) {
                return Err(AgentError::ExecExists {
                    id: id.into(),
                    exec_id: exec_id.into(),
                });
            }
            let config = ExecConfig {
                container_id: id.into(),
                exec_id: exec_id.into(),
                namespaces: c.namespaces.clone(),
                cgroup_procs: c.cgroup.join_files(),
                oom_score_adj,
                process: pc,
                console_size: jail::validate::console_size(process),
                test_pause_before_exec_ms: self.test_exec_pause_ms,
            };
            let init_pidfd = c
                .init
                .pidfd
                .0
                .try_clone()
                .map_err(|e| AgentError::io("dup pidfd", e));
            (config, init_pidfd)
        };
        let result = match req.1 {
            Ok(init_pidfd) => self.launch_exec(req.0, init_pidfd).await,
            Err(e) => Err(e),
        };
        let mut c = entry.lock().await;
        c.pending_execs.remove(exec_id);
        let process = result?;
        tracing::info!(id, exec_id, pid = process.pid, "exec started");
        process.log_exit(id, false);
        c.processes.insert(exec_id.into(), Arc::new(process));
        Ok(())
    }

    /// Launches the exec'd process and follows it until it has exec'd (sync socket EOF).
    async fn launch_exec(
        &self,
        config: ExecConfig,
        init_pidfd: std::os::fd::OwnedFd,
    ) -> Result<Process, AgentError> {
        let job = Job::Exec {
            config: &config,
            init_pidfd: &init_pidfd,
        };
        let launched = launch::launch(self.launcher.as_ref(), job).await?;
        let m = &self.metrics;
        m.observe(Kind::Exec, Stage::Clone, launched.took_clone);
        m.observe(Kind::Exec, Stage::JailToReady, launched.took_ready);
        Ok(Process::new(
            config.exec_id,
            launched.process,
            launched.stdio,
        ))
    }
}
