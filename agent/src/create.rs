//! CreateContainer: reserve the id, validate the spec, then (in a task of its own, so a client
//! that goes away halfway cannot leave half a container) make the state dir, cgroup, recovery
//! record and exec.fifo, and `launch` the child to `ready`. The finished container is handed
//! back to the RPC through a oneshot: if the RPC is gone by then (client disconnected, or its
//! deadline passed and ttrpc dropped the handler), the task takes the whole container down
//! again and only then frees the id.

use crate::agent::Agent;
use crate::container::{Container, Process};
use crate::error::AgentError;
use crate::exec_fifo;
use crate::launch::{self, Job};
use crate::metrics::{Kind, Stage};
use crate::teardown;
use jail::cgroups::Cgroup;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

impl Agent {
    /// `storages`: Kata storages the container needs mounted first (see `storage`).
    /// `received` is when the RPC began converting the request: the conversion stage runs
    /// from there to the validated launch config.
    pub async fn create(
        self: &Arc<Self>,
        id: String,
        exec_id: String,
        spec: oci_spec::runtime::Spec,
        storages: Vec<crate::storage::StorageSpec>,
        received: Instant,
    ) -> Result<(), AgentError> {
        jail::validate::check_id(&id)?;
        let reservation = self.registry.reserve(&id)?;
        let validated = jail::validate::validate_with(&id, &spec, &self.seccomp_filters)?;
        let m = &self.metrics;
        m.observe(Kind::Container, Stage::Conversion, received.elapsed());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let agent = self.clone();
        let inflight = self.inflight.clone().read_owned().await;
        tokio::spawn(async move {
            let _inflight = inflight;
            let result = agent
                .create_container(&id, exec_id, validated, &storages)
                .await;
            // On failure the reservation is dropped here, after everything was undone.
            if let Err(Ok((reservation, mut container))) = tx.send(result.map(|c| (reservation, c)))
            {
                tracing::warn!(id, "create abandoned by its client; removing the container");
                if let Err(e) = teardown::container(&mut container).await {
                    tracing::error!(id, error = %e, "removing an abandoned container");
                }
                drop(reservation); // frees the id only once everything is gone
            }
        });
        let (reservation, container) = rx.await.map_err(|_| AgentError::TaskLost("create"))??;
        let (id, pid) = (container.id.clone(), container.init.pid);
        // No await between here and the fill: the handler cannot be dropped in between.
        reservation.fill(container);
        tracing::info!(id, pid, "container created");
        Ok(())
    }

    /// Makes everything of the container, or, on failure, nothing.
    async fn create_container(
        &self,
        id: &str,
        exec_id: String,
        v: jail::validate::Validated,
        storages: &[crate::storage::StorageSpec],
    ) -> Result<Container, AgentError> {
        // Dropped (and so unmounted, unless shared) if anything below fails.
        let mounted = self.storages.acquire_all(storages)?;
        let mut undo = Undo::default();
        let hooks = Arc::new(v.hooks.clone());
        let result = self.create_steps(id, exec_id, v, &mut undo).await;
        match result {
            Ok(mut c) => {
                c.hooks = hooks;
                c.storages = mounted;
                Ok(c)
            }
            Err(e) => {
                undo.run().await;
                // The create went as far as making things: the runtime spec continues at
                // delete, which runs poststop.
                crate::hooks::run_poststop(&hooks).await;
                Err(e)
            }
        }
    }

    async fn create_steps(
        &self,
        id: &str,
        exec_id: String,
        v: jail::validate::Validated,
        undo: &mut Undo,
    ) -> Result<Container, AgentError> {
        let t0 = Instant::now();
        let join_ns = crate::nsfile::open_all(&v.join_namespaces).await?;
        let state_dir = self.state_dir.join(id);
        std::fs::create_dir(&state_dir).map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => AgentError::Exists(id.into()),
            _ => AgentError::io(format!("create {}", state_dir.display()), e),
        })?;
        undo.state_dir = Some(state_dir.clone());
        let mut config = v.config;
        config.cgroup_procs = self.layout.join_files(&v.cgroup_path)?;
        let t_cgroup = Instant::now();
        let cgroup = self.layout.create(&v.cgroup_path, &v.resources)?;
        let m = &self.metrics;
        m.observe(Kind::Container, Stage::Cgroup, t_cgroup.elapsed());
        let joined = cgroup.joined();
        undo.cgroup = Some(cgroup);
        // Once the cgroup is ours (made, or joined empty; never before: it could be another's
        // that `create` refused) and before any process exists, so that a restart after our
        // death finds it.
        crate::recovery::write_record(&state_dir, id, &v.cgroup_path, joined)?;
        write_debug_config(&state_dir, &config);
        let fifo = exec_fifo::create(&state_dir).map_err(|e| AgentError::io("exec.fifo", e))?;
        tracing::debug!(
            id,
            prepared = t0.elapsed().as_micros() as u64,
            "create stages"
        );
        let job = Job::Container {
            config: &config,
            fifo: &fifo,
            join_ns: &join_ns,
            hooks: &v.hooks,
        };
        let cgroup = undo.cgroup.as_ref().expect("cgroup was created above");
        let (launched, oom) = self.launch_watched(job, cgroup, id).await?;
        m.observe(Kind::Container, Stage::Clone, launched.took_clone);
        m.observe(Kind::Container, Stage::JailToReady, launched.took_ready);
        let process = Process::new(exec_id, launched.process, launched.stdio);
        let cgroup = undo.cgroup.take().expect("cgroup was created above");
        let namespaces = config.namespaces.iter().map(|n| n.kind).collect();
        let mut container = Container::new(id.into(), process, cgroup, state_dir, fifo, namespaces);
        container.sync = Some((launched.sync, launched.seq));
        container.exec_defaults = crate::container::ExecDefaults::of(&config.process);
        container.oom = oom;
        *undo = Undo::default();
        Ok(container)
    }
}

impl Agent {
    /// The launch, and the container's OOM watch registered while the launcher clones (in
    /// another process), so that its syscalls (about 15 µs) are off the create's critical
    /// path; the child runs only jail code until StartContainer, so no OOM of the container's
    /// own process is missed. On failure every process the launch made is killed and reaped,
    /// and a watch that was made is dropped (unregistered).
    async fn launch_watched(
        &self,
        job: Job<'_>,
        cgroup: &Cgroup,
        id: &str,
    ) -> Result<(launch::LaunchedProcess, Option<crate::oom::Watch>), AgentError> {
        // Biased: the launch is polled first, sends its request and waits for the reply.
        let (launched, oom) = tokio::join!(
            biased;
            launch::launch(self.launcher.as_ref(), job),
            async { crate::oom::watch(cgroup, id, &self.oom) },
        );
        let launched = launched?;
        match oom {
            Ok(oom) => Ok((launched, oom)),
            Err(e) => {
                launched.process.kill().await;
                Err(e)
            }
        }
    }
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

/// What a failed create must take back besides the launch's processes (which `launch` kills
/// itself), in reverse order of making.
#[derive(Default)]
struct Undo {
    state_dir: Option<PathBuf>,
    cgroup: Option<Cgroup>,
}

impl Undo {
    async fn run(self) {
        if let Some(cg) = self.cgroup {
            if let Err(e) = teardown::remove_cgroup(cg).await {
                tracing::error!(error = %e, "removing the cgroup of a failed create");
            }
        }
        if let Some(dir) = self.state_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
