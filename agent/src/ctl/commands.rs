//! One function per zagent-ctl verb. Bundles are read by `config` and the spec sent in
//! CreateContainer.

use crate::client::{connect, ctx, named, Clients};
use crate::observe;
use crate::Cmd;
use anyhow::{bail, Context};
use std::path::Path;
use wire::agent;

pub async fn dispatch(addr: &str, cmd: Cmd) -> anyhow::Result<u8> {
    match cmd {
        Cmd::Spec { bundle } => {
            let path = bundle.join("config.json");
            if path.exists() {
                bail!("{} already exists", path.display());
            }
            crate::spec::write_config(&crate::spec::default_spec()?, &path)?;
            return Ok(0);
        }
        Cmd::Bundle {
            dir,
            root_path,
            no_device_rules,
        } => {
            crate::bundle::make_bundle(&dir, root_path.as_deref(), no_device_rules)?;
            println!("{}", dir.display());
            return Ok(0);
        }
        _ => {}
    }
    let c = connect(addr).await?;
    match cmd {
        Cmd::Check => check(&c).await,
        Cmd::Create { id, bundle } => create(&c, &id, &bundle, None).await.map(|_| 0),
        Cmd::Start { id } => start(&c, &id).await.map(|_| 0),
        Cmd::Kill { id, signal } => kill(&c, &id, signal.as_deref()).await.map(|_| 0),
        Cmd::Wait { id } => {
            let status = wait(&c, &id).await?;
            println!("{status}");
            Ok(status_byte(status))
        }
        Cmd::Rm { id, force } => rm(&c, &id, force).await.map(|_| 0),
        Cmd::Ps => ps(&c).await.map(|_| 0),
        Cmd::Stats { id } => observe::stats(&c, &id).await.map(|_| 0),
        Cmd::Update { id, limits } => observe::update(&c, &id, &limits).await.map(|_| 0),
        Cmd::Pause { id } => observe::pause(&c, &id).await.map(|_| 0),
        Cmd::Resume { id } => observe::resume(&c, &id).await.map(|_| 0),
        Cmd::Events { count } => observe::events(&c, count).await.map(|_| 0),
        Cmd::Metrics => observe::metrics(&c).await.map(|_| 0),
        Cmd::Run {
            bundle,
            id,
            tty,
            args,
        } => shell_status(run(&c, &bundle, id, tty, args).await),
        Cmd::Exec {
            id,
            exec_id,
            tty,
            user,
            env,
            cwd,
            cmd,
        } => {
            let exec_id =
                exec_id.unwrap_or_else(|| format!("exec-{}-{}", std::process::id(), nanos()));
            let process = exec_process(cmd, tty, user.as_deref(), env, cwd)?;
            shell_status(exec(&c, &id, &exec_id, &process, tty).await)
        }
        Cmd::Spec { .. } | Cmd::Bundle { .. } => unreachable!("handled above"),
    }
}

/// A program that could not be executed ends `run` and `exec` as a shell would: 127 when it is
/// missing, 126 when it is not executable (the agent names step "exec" and the errno); the
/// error is still printed.
fn shell_status(r: anyhow::Result<u8>) -> anyhow::Result<u8> {
    let Err(e) = &r else {
        return r;
    };
    let exec_failed = e.chain().any(|c| {
        c.downcast_ref::<crate::client::RpcError>()
            .is_some_and(|rpc| {
                matches!(&rpc.err, ttrpc::Error::RpcStatus(s)
                if s.code() == ttrpc::Code::FAILED_PRECONDITION
                    && s.message.contains("step \"exec\""))
            })
    });
    let text = format!("{e:#}");
    let code = match () {
        _ if !exec_failed => return r,
        _ if text.contains("ENOENT") => 127,
        _ if text.contains("EACCES") => 126,
        _ => return r,
    };
    eprintln!("zagent-ctl: {text}");
    Ok(code)
}

fn status_byte(status: i32) -> u8 {
    u8::try_from(status).unwrap_or(255)
}

async fn check(c: &Clients) -> anyhow::Result<u8> {
    let h = named("Check", c.health.check(ctx(), &Default::default()).await)?;
    let v = named(
        "Version",
        c.health.version(ctx(), &Default::default()).await,
    )?;
    println!(
        "status: {:?}\nagent_version: {}\ngrpc_version: {}",
        h.status.enum_value_or_default(),
        v.agent_version,
        v.grpc_version
    );
    Ok(0)
}

async fn create(
    c: &Clients,
    id: &str,
    bundle: &Path,
    args: Option<Vec<String>>,
) -> anyhow::Result<()> {
    create_spec(c, id, &crate::config::load_spec(bundle, args)?).await
}

async fn create_spec(c: &Clients, id: &str, spec: &oci_spec::runtime::Spec) -> anyhow::Result<()> {
    let mut req = agent::CreateContainerRequest::new();
    req.container_id = id.into();
    req.exec_id = id.into();
    req.OCI = protobuf::MessageField::some(wire::oci::spec_to_grpc(spec));
    named(
        "CreateContainer",
        c.agent.create_container(ctx(), &req).await,
    )?;
    Ok(())
}

async fn start(c: &Clients, id: &str) -> anyhow::Result<()> {
    let mut req = agent::StartContainerRequest::new();
    req.container_id = id.into();
    named("StartContainer", c.agent.start_container(ctx(), &req).await)?;
    Ok(())
}

fn parse_signal(s: &str) -> anyhow::Result<u32> {
    if let Ok(n) = s.parse::<u32>() {
        return Ok(n);
    }
    let name = s.to_ascii_uppercase();
    let name = if name.starts_with("SIG") {
        name
    } else {
        format!("SIG{name}")
    };
    let sig: nix::sys::signal::Signal = name
        .parse()
        .with_context(|| format!("unknown signal {s:?}"))?;
    Ok(sig as u32)
}

async fn kill(c: &Clients, id: &str, signal: Option<&str>) -> anyhow::Result<()> {
    let mut req = agent::SignalProcessRequest::new();
    req.container_id = id.into();
    req.signal = parse_signal(signal.unwrap_or("TERM"))?;
    named("SignalProcess", c.agent.signal_process(ctx(), &req).await)?;
    Ok(())
}

async fn wait(c: &Clients, id: &str) -> anyhow::Result<i32> {
    let mut req = agent::WaitProcessRequest::new();
    req.container_id = id.into();
    Ok(named("WaitProcess", c.agent.wait_process(ctx(), &req).await)?.status)
}

async fn rm(c: &Clients, id: &str, force: bool) -> anyhow::Result<()> {
    if !force {
        let list = named(
            "ListContainers",
            c.admin.list_containers(ctx(), &Default::default()).await,
        )?;
        if let Some(info) = list.containers.iter().find(|i| i.id == id) {
            if info.state == "running" {
                bail!("container {id} is running: stop it first or use --force");
            }
        }
    }
    let mut req = agent::RemoveContainerRequest::new();
    req.container_id = id.into();
    named(
        "RemoveContainer",
        c.agent.remove_container(ctx(), &req).await,
    )?;
    Ok(())
}

async fn ps(c: &Clients) -> anyhow::Result<()> {
    let list = named(
        "ListContainers",
        c.admin.list_containers(ctx(), &Default::default()).await,
    )?;
    println!("{:<32} {:>8} {:<8} EXIT", "ID", "PID", "STATE");
    for i in &list.containers {
        let exit = if i.has_exit_status {
            i.exit_status.to_string()
        } else {
            String::new()
        };
        println!("{:<32} {:>8} {:<8} {}", i.id, i.pid, i.state, exit);
    }
    Ok(())
}

async fn run(
    c: &Clients,
    bundle: &Path,
    id: Option<String>,
    tty: bool,
    args: Vec<String>,
) -> anyhow::Result<u8> {
    let id = id.unwrap_or_else(|| format!("run-{}-{}", std::process::id(), nanos()));
    let args = if args.is_empty() { None } else { Some(args) };
    let mut spec = crate::config::load_spec(bundle, args)?;
    if tty {
        let mut process = spec.process().clone().context("the spec has no process")?;
        process.set_terminal(Some(true));
        process.set_console_size(crate::attach::local_size().and_then(|(r, c)| console_box(r, c)));
        spec.set_process(Some(process));
    }
    create_spec(c, &id, &spec).await?;
    let result = async {
        start(c, &id).await?;
        crate::attach::attach(c, &id, "", tty).await?;
        wait(c, &id).await
    }
    .await;
    let removed = rm(c, &id, true).await;
    let status = result?;
    removed?;
    Ok(status_byte(status))
}

fn console_box(rows: u16, cols: u16) -> Option<oci_spec::runtime::Box> {
    oci_spec::runtime::BoxBuilder::default()
        .height(u64::from(rows))
        .width(u64::from(cols))
        .build()
        .ok()
}

/// The process an `exec` runs: the default spec's process (runc's default capabilities,
/// no_new_privs, PATH) with the given command, user, env, cwd and terminal.
fn exec_process(
    cmd: Vec<String>,
    tty: bool,
    user: Option<&str>,
    env: Vec<String>,
    cwd: Option<String>,
) -> anyhow::Result<oci_spec::runtime::Process> {
    let mut p = crate::spec::default_spec()?
        .process()
        .clone()
        .context("default process")?;
    p.set_args(Some(cmd));
    p.set_terminal(Some(tty));
    if tty {
        p.set_console_size(crate::attach::local_size().and_then(|(r, c)| console_box(r, c)));
    }
    if let Some(user) = user {
        // The agent resolves the spec in the container's own /etc/passwd and /etc/group.
        let mut u = p.user().clone();
        u.set_username(Some(user.to_owned()));
        p.set_user(u);
    }
    let mut all_env = p.env().clone().unwrap_or_default();
    all_env.extend(env);
    p.set_env(Some(all_env));
    if let Some(cwd) = cwd {
        p.set_cwd(cwd.into());
    }
    Ok(p)
}

async fn exec(
    c: &Clients,
    id: &str,
    exec_id: &str,
    process: &oci_spec::runtime::Process,
    tty: bool,
) -> anyhow::Result<u8> {
    let mut req = agent::ExecProcessRequest::new();
    req.container_id = id.into();
    req.exec_id = exec_id.into();
    req.process = protobuf::MessageField::some(wire::oci::process_to_grpc(process));
    named("ExecProcess", c.agent.exec_process(ctx(), &req).await)?;
    crate::attach::attach(c, id, exec_id, tty).await?;
    let mut w = agent::WaitProcessRequest::new();
    w.container_id = id.into();
    w.exec_id = exec_id.into();
    let status = named("WaitProcess", c.agent.wait_process(ctx(), &w).await)?.status;
    Ok(status_byte(status))
}

fn nanos() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
}
