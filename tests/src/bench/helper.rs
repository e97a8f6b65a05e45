//! The line protocol between the bench and its single-threaded helper processes (the floor,
//! and runc/crun in their private mount namespace): the bench writes a count on the helper's
//! stdin, the helper runs that many iterations and answers with one JSON line of samples (or
//! an error). A long-lived helper lets the bench interleave small batches of every side
//! without paying a process start per batch; stdin EOF tells the helper to clean up and exit.
//! `window MS` instead of a count: iterations back to back until MS milliseconds have passed
//! (the last one started finishes), for the throughput phase.

use super::clock::T0;
use super::model::StepSample;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reply {
    Samples(Vec<StepSample>),
    Failed(String),
}

/// The helper side: answers each count read from stdin with `run(count)`, and each
/// `window MS` with `run(1)` repeated until MS ms have passed, until EOF.
pub fn serve(mut run: impl FnMut(usize) -> Result<Vec<StepSample>>) -> Result<()> {
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let line = line?;
        let result = if let Some(ms) = line.trim().strip_prefix("window ") {
            let ms: u64 = ms
                .trim()
                .parse()
                .with_context(|| format!("bad window {line:?}"))?;
            let deadline = Instant::now() + Duration::from_millis(ms);
            let mut samples = Vec::new();
            let mut failed = None;
            while failed.is_none() && Instant::now() < deadline {
                match run(1) {
                    Ok(v) => samples.extend(v),
                    Err(e) => failed = Some(e),
                }
            }
            failed.map_or(Ok(samples), Err)
        } else {
            let n: usize = line
                .trim()
                .parse()
                .with_context(|| format!("bad count {line:?}"))?;
            run(n)
        };
        let reply = match result {
            Ok(samples) => Reply::Samples(samples),
            Err(e) => Reply::Failed(format!("{e:#}")),
        };
        serde_json::to_writer(&mut stdout, &reply)?;
        stdout.write_all(b"\n")?;
        stdout.flush()?;
    }
    Ok(())
}

/// The bench side of one helper process.
pub struct Helper {
    pub name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    done: bool,
}

impl Helper {
    /// Spawns `cmd` with piped stdin/stdout (stderr as the caller set it).
    pub fn spawn(name: &str, mut cmd: Command) -> Result<Helper> {
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting the {name} helper"))?;
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().context("helper stdout")?);
        Ok(Helper {
            name: name.into(),
            child,
            stdin,
            stdout,
            done: false,
        })
    }

    /// Runs `n` iterations in the helper; each sample comes stamped with when it began (on
    /// CLOCK_MONOTONIC), placed on the run's time line from `t0`.
    pub fn batch(&mut self, n: usize, t0: T0) -> Result<Vec<StepSample>> {
        self.send(&n.to_string())?;
        self.receive(t0)
    }

    /// Asks for iterations back to back for `window` without waiting for the answer (several
    /// helpers can then run at once); `receive` collects it.
    pub fn send_window(&mut self, window: Duration) -> Result<()> {
        self.send(&format!("window {}", window.as_millis()))
    }

    fn send(&mut self, request: &str) -> Result<()> {
        let stdin = self.stdin.as_mut().context("helper already finished")?;
        writeln!(stdin, "{request}")
            .and_then(|()| stdin.flush())
            .with_context(|| format!("{} helper gone", self.name))
    }

    /// Reads the answer to the last request; every sample must carry the time it began,
    /// which becomes its `at_ms` on the run's time line from `t0`.
    pub fn receive(&mut self, t0: T0) -> Result<Vec<StepSample>> {
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            bail!("{} helper exited without an answer", self.name);
        }
        match serde_json::from_str(&line)
            .with_context(|| format!("{} helper said {line:?}", self.name))?
        {
            Reply::Samples(mut samples) => {
                for s in &mut samples {
                    let began = s.mono_ns.take().with_context(|| {
                        format!("{} helper sent a sample without its time", self.name)
                    })?;
                    s.at_ms = t0.ms_at(began);
                }
                Ok(samples)
            }
            Reply::Failed(e) => bail!("{e}"),
        }
    }

    /// Closes stdin (the helper cleans up and exits) and waits up to `grace`, then kills.
    pub fn finish(mut self, grace: Duration) -> Result<()> {
        self.shutdown(grace)
    }

    fn shutdown(&mut self, grace: Duration) -> Result<()> {
        if self.done {
            return Ok(());
        }
        self.done = true;
        drop(self.stdin.take());
        let deadline = Instant::now() + grace;
        loop {
            match self.child.try_wait()? {
                Some(status) if status.success() => return Ok(()),
                Some(status) => bail!("{} helper exited with {status}", self.name),
                None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
                None => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    bail!("{} helper did not exit within {grace:?}: killed", self.name);
                }
            }
        }
    }
}

impl Drop for Helper {
    /// On error paths: the helper still gets the chance to remove what it made.
    fn drop(&mut self) {
        if let Err(e) = self.shutdown(Duration::from_secs(30)) {
            eprintln!("zagent-bench: {e:#}");
        }
    }
}
