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

/// The address as `wire::connect` takes it: `unix://PATH`, `vsock://CID:PORT` and
/// `hvsock://PATH:PORT` (a guest behind a hybrid-vsock VMM socket) as given, a bare path as
/// `unix://` of it (made absolute), any other scheme refused (ttrpc would try `tcp://` and fail
/// obscurely; the agent never listens on TCP).
pub fn normalize_addr(addr: &str) -> anyhow::Result<String> {
    if ["unix://", "vsock://", "hvsock://"]
        .iter()
        .any(|s| addr.starts_with(s))
    {
        return Ok(addr.to_owned());
    }
    if let Some((scheme, _)) = addr.split_once("://") {
        anyhow::bail!(
            "--addr {addr}: unsupported scheme {scheme:?} (zagent is reached at unix:///PATH, \
             vsock://CID:PORT or hvsock://PATH:PORT)"
        );
    }
    if addr.is_empty() {
        anyhow::bail!(
            "--addr is empty (give unix:///PATH, vsock://CID:PORT, hvsock://PATH:PORT or a socket path)"
        );
    }
    let path = std::path::Path::new(addr);
    let path = if path.is_absolute() {
        path.to_owned()
    } else {
        std::env::current_dir()?.join(path)
    };
    Ok(format!("unix://{}", path.display()))
}

pub async fn connect(addr: &str) -> anyhow::Result<Clients> {
    let addr = normalize_addr(addr)?;
    let c = wire::connect::connect(&addr).await.map_err(|e| match e {
        wire::connect::ConnectError::Ttrpc { .. } => anyhow::anyhow!(
            "{e} (is zagent running and listening there? \
             `zagent --listen {addr}` starts one; --addr chooses another)"
        ),
        e => anyhow::anyhow!("{e}"),
    })?;
    Ok(Clients {
        agent: AgentServiceClient::new(c.clone()),
        health: HealthClient::new(c.clone()),
        admin: AdminClient::new(c),
    })
}

#[cfg(test)]
mod tests {
    use super::normalize_addr;

    #[test]
    fn addresses_are_normalised_or_refused() {
        let ok = |a: &str| normalize_addr(a).unwrap();
        assert_eq!(ok("unix:///run/z.sock"), "unix:///run/z.sock");
        assert_eq!(ok("vsock://3:1024"), "vsock://3:1024");
        assert_eq!(
            ok("hvsock:///run/vm.sock:1024"),
            "hvsock:///run/vm.sock:1024"
        );
        assert_eq!(ok("/run/z.sock"), "unix:///run/z.sock");
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            ok("z.sock"),
            format!("unix://{}", cwd.join("z.sock").display())
        );
        let err = normalize_addr("tcp://127.0.0.1:80")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unsupported scheme \"tcp\""), "{err}");
        assert!(normalize_addr("").is_err());
    }
}
