//! The phases that load the agents: throughput (N concurrent clients, each with its own
//! connection, doing full lifecycles for a fixed window) and scaling (containers parked on
//! each agent up to each level; at each level, sequential lifecycles measured, and at the
//! memory level, PSS). Launchers take turns everywhere, so drift hits them alike.

use super::check_cancelled;
use super::ctx::Ctx;
use super::driver::next_id;
use super::helper::Helper;
use super::memory::{self, Baseline};
use super::model::{MemoryResult, ParkingCurve, ScalingResult, ThroughputRun};
use super::progress::{self, Phase};
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// runc or crun in the throughput phase: one helper (`zagent-bench runtime`) per client, all
/// sharing one --root with ids unique per helper, spawned as the concurrency first needs them
/// and kept for the rest of the phase. A failure is recorded and the runtime sits out the rest.
pub struct RuntimeLoad<'a> {
    pub name: String,
    /// Spawns the helper of client `k`; also returns where its stderr goes.
    spawn: Box<dyn Fn(usize) -> Result<(Helper, PathBuf)> + 'a>,
    helpers: Vec<Helper>,
    logs: Vec<PathBuf>,
    failed: bool,
}

impl<'a> RuntimeLoad<'a> {
    pub fn new(name: &str, spawn: impl Fn(usize) -> Result<(Helper, PathBuf)> + 'a) -> Self {
        RuntimeLoad {
            name: name.into(),
            spawn: Box::new(spawn),
            helpers: vec![],
            logs: vec![],
            failed: false,
        }
    }

    /// Ends every helper (each deletes what is left in its --root and exits).
    pub fn finish(self, warnings: &mut Vec<String>) {
        for h in self.helpers {
            if let Err(e) = h.finish(Duration::from_secs(60)) {
                warnings.push(format!("{e:#}"));
            }
        }
    }

    /// What the helpers wrote on stderr (a helper that died says why there), at most the
    /// last 2000 characters of each.
    fn stderr(&self) -> String {
        let mut out = String::new();
        for log in &self.logs {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let text = text.trim();
            if !text.is_empty() {
                let skip = text.chars().count().saturating_sub(2000);
                let tail: String = text.chars().skip(skip).collect();
                out.push_str(&format!(" [{}: {tail}]", log.display()));
            }
        }
        out
    }

    /// `clients` helpers, each running lifecycles back to back for the window; the elapsed
    /// time runs from the requests until the last answer (the last lifecycles started finish).
    fn window(&mut self, ctx: &Ctx, clients: usize, round: usize) -> Result<ThroughputRun> {
        let fresh = self.helpers.len();
        while self.helpers.len() < clients {
            let (helper, log) = (self.spawn)(self.helpers.len())?;
            self.helpers.push(helper);
            self.logs.push(log);
        }
        // New helpers answer an empty batch first, so their own start is not in the window.
        for h in &mut self.helpers[fresh..] {
            h.batch(0, ctx.t0)?;
        }
        let start = Instant::now();
        let mut first_err = None;
        let mut sent = 0;
        for h in &mut self.helpers[..clients] {
            if let Err(e) = h.send_window(ctx.plan.window()) {
                first_err = Some(e);
                break;
            }
            sent += 1;
        }
        let mut samples = Vec::new();
        for h in &mut self.helpers[..sent] {
            match h.receive(ctx.t0) {
                Ok(v) => samples.extend(v),
                Err(e) => {
                    first_err.get_or_insert(e.context(format!("{} helper", h.name)));
                }
            }
        }
        let elapsed_s = start.elapsed().as_secs_f64();
        if let Some(e) = first_err {
            return Err(e);
        }
        samples.sort_by(|a, b| a.at_ms.total_cmp(&b.at_ms));
        let completed = samples.len();
        Ok(ThroughputRun {
            side: self.name.clone(),
            clients,
            round,
            completed,
            elapsed_s,
            per_second: completed as f64 / elapsed_s,
            samples,
        })
    }
}

/// The launchers' windows and (when in the run) runc's and crun's, taking turns with rotating
/// order. A launcher failing stops the bench; a runtime failing is a warning (with what it
/// printed) and the runtime is left out from then on.
pub async fn throughput(
    ctx: &Ctx,
    runtimes: &mut [RuntimeLoad<'_>],
    warnings: &mut Vec<String>,
) -> Result<Vec<ThroughputRun>> {
    let plan = &ctx.plan;
    let n = ctx.agents.len() + runtimes.len();
    let phase = progress::phase("throughput", (plan.rounds * plan.clients.len() * n) as u64);
    let mut runs = Vec::new();
    for round in 0..plan.rounds {
        for (ci, &clients) in plan.clients.iter().enumerate() {
            for k in 0..n {
                check_cancelled()?;
                let i = (round + ci + k) % n;
                let Some(rt) = i.checked_sub(ctx.agents.len()).map(|r| &mut runtimes[r]) else {
                    phase.message(format!("{} with {clients} clients", ctx.agents[i].label));
                    let run = window(ctx, i, clients, round).await.with_context(|| {
                        format!(
                            "{} agent, throughput with {clients} clients",
                            ctx.agents[i].label
                        )
                    })?;
                    runs.push(run);
                    phase.inc(1);
                    continue;
                };
                if !rt.failed {
                    phase.message(format!("{} with {clients} clients", rt.name));
                    match rt.window(ctx, clients, round) {
                        Ok(run) => runs.push(run),
                        Err(e) => {
                            rt.failed = true;
                            warnings.push(format!(
                                "{} failed in the throughput phase with {clients} clients and was left out from then on: {e:#}{}",
                                rt.name,
                                rt.stderr()
                            ));
                        }
                    }
                }
                phase.inc(1);
            }
        }
    }
    phase.finish();
    Ok(runs)
}

/// `clients` clients doing lifecycles until the window closes; the last ones started finish,
/// and the elapsed time runs until they have.
async fn window(ctx: &Ctx, agent: usize, clients: usize, round: usize) -> Result<ThroughputRun> {
    let label = ctx.agents[agent].label.clone();
    let mut conns = Vec::with_capacity(clients);
    for _ in 0..clients {
        conns.push(ctx.agents[agent].connect().await?);
    }
    let start = Instant::now();
    let deadline = start + ctx.plan.window();
    let mut set = tokio::task::JoinSet::new();
    for client in conns {
        let (spec, label, t0) = (ctx.spec.clone(), label.clone(), ctx.t0);
        set.spawn(async move {
            let mut samples = Vec::new();
            while Instant::now() < deadline {
                samples.push(client.lifecycle(&next_id(&label), &spec, t0).await?);
            }
            anyhow::Ok(samples)
        });
    }
    let mut samples = Vec::new();
    let mut first_err = None;
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok(Ok(v)) => samples.extend(v),
            Ok(Err(e)) => {
                first_err.get_or_insert(e);
            }
            Err(e) => {
                first_err.get_or_insert(e.into());
            }
        }
    }
    let elapsed_s = start.elapsed().as_secs_f64();
    if let Some(e) = first_err {
        return Err(e);
    }
    samples.sort_by(|a, b| a.at_ms.total_cmp(&b.at_ms));
    let completed = samples.len();
    Ok(ThroughputRun {
        side: label,
        clients,
        round,
        completed,
        elapsed_s,
        per_second: completed as f64 / elapsed_s,
        samples,
    })
}

pub struct Scaling {
    pub scaling: Vec<ScalingResult>,
    pub memory: Vec<MemoryResult>,
    pub parking: Vec<ParkingCurve>,
}

pub async fn scaling(
    ctx: &Ctx,
    mut floor: Option<&mut Helper>,
    warnings: &mut Vec<String>,
) -> Result<Scaling> {
    let plan = &ctx.plan;
    let mut levels = plan.parked_levels.clone();
    levels.push(plan.memory_parked);
    levels.sort_unstable();
    levels.dedup();
    let n = ctx.agents.len();
    let top = levels.last().copied().unwrap_or(0);
    let units = 2 * top * n + plan.parked_levels.len() * plan.scaling_samples * n;
    let phase = progress::phase("scaling", units as u64);
    let baselines: Vec<Option<Baseline>> = ctx
        .agents
        .iter()
        .map(|a| a.pid.map(memory::baseline).transpose())
        .collect::<Result<_>>()?;
    let mut out = Scaling {
        scaling: vec![],
        memory: vec![],
        parking: ctx
            .agents
            .iter()
            .map(|a| ParkingCurve {
                side: a.label.clone(),
                ..Default::default()
            })
            .collect(),
    };
    let mut parked: Vec<Vec<String>> = vec![Vec::new(); n];
    let result = async {
        for &level in &levels {
            park_to(ctx, &mut parked, &mut out.parking, level, &phase).await?;
            if level == plan.memory_parked {
                out.memory = measure_memory(ctx, &baselines, &parked, warnings).await?;
            }
            if plan.parked_levels.contains(&level) {
                out.scaling.extend(
                    measure_level(ctx, level, floor.as_deref_mut(), warnings, &phase).await?,
                );
            }
            if level == top && level > plan.memory_parked {
                for m in &mut out.memory {
                    m.agent_at_max_parked = Some((level, memory::proc_mem(m.agent_before.pid)?));
                }
            }
        }
        anyhow::Ok(())
    }
    .await;
    let removed = unpark(ctx, &mut parked, &phase).await;
    result?;
    removed?;
    for m in &mut out.memory {
        m.agent_after_remove = memory::proc_mem(m.agent_before.pid).ok();
    }
    phase.finish();
    Ok(out)
}

/// Parks containers on every agent until each holds `level`, in turns of 50, recording each
/// create's latency against the count already parked.
async fn park_to(
    ctx: &Ctx,
    parked: &mut [Vec<String>],
    curves: &mut [ParkingCurve],
    level: usize,
    phase: &Phase,
) -> Result<()> {
    phase.message(format!("parking {level} per agent"));
    while parked.iter().any(|p| p.len() < level) {
        check_cancelled()?;
        for (i, agent) in ctx.agents.iter().enumerate() {
            for _ in 0..level.saturating_sub(parked[i].len()).min(50) {
                let id = next_id(&format!("{}-parked", agent.label));
                let t = Instant::now();
                ctx.clients[i]
                    .park(&id, &ctx.spec)
                    .await
                    .with_context(|| format!("{} agent, parking", agent.label))?;
                curves[i].create_ns.push(t.elapsed().as_nanos() as u64);
                curves[i].parked_before.push(parked[i].len());
                parked[i].push(id);
                phase.inc(1);
            }
        }
    }
    Ok(())
}

/// Sequential lifecycles with `level` parked on every agent, agents (and the floor, whose
/// failure is only a warning) taking turns in batches.
async fn measure_level(
    ctx: &Ctx,
    level: usize,
    mut floor: Option<&mut Helper>,
    warnings: &mut Vec<String>,
    phase: &Phase,
) -> Result<Vec<ScalingResult>> {
    let plan = &ctx.plan;
    let n = ctx.agents.len();
    let mut results: Vec<ScalingResult> = ctx
        .agents
        .iter()
        .map(|a| ScalingResult {
            side: a.label.clone(),
            parked: level,
            samples: vec![],
        })
        .collect();
    let mut floor_result = ScalingResult {
        side: "floor".into(),
        parked: level,
        samples: vec![],
    };
    phase.message(format!("lifecycles with {level} parked"));
    for r in 0..plan.scaling_samples.div_ceil(plan.batch) {
        check_cancelled()?;
        let count = plan.batch.min(plan.scaling_samples - r * plan.batch);
        for k in 0..n {
            let i = (r + k) % n;
            for _ in 0..count {
                let id = next_id(&ctx.agents[i].label);
                let s = ctx.clients[i]
                    .lifecycle(&id, &ctx.spec, ctx.t0)
                    .await
                    .with_context(|| {
                        format!(
                            "{} agent, lifecycle with {level} parked",
                            ctx.agents[i].label
                        )
                    })?;
                results[i].samples.push(s);
                phase.inc(1);
            }
        }
        if let Some(helper) = floor.as_deref_mut() {
            match helper.batch(count, ctx.t0) {
                Ok(v) => floor_result.samples.extend(v),
                Err(e) => {
                    warnings.push(format!("floor with {level} parked: {e:#}"));
                    floor = None;
                }
            }
        }
    }
    if !floor_result.samples.is_empty() {
        results.push(floor_result);
    }
    Ok(results)
}

async fn measure_memory(
    ctx: &Ctx,
    baselines: &[Option<Baseline>],
    parked: &[Vec<String>],
    warnings: &mut Vec<String>,
) -> Result<Vec<MemoryResult>> {
    let mut out = Vec::new();
    for (i, agent) in ctx.agents.iter().enumerate() {
        let (Some(pid), Some(base)) = (agent.pid, baselines[i].as_ref()) else {
            warnings.push(format!(
                "{}: agent pid unknown, memory not measured",
                agent.label
            ));
            continue;
        };
        let listed = ctx.clients[i]
            .list()
            .await
            .with_context(|| format!("{} agent", agent.label))?;
        let pids: Vec<i32> = listed
            .iter()
            .filter(|(id, state, _)| parked[i].contains(id) && state == "created")
            .map(|(_, _, pid)| *pid)
            .collect();
        if pids.len() != parked[i].len() {
            anyhow::bail!(
                "{} agent lists {} of our {} parked containers as created",
                agent.label,
                pids.len(),
                parked[i].len()
            );
        }
        let m = memory::measure(&agent.label, pid, base, &pids)?;
        if !m.others.is_empty() {
            let list: Vec<String> = m
                .others
                .iter()
                .map(|o| format!("{} ({})", o.pid, o.comm))
                .collect();
            warnings.push(format!(
                "{}: processes besides the parked containers remain: {}",
                agent.label,
                list.join(", ")
            ));
        }
        out.push(m);
    }
    Ok(out)
}

/// Removes every parked container, going on past errors (the agents' shutdown would remove
/// the rest); returns the first error.
async fn unpark(ctx: &Ctx, parked: &mut [Vec<String>], phase: &Phase) -> Result<()> {
    phase.message("removing parked containers".into());
    let mut first_err = None;
    for (i, ids) in parked.iter_mut().enumerate() {
        for id in ids.drain(..) {
            if let Err(e) = ctx.clients[i].remove(&id).await {
                first_err.get_or_insert(e.context(format!(
                    "{} agent, removing parked containers",
                    ctx.agents[i].label
                )));
            }
            phase.inc(1);
        }
    }
    first_err.map_or(Ok(()), Err)
}
