//! The conformance suite's machinery (the variants are in `variants`; tests/tests/conformance.rs
//! holds the list of justified differences): a per-run rootfs with the probe in it, running a spec under
//! runc and under zagent, turning each run into a report, normalising away what legitimately
//! differs between any two runs (pids, ids, temp paths, mount ids, anonymous device numbers,
//! pipe inodes, namespace inodes), and a line diff of two reports.

pub mod diff;
pub mod normalise;
pub mod variants;

use crate::agent::TestAgent;
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// The probe script (tests/data/conformance/probe.sh), placed at `/probe` in each run's rootfs.
pub const PROBE: &str = include_str!("../../data/conformance/probe.sh");

/// Where the probe lives inside the container.
pub const PROBE_PATH: &str = "/probe";

/// How long one run may take before it counts as hung (the probe itself takes ~0.1 s).
pub const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// What one runtime made of one spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The container ran: its exit status and output.
    Ran {
        status: i32,
        stdout: String,
        stderr: String,
    },
    /// The runtime refused the spec (or failed before the probe printed anything).
    Refused(String),
}

impl Outcome {
    /// The report compared between runtimes: `exit N` and the probe's output, or one
    /// `refused` line (messages differ between runtimes and are not compared; the
    /// message is shown separately when the two sides disagree).
    pub fn report(&self, n: &normalise::Normaliser) -> String {
        match self {
            Outcome::Ran { status, stdout, .. } => {
                format!("exit {status}\n{}", n.report(stdout))
            }
            Outcome::Refused(_) => "refused\n".into(),
        }
    }

    /// The runtime's or the probe's error output, for a failure message.
    pub fn detail(&self) -> &str {
        match self {
            Outcome::Ran { stderr, .. } => stderr,
            Outcome::Refused(m) => m,
        }
    }
}

/// The base bundle of one suite run, made once with `zagent-ctl bundle` in a temp dir of its
/// own (not the shared test bundle, which a rebuilt zagent-ctl replaces under a running test):
/// the probe at `/probe`, a user and group 1000 and a group 50 in /etc/passwd and /etc/group
/// (for the identity variants).
pub struct Base {
    dir: tempfile::TempDir,
}

impl Base {
    pub fn new() -> Base {
        let dir = tempfile::Builder::new()
            .prefix("zagent-conf-base")
            .tempdir()
            .expect("tempdir");
        let out = std::process::Command::new(crate::bin("zagent-ctl"))
            .arg("bundle")
            .arg(dir.path())
            .output()
            .expect("run zagent-ctl bundle");
        assert!(
            out.status.success(),
            "zagent-ctl bundle: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let root = dir.path().join("rootfs");
        let probe = root.join(PROBE_PATH.trim_start_matches('/'));
        std::fs::write(&probe, PROBE).expect("write probe");
        std::fs::set_permissions(&probe, std::fs::Permissions::from_mode(0o755))
            .expect("chmod probe");
        append(&root.join("etc/passwd"), "u:x:1000:1000::/home/u:/bin/sh\n");
        append(&root.join("etc/group"), "g:x:1000:\nstaff:x:50:u\n");
        Base { dir }
    }

    /// The default spec (`zagent-ctl spec`'s) running the probe, as JSON; root.path unset.
    fn spec(&self) -> Value {
        let text =
            std::fs::read_to_string(self.dir.path().join("config.json")).expect("read config.json");
        let mut spec: Value = serde_json::from_str(&text).expect("config.json parses");
        spec["process"]["args"] = serde_json::json!([PROBE_PATH]);
        spec
    }
}

impl Default for Base {
    fn default() -> Self {
        Base::new()
    }
}

/// One run's private bundle: a `cp -a` of the base rootfs, and scratch files beside it for
/// bind mounts (`src/` with a file, `file`). Deleted on drop unless something is still
/// mounted under it on the host (deleting through a stray mount would reach whatever is
/// mounted there): then it is kept, and the suite's leak check reports the mount.
pub struct RunDir {
    dir: Option<tempfile::TempDir>,
    spec: Value,
}

impl RunDir {
    pub fn new(base: &Base) -> RunDir {
        let dir = tempfile::Builder::new()
            .prefix("zagent-conf")
            .tempdir()
            .expect("tempdir");
        let rootfs = dir.path().join("rootfs");
        let out = std::process::Command::new("cp")
            .arg("-a")
            .arg(base.dir.path().join("rootfs"))
            .arg(&rootfs)
            .output()
            .expect("run cp");
        assert!(
            out.status.success(),
            "cp -a: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let src = dir.path().join("src");
        std::fs::create_dir(&src).expect("mkdir src");
        std::fs::write(src.join("f"), "data\n").expect("write src/f");
        std::fs::write(dir.path().join("file"), "file\n").expect("write file");
        let mut spec = base.spec();
        spec["root"]["path"] = serde_json::json!(rootfs);
        RunDir {
            dir: Some(dir),
            spec,
        }
    }

    /// The bundle dir: the rootfs's parent, where config.json goes for runc.
    pub fn bundle(&self) -> &Path {
        self.dir.as_ref().expect("run dir").path()
    }

    /// The default spec running the probe in this copy, as JSON.
    pub fn spec(&self) -> Value {
        self.spec.clone()
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let Some(dir) = self.dir.take() else {
            return;
        };
        let mounts = crate::leftovers::host_mounts_at_or_under(dir.path());
        if !mounts.is_empty() {
            eprintln!(
                "keeping {} (host mounts under it: {mounts:?})",
                dir.path().display()
            );
            let _ = dir.keep();
        }
    }
}

/// runc, when installed (the suite fails without it: CI installs it through scripts/deps.sh).
pub fn runc() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("runc"))
        .find(|p| p.is_file())
        .expect("runc not installed (bash scripts/deps.sh installs it)")
}

/// `runc --root ROOT run --bundle BUNDLE ID` of `spec` (saved as BUNDLE/config.json), stdio
/// on pipes (stdin closed at once, as the agent's is for a process nobody writes to), killed
/// after RUN_TIMEOUT. `runc delete -f` afterwards in every case, so no container, state or
/// cgroup of it is left.
pub async fn run_runc(runc: &Path, root: &Path, bundle: &Path, id: &str, spec: &Value) -> Outcome {
    let config = serde_json::to_vec_pretty(spec).expect("spec to JSON");
    std::fs::write(bundle.join("config.json"), config).expect("write config.json");
    let child = tokio::process::Command::new(runc)
        .arg("--root")
        .arg(root)
        .arg("run")
        .arg("--bundle")
        .arg(bundle)
        .arg(id)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn runc");
    let out = tokio::time::timeout(RUN_TIMEOUT, child.wait_with_output()).await;
    let _ = tokio::process::Command::new(runc)
        .arg("--root")
        .arg(root)
        .args(["delete", "-f", id])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
    let Ok(out) = out else {
        return Outcome::Refused(format!("runc run {id}: timed out after {RUN_TIMEOUT:?}"));
    };
    let out = out.expect("runc run");
    let text = |v: &[u8]| String::from_utf8_lossy(v).into_owned();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    match out.status.code() {
        // Nothing printed: runc failed before the probe started (its error is on stderr).
        Some(status) if status != 0 && stdout.is_empty() => Outcome::Refused(stderr),
        Some(status) => Outcome::Ran {
            status,
            stdout,
            stderr,
        },
        None => Outcome::Refused(format!("runc killed by a signal: {stderr}")),
    }
}

/// Create, start, collect stdout and stderr, wait, remove `spec` as `id` on agent `a`; a
/// refused create or start is `Refused` with the agent's message (and the container is
/// removed if the create went through). A spec the Kata protocol cannot carry is refused
/// before sending, as zagent-ctl refuses it (sent, its field would be lost on the way).
pub async fn run_zagent(a: &TestAgent, id: &str, spec: &Value) -> Outcome {
    let spec: oci_spec::runtime::Spec = match serde_json::from_value(spec.clone()) {
        Ok(s) => s,
        Err(e) => return Outcome::Refused(format!("oci-spec cannot parse the spec: {e}")),
    };
    if let Err(e) = wire::oci::check_sendable(&spec) {
        return Outcome::Refused(format!("not sent: {e}"));
    }
    if let Err(e) = a.create(id, &spec).await {
        return Outcome::Refused(format!("create: {e:?}"));
    }
    if let Err(e) = a.start_container(id).await {
        let _ = a.signal(id, libc::SIGKILL as u32).await;
        let _ = a.wait(id).await;
        let _ = a.remove(id).await;
        return Outcome::Refused(format!("start: {e:?}"));
    }
    let run = async {
        let (out, err) = tokio::join!(a.read_all(id, false), a.read_all(id, true));
        let status = a.wait(id).await;
        (out, err, status)
    };
    let Ok((out, err, status)) = tokio::time::timeout(RUN_TIMEOUT, run).await else {
        let _ = a.signal(id, libc::SIGKILL as u32).await;
        let _ = a.wait(id).await;
        let _ = a.remove(id).await;
        return Outcome::Refused(format!("zagent run {id}: timed out after {RUN_TIMEOUT:?}"));
    };
    a.remove(id).await.expect("remove");
    let text = |v: Vec<u8>| String::from_utf8_lossy(&v).into_owned();
    Outcome::Ran {
        status: status.expect("wait"),
        stdout: text(out.expect("read stdout")),
        stderr: text(err.expect("read stderr")),
    }
}

fn append(path: &Path, text: &str) {
    let mut all = std::fs::read_to_string(path).unwrap_or_default();
    all.push_str(text);
    std::fs::write(path, all).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}
