//! The order of a run and its cleanup: find the binaries, make the busybox bundle, start (or
//! attach to) the agents and the helpers, run the phases, then stop everything and check that
//! nothing is left behind (cgroups, mounts, processes), whatever path the run took.

use super::clock::T0;
use super::ctx::Ctx;
use super::driver::{detach, Agent, Client};
use super::helper::Helper;
use super::latency::{self, Driver, Side};
use super::model::{Report, SideKind};
use super::{load, meta, report, runtimes, Options, Plan};
use anyhow::{bail, Context, Result};
use nix::sys::signal::Signal;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

struct Paths {
    exe: PathBuf,
    zagent: PathBuf,
    zagent_ctl: PathBuf,
    rootfs: PathBuf,
    runtime_bundle: PathBuf,
    work: PathBuf,
    out: PathBuf,
}

/// A binary of the workspace: next to zagent-bench in target/<profile>/, unless given.
fn sibling(given: &Option<PathBuf>, exe: &Path, name: &str) -> Result<PathBuf> {
    let path = given
        .clone()
        .unwrap_or_else(|| exe.parent().unwrap_or(Path::new(".")).join(name));
    if !path.is_file() {
        bail!("{} not found: run `cargo build --workspace --bins` (same profile) or pass --{name} PATH", path.display());
    }
    Ok(path)
}

pub async fn run(opts: Options) -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("zagent-bench needs root (namespaces, mounts, cgroups)");
    }
    let plan = Plan::new(&opts);
    let t0 = T0::now();
    std::fs::create_dir_all(&opts.out)
        .with_context(|| format!("creating {}", opts.out.display()))?;
    let work = tempfile::Builder::new().prefix("zagent-bench").tempdir()?;
    let exe = std::env::current_exe()?;
    let paths = Paths {
        zagent: sibling(&opts.zagent, &exe, "zagent")?,
        zagent_ctl: sibling(&opts.zagent_ctl, &exe, "zagent-ctl")?,
        rootfs: work.path().join("bundle/rootfs"),
        runtime_bundle: work.path().join("runtime-bundle"),
        work: work.path().to_owned(),
        out: opts.out.clone(),
        exe,
    };
    let spec = make_bundle(&paths)?;
    let chosen = runtimes::choose(&plan);
    let names: Vec<String> = chosen.run.iter().map(|(n, _)| n.clone()).collect();
    let mut report = meta::new_report(&plan, &paths.zagent, &names, &chosen.not_measured);
    let ctx = Ctx::new(t0, &plan, spec);
    let outcome = measure(&opts, &paths, ctx, &chosen.run, &mut report).await;
    report.warnings.extend(leftovers(&paths.work));
    drop(work);
    report.meta.wall_s = t0.elapsed_ms() / 1e3;
    if let Err(e) = &outcome {
        report.interrupted = super::is_interrupted(e);
        report.error = Some(format!("{e:#}"));
    }
    report::output(&report, &opts.out)?;
    remove_empty_logs(&opts.out);
    outcome
}

/// The agents' and helpers' logs are kept only when something was written to them.
fn remove_empty_logs(out: &Path) {
    let Ok(entries) = std::fs::read_dir(out) else {
        return;
    };
    for e in entries.flatten() {
        let empty = e
            .metadata()
            .map(|m| m.is_file() && m.len() == 0)
            .unwrap_or(false);
        if empty && e.path().extension().is_some_and(|x| x == "log") {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// `zagent-ctl bundle` into the work dir; the spec with args /bin/true and an absolute root,
/// also written as the runtimes' bundle.
fn make_bundle(p: &Paths) -> Result<wire::oci::Spec> {
    let dir = p.work.join("bundle");
    let out = Command::new(&p.zagent_ctl)
        .arg("bundle")
        .arg(&dir)
        .stdin(Stdio::null())
        .output()?;
    if !out.status.success() {
        bail!(
            "zagent-ctl bundle failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let mut spec =
        oci_spec::runtime::Spec::load(dir.join("config.json")).context("loading config.json")?;
    let mut root = spec.root().clone().context("config.json has no root")?;
    root.set_path(p.rootfs.clone());
    spec.set_root(Some(root));
    let mut process = spec
        .process()
        .clone()
        .context("config.json has no process")?;
    process.set_args(Some(vec!["/bin/true".into()]));
    process.set_terminal(Some(false));
    spec.set_process(Some(process));
    std::fs::create_dir_all(&p.runtime_bundle)?;
    spec.save(p.runtime_bundle.join("config.json"))
        .context("writing the runtimes' config.json")?;
    Ok(wire::oci::spec_to_grpc(&spec))
}

async fn start_agents(opts: &Options, p: &Paths) -> Result<Vec<Agent>> {
    let mut agents = Vec::new();
    for spec in &opts.addrs {
        let (name, addr) = spec.split_once('=').context("--addr takes NAME=ADDR")?;
        agents.push(Agent::attach(name, addr).await?);
    }
    if opts.addrs.is_empty() {
        for l in &opts.launchers {
            if l != "zygote" && l != "pool" && l != "reexec" {
                bail!("unknown launcher {l:?} (zygote, pool or reexec)");
            }
            agents.push(
                Agent::spawn(&p.zagent, l, &p.work, &p.out.join(format!("agent-{l}.log"))).await?,
            );
        }
    }
    if agents.is_empty() {
        bail!("no launcher to measure");
    }
    Ok(agents)
}

/// The helper sides of the latency phase: the runtimes this run measures (`runtimes::choose`),
/// then the floor. A helper that does not start is a warning, never a failure of the bench.
fn start_helpers(runtimes: &[(String, PathBuf)], p: &Paths, report: &mut Report) -> Vec<Side> {
    let mut sides = Vec::new();
    for (name, path) in runtimes {
        report
            .meta
            .runtimes
            .push((name.clone(), runtimes::version(path)));
        let cmd = runtime_command(p, path, &format!("{name}-root"), name);
        match spawn_helper(name, cmd, &p.out) {
            Ok(h) => sides.push(Side::new(name, SideKind::Runtime, Driver::Helper(h))),
            Err(e) => report.warnings.push(format!("{name}: {e:#}")),
        }
    }
    match spawn_floor(p, "floor") {
        Ok(h) => sides.push(Side::new("floor", SideKind::Floor, Driver::Helper(h))),
        Err(e) => report.warnings.push(format!("floor: {e:#}")),
    }
    sides
}

/// `zagent-bench runtime` for the runtime at `path` with --root work/`root` and ids
/// zagent-bench-PID-`tag`-N.
fn runtime_command(p: &Paths, path: &Path, root: &str, tag: &str) -> Command {
    let mut cmd = Command::new(&p.exe);
    cmd.arg("runtime")
        .arg("--runtime")
        .arg(path)
        .arg("--bundle")
        .arg(&p.runtime_bundle);
    cmd.arg("--root")
        .arg(p.work.join(root))
        .arg("--prefix")
        .arg(format!("zagent-bench-{}-{tag}", std::process::id()));
    cmd
}

/// The throughput phase's runc/crun: those that were in the latency phase and did not fail
/// there. Client k's helper is NAME-tpK (its ids and log); they share --root work/NAME-tp-root.
fn runtime_loads<'a>(p: &'a Paths, sides: &[Side]) -> Vec<load::RuntimeLoad<'a>> {
    let names: Vec<&str> = sides
        .iter()
        .filter(|s| s.lat.kind == SideKind::Runtime && s.lat.failed.is_none())
        .map(|s| s.lat.side.as_str())
        .collect();
    runtimes::installed(&names)
        .into_iter()
        .map(|(name, path)| {
            let tag = name.clone();
            load::RuntimeLoad::new(&name, move |k| {
                let helper = format!("{tag}-tp{k}");
                let cmd = runtime_command(p, &path, &format!("{tag}-tp-root"), &helper);
                let log = p.out.join(format!("{helper}.log"));
                Ok((spawn_helper(&helper, cmd, &p.out)?, log))
            })
        })
        .collect()
}

/// A floor helper; `tag` names its cgroup and log.
fn spawn_floor(p: &Paths, tag: &str) -> Result<Helper> {
    let mut cmd = Command::new(&p.exe);
    cmd.arg("floor").arg("--rootfs").arg(&p.rootfs);
    cmd.arg("--cgroup")
        .arg(format!("zagent-bench-{}-{tag}", std::process::id()));
    spawn_helper(tag, cmd, &p.out)
}

fn spawn_helper(name: &str, mut cmd: Command, out: &Path) -> Result<Helper> {
    let log = std::fs::File::create(out.join(format!("{name}.log")))?;
    cmd.stderr(log);
    detach(&mut cmd, Signal::SIGKILL);
    Helper::spawn(name, cmd)
}

/// Everything between the bundle and the leftover check; the agents are stopped on every
/// path before it returns.
async fn measure(
    opts: &Options,
    p: &Paths,
    mut ctx: Ctx,
    runtimes: &[(String, PathBuf)],
    report: &mut Report,
) -> Result<()> {
    ctx.agents = start_agents(opts, p).await?;
    report.meta.zagent_version = zagent_version(&p.zagent);
    for a in &ctx.agents {
        ctx.clients.push(a.connect().await?);
    }
    let result = phases(&ctx, p, runtimes, report).await;
    if result.is_err() && !opts.addrs.is_empty() {
        for client in &ctx.clients {
            remove_ours(client).await;
        }
    }
    for a in &mut ctx.agents {
        if let Some(complaint) = a.stop() {
            report.warnings.push(complaint);
        }
    }
    result
}

async fn phases(
    ctx: &Ctx,
    p: &Paths,
    runtimes: &[(String, PathBuf)],
    report: &mut Report,
) -> Result<()> {
    let mut sides: Vec<Side> = ctx
        .agents
        .iter()
        .zip(&ctx.clients)
        .map(|(a, c)| Side::new(&a.label, SideKind::Launcher, Driver::Agent(c.clone())))
        .collect();
    sides.extend(start_helpers(runtimes, p, report));
    let result = latency::run(ctx, &mut sides, &mut report.warnings).await;
    let mut loads = runtime_loads(p, &sides);
    for side in sides {
        let lat = side.finish(&mut report.warnings);
        report.latency.push(lat);
    }
    result?;
    let labels: Vec<String> = ctx.agents.iter().map(|a| a.label.clone()).collect();
    report.join = super::join::run(ctx, &labels).await?;
    report.seccomp = super::seccomp::run(ctx, &labels, &mut report.warnings).await?;
    let result = load::throughput(ctx, &mut loads, &mut report.warnings).await;
    for l in loads {
        l.finish(&mut report.warnings);
    }
    report.throughput = result?;
    // A fresh floor helper for the scaling phase: how the bare clone + pivot_root + exec
    // itself slows down with many live containers tells the kernel's share from zagent's.
    let mut floor = match spawn_floor(p, "floor-scaling") {
        Ok(h) => Some(h),
        Err(e) => {
            report.warnings.push(format!("floor (scaling): {e:#}"));
            None
        }
    };
    let scaled = load::scaling(ctx, floor.as_mut(), &mut report.warnings).await;
    if let Some(h) = floor {
        if let Err(e) = h.finish(std::time::Duration::from_secs(30)) {
            report.warnings.push(format!("{e:#}"));
        }
    }
    let scaled = scaled?;
    report.scaling = scaled.scaling;
    report.memory = scaled.memory;
    report.parking = scaled.parking;
    Ok(())
}

/// On an agent we did not start: remove whatever this run created on it.
async fn remove_ours(client: &Client) {
    let prefix = format!("zagent-bench-{}-", std::process::id());
    if let Ok(list) = client.list().await {
        for (id, _, _) in list
            .into_iter()
            .filter(|(id, _, _)| id.starts_with(&prefix))
        {
            let _ = client.remove(&id).await;
        }
    }
}

fn zagent_version(zagent: &Path) -> String {
    Command::new(zagent)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// What this run may have left: cgroups named after our ids (runc/crun name theirs after the
/// id, zagent uses zagent/<id>), mounts under the work dir, live children. Empty runtime
/// cgroups are removed; anything else is reported.
fn leftovers(work: &Path) -> Vec<String> {
    let prefix = format!("zagent-bench-{}-", std::process::id());
    let mut found: Vec<String> = runtimes::remove_stray_cgroups(&prefix);
    if let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") {
        for h in hierarchies.flatten() {
            let Ok(entries) = std::fs::read_dir(h.path().join("zagent")) else {
                continue;
            };
            for e in entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            {
                found.push(format!("zagent left cgroup {}", e.path().display()));
            }
        }
    }
    let work = work.to_string_lossy().into_owned();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for m in mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&work))
    {
        found.push(format!("mount left: {m}"));
    }
    for pid in super::memory::descendants(std::process::id() as i32) {
        found.push(format!(
            "process left: {pid} ({})",
            super::memory::proc_mem(pid)
                .map(|m| m.comm)
                .unwrap_or_default()
        ));
    }
    found
        .into_iter()
        .map(|f| format!("leftover: {f}"))
        .collect()
}
