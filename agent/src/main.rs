//! `zagent`: the agent daemon. `zagent zygote` (exec'd by the agent itself), and likewise
//! `zagent init` and `zagent pidns-init`, are dispatched first, before any thread or runtime
//! exists, so these helpers stay single-threaded. Started as
//! PID 1 (a guest's init), it becomes the guest's init (`guest_init`), which runs the agent.

mod agent;
mod child_sync;
mod cmdline;
mod config;
mod conn_limit;
mod container;
mod create;
mod error;
mod exec;
mod exec_fifo;
mod exec_user;
mod guest;
mod guest_init;
mod guest_ops;
mod hooks;
mod io;
mod iptables;
mod launch;
mod launcher;
mod lifecycle;
mod listen;
mod metrics;
mod net;
mod netstats;
mod nsfile;
mod oom;
mod pause;
mod pidns_init;
mod ratelimit;
mod reaper;
mod recovery;
mod registry;
mod resources;
mod rpc;
mod sandbox;
mod scrape;
mod selfexe;
mod server;
mod storage;
mod swap;
mod teardown;

// The launch sequence is in the library target, so the fuzz bodies (tests crate) drive it too.
use ::agent::sequence;
use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    // The helpers run before anything else exists (no runtime, no threads, no logging).
    let role = std::env::args_os().nth(1);
    let helper = match role.as_ref().and_then(|r| r.to_str()) {
        Some("zygote") => {
            let rest: Vec<String> = std::env::args().skip(2).collect();
            Some(zygote::Options::parse(&rest).and_then(|opts| zygote::serve(0, opts)))
        }
        Some("init") => Some(zygote::serve_one(0)),
        Some("pidns-init") => {
            let rest: Vec<String> = std::env::args().skip(2).collect();
            Some(zygote::pidns_init::run(&rest).map_err(zygote::ZygoteError::from))
        }
        None if std::process::id() == 1 => guest_init::run(),
        _ => None,
    };
    if let Some(result) = helper {
        return match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("zagent {}: {e}", role.unwrap_or_default().to_string_lossy());
                ExitCode::FAILURE
            }
        };
    }
    let mut cfg = config::AgentConfig::parse();
    if let Some(path) = cfg.kernel_cmdline.clone() {
        match cmdline::read(&path) {
            Ok(opts) => {
                cfg.apply(&opts);
                if !opts.ignored.is_empty() {
                    eprintln!(
                        "zagent: ignoring Kata options zagent does not have: {}",
                        opts.ignored.join(" ")
                    );
                }
            }
            Err(e) => {
                eprintln!("zagent: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    // Without root every create would fail later at its first cgroup write (EACCES): say so now.
    if !nix::unistd::geteuid().is_root() {
        eprintln!("zagent: must run as root (it makes namespaces, mounts and cgroups)");
        return ExitCode::FAILURE;
    }
    init_logging(cfg.log_format, cfg.log_level.as_deref());
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("zagent: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(server::run(&cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "zagent failed");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: config::LogFormat, level: Option<&str>) {
    use tracing_subscriber::{filter::filter_fn, prelude::*, EnvFilter};
    let filter = match level {
        Some(level) => EnvFilter::new(level),
        None => EnvFilter::try_from_env("ZAGENT_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
    };
    // Colour codes only for a person at a terminal, never into a log file or journal.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let fmt = match format {
        config::LogFormat::Text => fmt.boxed(),
        config::LogFormat::Json => fmt.json().boxed(),
    };
    tracing_subscriber::registry()
        .with(fmt.with_filter(filter_fn(ttrpc_rate)).with_filter(filter))
        .init();
}

/// ttrpc logs a line for each reply it could not send, so a client that hangs up with a
/// thousand requests pending would cost a thousand lines: ttrpc's own lines go through a
/// bucket of their own (what it leaves out is dropped; the rpc failures we log count theirs).
static TTRPC_LOGGED: ratelimit::LogLimiter = ratelimit::LogLimiter::new();

fn ttrpc_rate(meta: &tracing::Metadata<'_>) -> bool {
    !meta.target().starts_with("ttrpc")
        || matches!(TTRPC_LOGGED.check(), ratelimit::Verdict::Log { .. })
}
