//! Connecting a ttrpc client to an agent address. `unix://PATH` and `vsock://CID:PORT` are
//! ttrpc's own; `hvsock://PATH:PORT` is Kata's hybrid vsock (Firecracker, Cloud Hypervisor,
//! vhost-device-vsock): the VMM exposes the guest's vsock as a Unix socket at PATH, the host
//! connects there, writes `CONNECT <port>\n`, reads one line that starts with `OK ` when the
//! guest accepted, and from then on the same stream is the connection to the guest's port.
//! This is the one place the handshake lives: zagent-ctl, the tests and the bench all connect
//! through `connect`.

use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// How long the VMM may take to answer CONNECT. A guest whose port has no listener makes the
/// backend close the stream at once; a backend that never answers would hang us without this.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest answer line we read: `OK <u32>\n` fits many times over.
const MAX_REPLY: usize = 64;

/// An agent address, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addr {
    /// Given to ttrpc as is (`unix://...` or `vsock://...`).
    Ttrpc(String),
    /// `hvsock://PATH:PORT`.
    Hybrid { path: PathBuf, port: u32 },
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{addr}: not an agent address (unix:///PATH, vsock://CID:PORT or hvsock://PATH:PORT)")]
    Scheme { addr: String },
    #[error("{addr}: hvsock address needs PATH:PORT with a numeric port")]
    HybridAddr { addr: String },
    #[error(
        "{path}: cannot reach the VM's hybrid-vsock socket: {source} (is the guest's VMM running?)"
    )]
    HybridSocket {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: the VMM did not accept port {port}: {why} (is the agent up in the guest?)")]
    Refused {
        path: PathBuf,
        port: u32,
        why: String,
    },
    #[error("connecting to {addr}: {source}")]
    Ttrpc {
        addr: String,
        #[source]
        source: ttrpc::Error,
    },
}

impl Addr {
    pub fn parse(addr: &str) -> Result<Addr, ConnectError> {
        if addr.starts_with("unix://") || addr.starts_with("vsock://") {
            return Ok(Addr::Ttrpc(addr.to_owned()));
        }
        let Some(rest) = addr.strip_prefix("hvsock://") else {
            return Err(ConnectError::Scheme { addr: addr.into() });
        };
        let bad = || ConnectError::HybridAddr { addr: addr.into() };
        let (path, port) = rest.rsplit_once(':').ok_or_else(bad)?;
        let port = port.parse::<u32>().map_err(|_| bad())?;
        if path.is_empty() {
            return Err(bad());
        }
        Ok(Addr::Hybrid {
            path: path.into(),
            port,
        })
    }
}

/// A ttrpc client on `addr`, the handshake done for hvsock.
pub async fn connect(addr: &str) -> Result<ttrpc::r#async::Client, ConnectError> {
    match Addr::parse(addr)? {
        Addr::Ttrpc(a) => ttrpc::r#async::Client::connect(&a)
            .await
            .map_err(|source| ConnectError::Ttrpc { addr: a, source }),
        Addr::Hybrid { path, port } => {
            let stream = hybrid_stream(&path, port, HANDSHAKE_TIMEOUT).await?;
            Ok(ttrpc::r#async::Client::new(
                ttrpc::r#async::transport::Socket::new(stream),
            ))
        }
    }
}

/// The stream to the guest's `port` through the VMM's socket at `path`, handshake done.
pub async fn hybrid_stream(
    path: &Path,
    port: u32,
    timeout: Duration,
) -> Result<UnixStream, ConnectError> {
    let mut stream =
        UnixStream::connect(path)
            .await
            .map_err(|source| ConnectError::HybridSocket {
                path: path.into(),
                source,
            })?;
    let refused = |why: String| ConnectError::Refused {
        path: path.into(),
        port,
        why,
    };
    let handshake = async {
        stream
            .write_all(format!("CONNECT {port}\n").as_bytes())
            .await
            .map_err(|e| refused(format!("writing CONNECT: {e}")))?;
        read_reply(&mut stream).await.map_err(refused)
    };
    let line = tokio::time::timeout(timeout, handshake)
        .await
        .map_err(|_| refused(format!("no answer within {timeout:?}")))??;
    // vhost-device-vsock answers `OK <guest port>`, Firecracker `OK <host port>`: only the
    // prefix means anything.
    if !line.starts_with("OK ") {
        return Err(refused(format!("it answered {line:?}")));
    }
    Ok(stream)
}

/// One line, read a byte at a time: whatever follows it is the guest's and must stay in the
/// stream for ttrpc.
async fn read_reply(stream: &mut UnixStream) -> Result<String, String> {
    let mut line = Vec::new();
    loop {
        let byte = match stream.read_u8().await {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err("it closed the connection".into())
            }
            Err(e) => return Err(format!("reading its answer: {e}")),
        };
        if byte == b'\n' {
            return Ok(String::from_utf8_lossy(&line).into_owned());
        }
        if line.len() == MAX_REPLY {
            return Err(format!("its answer is longer than {MAX_REPLY} bytes"));
        }
        line.push(byte);
    }
}

#[cfg(test)]
mod tests;
