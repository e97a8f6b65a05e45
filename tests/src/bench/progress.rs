//! Progress while the bench runs: one indicatif bar per phase on a terminal; on anything else
//! (CI logs) one line when a phase starts and one when it ends, so logs stay readable.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::Instant;

pub struct Phase {
    bar: ProgressBar,
    name: String,
    started: Instant,
    tty: bool,
}

/// Starts a phase of `len` units (lifecycles, windows...).
pub fn phase(name: &str, len: u64) -> Phase {
    let tty = std::io::stderr().is_terminal();
    let bar = if tty {
        let bar = ProgressBar::new(len);
        let style =
            ProgressStyle::with_template("{prefix:>10} [{bar:40}] {pos}/{len} {elapsed:>4} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(name.to_string());
        bar
    } else {
        eprintln!("zagent-bench: {name} ({len} units)...");
        ProgressBar::hidden()
    };
    Phase {
        bar,
        name: name.into(),
        started: Instant::now(),
        tty,
    }
}

impl Phase {
    pub fn inc(&self, n: u64) {
        self.bar.inc(n);
    }

    pub fn message(&self, msg: String) {
        self.bar.set_message(msg);
    }

    pub fn finish(self) {
        let secs = self.started.elapsed().as_secs_f64();
        if self.tty {
            self.bar.set_message(format!("done in {secs:.1} s"));
            self.bar.finish();
        } else {
            eprintln!("zagent-bench: {} done in {secs:.1} s", self.name);
        }
    }
}
