//! The fields of runtime-spec 1.2 (config.md, config-linux.md) that zagent does not implement,
//! refused by name rather than ignored: a container that asked for an AppArmor profile, a
//! hugetlb limit or a time offset must not run without it as if it had one. Each refusal says
//! why. An empty value (an empty string, list, map or section) asks for nothing and passes.
//! The fields zagent implements are checked where they are converted; user namespaces, id
//! mappings and hooks are the namespace code's and the hook code's to accept or refuse.

use super::ValidateError;
use oci_spec::runtime::{Linux, LinuxResources, Process, Spec};

fn refuse(field: impl Into<String>, reason: &'static str) -> Result<(), ValidateError> {
    Err(ValidateError::Unsupported {
        field: field.into(),
        reason,
    })
}

/// Refuses `field` when `present`.
fn check(present: bool, field: &str, reason: &'static str) -> Result<(), ValidateError> {
    if present {
        return refuse(field, reason);
    }
    Ok(())
}

fn text(value: &Option<String>) -> bool {
    value.as_ref().is_some_and(|v| !v.is_empty())
}

fn many<T>(value: &Option<Vec<T>>) -> bool {
    value.as_ref().is_some_and(|v| !v.is_empty())
}

const PLATFORM: &str = "it configures another platform; zagent runs Linux containers";
const MAC: &str = "zagent applies no AppArmor or SELinux policy (a guest without that LSM could \
                   not honour it either; runc fails there too)";

/// The whole spec: the top level, `linux` and its resources; `process` through `process`.
#[allow(deprecated)] // the top-level id mappings oci-spec still parses were never OCI fields
pub(super) fn spec(spec: &Spec) -> Result<(), ValidateError> {
    check(spec.solaris().is_some(), "solaris", PLATFORM)?;
    check(spec.windows().is_some(), "windows", PLATFORM)?;
    check(spec.zos().is_some(), "zos", PLATFORM)?;
    check(
        spec.vm().is_some(),
        "vm",
        "zagent runs containers, not virtual machines",
    )?;
    if let Some(linux) = spec.linux() {
        self::linux(linux)?;
    }
    Ok(())
}

fn linux(l: &Linux) -> Result<(), ValidateError> {
    check(text(l.mount_label()), "linux.mountLabel", MAC)?;
    if let Some(rdt) = l.intel_rdt() {
        let asked = text(rdt.clos_id())
            || text(rdt.l3_cache_schema())
            || text(rdt.mem_bw_schema())
            || many(rdt.schemata())
            || rdt.enable_cmt().unwrap_or(false)
            || rdt.enable_mbm().unwrap_or(false)
            || rdt.enable_monitoring().unwrap_or(false);
        let reason = "Intel RDT (resctrl) is not supported";
        check(asked, "linux.intelRdt", reason)?;
    }
    check(
        l.memory_policy().is_some(),
        "linux.memoryPolicy",
        "NUMA memory policies (set_mempolicy) are not applied",
    )?;
    check(
        l.net_devices().as_ref().is_some_and(|d| !d.is_empty()),
        "linux.netDevices",
        "moving network devices into the container is not supported",
    )?;
    check(
        l.time_offsets().as_ref().is_some_and(|t| !t.is_empty()),
        "linux.timeOffsets",
        "time namespaces are not supported",
    )?;
    if let Some(p) = l.personality() {
        let reason = "the runtime spec defines no personality flags";
        check(many(p.flags()), "linux.personality.flags", reason)?;
    }
    if let Some(s) = l.seccomp() {
        let reason = "it is for a seccomp agent (listenerPath), which zagent does not support";
        check(
            text(s.listener_metadata()),
            "linux.seccomp.listenerMetadata",
            reason,
        )?;
    }
    if let Some(r) = l.resources() {
        resources(r)?;
    }
    Ok(())
}

/// `linux.resources` beyond what `cgroups::Resources` holds; CreateContainer and
/// UpdateContainer alike.
pub(super) fn resources(r: &LinuxResources) -> Result<(), ValidateError> {
    let field = |name: &str| format!("linux.resources.{name}");
    check(
        many(r.hugepage_limits()),
        &field("hugepageLimits"),
        "the hugetlb controller is not managed",
    )?;
    if let Some(n) = r.network() {
        let asked = n.class_id().is_some() || many(n.priorities());
        let reason = "the net_cls and net_prio controllers are not managed";
        check(asked, &field("network"), reason)?;
    }
    check(
        r.rdma().as_ref().is_some_and(|m| !m.is_empty()),
        &field("rdma"),
        "the rdma controller is not managed",
    )?;
    if let Some(m) = r.memory() {
        memory(m, &field)?;
    }
    if let Some(c) = r.cpu() {
        let reason = "not set by zagent (the Kata protocol cannot carry it)";
        check(c.idle().is_some(), &field("cpu.idle"), reason)?;
        check(c.burst().is_some(), &field("cpu.burst"), reason)?;
    }
    Ok(())
}

#[allow(deprecated)] // kernel memory limits: deprecated in the spec, refused here
fn memory(
    m: &oci_spec::runtime::LinuxMemory,
    field: &dyn Fn(&str) -> String,
) -> Result<(), ValidateError> {
    check(
        m.kernel().is_some(),
        &field("memory.kernel"),
        "kernel memory limits are deprecated and not set (runc 1.1 ignores them with a warning)",
    )?;
    check(
        m.kernel_tcp().is_some(),
        &field("memory.kernelTCP"),
        "kernel TCP memory limits (cgroup v1 only, deprecated) are not set",
    )?;
    check(
        m.use_hierarchy() == Some(false),
        &field("memory.useHierarchy"),
        "memory accounting is always hierarchical (the kernel has no other mode)",
    )?;
    check(
        m.check_before_update() == Some(true),
        &field("memory.checkBeforeUpdate"),
        "UpdateContainer does not compare a new limit with the usage first",
    )
}

/// A process, a container's or an exec's.
pub(super) fn process(p: &Process) -> Result<(), ValidateError> {
    check(
        text(p.command_line()),
        "process.commandLine",
        "it is Windows-only (a Linux process has args)",
    )?;
    check(
        text(p.user().username()),
        "process.user.username",
        "it is Windows-only (a Linux process has uid and gid)",
    )?;
    check(text(p.apparmor_profile()), "process.apparmorProfile", MAC)?;
    check(text(p.selinux_label()), "process.selinuxLabel", MAC)?;
    check(
        p.exec_cpu_affinity().is_some(),
        "process.execCPUAffinity",
        "not set by zagent (use linux.resources.cpu.cpus)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn spec_with(patch: impl FnOnce(&mut Value)) -> Spec {
        let mut v = json!({
            "ociVersion": "1.2.0",
            "process": { "args": ["sh"], "cwd": "/", "user": { "uid": 0, "gid": 0 } },
            "root": { "path": "/" },
            "linux": {}
        });
        patch(&mut v);
        serde_json::from_value(v).expect("test spec parses")
    }

    /// The field a refusal names, or None when the spec passes.
    fn refused(patch: impl FnOnce(&mut Value)) -> Option<String> {
        let s = spec_with(patch);
        let result = spec(&s).and_then(|()| process(s.process().as_ref().unwrap()));
        match result {
            Ok(()) => None,
            Err(ValidateError::Unsupported { field, .. }) => Some(field),
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }

    /// `pointer` (parents made as objects) set to `value` in the base spec.
    fn with(pointer: &str, value: Value) -> impl FnOnce(&mut Value) {
        let pointer = pointer.to_owned();
        move |s| {
            let parts: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
            let mut at = s;
            for part in &parts[..parts.len() - 1] {
                if at.get(*part).is_none() {
                    at[*part] = json!({});
                }
                at = &mut at[*part];
            }
            at[parts[parts.len() - 1]] = value;
        }
    }

    #[test]
    fn each_unimplemented_field_is_refused_by_name() {
        let cases = [
            ("solaris", "/solaris", json!({"milestone": "x"})),
            ("windows", "/windows", json!({"layerFolders": []})),
            ("vm", "/vm", json!({"kernel": {"path": "/k"}})),
            ("zos", "/zos", json!({})),
            ("linux.mountLabel", "/linux/mountLabel", json!("l")),
            ("linux.intelRdt", "/linux/intelRdt", json!({"closID": "a"})),
            (
                "linux.intelRdt",
                "/linux/intelRdt",
                json!({"enableMonitoring": true}),
            ),
            (
                "linux.memoryPolicy",
                "/linux/memoryPolicy",
                json!({"mode": "MPOL_BIND"}),
            ),
            ("linux.netDevices", "/linux/netDevices", json!({"eth1": {}})),
            (
                "linux.timeOffsets",
                "/linux/timeOffsets",
                json!({"monotonic": {"secs": 1}}),
            ),
            (
                "linux.personality.flags",
                "/linux/personality",
                json!({"domain": "LINUX", "flags": ["x"]}),
            ),
            (
                "linux.seccomp.listenerMetadata",
                "/linux/seccomp",
                json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerMetadata": "m"}),
            ),
            (
                "linux.resources.hugepageLimits",
                "/linux/resources/hugepageLimits",
                json!([{"pageSize": "2MB", "limit": 1}]),
            ),
            (
                "linux.resources.network",
                "/linux/resources/network",
                json!({"classID": 1}),
            ),
            (
                "linux.resources.rdma",
                "/linux/resources/rdma",
                json!({"mlx5_0": {"hcaHandles": 1}}),
            ),
            (
                "linux.resources.memory.kernel",
                "/linux/resources/memory/kernel",
                json!(1),
            ),
            (
                "linux.resources.memory.kernelTCP",
                "/linux/resources/memory/kernelTCP",
                json!(1),
            ),
            (
                "linux.resources.memory.useHierarchy",
                "/linux/resources/memory/useHierarchy",
                json!(false),
            ),
            (
                "linux.resources.memory.checkBeforeUpdate",
                "/linux/resources/memory/checkBeforeUpdate",
                json!(true),
            ),
            (
                "linux.resources.cpu.idle",
                "/linux/resources/cpu/idle",
                json!(1),
            ),
            (
                "linux.resources.cpu.burst",
                "/linux/resources/cpu/burst",
                json!(1),
            ),
            ("process.commandLine", "/process/commandLine", json!("a b")),
            (
                "process.user.username",
                "/process/user/username",
                json!("u"),
            ),
            (
                "process.apparmorProfile",
                "/process/apparmorProfile",
                json!("docker-default"),
            ),
            (
                "process.selinuxLabel",
                "/process/selinuxLabel",
                json!("system_u:r:t:s0"),
            ),
            (
                "process.execCPUAffinity",
                "/process/execCPUAffinity",
                json!({"initial": "0"}),
            ),
        ];
        for (field, pointer, value) in cases {
            assert_eq!(
                refused(with(pointer, value)).as_deref(),
                Some(field),
                "{field}"
            );
        }
    }

    #[test]
    fn empty_values_and_what_the_kernel_always_does_pass() {
        assert_eq!(refused(|_| {}), None);
        assert_eq!(
            refused(|s| {
                s["process"]["apparmorProfile"] = json!("");
                s["process"]["selinuxLabel"] = json!("");
                s["process"]["user"]["username"] = json!("");
                s["linux"]["mountLabel"] = json!("");
                s["linux"]["intelRdt"] = json!({});
                s["linux"]["netDevices"] = json!({});
                s["linux"]["timeOffsets"] = json!({});
                s["linux"]["personality"] = json!({"domain": "LINUX32", "flags": []});
                s["linux"]["resources"] = json!({
                    "hugepageLimits": [], "network": {"priorities": []}, "rdma": {},
                    "memory": {"useHierarchy": true, "checkBeforeUpdate": false}
                });
            }),
            None
        );
    }

    #[test]
    fn refusals_say_what_and_why() {
        let s = spec_with(|s| s["linux"]["resources"] = json!({"rdma": {"d": {}}}));
        let e = spec(&s).unwrap_err().to_string();
        assert_eq!(
            e,
            "linux.resources.rdma is not supported: the rdma controller is not managed"
        );
    }
}
