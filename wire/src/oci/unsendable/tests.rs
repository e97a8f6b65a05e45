//! Every field of runtime-spec 1.2's config.md and config-linux.md, set alone in a spec: either
//! the agent receives it as config.json had it (through its protobuf slot or its `io.zagent.`
//! annotation), or zagent-ctl refuses the spec naming it. A field that neither happens to is
//! silently lost, and fails this test.

use super::*;
use serde_json::{json, Value};

enum Expect {
    /// Reaches the agent unchanged.
    Sent,
    /// Refused; the message names this.
    Refused(&'static str),
    /// Dropped on the way, but the value is what the agent does without it.
    SameAsAbsent,
}
use Expect::*;

fn base() -> Value {
    json!({
        "ociVersion": "1.2.0",
        "process": { "args": ["sh"], "cwd": "/", "user": { "uid": 0, "gid": 0 } },
        "root": { "path": "/rootfs" },
        "linux": {}
    })
}

/// Sets `pointer` (every parent an object, made as needed) to `value`.
fn set(root: &mut Value, pointer: &str, value: Value) {
    let mut at = root;
    let parts: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
    for part in &parts[..parts.len() - 1] {
        if at.get(*part).is_none() {
            at[*part] = json!({});
        }
        at = &mut at[*part];
    }
    at[parts[parts.len() - 1]] = value;
}

fn cases() -> Vec<(&'static str, Value, Expect)> {
    let hook = json!([{"path": "/bin/true", "args": ["true"], "env": ["A=1"], "timeout": 5}]);
    let mapping = json!([{"containerID": 0, "hostID": 1000, "size": 10}]);
    let dev = json!({"major": 8, "minor": 0, "rate": 1000});
    vec![
        ("/ociVersion", json!("1.2.0"), Sent),
        ("/root/readonly", json!(true), Sent),
        ("/hostname", json!("h"), Sent),
        ("/domainname", json!("example.org"), Sent),
        ("/annotations", json!({"a": "b"}), Sent),
        ("/solaris", json!({"milestone": "m"}), Refused("solaris")),
        (
            "/windows",
            json!({"layerFolders": ["l"]}),
            Refused("windows"),
        ),
        ("/vm", json!({"kernel": {"path": "/k"}}), Refused("vm")),
        ("/zos", json!({"namespaces": []}), Refused("zos")),
        ("/hooks/prestart", hook.clone(), Sent),
        ("/hooks/createRuntime", hook.clone(), Sent),
        ("/hooks/createContainer", hook.clone(), Sent),
        ("/hooks/startContainer", hook.clone(), Sent),
        ("/hooks/poststart", hook.clone(), Sent),
        ("/hooks/poststop", hook, Sent),
        (
            "/mounts",
            json!([{"destination": "/m", "type": "tmpfs", "source": "tmpfs",
                            "options": ["ro", "rnosuid"]}]),
            Sent,
        ),
        (
            "/mounts",
            json!([{"destination": "/m", "type": "bind", "source": "/s",
                            "uidMappings": mapping, "gidMappings": mapping}]),
            Refused("mounts[0].uidMappings"),
        ),
        // process
        ("/process/terminal", json!(true), Sent),
        (
            "/process/consoleSize",
            json!({"height": 24, "width": 80}),
            Sent,
        ),
        ("/process/cwd", json!("/tmp"), Sent),
        ("/process/env", json!(["A=1"]), Sent),
        ("/process/args", json!(["sh", "-c", "true"]), Sent),
        (
            "/process/commandLine",
            json!("sh -c true"),
            Refused("process.commandLine"),
        ),
        (
            "/process/rlimits",
            json!([{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 20}]),
            Sent,
        ),
        ("/process/apparmorProfile", json!("p"), Sent),
        (
            "/process/capabilities",
            json!({"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"],
            "inheritable": ["CAP_KILL"], "permitted": ["CAP_KILL"], "ambient": ["CAP_KILL"]}),
            Sent,
        ),
        ("/process/noNewPrivileges", json!(true), Sent),
        ("/process/oomScoreAdj", json!(100), Sent),
        ("/process/oomScoreAdj", json!(0), SameAsAbsent),
        (
            "/process/scheduler",
            json!({"policy": "SCHED_FIFO", "priority": 5,
                                      "flags": ["SCHED_RESET_ON_FORK"]}),
            Sent,
        ),
        ("/process/selinuxLabel", json!("l"), Sent),
        (
            "/process/ioPriority",
            json!({"class": "IOPRIO_CLASS_IDLE", "priority": 7}),
            Sent,
        ),
        (
            "/process/execCPUAffinity",
            json!({"initial": "0"}),
            Refused("execCPUAffinity"),
        ),
        ("/process/user/uid", json!(1000), Sent),
        ("/process/user/gid", json!(1000), Sent),
        ("/process/user/umask", json!(0o077), Sent),
        ("/process/user/additionalGids", json!([5, 6]), Sent),
        ("/process/user/username", json!("u"), Sent),
        // linux
        (
            "/linux/namespaces",
            json!([{"type": "pid"}, {"type": "network", "path": "/n"}]),
            Sent,
        ),
        ("/linux/uidMappings", mapping.clone(), Sent),
        ("/linux/gidMappings", mapping, Sent),
        (
            "/linux/timeOffsets",
            json!({"monotonic": {"secs": 1}}),
            Refused("timeOffsets"),
        ),
        (
            "/linux/devices",
            json!([{"path": "/dev/x", "type": "c", "major": 1, "minor": 2,
                                   "fileMode": 0o600, "uid": 1, "gid": 2}]),
            Sent,
        ),
        (
            "/linux/devices",
            json!([{"path": "/dev/x", "type": "c", "major": 1, "minor": 2,
                                   "fileMode": 0}]),
            Refused("fileMode 0"),
        ),
        ("/linux/cgroupsPath", json!("/a/b"), Sent),
        (
            "/linux/resources/devices",
            json!([{"allow": false, "type": "c", "major": 1,
                                             "minor": 3, "access": "rwm"}]),
            Sent,
        ),
        (
            "/linux/resources/memory",
            json!({"limit": 1, "reservation": 2, "swap": 3,
            "kernel": 4, "kernelTCP": 5, "swappiness": 6, "disableOOMKiller": true}),
            Sent,
        ),
        (
            "/linux/resources/memory/swappiness",
            json!(0),
            Refused("swappiness 0"),
        ),
        (
            "/linux/resources/memory/useHierarchy",
            json!(false),
            Refused("useHierarchy"),
        ),
        (
            "/linux/resources/memory/useHierarchy",
            json!(true),
            SameAsAbsent,
        ),
        (
            "/linux/resources/memory/checkBeforeUpdate",
            json!(true),
            Refused("checkBeforeUpdate"),
        ),
        (
            "/linux/resources/memory/checkBeforeUpdate",
            json!(false),
            SameAsAbsent,
        ),
        (
            "/linux/resources/cpu",
            json!({"shares": 1, "quota": 2, "period": 3,
            "realtimeRuntime": 4, "realtimePeriod": 5, "cpus": "0", "mems": "0"}),
            Sent,
        ),
        ("/linux/resources/cpu/burst", json!(1), Refused("cpu.burst")),
        ("/linux/resources/cpu/idle", json!(1), Refused("cpu.idle")),
        (
            "/linux/resources/blockIO",
            json!({"weight": 10, "leafWeight": 20,
            "weightDevice": [{"major": 8, "minor": 0, "weight": 30, "leafWeight": 40}],
            "throttleReadBpsDevice": [dev], "throttleWriteBpsDevice": [dev],
            "throttleReadIOPSDevice": [dev], "throttleWriteIOPSDevice": [dev]}),
            Sent,
        ),
        (
            "/linux/resources/hugepageLimits",
            json!([{"pageSize": "2MB", "limit": 1}]),
            Sent,
        ),
        (
            "/linux/resources/network",
            json!({"classID": 1,
            "priorities": [{"name": "lo", "priority": 2}]}),
            Sent,
        ),
        ("/linux/resources/pids", json!({"limit": 10}), Sent),
        (
            "/linux/resources/rdma",
            json!({"mlx": {"hcaHandles": 1}}),
            Refused("rdma"),
        ),
        (
            "/linux/resources/unified",
            json!({"pids.max": "1"}),
            Refused("unified"),
        ),
        ("/linux/intelRdt", json!({"l3CacheSchema": "L3:0=f"}), Sent),
        (
            "/linux/intelRdt",
            json!({"closID": "c"}),
            Refused("intelRdt"),
        ),
        (
            "/linux/intelRdt",
            json!({"memBwSchema": "MB:0=1"}),
            Refused("intelRdt"),
        ),
        (
            "/linux/intelRdt",
            json!({"enableMonitoring": true}),
            Refused("intelRdt"),
        ),
        ("/linux/sysctl", json!({"net.ipv4.ip_forward": "1"}), Sent),
        (
            "/linux/seccomp",
            json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
            "architectures": ["SCMP_ARCH_X86_64"], "flags": ["SECCOMP_FILTER_FLAG_LOG"],
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 95,
                "args": [{"index": 1, "value": 2, "valueTwo": 3, "op": "SCMP_CMP_MASKED_EQ"}]}]}),
            Sent,
        ),
        (
            "/linux/seccomp",
            json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/l"}),
            Refused("listenerPath"),
        ),
        (
            "/linux/seccomp",
            json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerMetadata": "m"}),
            Refused("listenerMetadata"),
        ),
        ("/linux/rootfsPropagation", json!("rslave"), Sent),
        ("/linux/maskedPaths", json!(["/proc/kcore"]), Sent),
        ("/linux/readonlyPaths", json!(["/proc/sys"]), Sent),
        ("/linux/mountLabel", json!("l"), Sent),
        ("/linux/personality", json!({"domain": "LINUX32"}), Sent),
        (
            "/linux/memoryPolicy",
            json!({"mode": "MPOL_BIND", "nodes": "0"}),
            Refused("memoryPolicy"),
        ),
        (
            "/linux/netDevices",
            json!({"eth1": {"name": "eth9"}}),
            Refused("netDevices"),
        ),
    ]
}

#[test]
fn every_field_reaches_the_agent_or_is_refused_by_name() {
    let mut failures = Vec::new();
    for (pointer, value, expect) in cases() {
        let mut json = base();
        set(&mut json, pointer, value.clone());
        let spec: Spec = serde_json::from_value(json)
            .unwrap_or_else(|e| panic!("{pointer} = {value}: the test spec must parse: {e}"));
        let sent = crate::oci::spec_to_grpc(&spec);
        let back = crate::oci::spec_from_grpc(&sent).expect("converts back");
        let at = |s: &Spec| serde_json::to_value(s).unwrap().pointer(pointer).cloned();
        let outcome = match (check_sendable(&spec), expect) {
            (Err(e), Refused(name)) if e.to_string().contains(name) => continue,
            (Err(e), _) => format!("refused: {e}"),
            (Ok(()), Sent) if at(&back) == at(&spec) => continue,
            (Ok(()), SameAsAbsent) if at(&back) != at(&spec) => continue,
            (Ok(()), _) => format!("sent, and the agent gets {:?}", at(&back)),
        };
        failures.push(format!("{pointer} = {value}: {outcome}"));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_refusal_names_the_field_and_why() {
    let mut json = base();
    set(&mut json, "/linux/resources/cpu/idle", json!(1));
    let spec: Spec = serde_json::from_value(json).unwrap();
    let e = check_sendable(&spec).unwrap_err().to_string();
    assert_eq!(
        e,
        format!("linux.resources.cpu.idle cannot be sent to the agent: {NO_SLOT}")
    );
}
