//! Binds the listener (`listen`), registers the services, and runs until SIGTERM or SIGINT;
//! then stops accepting, removes every container it still has (kill, reap, cgroup, state dir)
//! and exits.

use crate::agent::Agent;
use crate::config::{AgentConfig, LauncherKind};
use crate::launcher::{reexec::ReexecLauncher, zygote::ZygoteLauncher, Launcher};
use crate::rpc::{AdminService, AgentRpc, HealthService};
use anyhow::Context;
use std::path::Path;
use std::sync::Arc;
use tokio::signal::unix::{signal, SignalKind};

pub async fn run(cfg: &AgentConfig) -> anyhow::Result<()> {
    // Before anything is bound or started: a SIGTERM during start-up (once the socket exists,
    // a supervisor may take the agent for up) waits until we serve, then shuts down cleanly,
    // instead of killing the agent with its zygote and socket file left behind.
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    // First, so that a refusal (an agent already serving, a path that is not a socket) comes
    // before anything is started. `_socket_file` removes our socket when run returns.
    let (listener, _socket_file) = crate::listen::bind(&cfg.listen)?;
    std::fs::create_dir_all(&cfg.state_dir)
        .with_context(|| format!("creating state dir {}", cfg.state_dir.display()))?;
    // Held until we return: no second agent works on (or "recovers") this state dir meanwhile.
    let _state_lock = crate::recovery::lock_state_dir(&cfg.state_dir)?;
    let layout = jail::cgroups::Layout::detect(Path::new("/proc/self/mountinfo"))
        .context("detecting the cgroup layout")?;
    // What an agent that died here left (processes, cgroups, state dirs) goes before we serve.
    crate::recovery::run(cfg.state_dir.clone(), layout.clone())
        .await
        .context("recovering what an earlier agent left")?;
    let exe = Arc::new(crate::selfexe::sealed_copy().context("sealing a copy of our binary")?);
    let helpers_exe = exe.clone();
    let launcher: Arc<dyn Launcher> = match cfg.launcher {
        LauncherKind::Zygote => {
            let mut args = vec!["--warm-pool".to_string(), cfg.warm_pool.to_string()];
            if cfg.test_zygote_pause_ms > 0 {
                args.extend([
                    "--test-pause-after-clone-ms".into(),
                    cfg.test_zygote_pause_ms.to_string(),
                ]);
            }
            Arc::new(
                ZygoteLauncher::start(exe, args)
                    .await
                    .context("starting the zygote")?,
            )
        }
        LauncherKind::Reexec => Arc::new(ReexecLauncher::new(exe)),
    };
    let agent = Arc::new(Agent {
        registry: Default::default(),
        layout,
        state_dir: cfg.state_dir.clone(),
        test_exec_pause_ms: cfg.test_exec_pause_ms,
        inflight: Default::default(),
        seccomp_filters: Default::default(),
        oom: Default::default(),
        metrics: Arc::new(crate::metrics::Metrics::new(launcher.name())),
        launcher,
        storages: crate::storage::Storages::new(cfg.storage_root.clone(), "/sys".into()),
        exe: helpers_exe,
    });
    let mut services =
        wire::agent_ttrpc::create_agent_service(Arc::new(AgentRpc::new(agent.clone())));
    for service in services.values_mut() {
        service
            .methods
            .retain(|name, _| crate::rpc::SERVED.contains(&name.as_str()));
    }
    let health = wire::health_ttrpc::create_health(Arc::new(HealthService));
    let admin = wire::zagent_ttrpc::create_admin(Arc::new(AdminService(agent.clone())));
    let mut server = ttrpc::r#async::Server::new()
        .add_listener(listener)
        .register_service(services)
        .register_service(health)
        .register_service(admin);
    server.start().await.context("starting the ttrpc server")?;
    tracing::info!(listen = cfg.listen, launcher = ?cfg.launcher, "zagent serving");
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
    // Closed first: from the "shutting down" line on, a zygote that dies stays dead.
    agent.launcher.close();
    tracing::info!("shutting down");
    // Waiting GetOOMEvent calls answer UNAVAILABLE before their connections close.
    agent.oom.close();
    let _ = server.shutdown().await;
    if let Err(e) = agent.shutdown().await {
        tracing::error!(error = %e, "removing containers at shutdown");
    }
    Ok(())
}
