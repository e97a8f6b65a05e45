//! `zagent-soak`: the soak test of one zagent agent (see `tests::soak`). Exit status 0 when
//! every lifecycle passed and nothing leaked, 1 otherwise, 130 when interrupted.

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use tests::soak;

#[derive(Parser)]
#[command(name = "zagent-soak")]
#[command(
    about = "Run many mixed container lifecycles against one zagent and check that nothing leaks"
)]
struct Cli {
    /// Lifecycles in the measured phase (after the warm-up).
    #[arg(default_value_t = 10_000)]
    iterations: u64,
    /// Concurrent clients, each with its own ttrpc connection.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Stop starting new lifecycles after this long (the run is then reported as incomplete).
    #[arg(long, default_value_t = 1800)]
    max_seconds: u64,
    /// Seed of the clients' generators: the same seed replays the same mix per client.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// zygote (without the warm pool), pool (zagent's default) or reexec.
    #[arg(long, default_value = "pool", value_parser = ["zygote", "pool", "reexec"])]
    launcher: String,
    /// Lifecycles of each kind per client before the baseline is taken.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// The agent's RSS may grow by this much before it counts as a leak.
    #[arg(long, default_value_t = 64)]
    rss_bound_mib: u64,
    /// The zagent binary (default: next to zagent-soak).
    #[arg(long)]
    zagent: Option<PathBuf>,
    /// The zagent-ctl binary, used to make the bundle (default: next to zagent-soak).
    #[arg(long)]
    zagent_ctl: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let opts = soak::Options {
        iterations: cli.iterations,
        clients: cli.clients,
        max_seconds: cli.max_seconds,
        seed: cli.seed,
        launcher: cli.launcher,
        warmup: cli.warmup,
        rss_bound_mib: cli.rss_bound_mib,
        zagent: cli.zagent,
        zagent_ctl: cli.zagent_ctl,
    };
    match soak::run(opts) {
        Ok(true) => {
            println!("zagent-soak: PASS");
            ExitCode::SUCCESS
        }
        Ok(false) => {
            println!("zagent-soak: FAIL");
            ExitCode::FAILURE
        }
        Err(e) if soak::is_interrupted(&e) => ExitCode::from(130),
        Err(e) => {
            eprintln!("zagent-soak: {e:#}");
            ExitCode::FAILURE
        }
    }
}
