//! Tests of spec validation: a minimal valid spec passes, and every rule refuses its bad input
//! with its own variant.

use super::*;
use serde_json::{json, Value};
use tempfile::TempDir;
use wire::zygote::{Device, DeviceKind, Namespace};

/// A minimal valid spec (as JSON, to be patched) with a real rootfs dir.
fn base() -> (TempDir, Value) {
    let dir = tempfile::tempdir().unwrap();
    let spec = json!({
        "ociVersion": "1.0.2",
        "process": { "args": ["sh"], "cwd": "/", "user": { "uid": 0, "gid": 0 } },
        "root": { "path": dir.path() },
        "linux": { "namespaces": [{ "type": "pid" }, { "type": "mount" }] }
    });
    (dir, spec)
}

fn run(patch: impl FnOnce(&mut Value)) -> Result<Validated, ValidateError> {
    let (_dir, mut value) = base();
    patch(&mut value);
    let spec: Spec = serde_json::from_value(value).expect("test spec must parse");
    validate("c1", &spec)
}

fn ok(patch: impl FnOnce(&mut Value)) -> Validated {
    run(patch).expect("spec should be valid")
}

fn err(patch: impl FnOnce(&mut Value)) -> ValidateError {
    run(patch).expect_err("spec should be refused")
}

#[test]
fn minimal_spec_passes_with_defaults() {
    let (dir, value) = base();
    let spec: Spec = serde_json::from_value(value).unwrap();
    let v = validate("c1", &spec).unwrap();
    assert_eq!(v.cgroup_path, Path::new("zagent/c1"));
    assert_eq!(v.resources, crate::cgroups::Resources::default());
    assert!(v.join_namespaces.is_empty());
    let c = &v.config;
    assert_eq!(c.id, "c1");
    assert_eq!(c.rootfs, dir.path());
    assert!(!c.readonly_root);
    assert_eq!(c.rootfs_propagation, ms(libc::MS_REC | libc::MS_SLAVE));
    let kinds: Vec<_> = c.namespaces.iter().map(|n| (n.kind, n.join)).collect();
    assert_eq!(
        kinds,
        [(NamespaceKind::Pid, false), (NamespaceKind::Mount, false)]
    );
    assert_eq!(c.devices.len(), 6);
    assert!(c.cgroup_procs.is_empty());
    assert_eq!(c.process.args, ["sh"]);
    assert_eq!(c.process.cwd, Path::new("/"));
    assert_eq!(c.process.capabilities, Capabilities::default());
    assert!(c.mounts.is_empty() && c.sysctl.is_empty() && c.hostname.is_none());
}

#[test]
fn id_must_be_a_safe_name() {
    let (_dir, value) = base();
    let spec: Spec = serde_json::from_value(value).unwrap();
    for id in ["", "..", "a/b", "a b", &"x".repeat(256)] {
        assert!(
            matches!(validate(id, &spec), Err(ValidateError::InvalidId(_))),
            "{id:?}"
        );
    }
    assert!(validate("abc-1_2+3.4", &spec).is_ok());
}

#[test]
fn process_is_required_with_args() {
    assert!(matches!(
        err(|s| s["process"] = Value::Null),
        ValidateError::MissingProcess
    ));
    assert!(matches!(
        err(|s| s["process"]["args"] = json!([])),
        ValidateError::EmptyArgs
    ));
    let absent = err(|s| {
        s["process"].as_object_mut().unwrap().remove("args");
    });
    assert!(matches!(absent, ValidateError::EmptyArgs));
    assert!(matches!(
        err(|s| s["process"]["args"] = json!(["", "x"])),
        ValidateError::EmptyArgs
    ));
}

#[test]
fn cwd_rules() {
    assert!(matches!(
        err(|s| s["process"]["cwd"] = json!("tmp")),
        ValidateError::RelativeCwd(_)
    ));
    for bad in [
        "/proc/self/fd",
        "/proc/self/fd/7",
        "/proc/thread-self/fd/3",
        "/proc/1/fd/4/x",
    ] {
        let e = err(|s| s["process"]["cwd"] = json!(bad));
        assert!(matches!(e, ValidateError::CwdInProcFd(_)), "{bad}");
    }
    assert_eq!(
        ok(|s| s["process"]["cwd"] = json!("")).config.process.cwd,
        Path::new("/")
    );
    let v = ok(|s| s["process"]["cwd"] = json!("/proc/self"));
    assert_eq!(v.config.process.cwd, Path::new("/proc/self"));
}

#[test]
fn nul_bytes_are_refused() {
    let e = err(|s| s["process"]["args"] = json!(["sh", "a\u{0}b"]));
    assert!(matches!(e, ValidateError::NulByte { ref field } if field == "process.args[1]"));
    let e = err(|s| s["process"]["env"] = json!(["A=\u{0}"]));
    assert!(matches!(e, ValidateError::NulByte { .. }));
    let e = err(|s| s["process"]["cwd"] = json!("/a\u{0}"));
    assert!(matches!(e, ValidateError::NulByte { .. }));
}

#[test]
fn root_rules() {
    assert!(matches!(
        err(|s| s["root"] = Value::Null),
        ValidateError::MissingRoot
    ));
    let e = err(|s| s["root"]["path"] = json!("rootfs"));
    assert!(matches!(e, ValidateError::RelativeRoot(_)));
    let e = err(|s| s["root"]["path"] = json!("/nonexistent/zagent/rootfs"));
    assert!(matches!(e, ValidateError::RootNotFound { .. }));
    let file = tempfile::NamedTempFile::new().unwrap();
    let e = err(|s| s["root"]["path"] = json!(file.path()));
    assert!(matches!(e, ValidateError::RootNotDirectory(_)));
    assert!(
        ok(|s| s["root"]["readonly"] = json!(true))
            .config
            .readonly_root
    );
}

#[test]
fn capabilities_become_masks() {
    let v = ok(|s| {
        s["process"]["capabilities"] = json!({
            "bounding": ["CAP_SYS_ADMIN", "CAP_KILL"],
            "effective": ["CAP_KILL"],
            "permitted": ["CAP_KILL", "CAP_CHOWN"],
            "inheritable": [],
        })
    });
    let caps = v.config.process.capabilities;
    let bit = |n: u32| 1u64 << n;
    assert_eq!(caps.bounding, bit(21) | bit(5));
    assert_eq!(caps.effective, bit(5));
    assert_eq!(caps.permitted, bit(5) | bit(0));
    assert_eq!((caps.inheritable, caps.ambient), (0, 0));
}

#[test]
fn every_capability_oci_knows_has_a_bit() {
    let names = [
        "AUDIT_CONTROL",
        "AUDIT_READ",
        "AUDIT_WRITE",
        "BLOCK_SUSPEND",
        "BPF",
        "CHECKPOINT_RESTORE",
        "CHOWN",
        "DAC_OVERRIDE",
        "DAC_READ_SEARCH",
        "FOWNER",
        "FSETID",
        "IPC_LOCK",
        "IPC_OWNER",
        "KILL",
        "LEASE",
        "LINUX_IMMUTABLE",
        "MAC_ADMIN",
        "MAC_OVERRIDE",
        "MKNOD",
        "NET_ADMIN",
        "NET_BIND_SERVICE",
        "NET_BROADCAST",
        "NET_RAW",
        "PERFMON",
        "SETGID",
        "SETFCAP",
        "SETPCAP",
        "SETUID",
        "SYS_ADMIN",
        "SYS_BOOT",
        "SYS_CHROOT",
        "SYS_MODULE",
        "SYS_NICE",
        "SYS_PACCT",
        "SYS_PTRACE",
        "SYS_RAWIO",
        "SYS_RESOURCE",
        "SYS_TIME",
        "SYS_TTY_CONFIG",
        "SYSLOG",
        "WAKE_ALARM",
    ];
    let all: Vec<String> = names.iter().map(|n| format!("CAP_{n}")).collect();
    let v = ok(|s| s["process"]["capabilities"] = json!({ "bounding": all }));
    assert_eq!(v.config.process.capabilities.bounding.count_ones(), 41);
    assert!(matches!(
        cap_bit("CAP_NOPE"),
        Err(ValidateError::UnknownCapability(_))
    ));
}

#[test]
fn unknown_names_do_not_even_parse() {
    // oci_spec's typed enums refuse unknown capability and rlimit names while parsing, so the
    // agent reports those as a bad spec before validation runs.
    let (_dir, mut value) = base();
    value["process"]["rlimits"] = json!([{ "type": "RLIMIT_NOPE", "soft": 1, "hard": 1 }]);
    assert!(serde_json::from_value::<Spec>(value.clone()).is_err());
    value["process"]["rlimits"] = json!([]);
    value["process"]["capabilities"] = json!({ "bounding": ["CAP_NOPE"] });
    assert!(serde_json::from_value::<Spec>(value).is_err());
}

#[test]
#[allow(clippy::unnecessary_cast)] // the libc constants are c_int on musl
fn rlimits_map_to_libc_numbers() {
    let v = ok(|s| {
        s["process"]["rlimits"] = json!([
            { "type": "RLIMIT_NOFILE", "soft": 1024, "hard": 4096 },
            { "type": "RLIMIT_RTTIME", "soft": 5, "hard": 5 },
        ])
    });
    let got: Vec<_> = v
        .config
        .process
        .rlimits
        .iter()
        .map(|r| (r.resource, r.soft, r.hard))
        .collect();
    let (nofile, rttime) = (libc::RLIMIT_NOFILE as u32, libc::RLIMIT_RTTIME as u32);
    assert_eq!(got, [(nofile, 1024, 4096), (rttime, 5, 5)]);
    let e = err(|s| {
        s["process"]["rlimits"] = json!([{ "type": "RLIMIT_NOFILE", "soft": 10, "hard": 5 }])
    });
    assert!(matches!(
        e,
        ValidateError::RlimitSoftAboveHard {
            soft: 10,
            hard: 5,
            ..
        }
    ));
}

#[test]
fn user_and_terminal_pass_through() {
    let v = ok(|s| {
        s["process"]["user"] =
            json!({ "uid": 1000, "gid": 100, "additionalGids": [5, 6], "umask": 18 });
        s["process"]["terminal"] = json!(true);
        s["process"]["noNewPrivileges"] = json!(true);
    });
    let p = &v.config.process;
    assert_eq!((p.uid, p.gid, p.umask), (1000, 100, Some(0o22)));
    assert_eq!(p.additional_gids, [5, 6]);
    assert!(p.terminal && p.no_new_privileges);
}

#[test]
fn oom_score_adj_range() {
    let v = ok(|s| s["process"]["oomScoreAdj"] = json!(-999));
    assert_eq!(v.config.oom_score_adj, Some(-999));
    let e = err(|s| s["process"]["oomScoreAdj"] = json!(1001));
    assert!(matches!(e, ValidateError::OomScoreAdj(1001)));
}

#[test]
fn namespaces_new_and_joined() {
    let v = ok(|s| {
        s["linux"]["namespaces"] = json!([
            { "type": "network", "path": "/var/run/netns/a" },
            { "type": "pid" }, { "type": "ipc" }, { "type": "uts" },
            { "type": "cgroup", "path": "/proc/1/ns/cgroup" }, { "type": "mount" },
        ])
    });
    let expect = [
        Namespace {
            kind: NamespaceKind::Network,
            join: true,
        },
        Namespace {
            kind: NamespaceKind::Pid,
            join: false,
        },
        Namespace {
            kind: NamespaceKind::Ipc,
            join: false,
        },
        Namespace {
            kind: NamespaceKind::Uts,
            join: false,
        },
        Namespace {
            kind: NamespaceKind::Cgroup,
            join: true,
        },
        Namespace {
            kind: NamespaceKind::Mount,
            join: false,
        },
    ];
    assert_eq!(v.config.namespaces, expect);
    let join = [
        (NamespaceKind::Network, PathBuf::from("/var/run/netns/a")),
        (NamespaceKind::Cgroup, PathBuf::from("/proc/1/ns/cgroup")),
    ];
    assert_eq!(v.join_namespaces, join);
    let only_mount = ok(|s| s["linux"]["namespaces"] = json!([{ "type": "mount" }]));
    let mount = Namespace {
        kind: NamespaceKind::Mount,
        join: false,
    };
    assert_eq!(only_mount.config.namespaces, [mount]);
}

#[test]
fn namespace_rules() {
    let ns = |list: Value| err(move |s| s["linux"]["namespaces"] = list);
    let e = ns(json!([{ "type": "pid" }, { "type": "pid" }]));
    assert!(matches!(e, ValidateError::DuplicateNamespace(_)));
    let e = ns(json!([{ "type": "time" }]));
    assert!(matches!(e, ValidateError::UnsupportedNamespace(_)));
    let e = ns(json!([{ "type": "pid" }]));
    assert!(matches!(e, ValidateError::MountNamespaceRequired));
    let e = err(|s| drop(s.as_object_mut().unwrap().remove("linux")));
    assert!(matches!(e, ValidateError::MountNamespaceRequired));
    let e = ns(json!([{ "type": "network", "path": "netns/a" }]));
    assert!(matches!(e, ValidateError::RelativeNamespacePath { .. }));
}

#[test]
fn unsupported_features_are_refused() {
    let e = err(|s| s["linux"]["seccomp"] = json!({ "defaultAction": "SCMP_ACT_NOTIFY" }));
    assert!(matches!(e, ValidateError::Seccomp(_)));
    ok(|s| s["hooks"] = json!({ "prestart": [], "poststop": [] }));
}

#[test]
fn hostname_needs_a_uts_namespace() {
    let e = err(|s| s["hostname"] = json!("box"));
    assert!(matches!(e, ValidateError::UtsNamespaceRequired("hostname")));
    let e = err(|s| s["domainname"] = json!("example.org"));
    assert!(matches!(
        e,
        ValidateError::UtsNamespaceRequired("domainname")
    ));
    assert_eq!(ok(|s| s["hostname"] = json!("")).config.hostname, None);
    let v = ok(|s| {
        s["hostname"] = json!("box");
        s["linux"]["namespaces"] = json!([{ "type": "uts" }, { "type": "mount" }]);
    });
    assert_eq!(v.config.hostname.as_deref(), Some("box"));
}

#[test]
fn rootfs_propagation_values() {
    let prop = |p: &str| run(|s| s["linux"]["rootfsPropagation"] = json!(p));
    assert_eq!(
        prop("").unwrap().config.rootfs_propagation,
        ms(libc::MS_REC | libc::MS_SLAVE)
    );
    assert_eq!(
        prop("private").unwrap().config.rootfs_propagation,
        ms(libc::MS_PRIVATE)
    );
    let rshared = prop("rshared").unwrap().config.rootfs_propagation;
    assert_eq!(rshared, ms(libc::MS_REC | libc::MS_SHARED));
    let runbindable = prop("runbindable").unwrap().config.rootfs_propagation;
    assert_eq!(runbindable, ms(libc::MS_REC | libc::MS_UNBINDABLE));
    assert!(matches!(
        prop("sideways"),
        Err(ValidateError::RootfsPropagation(_))
    ));
}

#[test]
fn masked_and_readonly_paths_must_be_absolute() {
    let v = ok(|s| {
        s["linux"]["maskedPaths"] = json!(["/proc/kcore"]);
        s["linux"]["readonlyPaths"] = json!(["/proc/sys"]);
    });
    assert_eq!(v.config.masked_paths, [PathBuf::from("/proc/kcore")]);
    assert_eq!(v.config.readonly_paths, [PathBuf::from("/proc/sys")]);
    let e = err(|s| s["linux"]["maskedPaths"] = json!(["proc/kcore"]));
    assert!(matches!(
        e,
        ValidateError::RelativePath {
            field: "linux.maskedPaths",
            ..
        }
    ));
    let e = err(|s| s["linux"]["readonlyPaths"] = json!(["sys"]));
    assert!(matches!(
        e,
        ValidateError::RelativePath {
            field: "linux.readonlyPaths",
            ..
        }
    ));
}

#[test]
fn sysctl_sorted_and_namespaced() {
    let v = ok(|s| {
        s["linux"]["namespaces"] =
            json!([{ "type": "network" }, { "type": "ipc" }, { "type": "mount" }]);
        s["linux"]["sysctl"] = json!({ "net.ipv4.ip_forward": "1", "kernel.shmmax": "1000", "fs.mqueue.msg_max": "20" });
    });
    let keys: Vec<_> = v.config.sysctl.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        ["fs.mqueue.msg_max", "kernel.shmmax", "net.ipv4.ip_forward"]
    );
    let e = err(|s| s["linux"]["sysctl"] = json!({ "net.ipv4.ip_forward": "1" }));
    assert!(matches!(
        e,
        ValidateError::SysctlNamespaceMissing {
            namespace: "network",
            ..
        }
    ));
    let e = err(|s| s["linux"]["sysctl"] = json!({ "vm.swappiness": "1" }));
    assert!(matches!(e, ValidateError::SysctlNotNamespaced(_)));
    let e = err(|s| s["linux"]["sysctl"] = json!({ "net/../../x": "1" }));
    assert!(matches!(e, ValidateError::SysctlKey(_)));
}

fn one_mount(m: Value) -> Result<Validated, ValidateError> {
    run(move |s| s["mounts"] = json!([m]))
}

#[test]
fn mounts_translate_options() {
    let v = run(|s| {
        s["mounts"] = json!([
            { "destination": "/proc", "type": "proc", "source": "proc" },
            { "destination": "/dev", "type": "tmpfs", "source": "tmpfs",
              "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] },
            { "destination": "/data", "type": "bind", "source": "/does/not/exist",
              "options": ["rbind", "ro", "rprivate"] },
            { "destination": "/x", "source": "/srv/x", "options": ["bind", "nosuid", "suid", "noexec", "rw"] },
        ])
    })
    .unwrap();
    let m = &v.config.mounts;
    assert_eq!(
        (m[0].fstype.as_deref(), m[0].source.as_deref(), m[0].flags),
        (Some("proc"), Some("proc"), 0)
    );
    assert_eq!(m[1].flags, ms(libc::MS_NOSUID | libc::MS_STRICTATIME));
    assert_eq!(m[1].data, "mode=755,size=65536k");
    assert_eq!(
        m[2].flags,
        ms(libc::MS_BIND | libc::MS_REC | libc::MS_RDONLY)
    );
    assert_eq!(m[2].propagation, [ms(libc::MS_PRIVATE | libc::MS_REC)]);
    assert_eq!(m[2].source.as_deref(), Some("/does/not/exist"));
    assert_eq!(m[3].flags, ms(libc::MS_BIND | libc::MS_NOEXEC));
    assert_eq!(m[3].fstype, None);
    assert_eq!(m[3].data, "");
}

#[test]
fn mount_rules() {
    let e = one_mount(json!({ "destination": "proc", "type": "proc" })).unwrap_err();
    assert!(matches!(
        e,
        ValidateError::MountDestination { index: 0, .. }
    ));
    let e = one_mount(json!({ "destination": "/a/../../b", "type": "proc" })).unwrap_err();
    assert!(matches!(e, ValidateError::MountDestination { .. }));
    let e = one_mount(json!({ "destination": "/a", "source": "x" })).unwrap_err();
    assert!(matches!(e, ValidateError::MountType { .. }));
    let e = one_mount(json!({ "destination": "/a", "type": "bind", "source": "rel" })).unwrap_err();
    assert!(matches!(e, ValidateError::BindSource { .. }));
    let e = one_mount(json!({ "destination": "/a", "type": "none", "options": ["rbind"] }))
        .unwrap_err();
    assert!(matches!(
        e,
        ValidateError::BindSource {
            host_path: None,
            ..
        }
    ));
    let tmpcopyup = json!({ "destination": "/a", "type": "tmpfs", "options": ["tmpcopyup"] });
    let e = one_mount(tmpcopyup).unwrap_err();
    assert!(matches!(e, ValidateError::MountOption { ref option, .. } if option == "tmpcopyup"));
    let e =
        one_mount(json!({ "destination": "/a", "type": "tmpfs", "options": ["rro"] })).unwrap_err();
    assert!(matches!(e, ValidateError::MountOption { .. }));
    let idmapped = json!({ "destination": "/a", "type": "bind", "source": "/b",
        "uidMappings": [{ "containerID": 0, "hostID": 1, "size": 1 }],
        "gidMappings": [{ "containerID": 0, "hostID": 1, "size": 1 }] });
    assert!(matches!(
        one_mount(idmapped).unwrap_err(),
        ValidateError::MountIdMapping { .. }
    ));
}

#[test]
fn default_devices_and_overrides() {
    let v = ok(|s| {
        s["linux"]["devices"] = json!([
            { "path": "/dev/null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o600, "uid": 5 },
            { "path": "/dev/fuse", "type": "u", "major": 10, "minor": 229 },
            { "path": "/dev/sda", "type": "b", "major": 8, "minor": 0, "gid": 6 },
            { "path": "/dev/pipe", "type": "p", "major": 3, "minor": 4 },
        ])
    });
    let d = &v.config.devices;
    let paths: Vec<_> = d.iter().map(|d| d.path.to_str().unwrap()).collect();
    assert_eq!(
        paths,
        [
            "/dev/random",
            "/dev/full",
            "/dev/tty",
            "/dev/zero",
            "/dev/urandom",
            "/dev/null",
            "/dev/fuse",
            "/dev/sda",
            "/dev/pipe"
        ]
    );
    let dev = |path: &str, kind, major, minor, mode, uid, gid| Device {
        path: PathBuf::from(path),
        kind,
        major,
        minor,
        mode,
        uid,
        gid,
    };
    assert_eq!(d[3], dev("/dev/zero", DeviceKind::Char, 1, 5, 0o666, 0, 0));
    assert_eq!(d[2], dev("/dev/tty", DeviceKind::Char, 5, 0, 0o666, 0, 0));
    assert_eq!(d[5], dev("/dev/null", DeviceKind::Char, 1, 3, 0o600, 5, 0));
    assert_eq!(
        d[6],
        dev("/dev/fuse", DeviceKind::Char, 10, 229, 0o666, 0, 0)
    );
    assert_eq!(d[7], dev("/dev/sda", DeviceKind::Block, 8, 0, 0o666, 0, 6));
    assert_eq!(d[8], dev("/dev/pipe", DeviceKind::Fifo, 0, 0, 0o666, 0, 0));
}

#[test]
fn device_rules() {
    let devs = |list: Value| err(move |s| s["linux"]["devices"] = list);
    let e = devs(json!([{ "path": "dev/x", "type": "c", "major": 1, "minor": 1 }]));
    assert!(matches!(e, ValidateError::DevicePath(_)));
    let e = devs(json!([{ "path": "/dev/../x", "type": "c", "major": 1, "minor": 1 }]));
    assert!(matches!(e, ValidateError::DevicePath(_)));
    let e = devs(json!([{ "path": "/dev/x", "type": "a", "major": 1, "minor": 1 }]));
    assert!(matches!(e, ValidateError::DeviceType { .. }));
    let e = devs(json!([{ "path": "/dev/x", "type": "c", "major": -1, "minor": 1 }]));
    assert!(matches!(e, ValidateError::DeviceNumber { major: -1, .. }));
    let twice = json!({ "path": "/dev/x", "type": "c", "major": 1, "minor": 1 });
    assert!(matches!(
        devs(json!([twice, twice])),
        ValidateError::DuplicateDevice(_)
    ));
}

#[test]
fn cgroups_path_rules() {
    let path = |p: &str| run(|s| s["linux"]["cgroupsPath"] = json!(p));
    assert_eq!(path("/kata/c1").unwrap().cgroup_path, Path::new("kata/c1"));
    assert_eq!(path("pods/x").unwrap().cgroup_path, Path::new("pods/x"));
    let e = path("system.slice:zagent:c1").unwrap_err();
    assert!(matches!(e, ValidateError::SystemdCgroupsPath(_)));
    assert!(matches!(
        path("/a/../b").unwrap_err(),
        ValidateError::CgroupsPath { .. }
    ));
    assert!(matches!(
        path("/").unwrap_err(),
        ValidateError::CgroupsPath { .. }
    ));
    assert!(matches!(
        path("").unwrap_err(),
        ValidateError::CgroupsPath { .. }
    ));
    assert!(matches!(
        path("//a").unwrap_err(),
        ValidateError::CgroupsPath { .. }
    ));
}

fn resources(r: Value) -> Result<crate::cgroups::Resources, ValidateError> {
    run(move |s| s["linux"]["resources"] = r).map(|v| v.resources)
}

#[test]
fn resources_convert() {
    let r = resources(json!({
        "memory": { "limit": 67108864, "swap": 134217728 },
        "pids": { "limit": 10 },
        "cpu": { "shares": 512, "quota": 50000, "period": 100000, "cpus": "0-1", "mems": "0" }
    }))
    .unwrap();
    let expect = crate::cgroups::Resources {
        memory_limit: Some(64 << 20),
        memory_swap: Some(128 << 20),
        pids_limit: Some(10),
        cpu_shares: Some(512),
        memory_reservation: None,
        memory_swappiness: None,
        memory_disable_oom_killer: false,
        cpu_quota: Some(50_000),
        cpu_period: Some(100_000),
        cpuset_cpus: Some("0-1".into()),
        cpuset_mems: Some("0".into()),
        devices: Vec::new(),
    };
    assert_eq!(r, expect);
    let unlimited = resources(
        json!({ "memory": { "limit": -1, "swap": 0 }, "pids": { "limit": 0 },
        "cpu": { "quota": -1, "shares": 0, "cpus": "" } }),
    )
    .unwrap();
    assert_eq!(
        (unlimited.memory_limit, unlimited.memory_swap),
        (Some(-1), None)
    );
    assert_eq!(
        (unlimited.pids_limit, unlimited.cpu_quota),
        (Some(-1), Some(-1))
    );
    assert_eq!((unlimited.cpu_shares, unlimited.cpuset_cpus), (None, None));
}

#[test]
fn resource_nonsense_is_refused() {
    let bad = |r: Value, field: &str| match resources(r) {
        Err(ValidateError::Resource { field: f, .. }) => assert_eq!(f, field),
        other => panic!("expected a {field} error, got {other:?}"),
    };
    bad(json!({ "memory": { "limit": -2 } }), "memory.limit");
    bad(
        json!({ "memory": { "limit": 100, "swap": 50 } }),
        "memory.swap",
    );
    bad(json!({ "memory": { "swap": 50 } }), "memory.swap");
    bad(json!({ "pids": { "limit": -5 } }), "pids.limit");
    bad(json!({ "cpu": { "shares": 1 } }), "cpu.shares");
    bad(json!({ "cpu": { "shares": 300000 } }), "cpu.shares");
    bad(json!({ "cpu": { "quota": 500 } }), "cpu.quota");
    bad(json!({ "cpu": { "quota": -2 } }), "cpu.quota");
    bad(json!({ "cpu": { "period": 100 } }), "cpu.period");
    bad(json!({ "cpu": { "cpus": "3-1" } }), "cpu.cpus");
    bad(json!({ "cpu": { "cpus": "0,,1" } }), "cpu.cpus");
    bad(json!({ "cpu": { "mems": "a" } }), "cpu.mems");
    assert!(resources(json!({ "cpu": { "cpus": "0-3,5,7-8" } })).is_ok());
}

#[test]
fn device_rules_keep_their_order_and_always_allow_the_basics() {
    let v = ok(|s| {
        s["linux"]["resources"] = json!({ "devices": [
            { "allow": false, "access": "rwm" },
            { "allow": true, "type": "c", "major": 10, "minor": 200, "access": "rw" }
        ]});
        s["linux"]["devices"] =
            json!([{ "path": "/dev/fuse", "type": "c", "major": 10, "minor": 229 }]);
    });
    let lines: Vec<(bool, String)> = v
        .resources
        .devices
        .iter()
        .map(|r| (r.allow, r.v1_line()))
        .collect();
    assert_eq!(lines[0], (false, "a".to_string()));
    assert_eq!(lines[1], (true, "c 10:200 rw".to_string()));
    assert!(
        lines.contains(&(true, "c 1:3 rwm".to_string())),
        "/dev/null always allowed"
    );
    assert!(
        lines.contains(&(true, "c 136:* rwm".to_string())),
        "pts always allowed"
    );
    assert!(
        lines.contains(&(true, "c *:* m".to_string()))
            && lines.contains(&(true, "b *:* m".to_string())),
        "mknod of any node allowed (runc)"
    );
    assert!(
        !lines
            .iter()
            .any(|(_, l)| l == "c 10:229 rwm" || l == "c 5:1 rwm"),
        "linux.devices get no rule of their own, and no console rule (runc 1.1.5): {lines:?}"
    );
    assert!(
        ok(|_| {}).resources.devices.is_empty(),
        "no rules: the inherited ones stay"
    );
    assert!(matches!(
        err(|s| s["linux"]["resources"] =
            json!({ "devices": [{ "allow": false, "access": "rwx" }] })),
        ValidateError::Resource { .. }
    ));
}

#[test]
fn id_minus_one_is_refused_everywhere_it_could_mean_unchanged() {
    let uid = err(|v| v["process"]["user"]["uid"] = json!(4294967295u32));
    assert!(matches!(
        uid,
        ValidateError::ReservedId {
            field: "process.user.uid",
            ..
        }
    ));
    let gid = err(|v| v["process"]["user"]["gid"] = json!(4294967295u32));
    assert!(matches!(
        gid,
        ValidateError::ReservedId {
            field: "process.user.gid",
            ..
        }
    ));
    let extra = err(|v| v["process"]["user"]["additionalGids"] = json!([5, 4294967295u32]));
    assert!(matches!(
        extra,
        ValidateError::ReservedId {
            field: "process.user.additionalGids",
            ..
        }
    ));
    ok(|v| v["process"]["user"]["uid"] = json!(4294967294u32));
}
