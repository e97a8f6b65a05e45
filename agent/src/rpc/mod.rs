//! The ttrpc services. Each handler converts the request, calls one plain function on `Agent`
//! and converts the result; errors are logged once here and mapped by `From<AgentError>`.
//! Only the RPCs in `SERVED` are registered (`server` removes the other generated methods), so
//! every other AgentService RPC is UNIMPLEMENTED: never a fake success, and not the generated
//! default's NOT_FOUND.

mod admin;
mod health;
mod stats;
mod stdio;

pub use admin::AdminService;
pub use health::HealthService;

use crate::agent::Agent;
use crate::error::AgentError;
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
];

pub struct AgentRpc {
    pub agent: Arc<Agent>,
    /// The sandbox CreateSandbox recorded (its id), if any.
    sandbox: Mutex<Option<String>>,
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
        let r = match spec_of(&req) {
            Ok(spec) => {
                self.agent
                    .create(req.container_id.clone(), req.exec_id.clone(), spec)
                    .await
            }
            Err(e) => Err(e),
        };
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

    async fn get_guest_details(
        &self,
        _: &TtrpcContext,
        req: agent::GuestDetailsRequest,
    ) -> ttrpc::Result<agent::GuestDetailsResponse> {
        let sysfs = std::path::Path::new(crate::guest::SYSFS);
        reply("GetGuestDetails", "", crate::guest::details(sysfs, &req))
    }

    async fn create_sandbox(
        &self,
        _: &TtrpcContext,
        req: agent::CreateSandboxRequest,
    ) -> ttrpc::Result<Empty> {
        reply(
            "CreateSandbox",
            &req.sandbox_id,
            self.record_sandbox(&req).map(|_| Empty::new()),
        )
    }

    async fn destroy_sandbox(
        &self,
        _: &TtrpcContext,
        _: agent::DestroySandboxRequest,
    ) -> ttrpc::Result<Empty> {
        let r = self.agent.remove_all().await;
        if r.is_ok() {
            *self.sandbox.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
        reply("DestroySandbox", "", r.map(|_| Empty::new()))
    }
}

impl AgentRpc {
    /// CreateSandbox records the sandbox. It refuses what it cannot honour (storages, kernel
    /// modules, a shared sandbox pid namespace) instead of pretending; it does not change the
    /// machine's hostname or DNS, which on a shared test host would be wrong.
    fn record_sandbox(&self, req: &agent::CreateSandboxRequest) -> Result<(), AgentError> {
        if !req.storages.is_empty() {
            return Err(AgentError::Unsupported("sandbox storages".into()));
        }
        if !req.kernel_modules.is_empty() {
            return Err(AgentError::Unsupported("sandbox kernel modules".into()));
        }
        if req.sandbox_pidns {
            return Err(AgentError::Unsupported(
                "a shared sandbox pid namespace".into(),
            ));
        }
        let mut sandbox = self.sandbox.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(existing) = sandbox.as_ref() {
            return Err(AgentError::Exists(format!("sandbox {existing}")));
        }
        *sandbox = Some(req.sandbox_id.clone());
        Ok(())
    }
}
