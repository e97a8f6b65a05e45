//! Sequential latency: every side (each agent, the floor, runc, crun) first runs its warm-up
//! lifecycles (kept in the JSON, excluded from every figure), then the sides take turns in
//! small batches, the starting side rotating each round, so that drift (thermal, page cache,
//! other load) hits every side alike. A zagent failure stops the bench; a runtime or the
//! floor failing is recorded on that side, which then sits out the rest of the phase.

use super::check_cancelled;
use super::ctx::Ctx;
use super::driver::{next_id, Client};
use super::helper::Helper;
use super::model::{SideKind, SideLatency, StepSample};
use super::progress::{self, Phase};
use anyhow::Result;
use std::time::Duration;

pub enum Driver {
    Agent(Client),
    Helper(Helper),
}

pub struct Side {
    pub lat: SideLatency,
    pub driver: Driver,
}

impl Side {
    pub fn new(name: &str, kind: SideKind, driver: Driver) -> Side {
        let lat = SideLatency {
            side: name.into(),
            kind,
            warmup: vec![],
            samples: vec![],
            failed: None,
        };
        Side { lat, driver }
    }

    async fn batch(&mut self, n: usize, ctx: &Ctx) -> Result<Vec<StepSample>> {
        match &mut self.driver {
            Driver::Agent(client) => {
                let mut out = Vec::with_capacity(n);
                for _ in 0..n {
                    out.push(
                        client
                            .lifecycle(&next_id(&self.lat.side), &ctx.spec, ctx.t0)
                            .await?,
                    );
                }
                Ok(out)
            }
            Driver::Helper(helper) => helper.batch(n, ctx.t0),
        }
    }

    /// Ends the side: a helper cleans up and exits. Returns its latency record.
    pub fn finish(self, warnings: &mut Vec<String>) -> SideLatency {
        if let Driver::Helper(h) = self.driver {
            if let Err(e) = h.finish(Duration::from_secs(60)) {
                warnings.push(format!("{e:#}"));
            }
        }
        self.lat
    }
}

pub async fn run(ctx: &Ctx, sides: &mut [Side], warnings: &mut Vec<String>) -> Result<()> {
    let plan = &ctx.plan;
    let phase = progress::phase(
        "latency",
        (sides.len() * (plan.warmup + plan.samples)) as u64,
    );
    for side in sides.iter_mut() {
        phase.message(format!("warm-up {}", side.lat.side));
        step(ctx, side, plan.warmup, true, warnings, &phase).await?;
    }
    let rounds = plan.samples.div_ceil(plan.batch);
    for r in 0..rounds {
        check_cancelled()?;
        let n = plan.batch.min(plan.samples - r * plan.batch);
        for k in 0..sides.len() {
            let i = (r + k) % sides.len();
            step(ctx, &mut sides[i], n, false, warnings, &phase).await?;
        }
        phase.message(format!("round {}/{rounds}", r + 1));
    }
    phase.finish();
    Ok(())
}

async fn step(
    ctx: &Ctx,
    side: &mut Side,
    n: usize,
    warm: bool,
    warnings: &mut Vec<String>,
    phase: &Phase,
) -> Result<()> {
    if side.lat.failed.is_none() {
        match side.batch(n, ctx).await {
            Ok(v) if warm => side.lat.warmup.extend(v),
            Ok(v) => side.lat.samples.extend(v),
            Err(e) if side.lat.kind == SideKind::Launcher => {
                return Err(e.context(format!("{} agent, latency phase", side.lat.side)));
            }
            Err(e) => {
                let msg = format!("{e:#}");
                warnings.push(format!(
                    "{} failed and was left out from then on: {msg}",
                    side.lat.side
                ));
                side.lat.failed = Some(msg);
            }
        }
    }
    phase.inc(n as u64);
    Ok(())
}
