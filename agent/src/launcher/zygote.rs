//! The zygote launcher: execs `zagent zygote` once from a sealed in-memory copy of our binary
//! (so no container child ever sees the on-disk agent as /proc/self/exe), then sends it one
//! Launch or Exec frame per process. Requests are serialised, since the zygote serves one at a
//! time. If the zygote dies, the in-flight launch fails and a watcher re-execs a new one at once,
//! unless the agent is shutting down.

use super::helper::{self, Channel};
use super::{LaunchError, LaunchRequest, Launched, Launcher};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::Mutex;
use wire::zygote::{Reply, Request, PROTOCOL_VERSION};

struct Conn {
    channel: Channel,
    generation: u64,
}

/// The launcher the agent holds; its state is shared with the watcher of each zygote, which
/// needs it to start the successor.
pub struct ZygoteLauncher(Arc<Shared>);

struct Shared {
    exe: Arc<OwnedFd>,
    /// Extra arguments for `zagent zygote` (test hooks only).
    args: Vec<String>,
    conn: Mutex<Option<Conn>>,
    generations: std::sync::atomic::AtomicU64,
    /// Set at shutdown: a zygote that dies from then on is not replaced.
    closed: AtomicBool,
}

impl ZygoteLauncher {
    /// Starts the first zygote from the sealed copy of our binary.
    pub async fn start(
        exe: Arc<OwnedFd>,
        args: Vec<String>,
    ) -> Result<ZygoteLauncher, LaunchError> {
        let launcher = Arc::new(Shared {
            exe,
            args,
            conn: Mutex::new(None),
            generations: 0.into(),
            closed: AtomicBool::new(false),
        });
        let mut conn = launcher.conn.lock().await;
        *conn = Some(launcher.spawn().await?);
        drop(conn);
        Ok(ZygoteLauncher(launcher))
    }
}

impl Shared {
    async fn spawn(self: &Arc<Shared>) -> Result<Conn, LaunchError> {
        let (child, channel) = helper::spawn(&self.exe, "zygote", &self.args)?;
        let pid = child.id();
        let generation = self
            .generations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        match channel
            .roundtrip(
                &Request::Hello {
                    version: PROTOCOL_VERSION,
                },
                &[],
            )
            .await?
        {
            (Reply::Hello { version }, _) if version == PROTOCOL_VERSION => {}
            (other, _) => return Err(LaunchError::Protocol(format!("{other:?}"))),
        }
        tokio::spawn(watch(Arc::downgrade(self), child, generation));
        tracing::info!(pid, generation, "zygote started");
        Ok(Conn {
            channel,
            generation,
        })
    }
}

/// Reaps a zygote when it exits and, if it was the current one, execs its successor at once.
/// Boxed because it is spawned from `spawn`, which it calls.
fn watch(
    launcher: std::sync::Weak<Shared>,
    mut child: tokio::process::Child,
    generation: u64,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    Box::pin(async move {
        let pid = child.id();
        let status = match child.wait().await {
            Ok(status) => status.to_string(),
            Err(e) => format!("unknown ({e})"),
        };
        let Some(launcher) = launcher.upgrade() else {
            tracing::info!(pid, generation, status, "zygote exited");
            return;
        };
        let mut slot = launcher.conn.lock().await;
        if launcher.closed.load(Ordering::SeqCst) {
            tracing::info!(pid, generation, status, "zygote exited (shutting down)");
            *slot = None;
            return;
        }
        if slot.as_ref().is_some_and(|c| c.generation != generation) {
            tracing::info!(pid, generation, status, "replaced zygote exited");
            return; // a successor is already serving
        }
        tracing::warn!(pid, generation, status, "zygote exited; starting a new one");
        *slot = match launcher.spawn().await {
            Ok(conn) => Some(conn),
            Err(e) => {
                tracing::error!(error = %e, "restarting the zygote failed; next launch retries");
                None
            }
        };
    })
}

#[async_trait::async_trait]
impl Launcher for ZygoteLauncher {
    async fn launch(&self, req: LaunchRequest) -> Result<Launched, LaunchError> {
        let mut slot = self.0.conn.lock().await;
        let conn = self.0.ready(&mut slot).await?;
        let result = conn.channel.launch(req).await;
        if matches!(result, Err(LaunchError::ZygoteDied)) {
            *slot = None; // the watcher reaps it and starts the next one
        }
        result
    }

    fn name(&self) -> &'static str {
        "zygote"
    }

    fn restarts(&self) -> u64 {
        let started = self
            .0
            .generations
            .load(std::sync::atomic::Ordering::Relaxed);
        started.saturating_sub(1)
    }

    fn close(&self) {
        self.0.closed.store(true, Ordering::SeqCst);
    }
}

impl Shared {
    /// The live zygote. One that died while idle is replaced before the request is sent:
    /// nothing reached it, so this is the one case that is safe to retry.
    async fn ready<'a>(
        self: &Arc<Self>,
        slot: &'a mut Option<Conn>,
    ) -> Result<&'a Conn, LaunchError> {
        if !slot.as_ref().is_some_and(|c| c.channel.alive()) {
            if self.closed.load(Ordering::SeqCst) {
                return Err(LaunchError::Closed);
            }
            *slot = Some(self.spawn().await?);
        }
        Ok(slot.as_ref().expect("connection was just set"))
    }
}
