//! The OCI hooks that run in the runtime's namespaces, spawned by the agent as programs (it
//! never forks to run Rust code): `prestart` and `createRuntime` while the child waits at its
//! hooks point (a failure fails the create), `poststart` once the process runs and `poststop`
//! once the container is gone (failures there are warnings, as the runtime spec says). Each
//! hook gets the container's state JSON on stdin and exactly its own `env`; its output is kept
//! (the first 4 KiB) for the error; past its `timeout` it is killed.

use jail::validate::RuntimeHooks;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wire::zygote::Hook;

/// How much of a failing hook's output its error keeps.
const OUTPUT_KEPT: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("hook {kind}[{index}] {path}: {reason}")]
    Failed {
        kind: &'static str,
        index: usize,
        path: String,
        reason: String,
    },
}

/// `prestart` then `createRuntime`, with the state of a creating container whose (host) pid is
/// `pid`.
pub async fn run_create(hooks: &RuntimeHooks, pid: i32) -> Result<(), HookError> {
    let state = jail::hooks::state_json(&hooks.state, "creating", Some(pid));
    run_all("prestart", &hooks.prestart, &state).await?;
    run_all("createRuntime", &hooks.create_runtime, &state).await
}

/// `poststart`, once the container's process runs; a failure is only logged.
pub async fn run_poststart(hooks: &RuntimeHooks, pid: i32) {
    let state = jail::hooks::state_json(&hooks.state, "running", Some(pid));
    if let Err(e) = run_all("poststart", &hooks.poststart, &state).await {
        tracing::warn!(id = hooks.state.id, error = %e, "poststart hook failed");
    }
}

/// `poststop`, once the container is removed; a failure is only logged.
pub async fn run_poststop(hooks: &RuntimeHooks) {
    let state = jail::hooks::state_json(&hooks.state, "stopped", None);
    if let Err(e) = run_all("poststop", &hooks.poststop, &state).await {
        tracing::warn!(id = hooks.state.id, error = %e, "poststop hook failed");
    }
}

async fn run_all(kind: &'static str, hooks: &[Hook], state: &str) -> Result<(), HookError> {
    for (index, hook) in hooks.iter().enumerate() {
        run_one(hook, state)
            .await
            .map_err(|reason| HookError::Failed {
                kind,
                index,
                path: hook.path.display().to_string(),
                reason,
            })?;
    }
    Ok(())
}

/// Reads `r` to its end (so the hook never blocks on a full pipe), keeping the first
/// OUTPUT_KEPT bytes.
async fn keep_first(r: &mut (impl tokio::io::AsyncRead + Unpin)) -> Vec<u8> {
    let (mut kept, mut buf) = (Vec::new(), [0u8; 4096]);
    while let Ok(n @ 1..) = r.read(&mut buf).await {
        let room = OUTPUT_KEPT.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..n.min(room)]);
    }
    kept
}

async fn run_one(hook: &Hook, state: &str) -> Result<(), String> {
    let mut cmd = tokio::process::Command::new(&hook.path);
    if let Some((arg0, rest)) = hook.args.split_first() {
        cmd.arg0(arg0).args(rest);
    }
    cmd.env_clear()
        .envs(hook.env.iter().filter_map(|e| e.split_once('=')))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| format!("spawn: {e}"))?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let (mut out, mut err) = (
        child.stdout.take().expect("piped stdout"),
        child.stderr.take().expect("piped stderr"),
    );
    let run = async {
        // A hook that never reads its stdin must not block us: write what it takes, then go on.
        let feed = async {
            let _ = stdin.write_all(state.as_bytes()).await;
            drop(stdin);
        };
        let (_, o, e, status) = tokio::join!(
            feed,
            keep_first(&mut out),
            keep_first(&mut err),
            child.wait()
        );
        (status, o, e)
    };
    let timeout = hook.timeout_secs.map(|s| Duration::from_secs(s.into()));
    let (status, o, e) = match timeout {
        Some(limit) => tokio::time::timeout(limit, run)
            .await
            .map_err(|_| format!("timed out after {}s (killed)", limit.as_secs()))?,
        None => run.await,
    };
    let status = status.map_err(|e| format!("wait: {e}"))?;
    if status.success() {
        return Ok(());
    }
    let output = String::from_utf8_lossy(if e.is_empty() { &o } else { &e }).into_owned();
    Err(match output.trim_end() {
        "" => status.to_string(),
        out => format!("{status}: {out}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake(hooks: Vec<Hook>) -> RuntimeHooks {
        RuntimeHooks {
            poststart: hooks,
            state: wire::zygote::HookState {
                oci_version: "1.0.2".into(),
                id: "c1".into(),
                bundle: "/b".into(),
                annotations: vec![],
            },
            ..Default::default()
        }
    }

    fn sh(script: &str, timeout_secs: Option<u32>) -> Hook {
        Hook {
            path: "/bin/sh".into(),
            args: vec!["sh".into(), "-c".into(), script.into()],
            env: vec!["PATH=/bin:/usr/bin".into(), "K=V".into()],
            timeout_secs,
        }
    }

    #[tokio::test]
    async fn a_hook_gets_the_state_and_only_its_env() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let script = format!("cat > {0}; echo >> {0}; env | sort >> {0}", out.display());
        let hooks = fake(vec![sh(&script, Some(10))]);
        let state = jail::hooks::state_json(&hooks.state, "running", Some(9));
        run_all("poststart", &hooks.poststart, &state)
            .await
            .unwrap();
        let text = std::fs::read_to_string(&out).unwrap();
        let (json, env) = text.split_once('\n').unwrap();
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(
            (v["status"].as_str(), v["pid"].as_i64()),
            (Some("running"), Some(9))
        );
        let env: Vec<&str> = env.lines().filter(|l| !l.is_empty()).collect();
        assert!(
            env.contains(&"K=V") && !env.iter().any(|l| l.starts_with("HOME=")),
            "{env:?}"
        );
    }

    #[tokio::test]
    async fn failures_and_timeouts_name_the_hook() {
        let e = run_all("createRuntime", &[sh("echo nope >&2; exit 4", None)], "{}")
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "hook createRuntime[0] /bin/sh: exit status: 4: nope"
        );
        let started = std::time::Instant::now();
        let e = run_all("prestart", &[sh("sleep 30", Some(1))], "{}")
            .await
            .unwrap_err();
        assert!(
            e.to_string().ends_with("timed out after 1s (killed)"),
            "{e}"
        );
        assert!(started.elapsed() < Duration::from_secs(10));
        let missing = Hook {
            path: "/nonexistent/hook".into(),
            ..Default::default()
        };
        let e = run_all("poststop", &[missing], "{}").await.unwrap_err();
        assert!(e.to_string().contains("spawn: "), "{e}");
    }
}
