//! `zagent-bench`: drives zagent agents (one per launcher) over ttrpc as a shim would, beside
//! the floor (bare clone + pivot_root + exec) and runc/crun on the same busybox bundle, and
//! reports latency, throughput, memory per parked container and create latency against the
//! number of live containers, interleaved so that drift hits every side alike. Every sample
//! is kept (JSON), summarised on the terminal and plotted (SVG). This module owns the
//! options, the plan and the order of the phases; the phases live in their own modules.

mod clock;
mod ctx;
pub mod driver;
pub mod floor;
pub mod guest;
pub mod helper;
pub mod join;
mod latency;
mod load;
pub mod memory;
mod meta;
pub mod model;
mod plot;
mod progress;
mod report;
pub mod runtimes;
pub mod seccomp;
mod setup;
pub mod stats;

use anyhow::Result;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// What the user asked for on the command line.
#[derive(Clone, Debug)]
pub struct Options {
    pub quick: bool,
    /// Launchers to start agents for ("zygote", "reexec").
    pub launchers: Vec<String>,
    /// NAME=ADDR of running agents to use instead of starting our own.
    pub addrs: Vec<String>,
    /// Some(true): run runc/crun even in --quick; Some(false): never.
    pub runtimes: Option<bool>,
    pub out: PathBuf,
    pub zagent: Option<PathBuf>,
    pub zagent_ctl: Option<PathBuf>,
    /// Override the number of measured sequential lifecycles per side.
    pub samples: Option<usize>,
}

/// The counts a mode resolves to; printed with the results and saved in the JSON.
#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    pub mode: &'static str,
    /// Sequential lifecycles per side excluded as warm-up.
    pub warmup: usize,
    /// Measured sequential lifecycles per side.
    pub samples: usize,
    /// Sides take turns in batches of this many.
    pub batch: usize,
    pub clients: Vec<usize>,
    pub window_s: f64,
    /// Every (concurrency, launcher) window is measured this many times, rounds interleaved.
    pub rounds: usize,
    pub memory_parked: usize,
    pub parked_levels: Vec<usize>,
    /// Sequential lifecycles measured at each parked level, per launcher.
    pub scaling_samples: usize,
    pub runtimes: bool,
}

impl Plan {
    pub fn new(opts: &Options) -> Plan {
        let mut plan = if opts.quick {
            Plan {
                mode: "quick",
                warmup: 5,
                samples: 30,
                batch: 10,
                clients: vec![1, 8],
                window_s: 1.0,
                rounds: 1,
                memory_parked: 20,
                parked_levels: vec![0, 20],
                scaling_samples: 20,
                runtimes: opts.runtimes == Some(true),
            }
        } else {
            Plan {
                mode: "full",
                warmup: 10,
                samples: 500,
                batch: 10,
                clients: vec![1, 2, 8, 32],
                window_s: 3.0,
                rounds: 3,
                memory_parked: 100,
                parked_levels: vec![0, 100, 1000],
                scaling_samples: 100,
                runtimes: opts.runtimes != Some(false),
            }
        };
        if let Some(n) = opts.samples {
            plan.samples = n.max(1);
        }
        plan
    }

    pub fn window(&self) -> Duration {
        Duration::from_secs_f64(self.window_s)
    }
}

static CANCELLED: AtomicBool = AtomicBool::new(false);

/// Set on SIGINT/SIGTERM: the phases stop at the next batch and the bench cleans up.
pub fn cancel() {
    CANCELLED.store(true, Ordering::SeqCst);
}

/// The error a run stops with after SIGINT/SIGTERM (not a zagent failure).
#[derive(Debug)]
pub struct Interrupted;

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted by a signal")
    }
}

impl std::error::Error for Interrupted {}

pub fn check_cancelled() -> Result<()> {
    if CANCELLED.load(Ordering::SeqCst) {
        return Err(Interrupted.into());
    }
    Ok(())
}

pub fn is_interrupted(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.is::<Interrupted>())
}

/// Runs the bench; the result is Err only when the zagent side failed (or the bench could
/// not start at all).
pub fn run(opts: Options) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // One thread for the bench's own clients: it leaves the other core to the agent and keeps
    // every spawn on the main thread (the death signal of children follows the spawner).
    rt.block_on(async {
        tokio::spawn(async {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut int), Ok(mut term)) = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) else {
                return;
            };
            tokio::select! { _ = int.recv() => {}, _ = term.recv() => {} }
            eprintln!("\nzagent-bench: interrupted; cleaning up");
            cancel();
        });
        let result = setup::run(opts).await;
        remove_empty_agent_parents();
        result
    })
}

/// The agents remove their containers' cgroups but leave the shared `zagent` parents they made
/// for the next container; once the bench is done with its agents, remove those that are empty
/// (rmdir refuses a cgroup that still has children or processes, so nothing else is touched).
fn remove_empty_agent_parents() {
    let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") else {
        return;
    };
    for h in hierarchies.flatten() {
        let _ = std::fs::remove_dir(h.path().join("zagent"));
    }
}
