//! The joining paths, per launcher: ExecProcess (+ WaitProcess) of /bin/true into a running
//! container, and CreateContainer (+ RemoveContainer) of a container that shares that running
//! container's pid namespace. Both are the paths where the new process must never be visible
//! in the container before its jail is complete; their price is measured here. Launchers take
//! turns in batches, like the latency phase.

use super::ctx::Ctx;
use super::driver::{next_id, Client};
use super::model::{JoinResult, Report};
use super::stats::summarize;
use anyhow::{bail, Context, Result};
use std::fmt::Write;
use std::time::{Duration, Instant};
use ttrpc::context;
use wire::agent as pb;

fn ctx() -> context::Context {
    context::with_timeout(Duration::from_secs(60).as_nanos() as i64)
}

/// The running container every join of one side goes into.
struct Target {
    id: String,
    pid: i32,
}

pub async fn run(ctx: &Ctx, labels: &[String]) -> Result<Vec<JoinResult>> {
    let plan = &ctx.plan;
    let mut targets = Vec::new();
    for (client, label) in ctx.clients.iter().zip(labels) {
        targets.push(start_target(client, ctx, label).await?);
    }
    let mut results: Vec<JoinResult> = labels
        .iter()
        .map(|side| JoinResult {
            side: side.clone(),
            exec_ns: vec![],
            exec_wait_ns: vec![],
            shared_create_ns: vec![],
        })
        .collect();
    let outcome = measure(ctx, &targets, &mut results, plan.samples.min(200)).await;
    for (client, t) in ctx.clients.iter().zip(&targets) {
        client.remove(&t.id).await?;
    }
    outcome.map(|_| results)
}

async fn measure(
    ctx: &Ctx,
    targets: &[Target],
    results: &mut [JoinResult],
    samples: usize,
) -> Result<()> {
    let batch = ctx.plan.batch.max(1);
    let mut done = 0;
    let mut round = 0;
    while done < samples {
        super::check_cancelled()?;
        let n = batch.min(samples - done);
        for k in 0..targets.len() {
            let i = (round + k) % targets.len();
            let client = &ctx.clients[i];
            for _ in 0..n {
                let (exec, exec_wait) = exec_once(client, &targets[i].id).await?;
                results[i].exec_ns.push(exec);
                results[i].exec_wait_ns.push(exec_wait);
                let shared = shared_create_once(client, ctx, targets[i].pid, &results[i].side);
                results[i].shared_create_ns.push(shared.await?);
            }
        }
        done += n;
        round += 1;
    }
    Ok(())
}

async fn start_target(client: &Client, ctx: &Ctx, label: &str) -> Result<Target> {
    let id = next_id(&format!("{label}-jointarget"));
    let mut spec = (*ctx.spec).clone();
    let process = spec.Process.mut_or_insert_default();
    process.Args = vec!["/bin/sleep".into(), "100000".into()];
    client.park(&id, &spec).await?;
    client.start(&id).await?;
    let pid = client
        .list()
        .await?
        .into_iter()
        .find(|(c, _, _)| *c == id)
        .map(|(_, _, pid)| pid)
        .context("the join target is not listed")?;
    Ok(Target { id, pid })
}

/// One ExecProcess of /bin/true and its WaitProcess: (exec, exec + wait) in ns.
async fn exec_once(client: &Client, container: &str) -> Result<(u64, u64)> {
    let exec_id = next_id("exec");
    let mut process = wire::oci::Process::new();
    process.Args = vec!["/bin/true".into()];
    process.Cwd = "/".into();
    process.Env = vec!["PATH=/bin:/usr/bin".into()];
    let mut req = pb::ExecProcessRequest::new();
    req.container_id = container.into();
    req.exec_id = exec_id.clone();
    req.process = protobuf::MessageField::some(process);
    let mut wait = pb::WaitProcessRequest::new();
    wait.container_id = container.into();
    wait.exec_id = exec_id.clone();
    let begin = Instant::now();
    client
        .agent()
        .exec_process(ctx(), &req)
        .await
        .with_context(|| format!("ExecProcess {exec_id}"))?;
    let exec = begin.elapsed().as_nanos() as u64;
    let status = client.agent().wait_process(ctx(), &wait).await?.status;
    if status != 0 {
        bail!("exec {exec_id} (/bin/true) exited with {status}");
    }
    Ok((exec, begin.elapsed().as_nanos() as u64))
}

/// One CreateContainer sharing `pid`'s pid namespace (timed), then its RemoveContainer.
async fn shared_create_once(client: &Client, ctx: &Ctx, pid: i32, label: &str) -> Result<u64> {
    let id = next_id(&format!("{label}-shared"));
    let mut spec = (*ctx.spec).clone();
    let linux = spec.Linux.mut_or_insert_default();
    for ns in linux.Namespaces.iter_mut().filter(|n| n.Type == "pid") {
        ns.Path = format!("/proc/{pid}/ns/pid");
    }
    let begin = Instant::now();
    client.park(&id, &spec).await?;
    let took = begin.elapsed().as_nanos() as u64;
    client.remove(&id).await?;
    Ok(took)
}

/// The table: p50/p90/p99 per launcher and the ratio to the first.
pub fn table(r: &Report, out: &mut String) {
    if r.join.is_empty() {
        return;
    }
    let n = r.join[0].exec_ns.len();
    let _ = writeln!(
        out,
        "\nJoining a running container, ms p50/p90/p99 ({n} per side, sides interleaved)"
    );
    let _ = writeln!(
        out,
        "{:<10} {:>26} {:>26} {:>26}",
        "side", "ExecProcess", "ExecProcess+WaitProcess", "create sharing its pid ns"
    );
    let cell = |v: &[u64]| match summarize(v.iter().map(|&x| x as f64 / 1e6)) {
        Some(s) => format!("{:.3}/{:.3}/{:.3}", s.p50, s.p90, s.p99),
        None => "-".into(),
    };
    for j in &r.join {
        let _ = writeln!(
            out,
            "{:<10} {:>26} {:>26} {:>26}",
            j.side,
            cell(&j.exec_ns),
            cell(&j.exec_wait_ns),
            cell(&j.shared_create_ns)
        );
    }
}
