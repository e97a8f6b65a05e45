//! Counts per kind of lifecycle: done, failed, and the first few error messages of each kind
//! (a soak that fails thousands of times the same way need not print them all).

use super::mix::Kind;
use super::rpc::Step;
use std::fmt::Write;

const KEEP_ERRORS: usize = 3;

#[derive(Default, Clone)]
struct PerKind {
    done: u64,
    failed: u64,
    first_errors: Vec<String>,
}

#[derive(Default, Clone)]
pub struct Tally {
    kinds: [PerKind; Kind::ALL.len()],
}

impl Tally {
    pub fn record(&mut self, kind: Kind, id: &str, result: &Step<()>) {
        let k = &mut self.kinds[kind.index()];
        match result {
            Ok(()) => k.done += 1,
            Err(e) => {
                k.failed += 1;
                if k.first_errors.len() < KEEP_ERRORS {
                    k.first_errors.push(format!("{id}: {e}"));
                }
            }
        }
    }

    pub fn done(&self) -> u64 {
        self.kinds.iter().map(|k| k.done).sum()
    }

    pub fn failed(&self) -> u64 {
        self.kinds.iter().map(|k| k.failed).sum()
    }

    /// The table of counts, then the first errors of each kind that had any.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{:<18} {:>8} {:>8}", "kind", "done", "failed");
        for kind in Kind::ALL {
            let k = &self.kinds[kind.index()];
            let _ = writeln!(out, "{:<18} {:>8} {:>8}", kind.name(), k.done, k.failed);
        }
        let _ = writeln!(
            out,
            "{:<18} {:>8} {:>8}",
            "total",
            self.done(),
            self.failed()
        );
        for kind in Kind::ALL {
            let k = &self.kinds[kind.index()];
            for e in &k.first_errors {
                let _ = writeln!(out, "  first errors, {}: {e}", kind.name());
            }
        }
        out
    }
}
