//! An agent under test: `zagent` on a unix socket in a temp dir with its own state dir, a
//! ttrpc client with one method per RPC, and a drop that stops the agent (SIGTERM, then
//! SIGKILL after a grace period) so no test leaves an agent behind.

use oci_spec::runtime::Spec;
use protobuf::MessageField;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use ttrpc::context;
use wire::agent as pb;
use wire::agent_ttrpc::AgentServiceClient;
use wire::health_ttrpc::HealthClient;
use wire::zagent_ttrpc::AdminClient;

pub struct TestAgent {
    child: Option<Child>,
    /// The file the agent logs into, when the harness chose it (in `dir`).
    log: Option<PathBuf>,
    pub dir: tempfile::TempDir,
    pub addr: String,
    pub state_dir: PathBuf,
    pub client: AgentServiceClient,
    pub health: HealthClient,
    pub admin: AdminClient,
}

pub type RpcResult<T> = Result<T, ttrpc::Error>;

/// The ttrpc code of a failed call (or UNKNOWN for transport errors).
pub fn code<T: std::fmt::Debug>(r: &RpcResult<T>) -> ttrpc::Code {
    match r {
        Err(ttrpc::Error::RpcStatus(s)) => s.code(),
        Err(_) => ttrpc::Code::UNKNOWN,
        Ok(v) => panic!("expected an error, got Ok({v:?})"),
    }
}

/// The message of a failed call.
pub fn message<T>(r: &RpcResult<T>) -> String {
    match r {
        Err(ttrpc::Error::RpcStatus(s)) => s.message.clone(),
        Err(e) => e.to_string(),
        Ok(_) => String::new(),
    }
}

fn ctx() -> context::Context {
    context::with_timeout(Duration::from_secs(60).as_nanos() as i64)
}

/// Which launcher the agent under test uses; the suite runs against both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Launcher {
    Zygote,
    Reexec,
}

impl Launcher {
    pub fn arg(self) -> &'static str {
        match self {
            Launcher::Zygote => "zygote",
            Launcher::Reexec => "reexec",
        }
    }
}

/// Runs an `async fn name(l: Launcher)` test once per launcher: `name::zygote`, `name::reexec`.
#[macro_export]
macro_rules! both_launchers {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn zygote() {
                super::$name($crate::agent::Launcher::Zygote).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn reexec() {
                super::$name($crate::agent::Launcher::Reexec).await
            }
        }
    };
}

impl TestAgent {
    pub async fn start() -> TestAgent {
        TestAgent::start_with(Launcher::Zygote).await
    }

    pub async fn start_with(launcher: Launcher) -> TestAgent {
        TestAgent::start_opts(launcher, &[]).await
    }

    /// With extra agent arguments (e.g. the hidden test hooks). The agent's log goes to a
    /// file in the agent's temp dir and is printed only if the test fails (or with
    /// ZAGENT_TEST_SHOW_LOG=1), so a passing run prints no agent's log.
    pub async fn start_opts(launcher: Launcher, extra: &[&str]) -> TestAgent {
        TestAgent::start_logged(launcher, None, extra, None, None).await
    }

    /// Like `start_opts`, with the agent's stderr (its log) sent to `stderr`, e.g. a file the
    /// test then counts lines in.
    pub async fn start_stderr(launcher: Launcher, extra: &[&str], stderr: Stdio) -> TestAgent {
        TestAgent::start_in(launcher, None, extra, stderr).await
    }

    /// Like `start_stderr`, on `state_dir` when given (e.g. the one a killed agent left behind)
    /// instead of a fresh one.
    pub async fn start_in(
        launcher: Launcher,
        state_dir: Option<&Path>,
        extra: &[&str],
        stderr: Stdio,
    ) -> TestAgent {
        TestAgent::start_logged(launcher, state_dir, extra, Some(stderr), None).await
    }

    /// An agent in the named network namespace (`ip netns add NAME`), entered with `nsenter`
    /// so that only its network changes (its mounts and cgroups stay the host's), and nsenter
    /// execs the agent: the child is the agent itself. Its log is shown if the test fails.
    pub async fn start_in_netns(launcher: Launcher, netns: &str) -> TestAgent {
        TestAgent::start_logged(launcher, None, &[], None, Some(netns)).await
    }

    /// `start_in_netns` with extra agent arguments.
    pub async fn start_in_netns_with(launcher: Launcher, netns: &str, extra: &[&str]) -> TestAgent {
        TestAgent::start_logged(launcher, None, extra, None, Some(netns)).await
    }

    /// The agent's log to `stderr`, or (None) to the harness's file, shown on failure; in the
    /// network namespace `netns` when given.
    async fn start_logged(
        launcher: Launcher,
        state_dir: Option<&Path>,
        extra: &[&str],
        stderr: Option<Stdio>,
        netns: Option<&str>,
    ) -> TestAgent {
        crate::require_root();
        let dir = tempfile::Builder::new()
            .prefix("zagent-agent")
            .tempdir()
            .expect("tempdir");
        let sock = dir.path().join("agent.sock");
        let state_dir = state_dir.map_or_else(|| dir.path().join("state"), Path::to_owned);
        let addr = format!("unix://{}", sock.display());
        let log = dir.path().join("agent.log");
        let stderr = match stderr {
            Some(s) => s,
            None => Stdio::from(std::fs::File::create(&log).expect("agent log file")),
        };
        let mut cmd = match netns {
            None => Command::new(crate::bin("zagent")),
            Some(ns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net=/run/netns/{ns}"))
                    .arg("--")
                    .arg(crate::bin("zagent"));
                c
            }
        };
        let mut child = cmd
            .args([
                "--listen",
                &addr,
                "--launcher",
                launcher.arg(),
                "--state-dir",
            ])
            .arg(&state_dir)
            .args(extra)
            .env(
                "ZAGENT_LOG",
                std::env::var("ZAGENT_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn zagent");
        let deadline = Instant::now() + Duration::from_secs(20);
        let client = loop {
            if let Ok(c) = wire::connect::connect(&addr).await {
                let h = HealthClient::new(c.clone());
                if h.check(ctx(), &Default::default()).await.is_ok() {
                    break c;
                }
            }
            let exited = child.try_wait().expect("try_wait");
            if exited.is_some() || Instant::now() > deadline {
                let _ = child.kill();
                let status = child.wait().expect("wait");
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                panic!("zagent did not come up on {addr} ({status}); its log:\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        TestAgent {
            child: Some(child),
            log: log.exists().then_some(log),
            addr,
            state_dir,
            client: AgentServiceClient::new(client.clone()),
            health: HealthClient::new(client.clone()),
            admin: AdminClient::new(client),
            dir,
        }
    }

    /// A client of an agent someone else runs at `addr` (e.g. a guest's, over hvsock); waits
    /// up to 20 s for Health.Check. Dropping it stops nothing.
    pub async fn attach(addr: &str) -> TestAgent {
        let dir = tempfile::Builder::new()
            .prefix("zagent-attach")
            .tempdir()
            .expect("tempdir");
        let deadline = Instant::now() + Duration::from_secs(20);
        let client = loop {
            let err = match wire::connect::connect(addr).await {
                Ok(c) => match HealthClient::new(c.clone())
                    .check(ctx(), &Default::default())
                    .await
                {
                    Ok(_) => break c,
                    Err(e) => e.to_string(),
                },
                Err(e) => e.to_string(),
            };
            assert!(
                Instant::now() < deadline,
                "no agent answers on {addr}: {err}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        TestAgent {
            child: None,
            log: None,
            state_dir: PathBuf::from("/run/zagent"),
            addr: addr.to_owned(),
            client: AgentServiceClient::new(client.clone()),
            health: HealthClient::new(client.clone()),
            admin: AdminClient::new(client),
            dir,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child
            .as_ref()
            .map(|c| c.id() as i32)
            .expect("agent running")
    }

    pub async fn create(&self, id: &str, spec: &Spec) -> RpcResult<()> {
        let mut req = pb::CreateContainerRequest::new();
        req.container_id = id.into();
        req.exec_id = id.into();
        req.OCI = MessageField::some(wire::oci::spec_to_grpc(spec));
        self.create_raw(req).await
    }

    pub async fn create_raw(&self, req: pb::CreateContainerRequest) -> RpcResult<()> {
        self.client.create_container(ctx(), &req).await.map(|_| ())
    }

    pub async fn start_container(&self, id: &str) -> RpcResult<()> {
        let mut req = pb::StartContainerRequest::new();
        req.container_id = id.into();
        self.client.start_container(ctx(), &req).await.map(|_| ())
    }

    pub async fn signal(&self, id: &str, signal: u32) -> RpcResult<()> {
        let mut req = pb::SignalProcessRequest::new();
        req.container_id = id.into();
        req.signal = signal;
        self.client.signal_process(ctx(), &req).await.map(|_| ())
    }

    pub async fn wait(&self, id: &str) -> RpcResult<i32> {
        let mut req = pb::WaitProcessRequest::new();
        req.container_id = id.into();
        self.client
            .wait_process(ctx(), &req)
            .await
            .map(|r| r.status)
    }

    pub async fn remove(&self, id: &str) -> RpcResult<()> {
        let mut req = pb::RemoveContainerRequest::new();
        req.container_id = id.into();
        self.client.remove_container(ctx(), &req).await.map(|_| ())
    }

    pub async fn write_stdin(&self, id: &str, exec_id: &str, data: &[u8]) -> RpcResult<u32> {
        let mut req = pb::WriteStreamRequest::new();
        req.container_id = id.into();
        req.exec_id = exec_id.into();
        req.data = data.to_vec();
        self.client.write_stdin(ctx(), &req).await.map(|r| r.len)
    }

    pub async fn close_stdin(&self, id: &str, exec_id: &str) -> RpcResult<()> {
        let mut req = pb::CloseStdinRequest::new();
        req.container_id = id.into();
        req.exec_id = exec_id.into();
        self.client.close_stdin(ctx(), &req).await.map(|_| ())
    }

    /// ExecProcess of `process` (an OCI process) as `exec_id`.
    pub async fn exec(
        &self,
        id: &str,
        exec_id: &str,
        process: &oci_spec::runtime::Process,
    ) -> RpcResult<()> {
        let mut req = pb::ExecProcessRequest::new();
        req.container_id = id.into();
        req.exec_id = exec_id.into();
        req.process = MessageField::some(wire::oci::process_to_grpc(process));
        self.client.exec_process(ctx(), &req).await.map(|_| ())
    }

    pub async fn wait_exec(&self, id: &str, exec_id: &str) -> RpcResult<i32> {
        let mut req = pb::WaitProcessRequest::new();
        req.container_id = id.into();
        req.exec_id = exec_id.into();
        self.client
            .wait_process(ctx(), &req)
            .await
            .map(|r| r.status)
    }

    pub async fn signal_exec(&self, id: &str, exec_id: &str, signal: u32) -> RpcResult<()> {
        let mut req = pb::SignalProcessRequest::new();
        req.container_id = id.into();
        req.exec_id = exec_id.into();
        req.signal = signal;
        self.client.signal_process(ctx(), &req).await.map(|_| ())
    }

    pub async fn resize(&self, id: &str, exec_id: &str, rows: u32, cols: u32) -> RpcResult<()> {
        let mut req = pb::TtyWinResizeRequest::new();
        req.container_id = id.into();
        req.exec_id = exec_id.into();
        req.row = rows;
        req.column = cols;
        self.client.tty_win_resize(ctx(), &req).await.map(|_| ())
    }

    /// All of an exec's stdout (or stderr) until EOF.
    pub async fn read_all_exec(&self, id: &str, exec_id: &str, stderr: bool) -> RpcResult<Vec<u8>> {
        let mut req = pb::ReadStreamRequest::new();
        req.container_id = id.into();
        req.exec_id = exec_id.into();
        req.len = 1 << 16;
        let mut all = Vec::new();
        loop {
            let data = if stderr {
                self.client.read_stderr(ctx(), &req).await?.data
            } else {
                self.client.read_stdout(ctx(), &req).await?.data
            };
            if data.is_empty() {
                return Ok(all);
            }
            all.extend(data);
        }
    }

    /// All of the init process's stdout (or stderr) until EOF.
    pub async fn read_all(&self, id: &str, stderr: bool) -> RpcResult<Vec<u8>> {
        self.read_all_exec(id, "", stderr).await
    }

    /// The container's (state, pid, exit status) from zagent.Admin.
    pub async fn info(&self, id: &str) -> Option<(String, i32, Option<i32>)> {
        let list = self
            .admin
            .list_containers(ctx(), &Default::default())
            .await
            .expect("ListContainers");
        list.containers.iter().find(|c| c.id == id).map(|c| {
            (
                c.state.clone(),
                c.pid,
                c.has_exit_status.then_some(c.exit_status),
            )
        })
    }

    /// Create, start, collect stdout and stderr, wait, remove.
    pub async fn run(&self, id: &str, spec: &Spec) -> (i32, String, String) {
        self.create(id, spec).await.expect("create");
        self.start_container(id).await.expect("start");
        let (out, err) = tokio::join!(self.read_all(id, false), self.read_all(id, true));
        let status = self.wait(id).await.expect("wait");
        self.remove(id).await.expect("remove");
        let s = |v: RpcResult<Vec<u8>>| String::from_utf8_lossy(&v.expect("read")).into_owned();
        (status, s(out), s(err))
    }

    /// zagent-ctl with --addr of this agent.
    pub fn ctl(&self, args: &[&str]) -> std::process::Output {
        Command::new(crate::bin("zagent-ctl"))
            .arg("--addr")
            .arg(&self.addr)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run zagent-ctl")
    }

    /// Kills the agent with SIGKILL (nothing of it runs afterwards) and reaps it.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("agent running");
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Stops the agent with SIGTERM (it removes its containers) and waits for it.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("agent running");
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return child.wait().expect("wait");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for TestAgent {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
        let Some(log) = self.log.take() else {
            return;
        };
        let show = std::thread::panicking()
            || std::env::var_os("ZAGENT_TEST_SHOW_LOG").is_some_and(|v| v == "1");
        if show {
            // Through eprint!, so the test harness shows it with the failing test's output.
            let text = std::fs::read_to_string(&log).unwrap_or_else(|e| format!("({e})"));
            eprint!("---- log of the agent on {} ----\n{text}", self.addr);
        }
    }
}
