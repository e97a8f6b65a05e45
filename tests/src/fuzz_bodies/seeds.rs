//! Seed inputs for the fuzz corpora: real messages of each kind, encoded the way they travel,
//! so that the fuzzer starts past the decoders and inside conversion and validation. Written out
//! by `cargo run -p tests --example fuzz_seeds -- fuzz/corpus`; the replay test checks that each
//! seed still reaches the stage it was made for.

use oci_spec::runtime::{
    BoxBuilder, LinuxBuilder, LinuxCpuBuilder, LinuxDeviceBuilder, LinuxDeviceCgroupBuilder,
    LinuxDeviceType, LinuxMemoryBuilder, LinuxNamespaceBuilder, LinuxNamespaceType,
    LinuxPidsBuilder, LinuxResourcesBuilder, MountBuilder, PosixRlimitBuilder, PosixRlimitType,
    Process, RootBuilder, Spec, UserBuilder,
};
use protobuf::Message;
use std::collections::HashMap;
use wire::zygote::{ChildEvent, ExecConfig, Reply, Request, PROTOCOL_VERSION};
use wire::{agent, codec, health, oci, types, zagent};

/// One seed file: the target (corpus directory) it belongs to, its file name and its bytes.
pub struct Seed {
    pub target: &'static str,
    pub name: String,
    pub data: Vec<u8>,
}

/// Every seed of every target.
pub fn all() -> Vec<Seed> {
    let mut out = zygote_frames();
    out.extend(oci_specs());
    out.extend(ttrpc_requests());
    out
}

fn seed(target: &'static str, name: &str, data: Vec<u8>) -> Seed {
    Seed {
        target,
        name: format!("seed-{name}"),
        data,
    }
}

/// The runc-style default spec that `zagent-ctl spec` also starts from, with an existing,
/// absolute root so that validation goes all the way.
pub fn default_spec() -> Spec {
    let mut spec = Spec::default();
    spec.set_root(Some(
        RootBuilder::default().path("/").build().expect("root"),
    ));
    spec
}

/// A spec that exercises most of what validation converts: a terminal, rlimits, a bind and a
/// tmpfs mount, devices, device cgroup rules, limits, a sysctl, a cgroups path and a joined
/// network namespace.
pub fn rich_spec() -> Spec {
    let mut spec = default_spec();
    spec.set_process(Some(rich_process()));
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    mounts.push(
        MountBuilder::default()
            .destination("/mnt")
            .typ("bind")
            .source("/tmp")
            .options(vec!["rbind".into(), "ro".into(), "nosuid".into()])
            .build()
            .expect("bind mount"),
    );
    mounts.push(
        MountBuilder::default()
            .destination("/scratch")
            .typ("tmpfs")
            .source("tmpfs")
            .options(vec![
                "size=64k".into(),
                "mode=755".into(),
                "rprivate".into(),
            ])
            .build()
            .expect("tmpfs mount"),
    );
    spec.set_mounts(Some(mounts));
    spec.set_linux(Some(rich_linux()));
    spec
}

/// The default spec with a small seccomp profile (an extra architecture, a flag, an errno and
/// a rule with argument conditions), so that validation compiles a filter.
pub fn seccomp_spec() -> Spec {
    let mut spec = default_spec();
    let profile = serde_json::json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
        "flags": ["SECCOMP_FILTER_FLAG_LOG"],
        "syscalls": [
            { "names": ["read", "write", "exit_group"], "action": "SCMP_ACT_ALLOW" },
            { "names": ["personality"], "action": "SCMP_ACT_ALLOW",
              "args": [{ "index": 0, "value": 0, "op": "SCMP_CMP_EQ" },
                       { "index": 0, "value": 8, "op": "SCMP_CMP_EQ" }] },
            { "names": ["clone"], "action": "SCMP_ACT_ALLOW",
              "args": [{ "index": 0, "value": 2114060288, "valueTwo": 0,
                         "op": "SCMP_CMP_MASKED_EQ" }] },
            { "names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 42 }
        ]
    });
    let mut linux = spec.linux().clone().unwrap_or_default();
    linux.set_seccomp(Some(
        serde_json::from_value(profile).expect("seed seccomp profile"),
    ));
    spec.set_linux(Some(linux));
    spec
}

fn rich_linux() -> oci_spec::runtime::Linux {
    let default = oci_spec::runtime::Linux::default();
    let mut namespaces = default.namespaces().clone().unwrap_or_default();
    namespaces.retain(|n| n.typ() != LinuxNamespaceType::Network);
    namespaces.push(
        LinuxNamespaceBuilder::default()
            .typ(LinuxNamespaceType::Network)
            .path("/proc/1/ns/net")
            .build()
            .expect("namespace"),
    );
    let devices = vec![
        LinuxDeviceBuilder::default()
            .path("/dev/fuse")
            .typ(LinuxDeviceType::C)
            .major(10)
            .minor(229)
            .file_mode(0o666u32)
            .build()
            .expect("device"),
        LinuxDeviceBuilder::default()
            .path("/dev/pipe")
            .typ(LinuxDeviceType::P)
            .build()
            .expect("fifo"),
    ];
    let rules = vec![
        LinuxDeviceCgroupBuilder::default()
            .allow(false)
            .access("rwm")
            .build()
            .expect("deny all"),
        LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(LinuxDeviceType::C)
            .major(1)
            .minor(3)
            .access("rw")
            .build()
            .expect("allow null"),
    ];
    let resources = LinuxResourcesBuilder::default()
        .devices(rules)
        .memory(
            LinuxMemoryBuilder::default()
                .limit(64i64 << 20)
                .swap(128i64 << 20)
                .build()
                .expect("memory"),
        )
        .pids(LinuxPidsBuilder::default().limit(64).build().expect("pids"))
        .cpu(
            LinuxCpuBuilder::default()
                .shares(512u64)
                .quota(50_000i64)
                .period(100_000u64)
                .cpus("0")
                .mems("0")
                .build()
                .expect("cpu"),
        )
        .build()
        .expect("resources");
    LinuxBuilder::default()
        .namespaces(namespaces)
        .devices(devices)
        .resources(resources)
        .cgroups_path("/zagent/fuzz-seed")
        .sysctl(HashMap::from([("net.ipv4.ip_forward".into(), "1".into())]))
        .rootfs_propagation("rslave")
        .masked_paths(default.masked_paths().clone().unwrap_or_default())
        .readonly_paths(default.readonly_paths().clone().unwrap_or_default())
        .build()
        .expect("linux")
}

/// A process with everything ExecProcess can carry.
pub fn rich_process() -> Process {
    let mut p = Process::default();
    p.set_terminal(Some(true))
        .set_console_size(Some(
            BoxBuilder::default()
                .height(24u64)
                .width(80u64)
                .build()
                .expect("box"),
        ))
        .set_user(
            UserBuilder::default()
                .uid(1000u32)
                .gid(1000u32)
                .additional_gids(vec![10u32, 20])
                .build()
                .expect("user"),
        )
        .set_args(Some(vec!["/bin/sh".into(), "-c".into(), "echo hi".into()]))
        .set_env(Some(vec!["PATH=/bin:/usr/bin".into(), "HOME=/root".into()]))
        .set_cwd("/tmp".into())
        .set_rlimits(Some(vec![
            PosixRlimitBuilder::default()
                .typ(PosixRlimitType::RlimitNofile)
                .soft(1024u64)
                .hard(4096u64)
                .build()
                .expect("rlimit"),
            PosixRlimitBuilder::default()
                .typ(PosixRlimitType::RlimitNproc)
                .soft(100u64)
                .hard(100u64)
                .build()
                .expect("rlimit"),
        ]))
        .set_oom_score_adj(Some(100));
    p
}

fn frame<T: serde::Serialize>(msg: &T) -> Vec<u8> {
    codec::encode(msg).expect("seed frame")
}

fn zygote_frames() -> Vec<Seed> {
    let t = "zygote_frame";
    let launch = |spec: &Spec| {
        let v = jail::validate::validate("seed", spec).expect("seed spec validates");
        Request::Launch(Box::new(v.config))
    };
    let exec = ExecConfig {
        container_id: "seed".into(),
        exec_id: "exec-1".into(),
        namespaces: vec![wire::zygote::NamespaceKind::Mount],
        cgroup_procs: vec!["/sys/fs/cgroup/zagent/seed/cgroup.procs".into()],
        oom_score_adj: Some(0),
        process: jail::validate::process_config(&rich_process()).expect("seed process"),
        console_size: Some((24, 80)),
        test_pause_before_exec_ms: 0,
    };
    let failed = ChildEvent::Failed {
        step: "mount".into(),
        errno: libc::ENOENT,
        message: "mounting /proc".into(),
    };
    let refused = Reply::Refused {
        errno: libc::EINVAL,
        message: "expected 5 fds, got 4".into(),
    };
    let hello = Request::Hello {
        version: PROTOCOL_VERSION,
    };
    vec![
        seed(t, "request-hello", frame(&hello)),
        seed(t, "request-launch-default", frame(&launch(&default_spec()))),
        seed(t, "request-launch-rich", frame(&launch(&rich_spec()))),
        seed(t, "request-exec", frame(&Request::Exec(Box::new(exec)))),
        seed(t, "reply-hello", frame(&Reply::Hello { version: 1 })),
        seed(t, "reply-launched", frame(&Reply::Launched { pid: 1234 })),
        seed(t, "reply-refused", frame(&refused)),
        seed(t, "event-started", frame(&ChildEvent::Started)),
        seed(t, "event-console", frame(&ChildEvent::Console)),
        seed(t, "event-ready", frame(&ChildEvent::Ready)),
        seed(t, "event-failed", frame(&failed)),
    ]
}

fn tagged(tag: u8, msg: &impl Message) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend(msg.write_to_bytes().expect("seed message"));
    out
}

fn oci_specs() -> Vec<Seed> {
    let t = "oci_spec";
    vec![
        seed(
            t,
            "spec-default",
            tagged(0, &oci::spec_to_grpc(&default_spec())),
        ),
        seed(t, "spec-rich", tagged(0, &oci::spec_to_grpc(&rich_spec()))),
        seed(
            t,
            "spec-seccomp",
            tagged(0, &oci::spec_to_grpc(&seccomp_spec())),
        ),
        seed(t, "spec-empty", vec![0]),
        seed(
            t,
            "process-default",
            tagged(1, &oci::process_to_grpc(&Process::default())),
        ),
        seed(
            t,
            "process-rich",
            tagged(1, &oci::process_to_grpc(&rich_process())),
        ),
    ]
}

/// The index of `path` in `fuzz_bodies::RPCS`, as the selector byte of the ttrpc target.
pub fn rpc_tag(path: &str) -> u8 {
    let i = super::RPCS.iter().position(|r| r.path == path);
    u8::try_from(i.expect("served rpc")).expect("fewer than 256 rpcs")
}

/// The selector byte of a whole ttrpc envelope.
pub fn envelope_tag() -> u8 {
    u8::try_from(super::RPCS.len()).expect("fewer than 256 rpcs")
}

fn ttrpc_requests() -> Vec<Seed> {
    let mut out = Vec::new();
    for (path, payload) in rpc_payloads() {
        let method = path.rsplit('/').next().expect("method");
        let mut data = vec![rpc_tag(path)];
        data.extend(&payload);
        out.push(seed("ttrpc_request", method, data));
        let (service, _) = path[1..].split_once('/').expect("service/method");
        let envelope = ttrpc::Request {
            service: service.into(),
            method: method.into(),
            payload,
            timeout_nano: 5_000_000_000,
            ..Default::default()
        };
        let name = format!("envelope-{method}");
        out.push(seed(
            "ttrpc_request",
            &name,
            tagged(envelope_tag(), &envelope),
        ));
    }
    out
}

fn bytes(msg: &impl Message) -> Vec<u8> {
    msg.write_to_bytes().expect("seed message")
}

/// One realistic request per served RPC, encoded.
fn rpc_payloads() -> Vec<(&'static str, Vec<u8>)> {
    let create = agent::CreateContainerRequest {
        container_id: "c1".into(),
        exec_id: "c1".into(),
        OCI: Some(oci::spec_to_grpc(&rich_spec())).into(),
        ..Default::default()
    };
    let exec = agent::ExecProcessRequest {
        container_id: "c1".into(),
        exec_id: "e1".into(),
        process: Some(oci::process_to_grpc(&rich_process())).into(),
        ..Default::default()
    };
    let ids = |id: &str, exec_id: &str| (id.to_string(), exec_id.to_string());
    let (c, e) = ids("c1", "e1");
    vec![
        ("/grpc.AgentService/CreateContainer", bytes(&create)),
        (
            "/grpc.AgentService/StartContainer",
            bytes(&agent::StartContainerRequest {
                container_id: c.clone(),
                ..Default::default()
            }),
        ),
        (
            "/grpc.AgentService/SignalProcess",
            bytes(&agent::SignalProcessRequest {
                container_id: c.clone(),
                exec_id: e.clone(),
                signal: 15,
                ..Default::default()
            }),
        ),
        (
            "/grpc.AgentService/WaitProcess",
            bytes(&agent::WaitProcessRequest {
                container_id: c.clone(),
                exec_id: e.clone(),
                ..Default::default()
            }),
        ),
        (
            "/grpc.AgentService/RemoveContainer",
            bytes(&agent::RemoveContainerRequest {
                container_id: c.clone(),
                timeout: 10,
                ..Default::default()
            }),
        ),
        (
            "/grpc.AgentService/WriteStdin",
            bytes(&agent::WriteStreamRequest {
                container_id: c.clone(),
                exec_id: e.clone(),
                data: b"echo hello\n".to_vec(),
                ..Default::default()
            }),
        ),
        (
            "/grpc.AgentService/ReadStdout",
            bytes(&agent::ReadStreamRequest {
                container_id: c.clone(),
                exec_id: e.clone(),
                len: 65536,
                ..Default::default()
            }),
        ),
        (
            "/grpc.AgentService/ReadStderr",
            bytes(&agent::ReadStreamRequest {
                container_id: c.clone(),
                exec_id: String::new(),
                len: 4096,
                ..Default::default()
            }),
        ),
        (
            "/grpc.AgentService/CloseStdin",
            bytes(&agent::CloseStdinRequest {
                container_id: c.clone(),
                exec_id: e.clone(),
                ..Default::default()
            }),
        ),
        (
            "/grpc.AgentService/CreateSandbox",
            bytes(&agent::CreateSandboxRequest {
                hostname: "sandbox".into(),
                dns: vec!["nameserver 192.0.2.53".into()],
                sandbox_id: "sb1".into(),
                ..Default::default()
            }),
        ),
        (
            "/grpc.AgentService/DestroySandbox",
            bytes(&agent::DestroySandboxRequest::default()),
        ),
        ("/grpc.AgentService/ExecProcess", bytes(&exec)),
        (
            "/grpc.AgentService/TtyWinResize",
            bytes(&agent::TtyWinResizeRequest {
                container_id: c,
                exec_id: e,
                row: 40,
                column: 120,
                ..Default::default()
            }),
        ),
        (
            "/grpc.Health/Check",
            bytes(&health::CheckRequest {
                service: "agent".into(),
                ..Default::default()
            }),
        ),
        (
            "/grpc.Health/Version",
            bytes(&health::CheckRequest::default()),
        ),
        (
            "/zagent.Admin/ListContainers",
            bytes(&zagent::ListContainersRequest::default()),
        ),
        (
            "/grpc.AgentService/GetGuestDetails",
            bytes(&agent::GuestDetailsRequest {
                mem_block_size: true,
                mem_hotplug_probe: true,
                ..Default::default()
            }),
        ),
        (
            "/grpc.AgentService/PauseContainer",
            bytes(&agent::PauseContainerRequest {
                container_id: "c1".into(),
                ..Default::default()
            }),
        ),
        (
            "/grpc.AgentService/ResumeContainer",
            bytes(&agent::ResumeContainerRequest {
                container_id: "c1".into(),
                ..Default::default()
            }),
        ),
        (
            "/grpc.AgentService/StatsContainer",
            bytes(&agent::StatsContainerRequest {
                container_id: "c1".into(),
                ..Default::default()
            }),
        ),
        (
            "/grpc.AgentService/UpdateContainer",
            bytes(&agent::UpdateContainerRequest {
                container_id: "c1".into(),
                resources: rich_spec()
                    .linux()
                    .as_ref()
                    .and_then(|l| l.resources().as_ref())
                    .map(oci::resources_to_grpc)
                    .into(),
                ..Default::default()
            }),
        ),
        (
            "/grpc.AgentService/GetOOMEvent",
            bytes(&agent::GetOOMEventRequest::default()),
        ),
        (
            "/grpc.AgentService/GetMetrics",
            bytes(&agent::GetMetricsRequest::default()),
        ),
        (
            "/grpc.AgentService/UpdateInterface",
            bytes(&agent::UpdateInterfaceRequest {
                interface: Some(types::Interface {
                    device: "eth0".into(),
                    name: "eth0".into(),
                    IPAddresses: vec![ip_address("10.0.0.5", "24"), ip_address("fd00::5", "64")],
                    mtu: 1500,
                    hwAddr: "02:00:00:00:00:01".into(),
                    ..Default::default()
                })
                .into(),
                ..Default::default()
            }),
        ),
        (
            "/grpc.AgentService/UpdateRoutes",
            bytes(&agent::UpdateRoutesRequest {
                routes: Some(agent::Routes {
                    Routes: vec![
                        types::Route {
                            dest: "10.0.0.0/24".into(),
                            device: "eth0".into(),
                            scope: 253,
                            ..Default::default()
                        },
                        types::Route {
                            gateway: "10.0.0.1".into(),
                            device: "eth0".into(),
                            ..Default::default()
                        },
                    ],
                    ..Default::default()
                })
                .into(),
                ..Default::default()
            }),
        ),
        (
            "/grpc.AgentService/ListInterfaces",
            bytes(&agent::ListInterfacesRequest::default()),
        ),
        (
            "/grpc.AgentService/ListRoutes",
            bytes(&agent::ListRoutesRequest::default()),
        ),
        (
            "/grpc.AgentService/AddARPNeighbors",
            bytes(&agent::AddARPNeighborsRequest {
                neighbors: Some(agent::ARPNeighbors {
                    ARPNeighbors: vec![types::ARPNeighbor {
                        toIPAddress: Some(ip_address("10.0.0.9", "32")).into(),
                        device: "eth0".into(),
                        lladdr: "02:00:00:00:00:09".into(),
                        ..Default::default()
                    }],
                    ..Default::default()
                })
                .into(),
                ..Default::default()
            }),
        ),
        (
            "/grpc.AgentService/OnlineCPUMem",
            bytes(&agent::OnlineCPUMemRequest {
                nb_cpus: 1,
                cpu_only: true,
                ..Default::default()
            }),
        ),
        (
            "/grpc.AgentService/MemHotplugByProbe",
            bytes(&agent::MemHotplugByProbeRequest {
                memHotplugProbeAddr: vec![1 << 32],
                ..Default::default()
            }),
        ),
        (
            "/grpc.AgentService/SetGuestDateTime",
            bytes(&agent::SetGuestDateTimeRequest {
                Sec: 1_700_000_000,
                Usec: 5,
                ..Default::default()
            }),
        ),
        (
            "/grpc.AgentService/ReseedRandomDev",
            bytes(&agent::ReseedRandomDevRequest {
                data: vec![7; 32],
                ..Default::default()
            }),
        ),
        (
            "/grpc.AgentService/CopyFile",
            bytes(&agent::CopyFileRequest {
                path: "/run/kata-containers/shared/containers/c1/hosts".into(),
                file_size: 5,
                file_mode: 0o100644,
                dir_mode: 0o755,
                data: b"hosts".to_vec(),
                ..Default::default()
            }),
        ),
        (
            "/grpc.AgentService/GetVolumeStats",
            bytes(&agent::VolumeStatsRequest {
                volume_guest_path: "/run/kata-containers/sandbox/vol".into(),
                ..Default::default()
            }),
        ),
        (
            "/grpc.AgentService/UpdateEphemeralMounts",
            bytes(&agent::UpdateEphemeralMountsRequest {
                storages: vec![agent::Storage {
                    driver: "ephemeral".into(),
                    options: vec!["size=2m".into()],
                    mount_point: "/run/kata-containers/sandbox/ephemeral/e".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        ),
        (
            "/grpc.AgentService/GetIPTables",
            bytes(&agent::GetIPTablesRequest {
                is_ipv6: true,
                ..Default::default()
            }),
        ),
        (
            "/grpc.AgentService/SetIPTables",
            bytes(&agent::SetIPTablesRequest {
                is_ipv6: false,
                data: b"*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -s 10.9.8.7/32 -j DROP\nCOMMIT\n"
                    .to_vec(),
                ..Default::default()
            }),
        ),
        (
            "/grpc.AgentService/AddSwap",
            bytes(&agent::AddSwapRequest {
                PCIPath: vec![2, 5],
                ..Default::default()
            }),
        ),
        (
            "/grpc.AgentService/RemoveStaleVirtiofsShareMounts",
            bytes(&agent::RemoveStaleVirtiofsShareMountsRequest::default()),
        ),
    ]
}

fn ip_address(address: &str, mask: &str) -> types::IPAddress {
    types::IPAddress {
        address: address.into(),
        mask: mask.into(),
        ..Default::default()
    }
}
