//! `zagent-bench`: the benchmark of zagent's launchers against each other, the floor, runc and
//! crun (see README "Benchmark"). Without a subcommand it runs the bench; `floor` and
//! `runtime` are the single-threaded helpers it spawns (usable by hand too).

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use tests::bench::{self, floor, runtimes};

#[derive(Parser)]
#[command(name = "zagent-bench", args_conflicts_with_subcommands = true)]
#[command(
    about = "Benchmark zagent's launchers (zygote, zygote with its warm pool, reexec) against the floor, runc and crun"
)]
struct Cli {
    #[command(subcommand)]
    helper: Option<Helper>,
    /// Short run for CI (under a minute): fewer samples, 1 and 8 clients, 20 parked, no runc/crun.
    #[arg(long)]
    quick: bool,
    /// Launchers to start agents for: zygote (without the warm pool), pool (the zygote with its
    /// warm pool of 4 namespace sets, zagent's default), reexec.
    #[arg(long, value_delimiter = ',', default_value = "zygote,pool,reexec")]
    launchers: Vec<String>,
    /// Use a running agent instead of starting one (repeatable), e.g. zygote=unix:///run/zagent/zagent.sock
    /// or guest=hvsock:///tmp/g/vm.vsock:1024 (a guest from `scripts/guest.sh up`).
    #[arg(long = "addr", value_name = "NAME=ADDR")]
    addrs: Vec<String>,
    /// Also run runc/crun (when installed) in --quick mode.
    #[arg(long, conflicts_with = "no_runtimes")]
    runtimes: bool,
    /// Never run runc/crun.
    #[arg(long)]
    no_runtimes: bool,
    /// Where the JSON, text and SVG results go.
    #[arg(long, default_value = "bench-out")]
    out: PathBuf,
    /// The zagent binary (default: next to zagent-bench).
    #[arg(long)]
    zagent: Option<PathBuf>,
    /// The zagent-ctl binary, used to make the bundle (default: next to zagent-bench).
    #[arg(long)]
    zagent_ctl: Option<PathBuf>,
    /// Measured sequential lifecycles per side (default: 500, or 30 with --quick).
    #[arg(long)]
    samples: Option<usize>,
    /// Density in a guest VM instead (repeatable sizes, MiB): for each of --launchers, boot a
    /// guest of that size (scripts/guest.sh) and park containers until a create fails or the
    /// guest's MemAvailable runs low; the table goes to OUT/guest-density.md.
    #[arg(long, value_name = "MIB", value_delimiter = ',')]
    guest: Vec<u32>,
}

#[derive(Subcommand)]
enum Helper {
    /// The floor helper: clone + pivot_root + exec /bin/true, timed; counts on stdin unless --iterations.
    Floor {
        #[arg(long)]
        rootfs: PathBuf,
        /// Cgroup to create in every hierarchy (must start with "zagent").
        #[arg(long, default_value = "zagent-bench-floor")]
        cgroup: String,
        #[arg(long)]
        iterations: Option<usize>,
    },
    /// The runc/crun helper: lifecycles in a private mount namespace with plain cgroup v1.
    Runtime {
        #[arg(long)]
        runtime: PathBuf,
        #[arg(long)]
        bundle: PathBuf,
        #[arg(long)]
        root: PathBuf,
        #[arg(long)]
        prefix: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.helper {
        Some(Helper::Floor {
            rootfs,
            cgroup,
            iterations,
        }) => floor::main(&floor::FloorArgs {
            rootfs,
            cgroup,
            iterations,
        }),
        Some(Helper::Runtime {
            runtime,
            bundle,
            root,
            prefix,
        }) => runtimes::main(&runtimes::RuntimeArgs {
            runtime,
            bundle,
            root,
            prefix,
        }),
        None if !cli.guest.is_empty() => guest_density(&cli),
        None => bench::run(bench::Options {
            quick: cli.quick,
            launchers: cli.launchers,
            addrs: cli.addrs,
            runtimes: if cli.runtimes {
                Some(true)
            } else if cli.no_runtimes {
                Some(false)
            } else {
                None
            },
            out: cli.out,
            zagent: cli.zagent,
            zagent_ctl: cli.zagent_ctl,
            samples: cli.samples,
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if bench::is_interrupted(&e) => ExitCode::from(130),
        Err(e) => {
            eprintln!("zagent-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `--guest`: one guest per (size, launcher), one after another.
fn guest_density(cli: &Cli) -> anyhow::Result<()> {
    use anyhow::Context;
    let zagent = match &cli.zagent {
        Some(z) => z.clone(),
        None => std::env::current_exe()?.with_file_name("zagent"),
    };
    let bins = zagent.parent().context("the zagent binary's dir")?;
    let rt = tokio::runtime::Runtime::new()?;
    let mut rows = Vec::new();
    for &mem in &cli.guest {
        for launcher in &cli.launchers {
            eprintln!("zagent-bench: {mem} MiB guest, {launcher}");
            let row = rt.block_on(bench::guest::measure(bins, mem, launcher))?;
            eprintln!("  {} parked, stopped by {}", row.parked, row.stop);
            rows.push(row);
        }
    }
    let table = bench::guest::table(&rows);
    print!("{table}");
    std::fs::create_dir_all(&cli.out)?;
    std::fs::write(cli.out.join("guest-density.md"), table)?;
    Ok(())
}
