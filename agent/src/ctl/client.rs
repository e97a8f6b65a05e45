//! The ttrpc clients zagent-ctl uses, and the one-line error format: the RPC's name, the ttrpc
//! code and the agent's message.

use std::fmt;
use ttrpc::context::{self, Context};
use wire::agent_ttrpc::AgentServiceClient;
use wire::health_ttrpc::HealthClient;
use wire::zagent_ttrpc::AdminClient;

pub struct Clients {
    pub agent: AgentServiceClient,
    pub health: HealthClient,
    pub admin: AdminClient,
}

#[derive(Debug)]
pub struct RpcError {
    pub rpc: &'static str,
    pub err: ttrpc::Error,
}

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.err {
            ttrpc::Error::RpcStatus(s) => {
                write!(f, "{}: {:?}: {}", self.rpc, s.code(), s.message)
            }
            other => write!(f, "{}: {other}", self.rpc),
        }
    }
}

impl std::error::Error for RpcError {}

/// Wraps a ttrpc result with the RPC's name.
pub fn named<T>(rpc: &'static str, r: ttrpc::Result<T>) -> Result<T, RpcError> {
    r.map_err(|err| RpcError { rpc, err })
}

/// No deadline: WaitProcess and ReadStdout legitimately block for as long as the container runs.
pub fn ctx() -> Context {
    context::with_timeout(0)
}

pub async fn connect(addr: &str) -> anyhow::Result<Clients> {
    let c = ttrpc::r#async::Client::connect(addr)
        .await
        .map_err(|e| anyhow::anyhow!("connecting to {addr}: {e}"))?;
    Ok(Clients {
        agent: AgentServiceClient::new(c.clone()),
        health: HealthClient::new(c.clone()),
        admin: AdminClient::new(c),
    })
}
