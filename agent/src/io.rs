//! A process's stdio: three pipes whose child ends go to the launch and whose agent ends serve
//! WriteStdin / CloseStdin / ReadStdout / ReadStderr, or, for a process with a terminal, the
//! pty master (stdout carries the terminal's output, stderr is empty). Nothing is buffered in
//! the agent: a reader that does not read leaves the data in the pipe or pty, and the writer in
//! the container blocks (back-pressure, not loss). After the process exits its output stays
//! readable until EOF.

use crate::error::AgentError;
use nix::fcntl::OFlag;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Arc;
use tokio::io::unix::AsyncFd;
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

enum Reader {
    Pipe(pipe::Receiver),
    Tty(Arc<AsyncFd<OwnedFd>>),
}

enum Writer {
    Pipe(pipe::Sender),
    Tty(Arc<AsyncFd<OwnedFd>>),
}

pub struct Stdio {
    stdin: Mutex<Option<Writer>>,
    stdout: Mutex<Option<Reader>>,
    stderr: Mutex<Option<Reader>>,
    console: Option<Arc<AsyncFd<OwnedFd>>>,
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
        stdin: Mutex::new(Some(Writer::Pipe(
            pipe::Sender::from_owned_fd(in_w).map_err(io("stdin pipe"))?,
        ))),
        stdout: Mutex::new(Some(Reader::Pipe(
            pipe::Receiver::from_owned_fd(out_r).map_err(io("stdout pipe"))?,
        ))),
        stderr: Mutex::new(Some(Reader::Pipe(
            pipe::Receiver::from_owned_fd(err_r).map_err(io("stderr pipe"))?,
        ))),
        console: None,
    };
    Ok((
        ChildStdio {
            stdin: in_r,
            stdout: out_w,
            stderr: err_w,
        },
        stdio,
    ))
}

impl Stdio {
    /// Switches to the pty master the child sent: the pipes are dropped (the child replaced
    /// them with the pty's slave), stdin and stdout go through the master, stderr is empty.
    pub fn into_console(self, master: OwnedFd) -> Result<Stdio, AgentError> {
        let raw = master.as_raw_fd();
        let flags = OFlag::from_bits_truncate(
            nix::fcntl::fcntl(raw, nix::fcntl::FcntlArg::F_GETFL)
                .map_err(|e| AgentError::io("pty", e.into()))?,
        );
        nix::fcntl::fcntl(
            raw,
            nix::fcntl::FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK),
        )
        .map_err(|e| AgentError::io("pty", e.into()))?;
        // SAFETY: the AsyncFd owns the master; it is closed only when the last Arc drops.
        let afd = Arc::new(
            unsafe { AsyncFd::register(master) }.map_err(|e| AgentError::io("pty", e.into()))?,
        );
        Ok(Stdio {
            stdin: Mutex::new(Some(Writer::Tty(afd.clone()))),
            stdout: Mutex::new(Some(Reader::Tty(afd.clone()))),
            stderr: Mutex::new(None),
            console: Some(afd),
        })
    }

    /// Writes all of `data`; returns its length. One write at a time per process: a second
    /// one while the first waits for the process to read is RESOURCE_EXHAUSTED, so a process
    /// that never reads its stdin holds at most one request's data (under ttrpc's 4 MiB frame
    /// limit) in the agent, not one per call.
    ///
    /// Empty `data` is EOF, as in Kata's agent: runtime-rs closes a process's stdin by sending
    /// an empty WriteStdin rather than CloseStdin, so it is a CloseStdin (and, like that one,
    /// fine on a stdin already closed).
    pub async fn write_stdin(&self, data: &[u8]) -> Result<usize, AgentError> {
        if data.is_empty() {
            return self.close_stdin().await.map(|_| 0);
        }
        let mut guard = self.stdin.try_lock().map_err(|_| AgentError::StdinBusy)?;
        match guard.as_mut() {
            None => Err(AgentError::StdinClosed),
            Some(Writer::Pipe(w)) => w
                .write_all(data)
                .await
                .map_err(io("write stdin"))
                .map(|_| data.len()),
            Some(Writer::Tty(fd)) => tty_write_all(fd, data).await.map(|_| data.len()),
        }
    }

    /// Closes stdin. On a terminal there is nothing to close (the master is also the output),
    /// so the terminal's EOF character (^D) is sent instead, as a user typing it would.
    pub async fn close_stdin(&self) -> Result<(), AgentError> {
        let taken = self.stdin.lock().await.take();
        if let Some(Writer::Tty(fd)) = taken {
            tty_write_all(&fd, &[4u8]).await?;
        }
        Ok(())
    }

    /// Up to `len` bytes (at least 1 asked, at most MAX_READ); empty means EOF.
    pub async fn read(&self, which: Stream, len: usize) -> Result<Vec<u8>, AgentError> {
        let slot = match which {
            Stream::Stdout => &self.stdout,
            Stream::Stderr => &self.stderr,
        };
        let mut guard = slot.lock().await;
        let mut buf = vec![0u8; len.clamp(1, MAX_READ)];
        let n = match guard.as_mut() {
            None => 0,
            Some(Reader::Pipe(r)) => r.read(&mut buf).await.map_err(io("read output"))?,
            Some(Reader::Tty(fd)) => tty_read(fd, &mut buf).await?,
        };
        if n == 0 {
            guard.take();
        }
        buf.truncate(n);
        Ok(buf)
    }

    /// TtyWinResize.
    pub fn resize(&self, rows: u16, cols: u16) -> Result<(), AgentError> {
        let console = self.console.as_ref().ok_or(AgentError::NoTerminal)?;
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads one winsize struct that lives for the whole call.
        let r = unsafe { libc::ioctl(console.get_ref().as_raw_fd(), libc::TIOCSWINSZ, &ws) };
        if r < 0 {
            return Err(AgentError::io(
                "TIOCSWINSZ",
                std::io::Error::last_os_error(),
            ));
        }
        Ok(())
    }
}

/// One read from the pty master. EIO means every slave fd is closed: the terminal's EOF.
async fn tty_read(fd: &AsyncFd<OwnedFd>, buf: &mut [u8]) -> Result<usize, AgentError> {
    loop {
        let mut guard = fd.readable().await.map_err(io("pty"))?;
        match nix::unistd::read(fd.get_ref().as_raw_fd(), buf) {
            Err(nix::errno::Errno::EAGAIN) => guard.clear_ready(),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(nix::errno::Errno::EIO) => return Ok(0),
            Err(e) => return Err(AgentError::io("read pty", e.into())),
            Ok(n) => return Ok(n),
        }
    }
}

async fn tty_write_all(fd: &AsyncFd<OwnedFd>, mut data: &[u8]) -> Result<(), AgentError> {
    while !data.is_empty() {
        let mut guard = fd.writable().await.map_err(io("pty"))?;
        match nix::unistd::write(fd.get_ref().as_fd(), data) {
            Err(nix::errno::Errno::EAGAIN) => guard.clear_ready(),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(AgentError::io("write pty", e.into())),
            Ok(n) => data = &data[n..],
        }
    }
    Ok(())
}
