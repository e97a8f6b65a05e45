//! GetIPTables and SetIPTables, as Kata's agent serves them: the guest's packet filter rules
//! read with `iptables-save` and replaced with `iptables-restore --wait 5` (`ip6tables-*` when
//! the request says IPv6), run as programs in the agent's network namespace, the rules passed
//! as the tools' own text. The tools are looked for on PATH and then in /usr/sbin and /sbin
//! (where Kata's agent looks); a guest without them gets FAILED_PRECONDITION naming the
//! missing program (Kata's agent answers INTERNAL with the spawn's ENOENT). Input, output and
//! run time are bounded.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

/// The largest rule set SetIPTables takes.
pub const MAX_INPUT: usize = 2 << 20;
/// The most of a tool's standard output kept (it goes back in one ttrpc message).
pub const MAX_OUTPUT: usize = 3 << 20;
/// The most of a tool's standard error kept for the error message.
const MAX_STDERR: usize = 4 << 10;
/// How long a tool may run (iptables-restore waits up to 5 s for the xtables lock).
const RUN_TIMEOUT: Duration = Duration::from_secs(15);
/// Where Kata's agent finds the tools, after PATH.
pub const SBIN_DIRS: [&str; 2] = ["/usr/sbin", "/sbin"];

#[derive(Debug, thiserror::Error)]
pub enum IptablesError {
    #[error("{0} is not installed in the guest (looked on PATH, in /usr/sbin and /sbin)")]
    Missing(&'static str),
    #[error("the rules are {0} bytes, more than {MAX_INPUT}")]
    TooLong(usize),
    #[error("{tool} refused the rules ({status}): {stderr}")]
    Refused {
        tool: &'static str,
        status: String,
        stderr: String,
    },
    #[error("{tool} failed ({status}): {stderr}")]
    Failed {
        tool: &'static str,
        status: String,
        stderr: String,
    },
    #[error("{tool} wrote more than {MAX_OUTPUT} bytes")]
    OutputTooLong { tool: &'static str },
    #[error("run {tool}: {source}")]
    Run {
        tool: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{tool} did not finish within {RUN_TIMEOUT:?}")]
    Timeout { tool: &'static str },
}

impl IptablesError {
    pub fn code(&self) -> ttrpc::Code {
        match self {
            IptablesError::Missing(_) => ttrpc::Code::FAILED_PRECONDITION,
            IptablesError::TooLong(_) | IptablesError::Refused { .. } => {
                ttrpc::Code::INVALID_ARGUMENT
            }
            IptablesError::Timeout { .. } => ttrpc::Code::DEADLINE_EXCEEDED,
            IptablesError::Failed { .. }
            | IptablesError::OutputTooLong { .. }
            | IptablesError::Run { .. } => ttrpc::Code::INTERNAL,
        }
    }
}

/// The first executable file named `tool` in `dirs`.
pub fn find_tool(
    tool: &'static str,
    dirs: impl IntoIterator<Item = PathBuf>,
) -> Result<PathBuf, IptablesError> {
    use std::os::unix::fs::PermissionsExt;
    dirs.into_iter()
        .map(|d| d.join(tool))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .ok_or(IptablesError::Missing(tool))
}

/// The dirs of `path` (a PATH value), then Kata's sbin dirs.
pub fn search_dirs(path: Option<&std::ffi::OsStr>) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = path
        .map(|p| std::env::split_paths(p).collect())
        .unwrap_or_default();
    dirs.extend(SBIN_DIRS.iter().map(PathBuf::from));
    dirs
}

/// GetIPTables: the `*-save` tool's output, as it is.
pub async fn get(ipv6: bool, dirs: Vec<PathBuf>) -> Result<Vec<u8>, IptablesError> {
    let tool = if ipv6 {
        "ip6tables-save"
    } else {
        "iptables-save"
    };
    let path = find_tool(tool, dirs)?;
    let (status, out, err) = run(tool, &path, &[], None).await?;
    if !status.success() {
        return Err(IptablesError::Failed {
            tool,
            status: status.to_string(),
            stderr: err,
        });
    }
    Ok(out)
}

/// SetIPTables: `data` fed to the `*-restore` tool (which replaces the tables it names);
/// its output, as it is. A tool that exits non-zero refused the rules (nothing changed: the
/// tools commit each table whole or not at all).
pub async fn set(ipv6: bool, data: &[u8], dirs: Vec<PathBuf>) -> Result<Vec<u8>, IptablesError> {
    if data.len() > MAX_INPUT {
        return Err(IptablesError::TooLong(data.len()));
    }
    let tool = if ipv6 {
        "ip6tables-restore"
    } else {
        "iptables-restore"
    };
    let path = find_tool(tool, dirs)?;
    let (status, out, err) = run(tool, &path, &["--wait", "5"], Some(data)).await?;
    if !status.success() {
        return Err(IptablesError::Refused {
            tool,
            status: status.to_string(),
            stderr: err,
        });
    }
    Ok(out)
}

/// Runs `path` with `input` on its stdin; its exit status, stdout and (lossy, trimmed) stderr.
/// Killed if it outlives `RUN_TIMEOUT` (the child is dropped with `kill_on_drop`).
async fn run(
    tool: &'static str,
    path: &Path,
    args: &[&str],
    input: Option<&[u8]>,
) -> Result<(std::process::ExitStatus, Vec<u8>, String), IptablesError> {
    let run_err = |source| IptablesError::Run { tool, source };
    let mut child = tokio::process::Command::new(path)
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(run_err)?;
    let stdin = child.stdin.take();
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let work = async {
        let feed = async {
            if let (Some(mut pipe), Some(data)) = (stdin, input) {
                // A tool that stops reading early (bad rules) closes the pipe: its status says why.
                match pipe.write_all(data).await {
                    Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(e),
                    _ => {}
                }
            }
            Ok(())
        };
        let (fed, out, err) = tokio::join!(
            feed,
            bounded(stdout, MAX_OUTPUT),
            bounded(stderr, MAX_STDERR)
        );
        fed.map_err(run_err)?;
        let (out, out_whole) = out.map_err(run_err)?;
        let (err, _) = err.map_err(run_err)?;
        let status = child.wait().await.map_err(run_err)?;
        if !out_whole {
            return Err(IptablesError::OutputTooLong { tool });
        }
        Ok((status, out, String::from_utf8_lossy(&err).trim().to_owned()))
    };
    tokio::time::timeout(RUN_TIMEOUT, work)
        .await
        .map_err(|_| IptablesError::Timeout { tool })?
}

/// Up to `limit` bytes of `pipe`, read to its end (the rest dropped, so the writer never
/// blocks); whether nothing was dropped.
async fn bounded(
    pipe: Option<impl AsyncRead + Unpin>,
    limit: usize,
) -> std::io::Result<(Vec<u8>, bool)> {
    let Some(mut pipe) = pipe else {
        return Ok((Vec::new(), true));
    };
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    let mut whole = true;
    loop {
        let n = pipe.read(&mut buf).await?;
        if n == 0 {
            return Ok((kept, whole));
        }
        let room = limit - kept.len();
        kept.extend_from_slice(&buf[..n.min(room)]);
        whole &= n <= room;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A dir with `name`, a shell script with `body`.
    fn tool_dir(name: &str, body: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        dir
    }

    #[test]
    fn tools_are_found_in_order_and_a_missing_one_is_named() {
        let empty = tempfile::tempdir().unwrap();
        let with = tool_dir("iptables-save", "true");
        let dirs = vec![empty.path().into(), with.path().into()];
        assert_eq!(
            find_tool("iptables-save", dirs.clone()).unwrap(),
            with.path().join("iptables-save")
        );
        let e = find_tool("ip6tables-save", dirs).unwrap_err();
        assert_eq!(e.code(), ttrpc::Code::FAILED_PRECONDITION);
        assert!(e.to_string().contains("ip6tables-save"), "{e}");
        // Not executable: not a tool.
        let plain = tempfile::tempdir().unwrap();
        std::fs::write(plain.path().join("iptables-save"), "").unwrap();
        assert!(find_tool("iptables-save", vec![plain.path().into()]).is_err());
        let dirs = search_dirs(Some(std::ffi::OsStr::new("/a:/b")));
        assert_eq!(dirs, ["/a", "/b", "/usr/sbin", "/sbin"].map(PathBuf::from));
    }

    #[tokio::test]
    async fn set_feeds_the_rules_and_a_refusal_is_invalid_argument() {
        let out = tempfile::tempdir().unwrap();
        let seen = out.path().join("seen");
        let body = format!(
            "echo \"$@\" > {0}.args; cat > {0}; echo restored",
            seen.display()
        );
        let dir = tool_dir("ip6tables-restore", &body);
        let r = set(true, b"*filter\nCOMMIT\n", vec![dir.path().into()]).await;
        assert_eq!(r.unwrap(), b"restored\n");
        assert_eq!(std::fs::read(&seen).unwrap(), b"*filter\nCOMMIT\n");
        let args = std::fs::read_to_string(seen.with_extension("args")).unwrap();
        assert_eq!(args.trim(), "--wait 5");

        let dir = tool_dir("iptables-restore", "echo 'line 2 failed' >&2; exit 1");
        let e = set(false, b"junk", vec![dir.path().into()])
            .await
            .unwrap_err();
        assert_eq!(e.code(), ttrpc::Code::INVALID_ARGUMENT);
        assert!(e.to_string().contains("line 2 failed"), "{e}");
        let big = vec![b'#'; MAX_INPUT + 1];
        let e = set(false, &big, vec![dir.path().into()]).await.unwrap_err();
        assert!(matches!(e, IptablesError::TooLong(_)), "{e}");
    }

    #[tokio::test]
    async fn get_returns_the_output_bounded() {
        let dir = tool_dir("iptables-save", "echo '*filter'; echo COMMIT");
        let r = get(false, vec![dir.path().into()]).await.unwrap();
        assert_eq!(r, b"*filter\nCOMMIT\n");
        let dir = tool_dir("iptables-save", "echo broken >&2; exit 3");
        let e = get(false, vec![dir.path().into()]).await.unwrap_err();
        assert_eq!(e.code(), ttrpc::Code::INTERNAL);
        assert!(e.to_string().contains("broken"), "{e}");
        let dir = tool_dir("iptables-save", "head -c 4000000 /dev/zero");
        let e = get(false, vec![dir.path().into()]).await.unwrap_err();
        assert!(matches!(e, IptablesError::OutputTooLong { .. }), "{e}");
    }
}
