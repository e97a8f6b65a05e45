//! The lifecycles the soak mixes, the deterministic generator that picks them (one per
//! client, seeded, so a run can be replayed), and the specs they run. Each scenario checks what
//! a shim would rely on (output, exit status, error code) and, when it fails after its create,
//! still removes its container so one failure does not show up again as a leak.

use super::rpc::{Rpc, Step, StepError};
use anyhow::{Context, Result};

/// splitmix64: tiny, good enough to mix kinds, and the same sequence on every machine.
pub struct Prng(u64);

impl Prng {
    pub fn new(seed: u64) -> Prng {
        Prng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform enough in 0..n for the small n used here.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `/bin/true`: create, start, wait (0), remove.
    Plain,
    /// `sh -c 'cat; echo done'` fed through WriteStdin and CloseStdin, its stdout checked.
    Stdin,
    /// `sleep 1000` with 1-3 `echo` execs (some with a terminal), then SIGKILL, 137, remove.
    Exec,
    /// Created, never started, removed.
    Parked,
    /// A create with empty args: INVALID_ARGUMENT, nothing launched.
    BadInput,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Plain,
        Kind::Stdin,
        Kind::Exec,
        Kind::Parked,
        Kind::BadInput,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Plain => "plain /bin/true",
            Kind::Stdin => "stdin cat",
            Kind::Exec => "sleep + execs",
            Kind::Parked => "parked, removed",
            Kind::BadInput => "bad input",
        }
    }

    pub fn index(self) -> usize {
        Kind::ALL.iter().position(|k| *k == self).unwrap_or(0)
    }

    /// The mix: 35% plain, 20% stdin, 20% exec, 20% parked, 5% bad input.
    pub fn pick(rng: &mut Prng) -> Kind {
        match rng.below(100) {
            0..=34 => Kind::Plain,
            35..=54 => Kind::Stdin,
            55..=74 => Kind::Exec,
            75..=94 => Kind::Parked,
            _ => Kind::BadInput,
        }
    }
}

/// The protobuf specs and the exec process, converted once from the bundle's config.json.
pub struct Specs {
    plain: wire::oci::Spec,
    cat: wire::oci::Spec,
    sleep: wire::oci::Spec,
    bad: wire::oci::Spec,
    exec: oci_spec::runtime::Process,
}

impl Specs {
    /// `base` is the bundle's spec with an absolute root path.
    pub fn new(base: &oci_spec::runtime::Spec) -> Result<Specs> {
        let process = base
            .process()
            .clone()
            .context("config.json has no process")?;
        let with_args = |args: &[&str]| {
            let mut spec = base.clone();
            let mut p = process.clone();
            p.set_args(Some(args.iter().map(|a| a.to_string()).collect()));
            p.set_terminal(Some(false));
            spec.set_process(Some(p));
            wire::oci::spec_to_grpc(&spec)
        };
        Ok(Specs {
            plain: with_args(&["/bin/true"]),
            cat: with_args(&["sh", "-c", "cat; echo done"]),
            sleep: with_args(&["sleep", "1000"]),
            bad: with_args(&[]),
            exec: process,
        })
    }

    fn exec_process(&self, args: &[&str], terminal: bool) -> wire::oci::Process {
        let mut p = self.exec.clone();
        p.set_args(Some(args.iter().map(|a| a.to_string()).collect()));
        p.set_terminal(Some(terminal));
        wire::oci::process_to_grpc(&p)
    }
}

/// Runs one lifecycle of `kind` as container `id`.
pub async fn run(kind: Kind, rpc: &Rpc, specs: &Specs, id: &str, rng: &mut Prng) -> Step<()> {
    match kind {
        Kind::Plain => plain(rpc, specs, id).await,
        Kind::Stdin => stdin(rpc, specs, id, rng).await,
        Kind::Exec => exec(rpc, specs, id, rng).await,
        Kind::Parked => {
            rpc.create(id, &specs.sleep).await?;
            rpc.remove(id).await
        }
        Kind::BadInput => bad_input(rpc, specs, id).await,
    }
}

/// Runs `body` on the created container `id`; on its failure the container is still removed
/// (best effort: a failing remove shows up in the final leak check).
async fn created<F>(rpc: &Rpc, id: &str, body: F) -> Step<()>
where
    F: std::future::Future<Output = Step<()>>,
{
    match body.await {
        Ok(()) => rpc.remove(id).await,
        Err(e) => {
            let _ = rpc.remove(id).await;
            Err(e)
        }
    }
}

fn expect_status(what: &str, got: i32, want: i32) -> Step<()> {
    if got == want {
        Ok(())
    } else {
        Err(StepError::Wrong(format!(
            "{what} exited with {got}, expected {want}"
        )))
    }
}

async fn plain(rpc: &Rpc, specs: &Specs, id: &str) -> Step<()> {
    rpc.create(id, &specs.plain).await?;
    created(rpc, id, async {
        rpc.start(id).await?;
        expect_status("/bin/true", rpc.wait(id, "").await?, 0)
    })
    .await
}

async fn stdin(rpc: &Rpc, specs: &Specs, id: &str, rng: &mut Prng) -> Step<()> {
    // 1-4 writes of a line that names the container and a random value, so output from
    // another container or an earlier run cannot pass the check.
    let chunks: Vec<String> = (0..1 + rng.below(4))
        .map(|k| format!("{id} chunk {k} {:016x}\n", rng.next_u64()))
        .collect();
    rpc.create(id, &specs.cat).await?;
    created(rpc, id, async {
        rpc.start(id).await?;
        for c in &chunks {
            rpc.write_all(id, "", c.as_bytes()).await?;
        }
        rpc.close_stdin(id, "").await?;
        let out = rpc.read_stdout(id, "").await?;
        let want = format!("{}done\n", chunks.concat());
        if out != want.as_bytes() {
            return Err(StepError::Wrong(format!(
                "cat echoed {:?}, expected {want:?}",
                String::from_utf8_lossy(&out)
            )));
        }
        expect_status("sh -c 'cat; echo done'", rpc.wait(id, "").await?, 0)
    })
    .await
}

async fn exec(rpc: &Rpc, specs: &Specs, id: &str, rng: &mut Prng) -> Step<()> {
    let execs: Vec<(String, bool)> = (0..1 + rng.below(3))
        .map(|_| (format!("exec-{}", rng.below(1_000_000)), rng.below(4) == 0))
        .collect();
    rpc.create(id, &specs.sleep).await?;
    created(rpc, id, async {
        rpc.start(id).await?;
        for (n, (word, terminal)) in execs.iter().enumerate() {
            let exec_id = format!("e{n}");
            let p = specs.exec_process(&["echo", word], *terminal);
            rpc.exec(id, &exec_id, &p).await?;
            let out = rpc.read_stdout(id, &exec_id).await?;
            // A terminal turns "\n" into "\r\n" (onlcr).
            let want = if *terminal {
                format!("{word}\r\n")
            } else {
                format!("{word}\n")
            };
            if out != want.as_bytes() {
                return Err(StepError::Wrong(format!(
                    "exec {exec_id} (terminal: {terminal}) printed {:?}, expected {want:?}",
                    String::from_utf8_lossy(&out)
                )));
            }
            expect_status("echo", rpc.wait(id, &exec_id).await?, 0)?;
        }
        rpc.signal(id, "", libc::SIGKILL as u32).await?;
        expect_status("sleep 1000 after SIGKILL", rpc.wait(id, "").await?, 137)
    })
    .await
}

async fn bad_input(rpc: &Rpc, specs: &Specs, id: &str) -> Step<()> {
    match rpc.create(id, &specs.bad).await {
        Err(StepError::Rpc {
            code: ttrpc::Code::INVALID_ARGUMENT,
            ..
        }) => Ok(()),
        Err(e) => Err(StepError::Wrong(format!(
            "empty args: expected INVALID_ARGUMENT, got {e}"
        ))),
        Ok(()) => {
            let _ = rpc.remove(id).await;
            Err(StepError::Wrong("empty args: create succeeded".into()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generator_replays_and_mixes_every_kind() {
        let draw = |seed| {
            let mut r = Prng::new(seed);
            (0..2000).map(|_| Kind::pick(&mut r)).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
        let seq = draw(7);
        for k in Kind::ALL {
            let n = seq.iter().filter(|x| **x == k).count();
            assert!(n > 40, "{k:?} drawn only {n} times in 2000");
        }
    }
}
