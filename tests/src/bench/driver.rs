//! The zagent side of the bench: starting an agent per launcher (or attaching to a running
//! one with `--addr`), ttrpc clients, and the lifecycle a shim drives (CreateContainer,
//! StartContainer, WaitProcess, RemoveContainer), timed per RPC round trip. Any RPC error or
//! non-zero exit here is a zagent failure and fails the bench.

use super::clock::T0;
use super::model::StepSample;
use anyhow::{bail, Context, Result};
use protobuf::MessageField;
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use ttrpc::context;
use wire::agent as pb;
use wire::agent_ttrpc::AgentServiceClient;
use wire::health_ttrpc::HealthClient;
use wire::zagent_ttrpc::AdminClient;

fn ctx() -> context::Context {
    context::with_timeout(Duration::from_secs(60).as_nanos() as i64)
}

/// A container id unique to this bench process. It starts with "zagent" so that anything a
/// runtime names after it (runc and crun name the cgroup after the id) is recognisably ours.
pub fn next_id(tag: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "zagent-bench-{}-{tag}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Makes `cmd`'s process get `sig` when the bench dies (spawn it from the main thread: the
/// death signal follows the spawning thread) and puts it in its own process group, so that a
/// Ctrl-C at the terminal reaches only the bench, which then shuts everything down in order.
pub fn detach(cmd: &mut Command, sig: nix::sys::signal::Signal) {
    cmd.process_group(0);
    // SAFETY: the closure runs between fork and exec and only calls prctl, which is
    // async-signal-safe; it touches no memory shared with the parent.
    unsafe {
        cmd.pre_exec(move || nix::sys::prctl::set_pdeathsig(sig).map_err(std::io::Error::from));
    }
}

/// One agent under test.
pub struct Agent {
    /// "zygote", "reexec", or the name given with --addr.
    pub label: String,
    pub addr: String,
    /// Known for agents we started, and for --addr unix sockets (from SO_PEERCRED).
    pub pid: Option<i32>,
    child: Option<Child>,
    log: Option<PathBuf>,
}

impl Agent {
    /// Starts `zagent --launcher <launcher>` on a socket in `work`, logging to `log`.
    pub async fn spawn(zagent: &Path, launcher: &str, work: &Path, log: &Path) -> Result<Agent> {
        let dir = work.join(format!("agent-{launcher}"));
        std::fs::create_dir_all(&dir)?;
        let addr = format!("unix://{}", dir.join("agent.sock").display());
        let out = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let mut cmd = Command::new(zagent);
        // "pool" is the zygote with its warm pool of namespaces (zagent's default); "zygote"
        // runs without one.
        let (kind, pool) = match launcher {
            "pool" => ("zygote", "4"),
            other => (other, "0"),
        };
        cmd.args([
            "--listen",
            &addr,
            "--launcher",
            kind,
            "--warm-pool",
            pool,
            "--state-dir",
        ])
        .arg(dir.join("state"))
        .env(
            "ZAGENT_LOG",
            std::env::var("ZAGENT_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out);
        detach(&mut cmd, nix::sys::signal::Signal::SIGTERM);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", zagent.display()))?;
        let mut agent = Agent {
            label: launcher.to_string(),
            addr,
            pid: Some(child.id() as i32),
            child: Some(child),
            log: Some(log.to_owned()),
        };
        agent.wait_healthy().await?;
        Ok(agent)
    }

    /// An agent someone else started; we only remove the containers we create on it.
    pub async fn attach(label: &str, addr: &str) -> Result<Agent> {
        let mut agent = Agent {
            label: label.into(),
            addr: addr.into(),
            pid: peer_pid(addr),
            child: None,
            log: None,
        };
        agent.wait_healthy().await?;
        Ok(agent)
    }

    async fn wait_healthy(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(c) = wire::connect::connect(&self.addr).await {
                if HealthClient::new(c)
                    .check(ctx(), &Default::default())
                    .await
                    .is_ok()
                {
                    return Ok(());
                }
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                bail!(
                    "{} agent exited during start-up ({status}){}",
                    self.label,
                    self.log_tail()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "{} agent did not answer Health.Check on {} within 20 s{}",
                    self.label,
                    self.addr,
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The last lines of the agent's log, for error messages.
    pub fn log_tail(&self) -> String {
        let Some(text) = self
            .log
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
        else {
            return String::new();
        };
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(15)..].join("\n");
        if tail.is_empty() {
            String::new()
        } else {
            format!("\nagent log:\n{tail}")
        }
    }

    pub async fn connect(&self) -> Result<Client> {
        let c = wire::connect::connect(&self.addr)
            .await
            .with_context(|| format!("connecting to {}", self.addr))?;
        Ok(Client {
            agent: AgentServiceClient::new(c.clone()),
            admin: AdminClient::new(c),
        })
    }

    /// Whether the agent we started is still running (an attached one is assumed to be).
    pub fn alive(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => true,
        }
    }

    /// SIGTERM (the agent removes every container it still holds), then SIGKILL after 60 s.
    /// Returns a complaint if the agent did not exit cleanly. No-op for attached agents.
    pub fn stop(&mut self) -> Option<String> {
        let mut child = self.child.take()?;
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match child.try_wait() {
                Ok(Some(status)) if status.success() => return None,
                Ok(Some(status)) => {
                    return Some(format!(
                        "{} agent exited with {status}{}",
                        self.label,
                        self.log_tail()
                    ))
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Some(format!(
                        "{} agent did not stop within 60 s of SIGTERM: killed",
                        self.label
                    ));
                }
            }
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(msg) = self.stop() {
            eprintln!("zagent-bench: {msg}");
        }
    }
}

/// The pid of the process serving a unix socket, from SO_PEERCRED.
fn peer_pid(addr: &str) -> Option<i32> {
    let path = addr.strip_prefix("unix://")?;
    let stream = std::os::unix::net::UnixStream::connect(path).ok()?;
    let cred =
        nix::sys::socket::getsockopt(&stream, nix::sys::socket::sockopt::PeerCredentials).ok()?;
    Some(cred.pid())
}

/// One connection to an agent, as one shim would hold.
#[derive(Clone)]
pub struct Client {
    agent: AgentServiceClient,
    admin: AdminClient,
}

/// The requests of one lifecycle, built before the clock starts.
struct Requests {
    create: pb::CreateContainerRequest,
    start: pb::StartContainerRequest,
    wait: pb::WaitProcessRequest,
    remove: pb::RemoveContainerRequest,
}

fn requests(id: &str, spec: &wire::oci::Spec) -> Requests {
    let mut create = pb::CreateContainerRequest::new();
    create.container_id = id.into();
    create.exec_id = id.into();
    create.OCI = MessageField::some(spec.clone());
    let mut start = pb::StartContainerRequest::new();
    start.container_id = id.into();
    let mut wait = pb::WaitProcessRequest::new();
    wait.container_id = id.into();
    let mut remove = pb::RemoveContainerRequest::new();
    remove.container_id = id.into();
    Requests {
        create,
        start,
        wait,
        remove,
    }
}

fn ns(since: Instant) -> u64 {
    since.elapsed().as_nanos() as u64
}

impl Client {
    /// CreateContainer, StartContainer, WaitProcess (must be 0), RemoveContainer, each timed.
    /// On a failure after create the container is removed (best effort) before the error.
    pub async fn lifecycle(&self, id: &str, spec: &wire::oci::Spec, t0: T0) -> Result<StepSample> {
        let r = requests(id, spec);
        let at_ms = t0.elapsed_ms();
        let begin = Instant::now();
        self.agent
            .create_container(ctx(), &r.create)
            .await
            .with_context(|| format!("CreateContainer {id}"))?;
        let create_ns = ns(begin);
        let result = self.after_create(id, &r).await;
        if result.is_err() {
            let _ = self.agent.remove_container(ctx(), &r.remove).await;
        }
        let (start_ns, wait_ns, remove_ns) = result?;
        Ok(StepSample {
            create_ns: Some(create_ns),
            start_ns: Some(start_ns),
            wait_ns: Some(wait_ns),
            remove_ns: Some(remove_ns),
            total_ns: ns(begin),
            at_ms,
            mono_ns: None,
        })
    }

    async fn after_create(&self, id: &str, r: &Requests) -> Result<(u64, u64, u64)> {
        let t = Instant::now();
        self.agent
            .start_container(ctx(), &r.start)
            .await
            .with_context(|| format!("StartContainer {id}"))?;
        let start_ns = ns(t);
        let t = Instant::now();
        let status = self
            .agent
            .wait_process(ctx(), &r.wait)
            .await
            .with_context(|| format!("WaitProcess {id}"))?
            .status;
        let wait_ns = ns(t);
        if status != 0 {
            bail!("container {id} (/bin/true) exited with status {status}");
        }
        let t = Instant::now();
        self.agent
            .remove_container(ctx(), &r.remove)
            .await
            .with_context(|| format!("RemoveContainer {id}"))?;
        Ok((start_ns, wait_ns, ns(t)))
    }

    /// The AgentService client, for the phases that send RPCs of their own.
    pub fn agent(&self) -> &AgentServiceClient {
        &self.agent
    }

    /// StartContainer of a parked container.
    pub async fn start(&self, id: &str) -> Result<()> {
        let r = requests(id, &wire::oci::Spec::new());
        self.agent
            .start_container(ctx(), &r.start)
            .await
            .with_context(|| format!("StartContainer {id}"))?;
        Ok(())
    }

    /// CreateContainer only: the container parks on its exec.fifo.
    pub async fn park(&self, id: &str, spec: &wire::oci::Spec) -> Result<()> {
        let r = requests(id, spec);
        self.agent
            .create_container(ctx(), &r.create)
            .await
            .with_context(|| format!("CreateContainer {id}"))?;
        Ok(())
    }

    pub async fn remove(&self, id: &str) -> Result<()> {
        let r = requests(id, &wire::oci::Spec::new());
        self.agent
            .remove_container(ctx(), &r.remove)
            .await
            .with_context(|| format!("RemoveContainer {id}"))?;
        Ok(())
    }

    /// (id, state, pid) of every container the agent holds, from zagent.Admin.
    pub async fn list(&self) -> Result<Vec<(String, String, i32)>> {
        let list = self
            .admin
            .list_containers(ctx(), &Default::default())
            .await
            .context("Admin.ListContainers")?;
        Ok(list
            .containers
            .iter()
            .map(|c| (c.id.clone(), c.state.clone(), c.pid))
            .collect())
    }
}
