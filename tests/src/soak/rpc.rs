//! The soak's view of one ttrpc connection: the RPCs its scenarios send, each with a deadline,
//! and an error type that keeps the ttrpc code apart from a wrong answer, so that a scenario can
//! expect a code (INVALID_ARGUMENT for bad input) and report anything else with its message.

use protobuf::MessageField;
use std::time::Duration;
use ttrpc::context;
use wire::agent as pb;
use wire::agent_ttrpc::AgentServiceClient;
use wire::zagent_ttrpc::AdminClient;

/// A generous bound per RPC: WaitProcess on a container that should already be dying, a
/// create on a loaded machine. A call that hangs longer than this is a failure in itself.
const RPC_DEADLINE: Duration = Duration::from_secs(60);

/// Bound on the output one process may hand back; the scenarios print a few bytes.
const MAX_OUTPUT: usize = 1 << 20;

fn ctx() -> context::Context {
    context::with_timeout(RPC_DEADLINE.as_nanos() as i64)
}

/// Why a step of a scenario failed.
#[derive(Debug)]
pub enum StepError {
    /// The agent answered with an error status.
    Rpc {
        rpc: &'static str,
        code: ttrpc::Code,
        message: String,
    },
    /// No answer: the connection broke or the deadline passed.
    Transport { rpc: &'static str, message: String },
    /// An answer, but not the expected one (output, exit status, code).
    Wrong(String),
}

impl std::fmt::Display for StepError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StepError::Rpc { rpc, code, message } => write!(f, "{rpc}: {code:?}: {message}"),
            StepError::Transport { rpc, message } => write!(f, "{rpc}: transport: {message}"),
            StepError::Wrong(what) => f.write_str(what),
        }
    }
}

impl std::error::Error for StepError {}

impl StepError {
    fn from_ttrpc(rpc: &'static str, e: ttrpc::Error) -> StepError {
        match e {
            ttrpc::Error::RpcStatus(s) => StepError::Rpc {
                rpc,
                code: s.code(),
                message: s.message,
            },
            other => StepError::Transport {
                rpc,
                message: other.to_string(),
            },
        }
    }
}

pub type Step<T> = Result<T, StepError>;

/// One connection, as one shim would hold.
#[derive(Clone)]
pub struct Rpc {
    agent: AgentServiceClient,
    admin: AdminClient,
}

impl Rpc {
    pub async fn connect(addr: &str) -> anyhow::Result<Rpc> {
        let c = wire::connect::connect(addr).await?;
        Ok(Rpc {
            agent: AgentServiceClient::new(c.clone()),
            admin: AdminClient::new(c),
        })
    }

    pub async fn create(&self, id: &str, spec: &wire::oci::Spec) -> Step<()> {
        let mut req = pb::CreateContainerRequest::new();
        req.container_id = id.into();
        req.exec_id = id.into();
        req.OCI = MessageField::some(spec.clone());
        self.agent
            .create_container(ctx(), &req)
            .await
            .map(drop)
            .map_err(|e| StepError::from_ttrpc("CreateContainer", e))
    }

    pub async fn start(&self, id: &str) -> Step<()> {
        let mut req = pb::StartContainerRequest::new();
        req.container_id = id.into();
        self.agent
            .start_container(ctx(), &req)
            .await
            .map(drop)
            .map_err(|e| StepError::from_ttrpc("StartContainer", e))
    }

    pub async fn exec(&self, id: &str, exec_id: &str, process: &wire::oci::Process) -> Step<()> {
        let mut req = pb::ExecProcessRequest::new();
        req.container_id = id.into();
        req.exec_id = exec_id.into();
        req.process = MessageField::some(process.clone());
        self.agent
            .exec_process(ctx(), &req)
            .await
            .map(drop)
            .map_err(|e| StepError::from_ttrpc("ExecProcess", e))
    }

    pub async fn signal(&self, id: &str, exec_id: &str, signal: u32) -> Step<()> {
        let mut req = pb::SignalProcessRequest::new();
        req.container_id = id.into();
        req.exec_id = exec_id.into();
        req.signal = signal;
        self.agent
            .signal_process(ctx(), &req)
            .await
            .map(drop)
            .map_err(|e| StepError::from_ttrpc("SignalProcess", e))
    }

    /// WaitProcess: the exit status (128+signal for a signalled process).
    pub async fn wait(&self, id: &str, exec_id: &str) -> Step<i32> {
        let mut req = pb::WaitProcessRequest::new();
        req.container_id = id.into();
        req.exec_id = exec_id.into();
        self.agent
            .wait_process(ctx(), &req)
            .await
            .map(|r| r.status)
            .map_err(|e| StepError::from_ttrpc("WaitProcess", e))
    }

    pub async fn remove(&self, id: &str) -> Step<()> {
        let mut req = pb::RemoveContainerRequest::new();
        req.container_id = id.into();
        self.agent
            .remove_container(ctx(), &req)
            .await
            .map(drop)
            .map_err(|e| StepError::from_ttrpc("RemoveContainer", e))
    }

    /// WriteStdin of all of `data` (the agent may take less than asked per call).
    pub async fn write_all(&self, id: &str, exec_id: &str, mut data: &[u8]) -> Step<()> {
        while !data.is_empty() {
            let mut req = pb::WriteStreamRequest::new();
            req.container_id = id.into();
            req.exec_id = exec_id.into();
            req.data = data.to_vec();
            let n = self
                .agent
                .write_stdin(ctx(), &req)
                .await
                .map_err(|e| StepError::from_ttrpc("WriteStdin", e))?
                .len as usize;
            if n == 0 || n > data.len() {
                return Err(StepError::Wrong(format!(
                    "WriteStdin took {n} of {} bytes",
                    data.len()
                )));
            }
            data = &data[n..];
        }
        Ok(())
    }

    pub async fn close_stdin(&self, id: &str, exec_id: &str) -> Step<()> {
        let mut req = pb::CloseStdinRequest::new();
        req.container_id = id.into();
        req.exec_id = exec_id.into();
        self.agent
            .close_stdin(ctx(), &req)
            .await
            .map(drop)
            .map_err(|e| StepError::from_ttrpc("CloseStdin", e))
    }

    /// ReadStdout until EOF (empty data), bounded.
    pub async fn read_stdout(&self, id: &str, exec_id: &str) -> Step<Vec<u8>> {
        let mut req = pb::ReadStreamRequest::new();
        req.container_id = id.into();
        req.exec_id = exec_id.into();
        req.len = 1 << 16;
        let mut all = Vec::new();
        loop {
            let data = self
                .agent
                .read_stdout(ctx(), &req)
                .await
                .map_err(|e| StepError::from_ttrpc("ReadStdout", e))?
                .data;
            if data.is_empty() {
                return Ok(all);
            }
            all.extend(data);
            if all.len() > MAX_OUTPUT {
                return Err(StepError::Wrong(format!(
                    "more than {MAX_OUTPUT} bytes of stdout"
                )));
            }
        }
    }

    /// Ids of the containers the agent holds (zagent.Admin).
    pub async fn list(&self) -> Step<Vec<String>> {
        self.admin
            .list_containers(ctx(), &Default::default())
            .await
            .map(|l| l.containers.iter().map(|c| c.id.clone()).collect())
            .map_err(|e| StepError::from_ttrpc("ListContainers", e))
    }
}
