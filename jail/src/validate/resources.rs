//! `linux.cgroupsPath` and `linux.resources`: where the container's cgroup goes and which
//! limits it gets, checked so that the kernel never has to reject a value in a confusing way.
//!
//! Conventions (runc's): 0 means "not set" for memory, cpu shares, quota and period; -1 means
//! unlimited. The limits in `cgroups::Resources` are applied; the other resource sections
//! (hugepageLimits, network, rdma, ...) are refused by `unsupported`, and so is `unified`: its
//! raw cgroup v2 files cannot be honoured on a v1 host (runc refuses it there) and are not
//! written on v2 either. Device rules are
//! the spec's, followed (as runc does) by allow rules for the devices every container needs and
//! for the spec's `linux.devices`, so a leading deny-all does not break /dev/null.

use super::ValidateError;
use crate::cgroups::{BlockIo, DeviceRule, Resources, Throttle, WeightDevice};
use oci_spec::runtime::{
    Linux, LinuxBlockIo, LinuxCpu, LinuxDeviceCgroup, LinuxMemory, LinuxResources,
    LinuxThrottleDevice,
};
use std::path::{Component, Path, PathBuf};

/// The default parent of every container cgroup.
pub const DEFAULT_CGROUP_PARENT: &str = "zagent";

pub(super) fn convert(
    id: &str,
    linux: Option<&Linux>,
) -> Result<(PathBuf, Resources), ValidateError> {
    let path = match linux.and_then(|l| l.cgroups_path().as_ref()) {
        Some(path) => cgroups_path(path)?,
        None => Path::new(DEFAULT_CGROUP_PARENT).join(id),
    };
    refuse_unified(linux)?;
    let mut res = Resources::default();
    if let Some(r) = linux.and_then(|l| l.resources().as_ref()) {
        limits(r, &mut res)?;
        if let Some(rules) = r.devices().as_ref().filter(|r| !r.is_empty()) {
            res.devices = device_rules(rules)?;
        }
    }
    Ok((path, res))
}

/// UpdateContainer's resources: the memory, pids and cpu limits, checked as at create. Device
/// rules and `unified` are refused rather than ignored: rewriting a running container's device
/// rules is not supported yet.
pub fn update(r: &LinuxResources) -> Result<Resources, ValidateError> {
    if r.devices().as_ref().is_some_and(|d| !d.is_empty()) {
        return Err(bad(
            "devices",
            "(rules)",
            "cannot be changed on a running container yet",
        ));
    }
    if let Some(files) = r.unified().as_ref().filter(|u| !u.is_empty()) {
        let mut names: Vec<&str> = files.keys().map(String::as_str).collect();
        names.sort_unstable();
        return Err(ValidateError::Unified(names.join(", ")));
    }
    super::unsupported::resources(r)?;
    let mut res = Resources::default();
    limits(r, &mut res)?;
    Ok(res)
}

fn limits(r: &LinuxResources, res: &mut Resources) -> Result<(), ValidateError> {
    if let Some(memory) = r.memory() {
        self::memory(memory, res)?;
    }
    if let Some(pids) = r.pids() {
        res.pids_limit = match pids.limit() {
            n if n > 0 => Some(n),
            0 | -1 => Some(-1),
            n => {
                return Err(bad(
                    "pids.limit",
                    n,
                    "must be positive, or -1 for unlimited",
                ))
            }
        };
    }
    if let Some(cpu) = r.cpu() {
        self::cpu(cpu, res)?;
    }
    if let Some(b) = r.block_io() {
        res.block_io = block_io(b)?;
    }
    Ok(())
}

/// blkio weights are 10..=1000 (v1's range; v2's is converted from it); 0 is "not set".
fn blkio_weight(field: &'static str, w: Option<u16>) -> Result<Option<u16>, ValidateError> {
    match w {
        None | Some(0) => Ok(None),
        Some(w) if (10..=1000).contains(&w) => Ok(Some(w)),
        Some(w) => Err(bad(field, w, "must be between 10 and 1000")),
    }
}

fn device_number(field: &'static str, n: i64) -> Result<u64, ValidateError> {
    u64::try_from(n).map_err(|_| bad(field, n, "must not be negative"))
}

fn block_io(b: &LinuxBlockIo) -> Result<BlockIo, ValidateError> {
    let mut weight_devices = Vec::new();
    for d in b.weight_device().iter().flatten() {
        weight_devices.push(WeightDevice {
            major: device_number("blockIO.weightDevice.major", d.major())?,
            minor: device_number("blockIO.weightDevice.minor", d.minor())?,
            weight: blkio_weight("blockIO.weightDevice.weight", d.weight())?,
            leaf_weight: blkio_weight("blockIO.weightDevice.leafWeight", d.leaf_weight())?,
        });
    }
    let throttles = |list: &Option<Vec<LinuxThrottleDevice>>, field: &'static str| {
        list.iter()
            .flatten()
            .map(|t| {
                Ok(Throttle {
                    major: device_number(field, t.major())?,
                    minor: device_number(field, t.minor())?,
                    rate: t.rate(),
                })
            })
            .collect::<Result<Vec<_>, ValidateError>>()
    };
    Ok(BlockIo {
        weight: blkio_weight("blockIO.weight", b.weight())?,
        leaf_weight: blkio_weight("blockIO.leafWeight", b.leaf_weight())?,
        weight_devices,
        read_bps: throttles(
            b.throttle_read_bps_device(),
            "blockIO.throttleReadBpsDevice",
        )?,
        write_bps: throttles(
            b.throttle_write_bps_device(),
            "blockIO.throttleWriteBpsDevice",
        )?,
        read_iops: throttles(
            b.throttle_read_iops_device(),
            "blockIO.throttleReadIOPSDevice",
        )?,
        write_iops: throttles(
            b.throttle_write_iops_device(),
            "blockIO.throttleWriteIOPSDevice",
        )?,
    })
}

/// A non-empty `linux.resources.unified` is refused. Public because the Kata protocol has no
/// field for it: a client (zagent-ctl) must refuse it before sending, or it would vanish.
pub fn refuse_unified(linux: Option<&Linux>) -> Result<(), ValidateError> {
    let unified = linux
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| r.unified().as_ref());
    match unified.filter(|u| !u.is_empty()) {
        None => Ok(()),
        Some(files) => {
            let mut names: Vec<&str> = files.keys().map(String::as_str).collect();
            names.sort_unstable();
            Err(ValidateError::Unified(names.join(", ")))
        }
    }
}

/// What every container may use whatever its rules say, after the spec's rules: runc 1.1.5's
/// list (mknod of any node, null, zero, full, random, urandom, tty, ptmx, tun and the pts of its
/// devpts). The nodes of `linux.devices` get no rule of their own (runc's neither): a spec that
/// denies all and wants one of them usable allows it in its rules, as Docker does.
const ALWAYS_ALLOWED: &[(char, Option<i64>, Option<i64>, &str)] = &[
    ('b', None, None, "m"),
    ('c', None, None, "m"),
    ('c', Some(1), Some(3), "rwm"),
    ('c', Some(1), Some(5), "rwm"),
    ('c', Some(1), Some(7), "rwm"),
    ('c', Some(1), Some(8), "rwm"),
    ('c', Some(1), Some(9), "rwm"),
    ('c', Some(5), Some(0), "rwm"),
    ('c', Some(5), Some(2), "rwm"),
    ('c', Some(10), Some(200), "rwm"),
    ('c', Some(136), None, "rwm"),
];

fn device_rules(rules: &[LinuxDeviceCgroup]) -> Result<Vec<DeviceRule>, ValidateError> {
    let mut out = Vec::new();
    for r in rules {
        let kind = match r.typ().map(|t| t.as_str().to_string()).as_deref() {
            None | Some("a") => 'a',
            Some("c") | Some("u") => 'c',
            Some("b") => 'b',
            Some(other) => return Err(bad("devices.type", other, "must be a, c or b")),
        };
        let access = r.access().clone().unwrap_or_else(|| "rwm".into());
        if access.is_empty() || !access.chars().all(|c| "rwm".contains(c)) {
            return Err(bad(
                "devices.access",
                access,
                "must be letters from \"rwm\"",
            ));
        }
        out.push(DeviceRule {
            allow: r.allow(),
            kind,
            major: r.major(),
            minor: r.minor(),
            access,
        });
    }
    for &(kind, major, minor, access) in ALWAYS_ALLOWED {
        out.push(DeviceRule {
            allow: true,
            kind,
            major,
            minor,
            access: access.into(),
        });
    }
    Ok(out)
}

/// An absolute cgroupsPath is taken relative to the cgroup root(s), like runc does.
fn cgroups_path(given: &Path) -> Result<PathBuf, ValidateError> {
    let err = |reason| ValidateError::CgroupsPath {
        path: given.to_owned(),
        reason,
    };
    let text = given.to_str().ok_or_else(|| err("is not valid UTF-8"))?;
    if text.contains(':') {
        return Err(ValidateError::SystemdCgroupsPath(given.to_owned()));
    }
    super::check_str_nul("linux.cgroupsPath", text)?;
    let rel = text.strip_prefix('/').unwrap_or(text);
    if rel.split('/').any(|part| part == "." || part == "..") {
        return Err(err("must not contain '.' or '..' components"));
    }
    let rel: PathBuf = Path::new(rel).components().collect();
    if rel.as_os_str().is_empty() {
        return Err(err("names no cgroup below the root"));
    }
    if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(err("must be a plain path"));
    }
    Ok(rel)
}

fn bad(field: &'static str, value: impl ToString, reason: &'static str) -> ValidateError {
    ValidateError::Resource {
        field,
        value: value.to_string(),
        reason,
    }
}

/// 0 is "not set", -1 unlimited; anything else below 0 is nonsense.
fn limit(field: &'static str, value: Option<i64>) -> Result<Option<i64>, ValidateError> {
    match value {
        None | Some(0) => Ok(None),
        Some(n) if n > 0 || n == -1 => Ok(Some(n)),
        Some(n) => Err(bad(field, n, "must be positive, or -1 for unlimited")),
    }
}

fn memory(memory: &LinuxMemory, res: &mut Resources) -> Result<(), ValidateError> {
    res.memory_limit = limit("memory.limit", memory.limit())?;
    res.memory_swap = limit("memory.swap", memory.swap())?;
    res.memory_reservation = limit("memory.reservation", memory.reservation())?;
    res.memory_swappiness = match memory.swappiness() {
        // runc's "unset": Go's -1 cast to the spec's unsigned type.
        None | Some(u64::MAX) => None,
        Some(n) if n <= 100 => Some(n),
        Some(n) => return Err(bad("memory.swappiness", n, "must be between 0 and 100")),
    };
    res.memory_disable_oom_killer = memory.disable_oom_killer().unwrap_or(false);
    // OCI's swap is memory+swap; the kernel refuses (v1) or we cannot convert (v2) a total
    // that is below, or set without, the memory limit.
    if let Some(swap) = res.memory_swap.filter(|s| *s > 0) {
        match res.memory_limit {
            Some(limit) if limit > 0 && swap < limit => {
                return Err(bad("memory.swap", swap, "must not be below memory.limit"));
            }
            Some(limit) if limit > 0 => {}
            _ => return Err(bad("memory.swap", swap, "needs a memory.limit")),
        }
    }
    Ok(())
}

fn cpu(cpu: &LinuxCpu, res: &mut Resources) -> Result<(), ValidateError> {
    res.cpu_shares = match cpu.shares() {
        None | Some(0) => None,
        // The kernel clamps v1 shares into this range silently; the v2 weight conversion
        // needs it.
        Some(n) if (2..=262_144).contains(&n) => Some(n),
        Some(n) => return Err(bad("cpu.shares", n, "must be between 2 and 262144")),
    };
    res.cpu_quota = match cpu.quota() {
        None | Some(0) => None,
        Some(-1) => Some(-1),
        Some(n) if n >= 1000 => Some(n),
        Some(n) => return Err(bad("cpu.quota", n, "must be at least 1000 (µs), or -1")),
    };
    res.cpu_period = match cpu.period() {
        None | Some(0) => None,
        Some(n) if (1000..=1_000_000).contains(&n) => Some(n),
        Some(n) => {
            return Err(bad(
                "cpu.period",
                n,
                "must be between 1000 and 1000000 (µs)",
            ))
        }
    };
    // runc's "not set" is 0 here too.
    res.cpu_rt_runtime = cpu.realtime_runtime().filter(|r| *r != 0);
    res.cpu_rt_period = cpu.realtime_period().filter(|p| *p != 0);
    if let Some(r) = res.cpu_rt_runtime.filter(|r| *r < -1) {
        return Err(bad(
            "cpu.realtimeRuntime",
            r,
            "must be positive, or -1 for unlimited",
        ));
    }
    res.cpuset_cpus = cpu_list("cpu.cpus", cpu.cpus().as_deref())?;
    res.cpuset_mems = cpu_list("cpu.mems", cpu.mems().as_deref())?;
    Ok(())
}

/// A kernel list ("0-3,5"); empty means "not set".
fn cpu_list(field: &'static str, value: Option<&str>) -> Result<Option<String>, ValidateError> {
    let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let number = |s: &str| -> Option<u32> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok())?
    };
    let valid = value.split(',').all(|part| match part.split_once('-') {
        Some((lo, hi)) => matches!((number(lo), number(hi)), (Some(lo), Some(hi)) if lo <= hi),
        None => number(part).is_some(),
    });
    if !valid {
        return Err(bad(
            field,
            format!("{value:?}"),
            "is not a list like \"0-3,5\"",
        ));
    }
    Ok(Some(value.to_owned()))
}
