//! `zagent-ctl`: a client of the agent with runc's and Kata agent-ctl's verbs. Errors print one
//! line naming the RPC and the ttrpc code, and the exit status is non-zero.

mod attach;
mod bundle;
mod client;
mod commands;
mod config;
mod observe;
mod spec;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "zagent-ctl",
    version,
    about = "Talk to a zagent over ttrpc",
    after_help = "Examples:
  zagent-ctl bundle /tmp/bb                       make a busybox bundle
  zagent-ctl run --bundle /tmp/bb -- echo hello   create, start, stream, wait, remove
  zagent-ctl create --id c1 --bundle /tmp/bb && zagent-ctl start c1
  zagent-ctl exec -t c1 -- sh                     a shell in the running container
  zagent-ctl exec --user nobody c1 -- id          as a user of the container's /etc/passwd
  zagent-ctl kill c1 KILL; zagent-ctl rm c1       (runc's names work too: delete, list)
  zagent-ctl stats c1; zagent-ctl update c1 --memory 128m; zagent-ctl pause c1
  zagent-ctl events                               OOM-killed containers, as they happen
  zagent-ctl metrics                              the agent's Prometheus metrics"
)]
struct Cli {
    /// The agent's address: unix:///PATH, vsock://CID:PORT, hvsock://PATH:PORT (a guest's
    /// agent behind its VMM's hybrid-vsock socket, as `scripts/guest.sh up` leaves in DIR/addr),
    /// or a socket path (for the verbs that talk to an agent; spec and bundle do not).
    #[arg(long, default_value = "unix:///run/zagent/zagent.sock", global = true)]
    addr: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Health check and version.
    Check,
    /// Create a container from a bundle (DIR/config.json, root.path relative to DIR).
    Create {
        /// The new container's id (letters, digits, '.', '_', '-').
        #[arg(long)]
        id: String,
        /// The bundle dir: DIR/config.json, and root.path relative to DIR.
        #[arg(long)]
        bundle: PathBuf,
    },
    /// Start a created container.
    Start {
        /// The container's id.
        id: String,
    },
    /// Send a signal to the container's process.
    Kill {
        /// The container's id.
        id: String,
        /// A name (TERM, SIGTERM) or a number; default TERM.
        signal: Option<String>,
    },
    /// Wait for the container to exit; print and exit with its status.
    Wait {
        /// The container's id.
        id: String,
    },
    /// Remove a container; a running one only with --force.
    #[command(alias = "delete")]
    Rm {
        /// The container's id.
        id: String,
        /// Kill a running container first (SIGKILL), then remove it.
        #[arg(long, short = 'f')]
        force: bool,
    },
    /// List containers: id, pid, state, exit status.
    #[command(alias = "list")]
    Ps,
    /// Create, start, stream the output, wait, remove; exit with the container's status.
    Run {
        /// The bundle dir: DIR/config.json, and root.path relative to DIR.
        #[arg(long)]
        bundle: PathBuf,
        /// The container's id (default: run-<pid>-<time>).
        #[arg(long)]
        id: Option<String>,
        /// Give the process a terminal and attach ours (raw mode, window size forwarded).
        #[arg(long, short = 't')]
        tty: bool,
        /// Replace the spec's process args.
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Run a new process in a running container; exit with its status.
    Exec {
        /// The running container's id.
        id: String,
        /// The new process's id in the agent (default: exec-<pid>-<time>).
        #[arg(long)]
        exec_id: Option<String>,
        /// Give the process a terminal and attach ours.
        #[arg(long, short = 't')]
        tty: bool,
        /// USER[:GROUP], each a name or a number, resolved in the container's /etc/passwd
        /// and /etc/group as runc does: a name must exist there, a number need not; without
        /// GROUP, the user's own group and its memberships (else group 0).
        #[arg(long, short = 'u')]
        user: Option<String>,
        /// K=V, repeatable; added to the default PATH and TERM.
        #[arg(long, short = 'e', value_parser = env_entry)]
        env: Vec<String>,
        /// The working directory inside the container (default /).
        #[arg(long)]
        cwd: Option<String>,
        /// The program and its arguments, after `--`.
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
    /// Print a container's cgroup figures (StatsContainer), one `key value` per line.
    #[command(after_help = "Examples:
  zagent-ctl stats c1
  zagent-ctl stats c1 | grep '^memory\\.usage_bytes'    bytes in use now

Keys: cpu.* (ns), memory.* (bytes; memory.stat.* as the kernel's memory.stat), pids.*,
blkio.<io_service_bytes|io_serviced>.<major>:<minor>.<op>. A figure the kernel does not have
is 0.")]
    Stats {
        /// The container's id.
        id: String,
    },
    /// Change a running container's cgroup limits (UpdateContainer), like `runc update`.
    #[command(after_help = "Examples:
  zagent-ctl update c1 --memory 256m --memory-swap 256m
  zagent-ctl update c1 --pids-limit 100 --cpu-quota 50000 --cpu-period 100000
  zagent-ctl update c1 -r resources.json     {\"memory\": {\"limit\": 268435456}}
  echo '{\"pids\": {\"limit\": 10}}' | zagent-ctl update c1 -r -

Flags override the file's values. Nonsense (a negative limit, swap below memory) is refused
before anything is written; a limit the kernel refuses (e.g. memory below what is in use)
fails with the agent's error.")]
    Update {
        /// The container's id.
        id: String,
        #[command(flatten)]
        limits: observe::UpdateArgs,
    },
    /// Freeze every process of a container (PauseContainer).
    #[command(after_help = "Example:
  zagent-ctl pause c1 && zagent-ctl ps      c1 is paused until `zagent-ctl resume c1`")]
    Pause {
        /// The container's id.
        id: String,
    },
    /// Thaw a paused container (ResumeContainer).
    #[command(after_help = "Example:
  zagent-ctl resume c1")]
    Resume {
        /// The container's id.
        id: String,
    },
    /// Print the id of each container an OOM kill hits, as it happens (GetOOMEvent).
    #[command(after_help = "Examples:
  zagent-ctl events                  one id per line, until interrupted
  zagent-ctl events --count 1        wait for the next OOM, print its container, exit

Events that happened while nobody listened are printed first (the agent keeps up to 100).")]
    Events {
        /// Exit after this many events.
        #[arg(long)]
        count: Option<u64>,
    },
    /// Print the agent's metrics (GetMetrics, Prometheus text format).
    #[command(after_help = "Examples:
  zagent-ctl metrics
  zagent-ctl metrics | grep zagent_launch_stage_seconds_sum    time spent per launch stage")]
    Metrics,
    /// Write a default config.json (like `runc spec`, non-terminal).
    Spec {
        /// Where config.json goes (it must not exist yet).
        #[arg(long, default_value = ".")]
        bundle: PathBuf,
    },
    /// Make a busybox bundle in DIR from the host's static busybox.
    Bundle {
        /// The bundle dir to make (config.json and rootfs/).
        dir: PathBuf,
        /// root.path as written in config.json (default `rootfs`), e.g. /bundle/rootfs for a
        /// bundle that will sit at /bundle in a guest.
        #[arg(long)]
        root_path: Option<PathBuf>,
        /// No linux.resources.devices rules (runc's default denies every device but the
        /// always-allowed ones): on a cgroup v2 only host zagent refuses device rules, since
        /// enforcing them takes an eBPF program it does not load yet.
        #[arg(long)]
        no_device_rules: bool,
    },
}

/// `--env` takes K=V with a non-empty K, as the agent does (runc refuses the rest too).
fn env_entry(s: &str) -> Result<String, String> {
    match s.split_once('=') {
        Some((k, _)) if !k.is_empty() => Ok(s.to_owned()),
        _ => Err(format!("{s:?} is not K=V")),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("zagent-ctl: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(commands::dispatch(&cli.addr, cli.cmd));
    // A blocked read of our stdin must not hold the exit up.
    rt.shutdown_background();
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("zagent-ctl: {e:#}");
            ExitCode::FAILURE
        }
    }
}
