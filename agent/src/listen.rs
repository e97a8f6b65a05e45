//! The listening socket: binds `--listen` without ever destroying what is at a unix path, wraps
//! every accepted connection in `conn_limit`, and at shutdown removes the socket file only while
//! it is still the one this agent bound.
//!
//! At a unix path: nothing there, bind; a socket an agent answers on, refuse (taking it over
//! would leave that agent running, unreachable); a socket nobody listens on (ECONNREFUSED: what
//! a killed agent leaves), remove it and bind; anything else (regular file, directory, symlink,
//! fifo, device), refuse. The check and the bind are not atomic: a second agent binding in
//! between makes our bind fail with EADDRINUSE, which is also a refusal.

use crate::conn_limit::Metered;
use futures_core::Stream;
use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, UnixAddr};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};
use ttrpc::r#async::transport::{Listener, Socket};

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("an agent is already serving on {0}: refusing to take its socket over")]
    InUse(PathBuf),
    #[error("{path} exists and is not a socket (it is a {kind}): refusing to replace it")]
    NotSocket { path: PathBuf, kind: &'static str },
    #[error("{path}: {what}: {source}")]
    Io {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("binding {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

/// The socket file we bound, identified by device and inode so that a file someone else put
/// at the path later is never removed. Dropping it removes the socket.
pub struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl Drop for SocketFile {
    /// Removes the socket file if the path still names the socket we bound: at shutdown, and
    /// when start-up fails after the bind.
    fn drop(&mut self) {
        match std::fs::symlink_metadata(&self.path) {
            Ok(m) if m.file_type().is_socket() && m.dev() == self.dev && m.ino() == self.ino => {
                if let Err(e) = std::fs::remove_file(&self.path) {
                    tracing::warn!(path = %self.path.display(), error = %e, "removing our socket");
                }
            }
            Ok(_) => tracing::warn!(
                path = %self.path.display(),
                "the socket path was replaced while we ran; leaving it alone"
            ),
            Err(_) => {}
        }
    }
}

/// Binds `listen` (unix:///path, unix://@abstract or vsock://CID:PORT). The returned listener
/// yields connections already wrapped in `conn_limit::Metered`; the `SocketFile` is the unix
/// path we own, if any.
pub fn bind(listen: &str) -> Result<(Listener, Option<SocketFile>), ListenError> {
    let bind_err = |source| ListenError::Bind {
        addr: listen.to_owned(),
        source,
    };
    let path = listen
        .strip_prefix("unix://")
        .filter(|p| !p.starts_with('@'));
    let Some(path) = path.map(Path::new) else {
        let inner = Listener::bind(listen).map_err(bind_err)?;
        return Ok((Listener::new(Limited(inner)), None));
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| ListenError::Io {
            path: dir.to_owned(),
            what: "creating the socket's directory",
            source,
        })?;
    }
    clear_stale(path)?;
    let std_listener = std::os::unix::net::UnixListener::bind(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            ListenError::InUse(path.to_owned())
        } else {
            bind_err(e)
        }
    })?;
    let meta = std::fs::symlink_metadata(path).map_err(|source| ListenError::Io {
        path: path.to_owned(),
        what: "stat of the socket we bound",
        source,
    })?;
    let owned = SocketFile {
        path: path.to_owned(),
        dev: meta.dev(),
        ino: meta.ino(),
    };
    let tokio_listener = std_listener
        .set_nonblocking(true)
        .and_then(|()| tokio::net::UnixListener::from_std(std_listener))
        .map_err(bind_err)?;
    let inner = Listener::from(tokio_listener);
    Ok((Listener::new(Limited(inner)), Some(owned)))
}

/// Leaves `path` free for bind: removes a stale socket, refuses everything else.
fn clear_stale(path: &Path) -> Result<(), ListenError> {
    let io = |what, source| ListenError::Io {
        path: path.to_owned(),
        what,
        source,
    };
    let meta = match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io("stat", e)),
        Ok(m) => m,
    };
    let ft = meta.file_type();
    if !ft.is_socket() {
        let kind = if ft.is_file() {
            "regular file"
        } else if ft.is_dir() {
            "directory"
        } else if ft.is_symlink() {
            "symlink"
        } else if ft.is_fifo() {
            "fifo"
        } else {
            "device"
        };
        return Err(ListenError::NotSocket {
            path: path.to_owned(),
            kind,
        });
    }
    if someone_listens(path).map_err(|e| io("probing the existing socket", e))? {
        return Err(ListenError::InUse(path.to_owned()));
    }
    tracing::info!(path = %path.display(), "removing a stale socket (nobody listens on it)");
    std::fs::remove_file(path).map_err(|e| io("removing the stale socket", e))
}

/// Whether a listener accepts on the socket at `path`. The connect is non-blocking, so a live
/// agent with a full backlog (EAGAIN) counts as listening rather than hanging the probe.
fn someone_listens(path: &Path) -> std::io::Result<bool> {
    let fd = socket::socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )?;
    let addr = UnixAddr::new(path)?;
    match socket::connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &addr) {
        Ok(()) => Ok(true),
        Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINPROGRESS) => Ok(true),
        Err(nix::errno::Errno::ECONNREFUSED) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// The accepted connections, each wrapped in `Metered` before ttrpc sees it.
struct Limited(Listener);

impl Stream for Limited {
    type Item = std::io::Result<Metered<Socket>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.get_mut().0)
            .poll_next(cx)
            .map(|next| next.map(|conn| conn.map(Metered::new)))
    }
}
