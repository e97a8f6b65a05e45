//! `zagent-ctl`: a client of the agent with runc's and Kata agent-ctl's verbs. Errors print one
//! line naming the RPC and the ttrpc code, and the exit status is non-zero.

mod attach;
mod bundle;
mod client;
mod commands;
mod config;
mod spec;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "zagent-ctl", version, about = "Talk to a zagent over ttrpc")]
struct Cli {
    /// The agent's address: unix:///PATH, vsock://CID:PORT, or a socket path.
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
        #[arg(long)]
        id: String,
        #[arg(long)]
        bundle: PathBuf,
    },
    /// Start a created container.
    Start { id: String },
    /// Send a signal (name like TERM/SIGTERM, or a number; default TERM) to the container.
    Kill { id: String, signal: Option<String> },
    /// Wait for the container to exit; print and exit with its status.
    Wait { id: String },
    /// Remove a container; a running one only with --force (which kills it).
    Rm {
        id: String,
        #[arg(long)]
        force: bool,
    },
    /// List containers.
    Ps,
    /// Create, start, stream the output, wait, remove; exit with the container's status.
    Run {
        #[arg(long)]
        bundle: PathBuf,
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
        id: String,
        #[arg(long)]
        exec_id: Option<String>,
        #[arg(long, short = 't')]
        tty: bool,
        /// UID[:GID]
        #[arg(long, short = 'u')]
        user: Option<String>,
        /// K=V, repeatable.
        #[arg(long, short = 'e')]
        env: Vec<String>,
        #[arg(long)]
        cwd: Option<String>,
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
    /// Write a default config.json (like `runc spec`, non-terminal).
    Spec {
        #[arg(long, default_value = ".")]
        bundle: PathBuf,
    },
    /// Make a busybox bundle in DIR from the host's static busybox.
    Bundle { dir: PathBuf },
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
