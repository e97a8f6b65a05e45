//! The agent's side of a sandbox's own pid namespace (`zygote::pidns_init` is the other side):
//! spawns our sealed binary as `zagent pidns-init`, waits for its `ready`, and holds the
//! namespace as an fd (the holder's `pid_for_children`, opened while the holder is our
//! unreaped child, so its pid cannot name another process). Dropping it kills the holder; its
//! init follows (parent-death signal), and with the init everything left in the namespace.

use crate::error::AgentError;
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncBufReadExt;

/// How long the init may take to say it is ready (a fork, a mount and a pivot).
const READY_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct PidnsInit {
    /// Killed on drop (tokio reaps it afterwards).
    holder: tokio::process::Child,
    ns: OwnedFd,
}

impl PidnsInit {
    pub async fn start(exe: &OwnedFd) -> Result<PidnsInit, AgentError> {
        let mut holder = tokio::process::Command::new(format!("/proc/self/fd/{}", exe.as_raw_fd()))
            .arg0("zagent")
            .arg("pidns-init")
            .arg(std::process::id().to_string())
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0)
            // Until it is a `PidnsInit` (whose drop kills it), an early return kills it too.
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| AgentError::io("spawning the sandbox's pid namespace init", e))?;
        let stdout = holder.stdout.take().expect("stdout is piped");
        let mut line = String::new();
        let mut reader = tokio::io::BufReader::new(stdout);
        let read = tokio::time::timeout(READY_TIMEOUT, reader.read_line(&mut line)).await;
        if !matches!(read, Ok(Ok(_))) || line != "ready\n" {
            return Err(AgentError::PidnsInit(format!(
                "did not become ready within {READY_TIMEOUT:?} (it said {line:?})"
            )));
        }
        let pid = holder.id().expect("not yet reaped");
        let path = format!("/proc/{pid}/ns/pid_for_children");
        let ns = std::fs::File::open(&path).map_err(|e| AgentError::io(&path, e))?;
        Ok(PidnsInit {
            holder,
            ns: ns.into(),
        })
    }

    pub fn ns(&self) -> &OwnedFd {
        &self.ns
    }
}

impl Drop for PidnsInit {
    /// SIGKILL to the holder: its init follows (parent-death signal), and with the init every
    /// process still in the namespace. tokio reaps the holder in the background.
    fn drop(&mut self) {
        let _ = self.holder.start_kill();
    }
}
