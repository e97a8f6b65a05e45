//! OCI hooks (step "hooks"): the state JSON every hook reads on its stdin, and the runner the
//! container child uses for the hooks that execute in the container's namespaces
//! (`createContainer` before pivot_root, `startContainer` right before the process). The child
//! has one thread, so it forks the hook directly; the hook gets the state on stdin, its stdout
//! and stderr go to a pipe whose first 4 KiB end up in the error, and it is killed once its
//! timeout passes. The agent runs the runtime's hooks with the same state (`state_json`).

use crate::error::{JailError, Step};
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, Instant};
use wire::zygote::{Hook, HookState};

/// How much of a failing hook's output its error keeps.
const OUTPUT_KEPT: usize = 4096;

/// The runtime-spec "State" of the container, as hooks read it: `pid` is required while the
/// container is creating, created or running, and absent once it is stopped.
pub fn state_json(state: &HookState, status: &str, pid: Option<i32>) -> String {
    let annotations: serde_json::Map<String, serde_json::Value> = state
        .annotations
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    let mut value = serde_json::json!({
        "ociVersion": state.oci_version,
        "id": state.id,
        "status": status,
        "bundle": state.bundle,
        "annotations": annotations,
    });
    if let Some(pid) = pid {
        value["pid"] = pid.into();
    }
    value.to_string()
}

/// Runs `hooks` in order (the first failure stops them), each as described in the module doc.
/// `kind` names them in errors ("createContainer", ...).
pub fn run_all(kind: &str, hooks: &[Hook], state: &str) -> Result<(), JailError> {
    for (i, hook) in hooks.iter().enumerate() {
        run_one(hook, state).map_err(|(errno, why)| {
            JailError::new(
                Step::Hook,
                format!("{kind}[{i}] {}: {why}", hook.path.display()),
                errno,
            )
        })?;
    }
    Ok(())
}

type HookResult = Result<(), (Errno, String)>;

fn cstrings(list: &[String]) -> Result<Vec<CString>, (Errno, String)> {
    list.iter()
        .map(|s| {
            CString::new(s.as_bytes()).map_err(|_| (Errno::EINVAL, "NUL in an argument".into()))
        })
        .collect()
}

fn run_one(hook: &Hook, state: &str) -> HookResult {
    let path = CString::new(hook.path.as_os_str().as_bytes())
        .map_err(|_| (Errno::EINVAL, "NUL in the path".to_string()))?;
    let (args, env) = (cstrings(&hook.args)?, cstrings(&hook.env)?);
    let pipe = || nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| (e, "pipe2".into()));
    let (stdin_rd, stdin_wr) = pipe()?;
    let (out_rd, out_wr) = pipe()?;
    // SAFETY: the container child has exactly one thread, so the forked process may run any
    // code; it only rearranges fds and execs (or _exits).
    let pid = match unsafe { nix::unistd::fork() }.map_err(|e| (e, "fork".to_string()))? {
        nix::unistd::ForkResult::Child => exec_hook(&path, &args, &env, &stdin_rd, &out_wr),
        nix::unistd::ForkResult::Parent { child } => child,
    };
    drop((stdin_rd, out_wr));
    let deadline = hook
        .timeout_secs
        .map(|s| Instant::now() + Duration::from_secs(s.into()));
    let outcome = supervise(pid, stdin_wr, out_rd, state.as_bytes(), deadline);
    if outcome.is_err() {
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    }
    let status = nix::sys::wait::waitpid(pid, None).map_err(|e| (e, "waitpid".to_string()))?;
    let output = outcome?;
    match status {
        nix::sys::wait::WaitStatus::Exited(_, 0) => Ok(()),
        other => Err((Errno::EIO, with_output(describe(other), &output))),
    }
}

/// `what`, then the hook's output after ": " when it said anything.
fn with_output(what: String, output: &str) -> String {
    match output.trim_end() {
        "" => what,
        out => format!("{what}: {out}"),
    }
}

fn describe(status: nix::sys::wait::WaitStatus) -> String {
    match status {
        nix::sys::wait::WaitStatus::Exited(_, code) => format!("exited with status {code}"),
        nix::sys::wait::WaitStatus::Signaled(_, sig, _) => format!("killed by {sig}"),
        other => format!("ended with {other:?}"),
    }
}

/// In the forked hook: stdin from the state pipe, stdout and stderr to the output pipe, every
/// other fd close-on-exec, then execve. Never returns.
fn exec_hook(
    path: &CString,
    args: &[CString],
    env: &[CString],
    stdin: &OwnedFd,
    out: &OwnedFd,
) -> ! {
    let fds = [
        (stdin.as_raw_fd(), 0),
        (out.as_raw_fd(), 1),
        (out.as_raw_fd(), 2),
    ];
    for (fd, target) in fds {
        if nix::unistd::dup2(fd, target).is_err() {
            crate::sys::exit_immediately(126);
        }
    }
    let _ = crate::sys::cloexec_from(3);
    let errno = nix::unistd::execve(path, args, env).unwrap_err();
    // Nothing allocated after the fork (in the tests' many-threaded harness, too).
    let parts: [&[u8]; 5] = [
        b"exec ",
        path.as_bytes(),
        b": ",
        errno.desc().as_bytes(),
        b"\n",
    ];
    for part in parts {
        let _ = nix::unistd::write(std::io::stderr(), part);
    }
    crate::sys::exit_immediately(if errno == Errno::ENOENT { 127 } else { 126 })
}

/// Feeds `state` to the hook's stdin and collects its output until it exits (its pidfd turns
/// readable) or `deadline` passes (ETIMEDOUT). Returns the first OUTPUT_KEPT bytes of output.
fn supervise(
    pid: nix::unistd::Pid,
    stdin: OwnedFd,
    out: OwnedFd,
    state: &[u8],
    deadline: Option<Instant>,
) -> Result<String, (Errno, String)> {
    let pidfd = crate::sys::pidfd_open(pid.as_raw()).map_err(|e| (e, "pidfd_open".to_string()))?;
    for fd in [stdin.as_fd(), out.as_fd()] {
        crate::sys::set_nonblocking(fd).map_err(|e| (e, "O_NONBLOCK".to_string()))?;
    }
    let mut stdin = Some(stdin);
    let (mut written, mut output) = (0usize, Vec::new());
    loop {
        let timeout = match deadline {
            None => PollTimeout::NONE,
            Some(d) => match d.checked_duration_since(Instant::now()) {
                None => return Err((Errno::ETIMEDOUT, "timed out".into())),
                Some(left) => PollTimeout::try_from(left.as_millis().min(60_000) as i32 + 1)
                    .unwrap_or(PollTimeout::MAX),
            },
        };
        let mut fds = vec![
            PollFd::new(pidfd.as_fd(), PollFlags::POLLIN),
            PollFd::new(out.as_fd(), PollFlags::POLLIN),
        ];
        if let Some(w) = &stdin {
            fds.push(PollFd::new(w.as_fd(), PollFlags::POLLOUT));
        }
        match nix::poll::poll(&mut fds, timeout) {
            Err(Errno::EINTR) | Ok(0) => continue,
            Err(e) => return Err((e, "poll".into())),
            Ok(_) => {}
        }
        let ready = |i: usize| {
            fds.get(i)
                .and_then(|f| f.revents())
                .is_some_and(|r| !r.is_empty())
        };
        let (exited, readable, writable) = (ready(0), ready(1), ready(2));
        drop(fds);
        if readable {
            drain(&out, &mut output);
        }
        if writable {
            if let Some(w) = &stdin {
                match nix::unistd::write(w, &state[written..]) {
                    Ok(n) => written += n,
                    Err(Errno::EAGAIN | Errno::EINTR) => {}
                    Err(_) => written = state.len(), // the hook closed its stdin: fine
                }
            }
            if written == state.len() {
                stdin = None; // EOF for the hook
            }
        }
        if exited {
            drain(&out, &mut output);
            return Ok(String::from_utf8_lossy(&output).into_owned());
        }
    }
}

/// Reads what is there without blocking, keeping the first OUTPUT_KEPT bytes.
fn drain(out: &OwnedFd, kept: &mut Vec<u8>) {
    let mut buf = [0u8; 4096];
    while let Ok(n @ 1..) = nix::unistd::read(out.as_raw_fd(), &mut buf) {
        let room = OUTPUT_KEPT.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..n.min(room)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(args: &[&str], timeout: Option<u32>) -> Hook {
        Hook {
            path: "/bin/sh".into(),
            args: args.iter().map(|s| s.to_string()).collect(),
            env: vec!["PATH=/bin:/usr/bin".into()],
            timeout_secs: timeout,
        }
    }

    fn state() -> HookState {
        HookState {
            oci_version: "1.0.2".into(),
            id: "c1".into(),
            bundle: "/b".into(),
            annotations: vec![("k".into(), "v".into())],
        }
    }

    #[test]
    fn the_state_json_has_the_spec_s_fields() {
        let v: serde_json::Value =
            serde_json::from_str(&state_json(&state(), "creating", Some(7))).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "ociVersion": "1.0.2", "id": "c1", "status": "creating", "pid": 7,
                "bundle": "/b", "annotations": { "k": "v" }
            })
        );
        let stopped: serde_json::Value =
            serde_json::from_str(&state_json(&state(), "stopped", None)).unwrap();
        assert!(stopped.get("pid").is_none());
    }

    #[test]
    fn a_hook_reads_the_state_and_its_env_and_args() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let script = format!(
            "cat > {}; echo \"$0 $1 $K\" >> {}",
            out.display(),
            out.display()
        );
        let mut h = hook(&["sh", "-c", &script, "one"], Some(10));
        h.env.push("K=V".into());
        run_all("createContainer", &[h], "{\"id\":\"c1\"}").unwrap();
        assert_eq!(
            std::fs::read_to_string(out).unwrap(),
            "{\"id\":\"c1\"}one  V\n"
        );
    }

    #[test]
    fn failures_name_the_hook_and_keep_its_output() {
        let e = run_all(
            "startContainer",
            &[hook(&["sh", "-c", "echo bad >&2; exit 3"], None)],
            "{}",
        )
        .unwrap_err();
        assert_eq!(e.step(), "hooks");
        assert_eq!(
            e.to_string(),
            "startContainer[0] /bin/sh: exited with status 3: bad: EIO"
        );
        let missing = Hook {
            path: "/nonexistent/hook".into(),
            args: vec!["x".into()],
            ..Default::default()
        };
        let e = run_all("createContainer", &[missing], "{}").unwrap_err();
        assert!(e.to_string().contains("exited with status 127"), "{e}");
        assert!(e.to_string().contains("No such file or directory"), "{e}");
    }

    #[test]
    fn a_hook_past_its_timeout_is_killed() {
        let started = Instant::now();
        let e = run_all(
            "createContainer",
            &[hook(&["sh", "-c", "sleep 30"], Some(1))],
            "{}",
        )
        .unwrap_err();
        assert_eq!(e.errno(), libc::ETIMEDOUT, "{e}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
