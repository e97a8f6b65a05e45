//! What an OCI spec may hold that the Kata protocol cannot carry to the agent: sent, it would
//! vanish on the way and the container would run without it. A client (zagent-ctl, the
//! conformance suite) refuses such a spec with `check_sendable`, naming the field, before
//! anything is sent. The fields zagent implements but Kata has no slot for travel as
//! `io.zagent.` annotations (`carried.rs`) and pass; every field refused here is one zagent
//! does not implement either, so the agent would refuse it too if it arrived. proto3 also
//! cannot send some zero values (they read as "unset"): those are refused where the agent
//! would otherwise apply a default instead of the zero.

use oci_spec::runtime::{Linux, LinuxResources, Process, Spec};

/// A field of the spec that cannot be sent, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} cannot be sent to the agent: {why}")]
pub struct Unsendable {
    pub field: String,
    pub why: &'static str,
}

/// The first field of `spec` that cannot be sent, if any.
pub fn check_sendable(spec: &Spec) -> Result<(), Unsendable> {
    match first(spec) {
        None => Ok(()),
        Some((field, why)) => Err(Unsendable { field, why }),
    }
}

const NO_SLOT: &str = "the Kata protocol has no field for it, and zagent does not implement it";

fn first(spec: &Spec) -> Option<(String, &'static str)> {
    let platform = [
        ("solaris", spec.solaris().is_some()),
        ("windows", spec.windows().is_some()),
        ("vm", spec.vm().is_some()),
        ("zos", spec.zos().is_some()),
    ];
    if let Some((name, _)) = platform.iter().find(|(_, present)| *present) {
        return Some((name.to_string(), NO_SLOT));
    }
    if let Some(found) = spec.process().as_ref().and_then(process) {
        return Some(found);
    }
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        if m.uid_mappings().is_some() || m.gid_mappings().is_some() {
            return Some((format!("mounts[{i}].uidMappings/gidMappings"), NO_SLOT));
        }
    }
    spec.linux().as_ref().and_then(linux)
}

fn process(p: &Process) -> Option<(String, &'static str)> {
    if p.command_line().is_some() {
        return Some(("process.commandLine".into(), NO_SLOT));
    }
    if p.exec_cpu_affinity().is_some() {
        return Some(("process.execCPUAffinity".into(), NO_SLOT));
    }
    None
}

fn linux(l: &Linux) -> Option<(String, &'static str)> {
    let fields = [
        ("linux.netDevices", l.net_devices().is_some()),
        ("linux.timeOffsets", l.time_offsets().is_some()),
        ("linux.memoryPolicy", l.memory_policy().is_some()),
    ];
    if let Some((name, _)) = fields.iter().find(|(_, present)| *present) {
        return Some((name.to_string(), NO_SLOT));
    }
    if let Some(rdt) = l.intel_rdt() {
        // Only l3CacheSchema has a slot (and the agent refuses it: no resctrl support).
        let others = rdt.clos_id().is_some()
            || rdt.mem_bw_schema().is_some()
            || rdt.schemata().is_some()
            || rdt.enable_cmt().is_some()
            || rdt.enable_mbm().is_some()
            || rdt.enable_monitoring().is_some();
        if others {
            return Some(("linux.intelRdt".into(), NO_SLOT));
        }
    }
    if let Some(s) = l.seccomp() {
        if s.listener_path().is_some() {
            return Some(("linux.seccomp.listenerPath".into(), NO_SLOT));
        }
        if s.listener_metadata().is_some() {
            return Some(("linux.seccomp.listenerMetadata".into(), NO_SLOT));
        }
    }
    for (i, d) in l.devices().iter().flatten().enumerate() {
        if d.file_mode() == Some(0) {
            let why = "the Kata protocol sends a mode of 0 as \"no mode\", which the agent \
                       creates as 0666 (runc's default)";
            return Some((format!("linux.devices[{i}].fileMode 0"), why));
        }
    }
    l.resources().as_ref().and_then(resources)
}

fn resources(r: &LinuxResources) -> Option<(String, &'static str)> {
    let field = |name: &str| Some((format!("linux.resources.{name}"), NO_SLOT));
    if r.unified().as_ref().is_some_and(|u| !u.is_empty()) {
        return field("unified");
    }
    if r.rdma().is_some() {
        return field("rdma");
    }
    if let Some(m) = r.memory() {
        // The other values are what the agent does anyway: dropped, they change nothing.
        if m.use_hierarchy() == Some(false) {
            return field("memory.useHierarchy");
        }
        if m.check_before_update() == Some(true) {
            return field("memory.checkBeforeUpdate");
        }
        if m.swappiness() == Some(0) {
            let why = "the Kata protocol sends 0 as \"unset\" (the kernel's default would \
                       apply); use 1 for the least swapping";
            return Some(("linux.resources.memory.swappiness 0".into(), why));
        }
    }
    if let Some(c) = r.cpu() {
        if c.idle().is_some() {
            return field("cpu.idle");
        }
        if c.burst().is_some() {
            return field("cpu.burst");
        }
    }
    None
}

#[cfg(test)]
mod tests;
