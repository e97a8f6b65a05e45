//! The agent's command line, parsed once and passed by reference (no globals).

use clap::{Parser, ValueEnum};
use std::path::PathBuf;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LauncherKind {
    /// Launch through the pre-started single-threaded fork server.
    Zygote,
    /// Launch by re-exec'ing this binary per container, as the Kata agent does (baseline).
    Reexec,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// zagent: a container guest agent serving the Kata agent protocol over ttrpc.
#[derive(Parser, Debug, Clone)]
#[command(name = "zagent", version)]
pub struct AgentConfig {
    /// Where to listen: unix:///path or vsock://CID:PORT (vsock://-1:1024 is Kata's default).
    #[arg(long, default_value = "unix:///run/zagent/zagent.sock")]
    pub listen: String,
    /// How container processes are made: by the zygote (a fork server started once), or by
    /// re-exec'ing this binary for each one, as Kata's agent does (a baseline to compare).
    #[arg(long, value_enum, default_value_t = LauncherKind::Zygote)]
    pub launcher: LauncherKind,
    /// Per-container state (exec.fifo, the launch config) lives in DIR/<id>/.
    #[arg(long, default_value = "/run/zagent")]
    pub state_dir: PathBuf,
    /// The log on stderr: text lines, or one JSON object per line. ZAGENT_LOG sets the level
    /// (a tracing filter, default info).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Kata storages (CreateSandbox, CreateContainer) may only be mounted below DIR.
    #[arg(long, default_value = "/run/kata-containers")]
    pub storage_root: PathBuf,
    /// A tracing filter (`debug`, `info,ttrpc=warn`...); overrides ZAGENT_LOG.
    #[arg(long)]
    pub log_level: Option<String>,
    /// Read Kata's agent options (agent.server_addr, agent.log; zagent's agent.launcher and
    /// agent.warm_pool) from this file as the kernel command line; they override the flags.
    /// `zagent` as a guest's PID 1 passes /proc/cmdline.
    #[arg(long, value_name = "PATH")]
    pub kernel_cmdline: Option<PathBuf>,
    /// Sets of fresh network/IPC/UTS namespaces the zygote keeps ready, so that a create does
    /// not make them on its critical path (0: make them at clone time).
    #[arg(long, default_value_t = 4)]
    pub warm_pool: usize,
    /// Test hook: exec'd processes pause this long before execve.
    #[arg(long, default_value_t = 0, hide = true)]
    pub test_exec_pause_ms: u32,
    /// Test hook: the zygote pauses this long between clone and its reply.
    #[arg(long, default_value_t = 0, hide = true)]
    pub test_zygote_pause_ms: u32,
}
