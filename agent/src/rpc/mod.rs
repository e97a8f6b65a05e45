//! The ttrpc services. Each handler converts the request, calls one plain function on `Agent`
//! and converts the result; errors are logged once here and mapped by `From<AgentError>`.
//! Only the RPCs in `SERVED` are registered (`server` removes the other generated methods), so
//! every other AgentService RPC is UNIMPLEMENTED: never a fake success, and not the generated
//! default's NOT_FOUND.

mod admin;
mod health;
mod network;
mod stats;
mod stdio;

pub use admin::AdminService;
pub use health::HealthService;

use crate::agent::Agent;
use crate::error::AgentError;
use crate::pidns_init::PidnsInit;
use protobuf::well_known_types::empty::Empty;
use std::sync::{Arc, Mutex};
use ttrpc::r#async::TtrpcContext;
use wire::agent;

/// The AgentService methods zagent serves. `server` drops every other generated method from
/// the service, so ttrpc answers them with UNIMPLEMENTED instead of the generated NOT_FOUND.
pub const SERVED: &[&str] = &[
    "CreateContainer",
    "StartContainer",
    "SignalProcess",
    "WaitProcess",
    "RemoveContainer",
    "WriteStdin",
    "ReadStdout",
    "ReadStderr",
    "CloseStdin",
    "CreateSandbox",
    "DestroySandbox",
    "ExecProcess",
    "TtyWinResize",
    "GetGuestDetails",
    "PauseContainer",
    "ResumeContainer",
    "StatsContainer",
    "UpdateContainer",
    "GetOOMEvent",
    "GetMetrics",
    "OnlineCPUMem",
    "MemHotplugByProbe",
    "SetGuestDateTime",
    "ReseedRandomDev",
    "CopyFile",
    "GetVolumeStats",
    "UpdateEphemeralMounts",
    "UpdateInterface",
    "UpdateRoutes",
    "ListInterfaces",
    "ListRoutes",
    "AddARPNeighbors",
    "GetIPTables",
    "SetIPTables",
    "AddSwap",
    "RemoveStaleVirtiofsShareMounts",
];

pub struct AgentRpc {
    pub agent: Arc<Agent>,
    /// The sandbox CreateSandbox made, if any.
    sandbox: Mutex<Option<crate::sandbox::Sandbox>>,
}

impl AgentRpc {
    pub fn new(agent: Arc<Agent>) -> AgentRpc {
        AgentRpc {
            agent,
            sandbox: Mutex::new(None),
        }
    }
}

/// Failed RPCs are the client's to cause, as many as it likes: their log lines are rate-limited.
static FAILURES_LOGGED: crate::ratelimit::LogLimiter = crate::ratelimit::LogLimiter::new();

/// Logs a failed RPC once (at a bounded rate) and converts its error.
pub(crate) fn reply<T>(rpc: &str, id: &str, r: Result<T, AgentError>) -> ttrpc::Result<T> {
    r.map_err(|e| {
        if let crate::ratelimit::Verdict::Log { suppressed } = FAILURES_LOGGED.check() {
            if suppressed > 0 {
                tracing::warn!(suppressed, "rpc failures suppressed (log rate limit)");
            }
            tracing::warn!(rpc, id, code = ?e.code(), error = %e, "rpc failed");
        }
        e.into()
    })
}

fn spec_of(req: &agent::CreateContainerRequest) -> Result<oci_spec::runtime::Spec, AgentError> {
    let spec = req
        .OCI
        .as_ref()
        .ok_or_else(|| AgentError::InvalidArgument("no OCI spec".into()))?;
    Ok(wire::oci::spec_from_grpc(spec)?)
}

/// Runs `f` on the blocking pool (sysfs writes and waits, file copies, statfs).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, AgentError> + Send + 'static,
) -> Result<T, AgentError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| AgentError::Task {
            what: "blocking RPC",
            source: e,
        })?
}

/// What CreateContainer can carry that zagent does not do yet: refused, never dropped.
fn refuse_unserved_fields(req: &agent::CreateContainerRequest) -> Result<(), AgentError> {
    let unserved = [
        (
            !req.devices.is_empty(),
            "devices (hot-plugged device handlers)",
        ),
        (!req.shared_mounts.is_empty(), "shared_mounts"),
        (req.string_user.is_some(), "string_user"),
        (
            req.stdin_port != 0 || req.stdout_port != 0 || req.stderr_port != 0,
            "stdio ports (passfd)",
        ),
    ];
    match unserved.iter().find(|(set, _)| *set) {
        Some((_, what)) => Err(AgentError::Unsupported(format!("CreateContainer {what}"))),
        None => Ok(()),
    }
}

/// Kata's `Storage` message as the storage driver takes it.
fn storage_spec(s: &agent::Storage) -> crate::storage::StorageSpec {
    // fs_group (a group to hand the files to) is not done: refused rather than dropped.
    let driver_options = match s.fs_group.as_ref() {
        Some(_) => vec!["fs_group".to_string()],
        None => s.driver_options.clone(),
    };
    crate::storage::StorageSpec {
        driver: s.driver.clone(),
        driver_options,
        source: s.source.clone(),
        fstype: s.fstype.clone(),
        options: s.options.clone(),
        mount_point: s.mount_point.clone().into(),
    }
}

/// UpdateContainer's resources as the limits to write. A request without resources changes
/// nothing (Kata's agent answers it with success too).
fn update_resources(
    req: &agent::UpdateContainerRequest,
) -> Result<jail::cgroups::Resources, AgentError> {
    match req.resources.as_ref() {
        None => Ok(Default::default()),
        Some(r) => Ok(jail::validate::update_resources(
            &wire::oci::resources_from_grpc(r)?,
        )?),
    }
}

#[async_trait::async_trait]
impl wire::agent_ttrpc::AgentService for AgentRpc {
    async fn create_container(
        &self,
        _: &TtrpcContext,
        req: agent::CreateContainerRequest,
    ) -> ttrpc::Result<Empty> {
        tracing::debug!(id = req.container_id, "CreateContainer");
        let r = self.create_in_sandbox(&req).await;
        reply(
            "CreateContainer",
            &req.container_id,
            r.map(|_| Empty::new()),
        )
    }

    async fn start_container(
        &self,
        _: &TtrpcContext,
        req: agent::StartContainerRequest,
    ) -> ttrpc::Result<Empty> {
        let r = self.agent.start(&req.container_id).await;
        reply("StartContainer", &req.container_id, r.map(|_| Empty::new()))
    }

    async fn exec_process(
        &self,
        _: &TtrpcContext,
        req: agent::ExecProcessRequest,
    ) -> ttrpc::Result<Empty> {
        let r = match req.process.as_ref() {
            None => Err(AgentError::InvalidArgument("no process".into())),
            Some(p) => match wire::oci::process_from_grpc(p) {
                Ok(p) => self.agent.exec(&req.container_id, &req.exec_id, &p).await,
                Err(e) => Err(e.into()),
            },
        };
        reply("ExecProcess", &req.container_id, r.map(|_| Empty::new()))
    }

    async fn tty_win_resize(
        &self,
        _: &TtrpcContext,
        req: agent::TtyWinResizeRequest,
    ) -> ttrpc::Result<Empty> {
        let r = stdio::resize(&self.agent, &req).await;
        reply("TtyWinResize", &req.container_id, r.map(|_| Empty::new()))
    }

    async fn signal_process(
        &self,
        _: &TtrpcContext,
        req: agent::SignalProcessRequest,
    ) -> ttrpc::Result<Empty> {
        let r = self
            .agent
            .signal(&req.container_id, &req.exec_id, req.signal)
            .await;
        reply("SignalProcess", &req.container_id, r.map(|_| Empty::new()))
    }

    async fn wait_process(
        &self,
        _: &TtrpcContext,
        req: agent::WaitProcessRequest,
    ) -> ttrpc::Result<agent::WaitProcessResponse> {
        let r = self.agent.wait(&req.container_id, &req.exec_id).await;
        let r = r.map(|status| agent::WaitProcessResponse {
            status,
            ..Default::default()
        });
        reply("WaitProcess", &req.container_id, r)
    }

    async fn remove_container(
        &self,
        _: &TtrpcContext,
        req: agent::RemoveContainerRequest,
    ) -> ttrpc::Result<Empty> {
        let r = self.agent.remove(&req.container_id).await;
        reply(
            "RemoveContainer",
            &req.container_id,
            r.map(|_| Empty::new()),
        )
    }

    async fn write_stdin(
        &self,
        _: &TtrpcContext,
        req: agent::WriteStreamRequest,
    ) -> ttrpc::Result<agent::WriteStreamResponse> {
        let r = stdio::write(&self.agent, &req.container_id, &req.exec_id, &req.data).await;
        let r = r.map(|len| agent::WriteStreamResponse {
            len: len as u32,
            ..Default::default()
        });
        reply("WriteStdin", &req.container_id, r)
    }

    async fn read_stdout(
        &self,
        _: &TtrpcContext,
        req: agent::ReadStreamRequest,
    ) -> ttrpc::Result<agent::ReadStreamResponse> {
        let r = stdio::read(&self.agent, &req, crate::io::Stream::Stdout).await;
        reply("ReadStdout", &req.container_id, r)
    }

    async fn read_stderr(
        &self,
        _: &TtrpcContext,
        req: agent::ReadStreamRequest,
    ) -> ttrpc::Result<agent::ReadStreamResponse> {
        let r = stdio::read(&self.agent, &req, crate::io::Stream::Stderr).await;
        reply("ReadStderr", &req.container_id, r)
    }

    async fn close_stdin(
        &self,
        _: &TtrpcContext,
        req: agent::CloseStdinRequest,
    ) -> ttrpc::Result<Empty> {
        let r = stdio::close(&self.agent, &req.container_id, &req.exec_id).await;
        reply("CloseStdin", &req.container_id, r.map(|_| Empty::new()))
    }

    async fn pause_container(
        &self,
        _: &TtrpcContext,
        req: agent::PauseContainerRequest,
    ) -> ttrpc::Result<Empty> {
        let r = self.agent.pause(&req.container_id).await;
        reply("PauseContainer", &req.container_id, r.map(|_| Empty::new()))
    }

    async fn resume_container(
        &self,
        _: &TtrpcContext,
        req: agent::ResumeContainerRequest,
    ) -> ttrpc::Result<Empty> {
        let r = self.agent.resume(&req.container_id).await;
        reply(
            "ResumeContainer",
            &req.container_id,
            r.map(|_| Empty::new()),
        )
    }

    async fn stats_container(
        &self,
        _: &TtrpcContext,
        req: agent::StatsContainerRequest,
    ) -> ttrpc::Result<agent::StatsContainerResponse> {
        let r = self.agent.stats(&req.container_id).await;
        reply("StatsContainer", &req.container_id, r.map(stats::response))
    }

    async fn update_container(
        &self,
        _: &TtrpcContext,
        req: agent::UpdateContainerRequest,
    ) -> ttrpc::Result<Empty> {
        let r = match update_resources(&req) {
            Ok(res) => self.agent.update(&req.container_id, res).await,
            Err(e) => Err(e),
        };
        reply(
            "UpdateContainer",
            &req.container_id,
            r.map(|_| Empty::new()),
        )
    }

    /// A long poll: blocks until an OOM in some container (see `oom.rs`).
    async fn get_oom_event(
        &self,
        _: &TtrpcContext,
        _: agent::GetOOMEventRequest,
    ) -> ttrpc::Result<agent::OOMEvent> {
        let r = self
            .agent
            .oom
            .next()
            .await
            .map(|container_id| agent::OOMEvent {
                container_id,
                ..Default::default()
            });
        reply("GetOOMEvent", "", r)
    }

    async fn get_metrics(
        &self,
        _: &TtrpcContext,
        _: agent::GetMetricsRequest,
    ) -> ttrpc::Result<agent::Metrics> {
        let r = self.agent.metrics().await.map(|metrics| agent::Metrics {
            metrics,
            ..Default::default()
        });
        reply("GetMetrics", "", r)
    }

    async fn get_guest_details(
        &self,
        _: &TtrpcContext,
        req: agent::GuestDetailsRequest,
    ) -> ttrpc::Result<agent::GuestDetailsResponse> {
        let sysfs = std::path::Path::new(crate::guest::SYSFS);
        reply("GetGuestDetails", "", crate::guest::details(sysfs, &req))
    }

    async fn online_cpu_mem(
        &self,
        _: &TtrpcContext,
        req: agent::OnlineCPUMemRequest,
    ) -> ttrpc::Result<Empty> {
        let sysfs = std::path::Path::new(crate::guest::SYSFS);
        let r = blocking(move || crate::guest_ops::online_cpu_mem(sysfs, &req)).await;
        reply("OnlineCPUMem", "", r.map(|_| Empty::new()))
    }

    async fn mem_hotplug_by_probe(
        &self,
        _: &TtrpcContext,
        req: agent::MemHotplugByProbeRequest,
    ) -> ttrpc::Result<Empty> {
        let sysfs = std::path::Path::new(crate::guest::SYSFS);
        let r = crate::guest_ops::mem_hotplug_by_probe(sysfs, &req.memHotplugProbeAddr);
        reply("MemHotplugByProbe", "", r.map(|_| Empty::new()))
    }

    async fn set_guest_date_time(
        &self,
        _: &TtrpcContext,
        req: agent::SetGuestDateTimeRequest,
    ) -> ttrpc::Result<Empty> {
        let r = crate::guest_ops::set_guest_date_time(req.Sec, req.Usec);
        reply("SetGuestDateTime", "", r.map(|_| Empty::new()))
    }

    async fn reseed_random_dev(
        &self,
        _: &TtrpcContext,
        req: agent::ReseedRandomDevRequest,
    ) -> ttrpc::Result<Empty> {
        let random = std::path::Path::new("/dev/random");
        let r = crate::guest_ops::reseed_random_dev(random, &req.data);
        reply("ReseedRandomDev", "", r.map(|_| Empty::new()))
    }

    async fn copy_file(
        &self,
        _: &TtrpcContext,
        req: agent::CopyFileRequest,
    ) -> ttrpc::Result<Empty> {
        let base = self.agent.storages.root().join("shared/containers");
        let r = blocking(move || crate::guest_ops::copy_file(&base, &req)).await;
        reply("CopyFile", "", r.map(|_| Empty::new()))
    }

    async fn update_ephemeral_mounts(
        &self,
        _: &TtrpcContext,
        req: agent::UpdateEphemeralMountsRequest,
    ) -> ttrpc::Result<Empty> {
        let specs: Vec<_> = req.storages.iter().map(storage_spec).collect();
        let r = self.agent.storages.remount_ephemeral(&specs);
        reply(
            "UpdateEphemeralMounts",
            "",
            r.map(|_| Empty::new()).map_err(AgentError::from),
        )
    }

    async fn get_volume_stats(
        &self,
        _: &TtrpcContext,
        req: agent::VolumeStatsRequest,
    ) -> ttrpc::Result<wire::csi::VolumeStatsResponse> {
        let path = std::path::PathBuf::from(&req.volume_guest_path);
        let r = blocking(move || crate::guest_ops::volume_stats(&path)).await;
        reply("GetVolumeStats", &req.volume_guest_path, r)
    }

    async fn update_interface(
        &self,
        _: &TtrpcContext,
        req: agent::UpdateInterfaceRequest,
    ) -> ttrpc::Result<wire::types::Interface> {
        reply("UpdateInterface", "", network::update_interface(&req).await)
    }

    async fn update_routes(
        &self,
        _: &TtrpcContext,
        req: agent::UpdateRoutesRequest,
    ) -> ttrpc::Result<agent::Routes> {
        reply("UpdateRoutes", "", network::update_routes(&req).await)
    }

    async fn list_interfaces(
        &self,
        _: &TtrpcContext,
        _: agent::ListInterfacesRequest,
    ) -> ttrpc::Result<agent::Interfaces> {
        reply("ListInterfaces", "", network::list_interfaces().await)
    }

    async fn list_routes(
        &self,
        _: &TtrpcContext,
        _: agent::ListRoutesRequest,
    ) -> ttrpc::Result<agent::Routes> {
        reply("ListRoutes", "", network::list_routes().await)
    }

    async fn add_arp_neighbors(
        &self,
        _: &TtrpcContext,
        req: agent::AddARPNeighborsRequest,
    ) -> ttrpc::Result<Empty> {
        let r = network::add_arp_neighbors(&req).await;
        reply("AddARPNeighbors", "", r.map(|_| Empty::new()))
    }

    async fn remove_stale_virtiofs_share_mounts(
        &self,
        _: &TtrpcContext,
        _: agent::RemoveStaleVirtiofsShareMountsRequest,
    ) -> ttrpc::Result<Empty> {
        let share = self.agent.storages.root().join("shared/containers");
        let info = std::path::Path::new("/proc/self/mountinfo");
        let r = blocking(move || crate::guest_ops::refresh_share_mounts(info, &share)).await;
        reply(
            "RemoveStaleVirtiofsShareMounts",
            "",
            r.map(|_| Empty::new()),
        )
    }

    async fn add_swap(&self, _: &TtrpcContext, req: agent::AddSwapRequest) -> ttrpc::Result<Empty> {
        let sysfs = std::path::Path::new(crate::guest::SYSFS);
        let r = blocking(move || Ok(crate::swap::add_swap(sysfs, &req.PCIPath)?)).await;
        reply("AddSwap", "", r.map(|_| Empty::new()))
    }

    async fn get_ip_tables(
        &self,
        _: &TtrpcContext,
        req: agent::GetIPTablesRequest,
    ) -> ttrpc::Result<agent::GetIPTablesResponse> {
        let dirs = crate::iptables::search_dirs(std::env::var_os("PATH").as_deref());
        let r = crate::iptables::get(req.is_ipv6, dirs).await;
        let r = r.map(|data| agent::GetIPTablesResponse {
            data,
            ..Default::default()
        });
        reply("GetIPTables", "", r.map_err(AgentError::from))
    }

    async fn set_ip_tables(
        &self,
        _: &TtrpcContext,
        req: agent::SetIPTablesRequest,
    ) -> ttrpc::Result<agent::SetIPTablesResponse> {
        let dirs = crate::iptables::search_dirs(std::env::var_os("PATH").as_deref());
        let r = crate::iptables::set(req.is_ipv6, &req.data, dirs).await;
        let r = r.map(|data| agent::SetIPTablesResponse {
            data,
            ..Default::default()
        });
        reply("SetIPTables", "", r.map_err(AgentError::from))
    }

    async fn create_sandbox(
        &self,
        _: &TtrpcContext,
        req: agent::CreateSandboxRequest,
    ) -> ttrpc::Result<Empty> {
        let r = async {
            let pidns = match req.sandbox_pidns {
                true => Some(PidnsInit::start(&self.agent.exe).await?),
                false => None,
            };
            self.record_sandbox(&req, pidns)
        };
        reply(
            "CreateSandbox",
            &req.sandbox_id,
            r.await.map(|_| Empty::new()),
        )
    }

    async fn destroy_sandbox(
        &self,
        _: &TtrpcContext,
        _: agent::DestroySandboxRequest,
    ) -> ttrpc::Result<Empty> {
        let r = self.agent.remove_all().await;
        if r.is_ok() {
            // Drops the sandbox's namespaces with it.
            *self.sandbox.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
        reply("DestroySandbox", "", r.map(|_| Empty::new()))
    }
}

impl AgentRpc {
    /// CreateSandbox makes the sandbox's shared IPC and UTS namespaces (the UTS one with its
    /// hostname) and records whether its containers share a pid namespace (`pidns`, started by
    /// the caller when asked). It refuses what it cannot honour (kernel modules) instead of
    /// pretending; it does not change the machine's own hostname or DNS, which on a shared
    /// test host would be wrong.
    fn record_sandbox(
        &self,
        req: &agent::CreateSandboxRequest,
        pidns: Option<PidnsInit>,
    ) -> Result<(), AgentError> {
        if !req.kernel_modules.is_empty() {
            return Err(AgentError::Unsupported("sandbox kernel modules".into()));
        }
        let mut sandbox = self.sandbox.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(existing) = sandbox.as_ref() {
            return Err(AgentError::Exists(format!("sandbox {}", existing.id)));
        }
        if req.hostname.len() > 64 {
            return Err(AgentError::InvalidArgument(format!(
                "hostname {:?} is longer than 64 bytes",
                req.hostname
            )));
        }
        let specs: Vec<_> = req.storages.iter().map(storage_spec).collect();
        let storages = self.agent.storages.acquire_all(&specs)?;
        let shared = crate::sandbox::SharedNs::new(&req.hostname)?;
        let mut made =
            crate::sandbox::Sandbox::new(req.sandbox_id.clone(), req.sandbox_pidns, Some(shared));
        made.storages = storages;
        if let Some(init) = pidns {
            made.set_pidns(init);
        }
        *sandbox = Some(made);
        Ok(())
    }

    /// CreateContainer: inside a sandbox, the spec's namespaces are adjusted as Kata's agent
    /// does (`sandbox`); the first container to ask for the shared pid namespace starts it.
    async fn create_in_sandbox(
        &self,
        req: &agent::CreateContainerRequest,
    ) -> Result<(), AgentError> {
        let received = std::time::Instant::now();
        refuse_unserved_fields(req)?;
        let mut spec = spec_of(req)?;
        let lacks_pidns = {
            let sandbox = self.sandbox.lock().unwrap_or_else(|p| p.into_inner());
            sandbox
                .as_ref()
                .is_some_and(|sb| sb.lacks_pidns(req.sandbox_pidns))
        };
        if lacks_pidns {
            // Started without the lock (it is awaited); a racing create's is dropped.
            let init = PidnsInit::start(&self.agent.exe).await?;
            let mut sandbox = self.sandbox.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(sb) = sandbox.as_mut() {
                sb.set_pidns(init);
            }
        }
        {
            let sandbox = self.sandbox.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(sb) = sandbox.as_ref() {
                sb.adjust(&mut spec, req.sandbox_pidns)?;
            }
        }
        let storages = req.storages.iter().map(storage_spec).collect();
        let id = req.container_id.clone();
        self.agent
            .create(id, req.exec_id.clone(), spec, storages, received)
            .await
    }
}
