//! Attaching the local terminal to a process: stdin forwarded with WriteStdin (CloseStdin at
//! EOF), stdout and stderr copied from ReadStdout/ReadStderr until EOF, and, for a terminal,
//! raw mode (restored on every exit path) with the window size forwarded on SIGWINCH.

use crate::client::{ctx, named, Clients};
use std::os::fd::AsFd;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wire::agent;

/// Puts the local terminal in raw mode while alive.
pub struct RawMode(Option<nix::sys::termios::Termios>);

impl RawMode {
    pub fn enter() -> RawMode {
        use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
        let stdin = std::io::stdin();
        let Ok(saved) = tcgetattr(stdin.as_fd()) else {
            return RawMode(None);
        };
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        if tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw).is_err() {
            return RawMode(None);
        }
        RawMode(Some(saved))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(saved) = &self.0 {
            let _ = nix::sys::termios::tcsetattr(
                std::io::stdin().as_fd(),
                nix::sys::termios::SetArg::TCSANOW,
                saved,
            );
        }
    }
}

pub fn stdin_is_tty() -> bool {
    nix::unistd::isatty(0).unwrap_or(false)
}

/// The local terminal's size (rows, columns), if stdout or stdin is a terminal.
pub fn local_size() -> Option<(u16, u16)> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    for fd in [1, 0] {
        // SAFETY: TIOCGWINSZ writes one winsize into `ws`, which lives for the call.
        if unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) } == 0 && ws.ws_row > 0 {
            return Some((ws.ws_row, ws.ws_col));
        }
    }
    None
}

/// Streams a started process until its output ends: returns when stdout and stderr hit EOF.
pub async fn attach(c: &Clients, id: &str, exec_id: &str, tty: bool) -> anyhow::Result<()> {
    let _raw = tty.then(RawMode::enter);
    if tty {
        resize(c, id, exec_id).await;
    }
    let input = async {
        // Without a terminal on our side and no --tty, stdin is not the process's to read.
        if stdin_is_tty() && !tty {
            return close(c, id, exec_id).await;
        }
        forward_stdin(c, id, exec_id).await
    };
    let winch = async {
        if !tty {
            return;
        }
        let Ok(mut sig) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
        else {
            return;
        };
        while sig.recv().await.is_some() {
            resize(c, id, exec_id).await;
        }
    };
    let output = async {
        let (o, e) = tokio::join!(
            copy_stream(c, id, exec_id, false),
            copy_stream(c, id, exec_id, true)
        );
        o.and(e)
    };
    tokio::select! {
        r = output => r,
        _ = async { let _ = tokio::join!(input, winch); std::future::pending::<()>().await } => unreachable!(),
    }
}

async fn resize(c: &Clients, id: &str, exec_id: &str) {
    if let Some((rows, cols)) = local_size() {
        let mut req = agent::TtyWinResizeRequest::new();
        req.container_id = id.into();
        req.exec_id = exec_id.into();
        req.row = rows.into();
        req.column = cols.into();
        let _ = c.agent.tty_win_resize(ctx(), &req).await;
    }
}

async fn close(c: &Clients, id: &str, exec_id: &str) -> anyhow::Result<()> {
    let mut req = agent::CloseStdinRequest::new();
    req.container_id = id.into();
    req.exec_id = exec_id.into();
    named("CloseStdin", c.agent.close_stdin(ctx(), &req).await)?;
    Ok(())
}

async fn forward_stdin(c: &Clients, id: &str, exec_id: &str) -> anyhow::Result<()> {
    let mut stdin = tokio::io::stdin();
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = stdin.read(&mut buf).await?;
        if n == 0 {
            return close(c, id, exec_id).await;
        }
        let mut req = agent::WriteStreamRequest::new();
        req.container_id = id.into();
        req.exec_id = exec_id.into();
        req.data = buf[..n].to_vec();
        named("WriteStdin", c.agent.write_stdin(ctx(), &req).await)?;
    }
}

/// Copies ReadStdout or ReadStderr to our own stdout or stderr until EOF (empty data).
async fn copy_stream(c: &Clients, id: &str, exec_id: &str, stderr: bool) -> anyhow::Result<()> {
    let mut req = agent::ReadStreamRequest::new();
    req.container_id = id.into();
    req.exec_id = exec_id.into();
    req.len = 64 * 1024;
    loop {
        let data = if stderr {
            named("ReadStderr", c.agent.read_stderr(ctx(), &req).await)?.data
        } else {
            named("ReadStdout", c.agent.read_stdout(ctx(), &req).await)?.data
        };
        if data.is_empty() {
            return Ok(());
        }
        if stderr {
            tokio::io::stderr().write_all(&data).await?;
        } else {
            let mut o = tokio::io::stdout();
            o.write_all(&data).await?;
            o.flush().await?;
        }
    }
}
