//! `zagent-soak`: many mixed container lifecycles against one agent it starts, from several
//! concurrent clients (each its own ttrpc connection, each its own seeded generator, so a run
//! can be replayed), then the agent's resources against a baseline taken after a warm-up.
//! This module owns the options, the order of a run (bundle, agent, warm-up, baseline, load,
//! settle, report, stop) and its cleanup on every path, Ctrl-C included.

pub mod metrics;
pub mod mix;
pub mod rpc;
pub mod tally;

use crate::bench::driver::Agent;
use anyhow::{bail, Context, Result};
use metrics::{Probe, Snapshot};
use mix::{Kind, Prng, Specs};
use rpc::Rpc;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tally::Tally;

/// tokio's blocking pool (the agent removes cgroups there) keeps an idle thread this long; the
/// baseline is taken after it, so such threads are counted neither before nor after.
const BLOCKING_KEEP_ALIVE: Duration = Duration::from_secs(10);
/// How long the final snapshot may take to come back to the baseline (reaping, the blocking
/// pool winding down) before what is still above it counts as leaked.
const SETTLE: Duration = Duration::from_secs(30);

#[derive(Clone, Debug)]
pub struct Options {
    pub iterations: u64,
    pub clients: usize,
    pub max_seconds: u64,
    pub seed: u64,
    /// zygote (no warm pool), pool (zagent's default) or reexec.
    pub launcher: String,
    /// Lifecycles of each kind per client before the baseline.
    pub warmup: u64,
    pub rss_bound_mib: u64,
    pub zagent: Option<PathBuf>,
    pub zagent_ctl: Option<PathBuf>,
}

/// The error a run stops with after SIGINT/SIGTERM.
#[derive(Debug)]
pub struct Interrupted;

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted by a signal")
    }
}

impl std::error::Error for Interrupted {}

pub fn is_interrupted(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.is::<Interrupted>())
}

/// Runs the soak. Ok(true): every lifecycle passed and nothing leaked.
pub fn run(opts: Options) -> Result<bool> {
    if !nix::unistd::geteuid().is_root() {
        bail!("zagent-soak needs root (namespaces, mounts, cgroups)");
    }
    if opts.clients == 0 {
        bail!("--clients must be at least 1");
    }
    // One thread: the clients are async, the other core is left to the agent, and every spawn
    // happens on the main thread (the agent's death signal follows the thread that spawned it).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(soak(opts))
}

/// A binary of the workspace next to this one, unless given.
fn sibling(given: &Option<PathBuf>, name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = given
        .clone()
        .unwrap_or_else(|| exe.parent().unwrap_or(Path::new(".")).join(name));
    if !path.is_file() {
        bail!(
            "{} not found: run `cargo build --release --workspace --bins` or pass --{name} PATH",
            path.display()
        );
    }
    Ok(path)
}

/// `zagent-ctl bundle DIR`, and its spec with the rootfs path made absolute.
fn make_bundle(zagent_ctl: &Path, dir: &Path) -> Result<oci_spec::runtime::Spec> {
    let out = Command::new(zagent_ctl)
        .arg("bundle")
        .arg(dir)
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
    root.set_path(dir.join("rootfs"));
    spec.set_root(Some(root));
    Ok(spec)
}

async fn interrupted() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! { _ = int.recv() => {}, _ = term.recv() => {} }
}

/// Everything a run holds until the agent is stopped.
struct Run {
    opts: Options,
    specs: Specs,
    probe: Probe,
    addr: String,
    t0: Instant,
}

async fn soak(opts: Options) -> Result<bool> {
    let t0 = Instant::now();
    let zagent = sibling(&opts.zagent, "zagent")?;
    let zagent_ctl = sibling(&opts.zagent_ctl, "zagent-ctl")?;
    let work = tempfile::Builder::new().prefix("zagent-soak").tempdir()?;
    let spec = make_bundle(&zagent_ctl, &work.path().join("bundle"))?;
    let log = work.path().join("agent.log");
    let mut agent = tokio::select! {
        a = Agent::spawn(&zagent, &opts.launcher, work.path(), &log) => a?,
        _ = interrupted() => return Err(Interrupted.into()),
    };
    let run = Run {
        specs: Specs::new(&spec)?,
        probe: Probe {
            agent: agent.pid.context("agent pid")?,
            dirs: vec![work.path().to_owned()],
            state_dir: work
                .path()
                .join(format!("agent-{}", opts.launcher))
                .join("state"),
            id_prefix: format!("soak-{}-", std::process::id()),
        },
        addr: agent.addr.clone(),
        opts,
        t0,
    };
    println!(
        "zagent-soak: {} ({} launcher), pid {}, work dir {}",
        zagent.display(),
        run.opts.launcher,
        run.probe.agent,
        work.path().display()
    );
    let outcome = tokio::select! {
        r = drive(&run) => r,
        _ = interrupted() => Err(Interrupted.into()),
    };
    if outcome.as_ref().is_err_and(is_interrupted) {
        eprintln!("zagent-soak: interrupted; stopping the agent and cleaning up");
    }
    let after_stop = stop_and_check(&mut agent, &run.probe);
    for p in &after_stop {
        println!("after the agent stopped: {p}");
    }
    if !after_stop.is_empty() || matches!(outcome, Ok(false)) {
        print!("{}", log_tail(&log));
    }
    drop(agent);
    if after_stop.iter().any(|p| p.starts_with("mount left")) {
        // Removing a tree with something mounted in it would delete what the mount shows.
        let kept = work.keep();
        println!("work dir kept (mounts left in it): {}", kept.display());
    } else {
        work.close().context("removing the work dir")?;
    }
    Ok(outcome? && after_stop.is_empty())
}

/// The agent's last log lines, without the refusals the bad-input kind asks for.
fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.contains("process.args is empty"))
        .collect();
    if lines.is_empty() {
        return String::new();
    }
    let tail = lines[lines.len().saturating_sub(20)..].join("\n");
    format!(
        "agent log ({} lines, the last 20 shown):\n{tail}\n",
        lines.len()
    )
}

/// SIGTERM (the agent removes what it still holds), then what is left of ours: the agent's
/// own complaint (exit status), cgroups named after our ids, mounts of our dirs.
fn stop_and_check(agent: &mut Agent, probe: &Probe) -> Vec<String> {
    let mut problems: Vec<String> = agent.stop().into_iter().collect();
    problems.extend(
        probe
            .cgroups()
            .iter()
            .map(|c| format!("cgroup left: {}", c.display())),
    );
    problems.extend(probe.mounts().iter().map(|m| format!("mount left: {m}")));
    problems
}

/// Shared by the clients of the measured phase.
struct Shared {
    done: AtomicU64,
    timed_out: AtomicBool,
    tally: Mutex<Tally>,
    deadline: Instant,
}

/// Warm-up, baseline, the load, the settled snapshot and the report. Ok(true): clean.
async fn drive(run: &Run) -> Result<bool> {
    let o = &run.opts;
    let mut clients = Vec::new();
    for _ in 0..o.clients {
        clients.push(Rpc::connect(&run.addr).await?);
    }
    let control = Rpc::connect(&run.addr).await?;
    warm_up(run, &clients).await?;
    tokio::time::sleep(BLOCKING_KEEP_ALIVE + Duration::from_secs(1)).await;
    let base = run.probe.snapshot(&control).await;
    println!("baseline after warm-up: {}", metrics::brief(&base));
    let shared = Shared {
        done: AtomicU64::new(0),
        timed_out: AtomicBool::new(false),
        tally: Mutex::new(Tally::default()),
        deadline: run.t0 + Duration::from_secs(o.max_seconds),
    };
    let started = Instant::now();
    let load = futures::future::join_all(
        clients
            .iter()
            .enumerate()
            .map(|(k, c)| client_loop(run, k, c, &shared)),
    );
    tokio::select! {
        _ = load => {}
        _ = progress(run, &control, &shared, started) => {}
    }
    let wall = started.elapsed();
    let (after, leaks) = settle(run, &control, &base).await;
    let tally = shared.tally.lock().expect("tally lock").clone();
    report(run, &shared, &tally, wall, &base, &after, &leaks);
    Ok(tally.failed() == 0 && leaks.is_empty())
}

/// Every kind `warmup` times per client, concurrently: lazily made fds, threads and caches
/// exist before the baseline. A failure here stops the run (the agent is not usable).
async fn warm_up(run: &Run, clients: &[Rpc]) -> Result<()> {
    let runs = clients.iter().enumerate().map(|(k, c)| async move {
        let mut rng = Prng::new(run.opts.seed ^ 0x5741_524d ^ k as u64);
        for i in 0..run.opts.warmup {
            for kind in Kind::ALL {
                let id = format!("{}w{k}-{i}-{}", run.probe.id_prefix, kind.index());
                mix::run(kind, c, &run.specs, &id, &mut rng)
                    .await
                    .with_context(|| format!("warm-up, {}, {id}", kind.name()))?;
            }
        }
        anyhow::Ok(())
    });
    for r in futures::future::join_all(runs).await {
        r?;
    }
    Ok(())
}

/// Client `k` runs iterations k, k+clients, k+2*clients, ... of the run, its kinds drawn from
/// its own generator, until they are done or the time bound is reached.
async fn client_loop(run: &Run, k: usize, rpc: &Rpc, shared: &Shared) {
    let o = &run.opts;
    let mine =
        o.iterations / o.clients as u64 + u64::from((k as u64) < o.iterations % o.clients as u64);
    let mut rng = Prng::new(
        o.seed
            .wrapping_add((k as u64 + 1).wrapping_mul(0x9e37_79b9)),
    );
    for i in 0..mine {
        if Instant::now() >= shared.deadline {
            shared.timed_out.store(true, Ordering::Relaxed);
            return;
        }
        let kind = Kind::pick(&mut rng);
        let id = format!("{}{k}-{i}", run.probe.id_prefix);
        let result = mix::run(kind, rpc, &run.specs, &id, &mut rng).await;
        shared
            .tally
            .lock()
            .expect("tally lock")
            .record(kind, &id, &result);
        shared.done.fetch_add(1, Ordering::Relaxed);
    }
}

/// A line at every tenth of the run (never returns; dropped when the clients are done).
async fn progress(run: &Run, control: &Rpc, shared: &Shared, started: Instant) {
    let total = run.opts.iterations.max(1);
    let mut next = 1;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let done = shared.done.load(Ordering::Relaxed);
        if done * 10 < next * total {
            continue;
        }
        while done * 10 >= next * total {
            next += 1;
        }
        let failed = shared.tally.lock().expect("tally lock").failed();
        let s = started.elapsed().as_secs_f64();
        let snap = run.probe.snapshot(control).await;
        println!(
            "[{:>3}%] {done}/{total} in {s:.0} s ({:.1}/s), {failed} failed; {}",
            done * 100 / total,
            done as f64 / s.max(1e-9),
            metrics::brief(&snap)
        );
    }
}

/// The snapshot after the load, polled until nothing is above the baseline or SETTLE passed.
async fn settle(run: &Run, control: &Rpc, base: &Snapshot) -> (Snapshot, Vec<String>) {
    let bound = run.opts.rss_bound_mib * 1024;
    let until = Instant::now() + SETTLE;
    loop {
        let now = run.probe.snapshot(control).await;
        let leaks = metrics::leaks(base, &now, bound);
        if leaks.is_empty() || Instant::now() >= until {
            return (now, leaks);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn report(
    run: &Run,
    shared: &Shared,
    tally: &Tally,
    wall: Duration,
    base: &Snapshot,
    after: &Snapshot,
    leaks: &[String],
) {
    let o = &run.opts;
    let ran = tally.done() + tally.failed();
    println!(
        "\n{ran} of {} lifecycles in {:.1} s ({:.1}/s), {} clients, seed {}, launcher {}",
        o.iterations,
        wall.as_secs_f64(),
        ran as f64 / wall.as_secs_f64().max(1e-9),
        o.clients,
        o.seed,
        o.launcher
    );
    if shared.timed_out.load(Ordering::Relaxed) {
        println!(
            "INCOMPLETE: --max-seconds {} reached after {ran} lifecycles",
            o.max_seconds
        );
    }
    print!("{}", tally.render());
    println!();
    print!("{}", metrics::render(base, after, o.rss_bound_mib * 1024));
    println!(
        "wall time of the whole soak (bundle, agent, warm-up, baseline, load, settle): {:.1} s",
        run.t0.elapsed().as_secs_f64()
    );
    for l in leaks {
        println!("LEAK: {l}");
    }
}
