//! The zygote launcher: execs `zagent zygote` once from a sealed in-memory copy of our binary
//! (so no container child ever sees the on-disk agent as /proc/self/exe), then sends it one
//! Launch frame per container. Requests are serialised, since the zygote serves one at a time.
//! If the zygote dies, the in-flight launch fails and a watcher re-execs a new one at once.

use super::{LaunchError, LaunchRequest, Launched, Launcher};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::process::Stdio;
use std::sync::Arc;
use tokio::io::unix::AsyncFd;
use tokio::sync::Mutex;
use wire::channel::{self, ChannelError};
use wire::zygote::{Reply, Request, PROTOCOL_VERSION};

struct Conn {
    sock: AsyncFd<OwnedFd>,
    generation: u64,
}

pub struct ZygoteLauncher {
    exe: Arc<OwnedFd>,
    conn: Arc<Mutex<Option<Conn>>>,
    generations: std::sync::atomic::AtomicU64,
}

impl ZygoteLauncher {
    /// Seals a copy of our binary and starts the first zygote.
    pub async fn start() -> Result<Arc<ZygoteLauncher>, LaunchError> {
        let exe = Arc::new(crate::selfexe::sealed_copy().map_err(LaunchError::Spawn)?);
        let launcher = Arc::new(ZygoteLauncher {
            exe,
            conn: Arc::new(Mutex::new(None)),
            generations: 0.into(),
        });
        let mut conn = launcher.conn.lock().await;
        *conn = Some(launcher.spawn().await?);
        drop(conn);
        Ok(launcher)
    }

    async fn spawn(self: &Arc<ZygoteLauncher>) -> Result<Conn, LaunchError> {
        let (ours, theirs) = channel::pair()?;
        let path = format!("/proc/self/fd/{}", self.exe.as_raw_fd());
        // The channel becomes the zygote's stdin: inherited without touching CLOEXEC flags
        // that a concurrent spawn could race with, and without an fd number in the environment.
        let child = tokio::process::Command::new(path)
            .arg0("zagent")
            .arg("zygote")
            .env_clear()
            .stdin(Stdio::from(theirs))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(LaunchError::Spawn)?;
        let pid = child.id().map(|p| p as i32).unwrap_or(-1);
        set_nonblocking(ours.as_fd()).map_err(LaunchError::Spawn)?;
        // SAFETY: the AsyncFd owns this OwnedFd; it is neither closed nor replaced while
        // registered (it is dropped together with the AsyncFd).
        let sock = unsafe { AsyncFd::register(ours) }.map_err(|e| LaunchError::Spawn(e.into()))?;
        let generation = self.generations.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let conn = Conn { sock, generation };
        match roundtrip(&conn, &Request::Hello { version: PROTOCOL_VERSION }, &[]).await? {
            (Reply::Hello { version }, _) if version == PROTOCOL_VERSION => {}
            (other, _) => return Err(LaunchError::Protocol(format!("{other:?}"))),
        }
        tokio::spawn(watch(Arc::downgrade(self), child, generation));
        tracing::info!(pid, generation, "zygote started");
        Ok(conn)
    }
}

/// Reaps a zygote when it exits and, if it was the current one, execs its successor at once.
/// Boxed because it is spawned from `spawn`, which it calls.
fn watch(
    launcher: std::sync::Weak<ZygoteLauncher>,
    mut child: tokio::process::Child,
    generation: u64,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    Box::pin(async move {
        let status = child.wait().await;
        let Some(launcher) = launcher.upgrade() else { return };
        let mut slot = launcher.conn.lock().await;
        if slot.as_ref().is_some_and(|c| c.generation != generation) {
            return; // a successor is already serving
        }
        tracing::warn!(pid = child.id(), ?status, "zygote exited; starting a new one");
        *slot = match launcher.spawn().await {
            Ok(conn) => Some(conn),
            Err(e) => {
                tracing::error!(error = %e, "restarting the zygote failed; next launch retries");
                None
            }
        };
    })
}

/// False when the zygote's end of the channel is closed (it died while idle).
fn conn_alive(conn: &Conn) -> bool {
    let mut fds = [nix::poll::PollFd::new(conn.sock.get_ref().as_fd(), nix::poll::PollFlags::POLLIN)];
    match nix::poll::poll(&mut fds, nix::poll::PollTimeout::ZERO) {
        Ok(0) => true,
        Ok(_) => !fds[0]
            .revents()
            .is_some_and(|r| r.intersects(nix::poll::PollFlags::POLLHUP | nix::poll::PollFlags::POLLERR)),
        Err(_) => false,
    }
}

fn set_nonblocking(fd: BorrowedFd<'_>) -> std::io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let flags = OFlag::from_bits_truncate(fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL)?);
    fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}

/// Sends one request and waits for its reply.
async fn roundtrip(
    conn: &Conn,
    req: &Request,
    fds: &[BorrowedFd<'_>],
) -> Result<(Reply, Vec<OwnedFd>), LaunchError> {
    let frame = wire::codec::encode(req).map_err(ChannelError::from)?;
    loop {
        let mut guard = conn.sock.writable().await.map_err(io_err)?;
        match channel::send_frame(conn.sock.get_ref().as_fd(), &frame, fds) {
            Err(e) if e.is_would_block() => guard.clear_ready(),
            Err(ChannelError::Io(nix::errno::Errno::EPIPE)) => return Err(LaunchError::ZygoteDied),
            other => break other?,
        }
    }
    let mut buf = channel::buffer();
    loop {
        let mut guard = conn.sock.readable().await.map_err(io_err)?;
        match channel::recv::<Reply>(conn.sock.get_ref().as_fd(), &mut buf, None) {
            Err(e) if e.is_would_block() => guard.clear_ready(),
            Err(ChannelError::Closed) | Err(ChannelError::Io(nix::errno::Errno::ECONNRESET)) => {
                return Err(LaunchError::ZygoteDied)
            }
            other => return Ok(other?),
        }
    }
}

fn io_err(e: std::io::Error) -> LaunchError {
    LaunchError::Channel(ChannelError::Io(nix::errno::Errno::from_raw(
        e.raw_os_error().unwrap_or(libc::EIO),
    )))
}

#[async_trait::async_trait]
impl Launcher for Arc<ZygoteLauncher> {
    async fn launch(&self, req: LaunchRequest) -> Result<Launched, LaunchError> {
        let mut slot = self.conn.lock().await;
        if slot.is_none() {
            *slot = Some(self.spawn().await?);
        }
        let conn = slot.as_ref().expect("connection was just set");
        // A zygote that died while idle fails the send (EPIPE) before our request reached
        // anyone, so that one case is safe to retry on a fresh zygote.
        if !conn_alive(conn) {
            *slot = Some(self.spawn().await?);
        }
        let conn = slot.as_ref().expect("connection was just set");
        let mut fds: Vec<BorrowedFd<'_>> = vec![
            req.stdin.as_fd(),
            req.stdout.as_fd(),
            req.stderr.as_fd(),
            req.sync.as_fd(),
            req.exec_fifo.as_fd(),
        ];
        fds.extend(req.join_ns.iter().map(|f| f.as_fd()));
        let result = roundtrip(conn, &Request::Launch(Box::new(req.config.clone())), &fds).await;
        let (reply, mut got) = match result {
            Err(e) => {
                if matches!(e, LaunchError::ZygoteDied) {
                    // The watcher reaps it; the next launch starts a new one.
                    *slot = None;
                }
                return Err(e);
            }
            Ok(r) => r,
        };
        match reply {
            Reply::Launched { pid } if got.len() == 1 => {
                Ok(Launched { pid, pidfd: got.pop().expect("one fd") })
            }
            Reply::Refused { errno, message } => Err(LaunchError::Refused {
                errno,
                errno_name: nix::errno::Errno::from_raw(errno).to_string(),
                message,
            }),
            other => Err(LaunchError::Protocol(format!("{other:?} with {} fds", got.len()))),
        }
    }
}
