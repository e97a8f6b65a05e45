//! The price of a seccomp profile, per launcher: full lifecycles of the bench's container
//! without a profile and with Docker's default one (tests/data/seccomp), the two kinds
//! alternating one by one and the launchers taking turns in batches, like the latency phase.
//! The agent compiles a profile once and keeps the filter, so what this measures is carrying
//! the program to the child and loading it there (and the first compile, in the warm-up).

use super::ctx::Ctx;
use super::driver::{next_id, Client};
use super::model::{Report, SeccompResult, StepSample};
use super::stats::summarize;
use anyhow::{Context, Result};
use std::fmt::Write;

/// Docker's default profile as Docker hands it to runc for an x86_64 container.
const DOCKER_DEFAULT: &str = include_str!("../../data/seccomp/docker-default-x86_64.oci.json");

/// Lifecycles per kind and side before the measured ones (the first compiles the profile).
pub const WARMUP: usize = 3;

/// The bench's spec with Docker's default profile in `linux.seccomp`.
fn with_docker_profile(spec: &wire::oci::Spec) -> Result<wire::oci::Spec> {
    let profile: oci_spec::runtime::LinuxSeccomp =
        serde_json::from_str(DOCKER_DEFAULT).context("Docker's profile parses")?;
    let mut linux = oci_spec::runtime::Linux::default();
    linux.set_seccomp(Some(profile));
    let mut carrier = oci_spec::runtime::Spec::default();
    carrier.set_linux(Some(linux));
    let converted = wire::oci::spec_to_grpc(&carrier);
    let mut out = spec.clone();
    out.Linux.mut_or_insert_default().Seccomp = converted.Linux.Seccomp.clone();
    Ok(out)
}

/// Whether `e` is an agent's INVALID_ARGUMENT (an agent from before seccomp refuses profiles).
fn refused(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(c.downcast_ref::<ttrpc::Error>(),
            Some(ttrpc::Error::RpcStatus(s)) if s.code() == ttrpc::Code::INVALID_ARGUMENT)
    })
}

/// Sides whose agent refuses seccomp profiles are left out with a warning.
pub async fn run(
    ctx: &Ctx,
    labels: &[String],
    warnings: &mut Vec<String>,
) -> Result<Vec<SeccompResult>> {
    let docker = with_docker_profile(&ctx.spec)?;
    let mut results: Vec<SeccompResult> = labels
        .iter()
        .map(|side| SeccompResult {
            side: side.clone(),
            plain_create_ns: vec![],
            plain_total_ns: vec![],
            docker_create_ns: vec![],
            docker_total_ns: vec![],
        })
        .collect();
    let mut sides = Vec::new();
    'side: for (i, (client, label)) in ctx.clients.iter().zip(labels).enumerate() {
        for _ in 0..WARMUP {
            match pair(client, ctx, &docker, label).await {
                Ok(_) => {}
                Err(e) if refused(&e) => {
                    warnings.push(format!("seccomp phase: {label} refuses the profile: {e:#}"));
                    continue 'side;
                }
                Err(e) => return Err(e),
            }
        }
        sides.push(i);
    }
    let samples = ctx.plan.samples.min(200);
    let batch = ctx.plan.batch.max(1);
    let (mut done, mut round) = (0, 0);
    while done < samples {
        super::check_cancelled()?;
        let n = batch.min(samples - done);
        for k in 0..sides.len() {
            let i = sides[(round + k) % sides.len()];
            for _ in 0..n {
                let (plain, with) = pair(&ctx.clients[i], ctx, &docker, &labels[i]).await?;
                let r = &mut results[i];
                r.plain_create_ns.extend(plain.create_ns);
                r.plain_total_ns.push(plain.total_ns);
                r.docker_create_ns.extend(with.create_ns);
                r.docker_total_ns.push(with.total_ns);
            }
        }
        done += n;
        round += 1;
    }
    results.retain(|r| !r.plain_total_ns.is_empty());
    Ok(results)
}

/// One lifecycle without a profile, then one with Docker's.
async fn pair(
    client: &Client,
    ctx: &Ctx,
    docker: &wire::oci::Spec,
    label: &str,
) -> Result<(StepSample, StepSample)> {
    let plain = client
        .lifecycle(&next_id(&format!("{label}-noseccomp")), &ctx.spec, ctx.t0)
        .await?;
    let with = client
        .lifecycle(&next_id(&format!("{label}-seccomp")), docker, ctx.t0)
        .await?;
    Ok((plain, with))
}

/// The table: create and lifecycle p50/p90/p99 without and with the profile, and the ratio of
/// the p50s.
pub fn table(r: &Report, out: &mut String) {
    let Some(first) = r.seccomp.first() else {
        return;
    };
    let n = first.plain_total_ns.len();
    let _ = writeln!(
        out,
        "\nSeccomp: without a profile vs Docker's default profile, ms p50/p90/p99 ({n} each per side, alternating)"
    );
    let _ = writeln!(
        out,
        "{:<12} {:>22} {:>22} {:>7} {:>22} {:>22} {:>7}",
        "side", "create", "create+docker", "ratio", "lifecycle", "lifecycle+docker", "ratio"
    );
    let stats = |v: &[u64]| summarize(v.iter().map(|&x| x as f64 / 1e6));
    let cell = |v: &[u64]| match stats(v) {
        Some(s) => format!("{:.3}/{:.3}/{:.3}", s.p50, s.p90, s.p99),
        None => "-".into(),
    };
    let ratio = |a: &[u64], b: &[u64]| match (stats(a), stats(b)) {
        (Some(a), Some(b)) if a.p50 > 0.0 => format!("{:.2}x", b.p50 / a.p50),
        _ => "-".into(),
    };
    for s in &r.seccomp {
        let _ = writeln!(
            out,
            "{:<12} {:>22} {:>22} {:>7} {:>22} {:>22} {:>7}",
            s.side,
            cell(&s.plain_create_ns),
            cell(&s.docker_create_ns),
            ratio(&s.plain_create_ns, &s.docker_create_ns),
            cell(&s.plain_total_ns),
            cell(&s.docker_total_ns),
            ratio(&s.plain_total_ns, &s.docker_total_ns),
        );
    }
}
