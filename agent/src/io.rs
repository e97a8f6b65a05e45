//! A process's stdio: three pipes whose child ends go to the launch and whose agent ends serve
//! WriteStdin / CloseStdin / ReadStdout / ReadStderr. Nothing is buffered in the agent: a reader
//! that does not read leaves the data in the pipe, and the writer in the container blocks
//! (back-pressure, not loss). After the process exits its output stays readable until EOF.

use crate::error::AgentError;
use nix::fcntl::OFlag;
use std::os::fd::OwnedFd;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::sync::Mutex;

/// The most one ReadStdout/ReadStderr returns, whatever `len` asks for.
pub const MAX_READ: usize = 1 << 20;

pub struct ChildStdio {
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

pub struct Stdio {
    stdin: Mutex<Option<pipe::Sender>>,
    stdout: Mutex<Option<pipe::Receiver>>,
    stderr: Mutex<Option<pipe::Receiver>>,
}

#[derive(Clone, Copy, Debug)]
pub enum Stream {
    Stdout,
    Stderr,
}

fn io(what: &str) -> impl Fn(std::io::Error) -> AgentError + '_ {
    move |e| AgentError::io(what, e)
}

/// Makes the three pipes. The child's ends stay blocking (they are the container's stdio); ours
/// are made non-blocking for tokio.
pub fn pipes() -> Result<(ChildStdio, Stdio), AgentError> {
    let mk = || nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| AgentError::io("pipe", e.into()));
    let (in_r, in_w) = mk()?;
    let (out_r, out_w) = mk()?;
    let (err_r, err_w) = mk()?;
    let stdio = Stdio {
        stdin: Mutex::new(Some(pipe::Sender::from_owned_fd(in_w).map_err(io("stdin pipe"))?)),
        stdout: Mutex::new(Some(pipe::Receiver::from_owned_fd(out_r).map_err(io("stdout pipe"))?)),
        stderr: Mutex::new(Some(pipe::Receiver::from_owned_fd(err_r).map_err(io("stderr pipe"))?)),
    };
    Ok((ChildStdio { stdin: in_r, stdout: out_w, stderr: err_w }, stdio))
}

impl Stdio {
    /// Writes all of `data`; returns its length.
    pub async fn write_stdin(&self, data: &[u8]) -> Result<usize, AgentError> {
        let mut guard = self.stdin.lock().await;
        let w = guard.as_mut().ok_or_else(|| {
            AgentError::InvalidArgument("stdin is closed".into())
        })?;
        w.write_all(data).await.map_err(io("write stdin"))?;
        Ok(data.len())
    }

    pub async fn close_stdin(&self) {
        self.stdin.lock().await.take();
    }

    /// Up to `len` bytes (at least 1 asked, at most MAX_READ); empty means EOF.
    pub async fn read(&self, which: Stream, len: usize) -> Result<Vec<u8>, AgentError> {
        let slot = match which {
            Stream::Stdout => &self.stdout,
            Stream::Stderr => &self.stderr,
        };
        let mut guard = slot.lock().await;
        let Some(r) = guard.as_mut() else { return Ok(Vec::new()) };
        let mut buf = vec![0u8; len.clamp(1, MAX_READ)];
        let n = r.read(&mut buf).await.map_err(io("read output"))?;
        if n == 0 {
            guard.take();
        }
        buf.truncate(n);
        Ok(buf)
    }
}
