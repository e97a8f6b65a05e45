//! Conversion tests: oci-spec -> protobuf -> oci-spec must be the identity for the
//! default spec and for a spec shaped like what containerd + Kata actually send.

use std::collections::HashMap;

use oci_spec::runtime::{
    Arch, BoxBuilder, Capability, HookBuilder, HooksBuilder, LinuxBlockIoBuilder, LinuxBuilder,
    LinuxCapabilitiesBuilder, LinuxCpuBuilder, LinuxDeviceBuilder, LinuxDeviceCgroupBuilder,
    LinuxDeviceType, LinuxHugepageLimitBuilder, LinuxIdMappingBuilder, LinuxIntelRdtBuilder,
    LinuxInterfacePriorityBuilder, LinuxMemoryBuilder, LinuxNamespaceBuilder, LinuxNamespaceType,
    LinuxNetworkBuilder, LinuxPidsBuilder, LinuxResourcesBuilder, LinuxSeccompAction,
    LinuxSeccompArgBuilder, LinuxSeccompBuilder, LinuxSeccompFilterFlag, LinuxSeccompOperator,
    LinuxSyscallBuilder, LinuxThrottleDeviceBuilder, LinuxWeightDeviceBuilder, Mount, MountBuilder,
    PosixRlimitBuilder, PosixRlimitType, ProcessBuilder, RootBuilder, Spec, SpecBuilder,
    UserBuilder,
};
use protobuf::Message;

use super::{spec_from_grpc, spec_to_grpc, OciConvertError};
use crate::oci as grpc;

type TestResult = Result<(), std::boxed::Box<dyn std::error::Error>>;

fn round_trip(spec: &Spec) -> Spec {
    spec_from_grpc(&spec_to_grpc(spec)).expect("a spec we produced converts back")
}

fn mount(dest: &str, typ: &str, src: &str, opts: &[&str]) -> Mount {
    let mut b = MountBuilder::default()
        .destination(dest)
        .typ(typ)
        .source(src);
    if !opts.is_empty() {
        b = b.options(opts.iter().map(|o| o.to_string()).collect::<Vec<_>>());
    }
    b.build().expect("mount without id mappings is valid")
}

fn namespace(typ: LinuxNamespaceType, path: Option<&str>) -> oci_spec::runtime::LinuxNamespace {
    let b = LinuxNamespaceBuilder::default().typ(typ);
    match path {
        Some(p) => b.path(p).build(),
        None => b.build(),
    }
    .expect("namespace is valid")
}

fn rich_process() -> Result<oci_spec::runtime::Process, oci_spec::OciSpecError> {
    let caps = [
        Capability::Chown,
        Capability::NetBindService,
        Capability::SysAdmin,
    ]
    .into_iter()
    .collect::<std::collections::HashSet<_>>();
    ProcessBuilder::default()
        .terminal(true)
        .console_size(BoxBuilder::default().height(40u64).width(120u64).build()?)
        .user(
            UserBuilder::default()
                .uid(1000u32)
                .gid(1000u32)
                .additional_gids(vec![10u32, 44])
                .username("app")
                .build()?,
        )
        .args(vec!["/bin/app".to_string(), "--serve".to_string()])
        .env(vec![
            "PATH=/usr/bin:/bin".to_string(),
            "HOME=/home/app".to_string(),
        ])
        .cwd("/work")
        .capabilities(
            LinuxCapabilitiesBuilder::default()
                .bounding(caps.clone())
                .effective(caps.clone())
                .permitted(caps)
                .inheritable([Capability::Bpf, Capability::CheckpointRestore])
                .build()?,
        )
        .rlimits(vec![
            PosixRlimitBuilder::default()
                .typ(PosixRlimitType::RlimitNofile)
                .hard(4096u64)
                .soft(1024u64)
                .build()?,
            PosixRlimitBuilder::default()
                .typ(PosixRlimitType::RlimitNproc)
                .hard(512u64)
                .soft(512u64)
                .build()?,
        ])
        .no_new_privileges(true)
        .apparmor_profile("kata-default")
        .oom_score_adj(-998)
        .selinux_label("system_u:system_r:container_t:s0")
        .build()
}

fn rich_resources() -> Result<oci_spec::runtime::LinuxResources, oci_spec::OciSpecError> {
    let throttle = LinuxThrottleDeviceBuilder::default()
        .major(8i64)
        .minor(0i64)
        .rate(1_048_576u64);
    LinuxResourcesBuilder::default()
        .devices(vec![
            LinuxDeviceCgroupBuilder::default()
                .allow(false)
                .access("rwm")
                .build()?,
            LinuxDeviceCgroupBuilder::default()
                .allow(true)
                .typ(LinuxDeviceType::C)
                .major(1i64)
                .minor(3i64)
                .access("rwm")
                .build()?,
        ])
        .memory(
            LinuxMemoryBuilder::default()
                .limit(512 * 1024 * 1024i64)
                .reservation(256 * 1024 * 1024i64)
                .swap(1024 * 1024 * 1024i64)
                .swappiness(10u64)
                .disable_oom_killer(true)
                .build()?,
        )
        .cpu(
            LinuxCpuBuilder::default()
                .shares(1024u64)
                .quota(50_000i64)
                .period(100_000u64)
                .cpus("0-1")
                .mems("0")
                .build()?,
        )
        .pids(LinuxPidsBuilder::default().limit(100i64).build()?)
        .block_io(
            LinuxBlockIoBuilder::default()
                .weight(500u16)
                .weight_device(vec![LinuxWeightDeviceBuilder::default()
                    .major(8i64)
                    .minor(0i64)
                    .weight(300u16)
                    .build()?])
                .throttle_read_bps_device(vec![throttle.build()?])
                .build()?,
        )
        .hugepage_limits(vec![LinuxHugepageLimitBuilder::default()
            .page_size("2MB")
            .limit(-1i64)
            .build()?])
        .network(
            LinuxNetworkBuilder::default()
                .class_id(7u32)
                .priorities(vec![LinuxInterfacePriorityBuilder::default()
                    .name("eth0")
                    .priority(5u32)
                    .build()?])
                .build()?,
        )
        .build()
}

fn rich_seccomp() -> Result<oci_spec::runtime::LinuxSeccomp, oci_spec::OciSpecError> {
    LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActErrno)
        .architectures(vec![
            Arch::ScmpArchX86_64,
            Arch::ScmpArchAarch64,
            Arch::ScmpArchPpc64le,
        ])
        .flags(vec![LinuxSeccompFilterFlag::SeccompFilterFlagLog])
        .syscalls(vec![
            LinuxSyscallBuilder::default()
                .names(vec!["read".to_string(), "write".to_string()])
                .action(LinuxSeccompAction::ScmpActAllow)
                .build()?,
            LinuxSyscallBuilder::default()
                .names(vec!["clone".to_string()])
                .action(LinuxSeccompAction::ScmpActAllow)
                .args(vec![LinuxSeccompArgBuilder::default()
                    .index(0usize)
                    .value(0x7E02_0000u64)
                    .value_two(0x7E02_0000u64)
                    .op(LinuxSeccompOperator::ScmpCmpMaskedEq)
                    .build()?])
                .build()?,
            LinuxSyscallBuilder::default()
                .names(vec!["ptrace".to_string()])
                .action(LinuxSeccompAction::ScmpActErrno)
                .errno_ret(1u32)
                .build()?,
        ])
        .build()
}

fn rich_linux() -> Result<oci_spec::runtime::Linux, oci_spec::OciSpecError> {
    let id_map = |host: u32| {
        LinuxIdMappingBuilder::default()
            .host_id(host)
            .container_id(0u32)
            .size(65536u32)
            .build()
    };
    LinuxBuilder::default()
        .uid_mappings(vec![id_map(100_000)?])
        .gid_mappings(vec![id_map(200_000)?])
        .sysctl(HashMap::from([(
            "net.ipv4.ip_forward".to_string(),
            "1".to_string(),
        )]))
        .resources(rich_resources()?)
        .cgroups_path("/kubepods/besteffort/pod1/abc")
        .namespaces(vec![
            namespace(LinuxNamespaceType::Pid, None),
            namespace(LinuxNamespaceType::Network, Some("/var/run/netns/cni-1234")),
            namespace(LinuxNamespaceType::Ipc, Some("/proc/1/ns/ipc")),
            namespace(LinuxNamespaceType::Uts, None),
            namespace(LinuxNamespaceType::Mount, None),
            namespace(LinuxNamespaceType::User, None),
            namespace(LinuxNamespaceType::Cgroup, None),
        ])
        .devices(vec![LinuxDeviceBuilder::default()
            .path("/dev/fuse")
            .typ(LinuxDeviceType::C)
            .major(10i64)
            .minor(229i64)
            .file_mode(0o666u32)
            .uid(0u32)
            .gid(0u32)
            .build()?])
        .seccomp(rich_seccomp()?)
        .rootfs_propagation("rslave")
        .masked_paths(vec!["/proc/kcore".to_string(), "/sys/firmware".to_string()])
        .readonly_paths(vec!["/proc/sys".to_string(), "/proc/bus".to_string()])
        .mount_label("system_u:object_r:container_file_t:s0")
        .intel_rdt(
            LinuxIntelRdtBuilder::default()
                .l3_cache_schema("L3:0=ff")
                .build()?,
        )
        .build()
}

/// Shaped like a CRI container spec after Kata's host side rewrote the paths.
pub(super) fn rich_spec() -> Result<Spec, oci_spec::OciSpecError> {
    let hook = HookBuilder::default()
        .path("/usr/libexec/oci/hooks.d/prestart")
        .args(vec!["prestart".to_string(), "--debug".to_string()])
        .env(vec!["HOOK=1".to_string()])
        .timeout(5i64)
        .build()?;
    SpecBuilder::default()
        .version("1.1.0")
        .hostname("sandbox-abc")
        .root(
            RootBuilder::default()
                .path("/run/kata-containers/shared/containers/abc/rootfs")
                .readonly(false)
                .build()?,
        )
        .process(rich_process()?)
        .mounts(vec![
            mount("/proc", "proc", "proc", &[]),
            mount(
                "/dev/shm",
                "bind",
                "/run/kata-containers/sandbox/shm",
                &["rbind", "rw"],
            ),
            mount(
                "/etc/hosts",
                "bind",
                "/run/kata-containers/shared/hosts",
                &["rbind", "ro"],
            ),
        ])
        .annotations(HashMap::from([
            (
                "io.kubernetes.cri.container-type".to_string(),
                "container".to_string(),
            ),
            (
                "io.kubernetes.cri.sandbox-id".to_string(),
                "abc".to_string(),
            ),
        ]))
        .hooks(HooksBuilder::default().prestart(vec![hook]).build()?)
        .linux(rich_linux()?)
        .build()
}

#[test]
fn default_spec_round_trips() {
    let spec = Spec::default();
    assert_eq!(round_trip(&spec), spec);
}

#[test]
fn rich_spec_round_trips() -> TestResult {
    let spec = rich_spec()?;
    assert_eq!(round_trip(&spec), spec);
    Ok(())
}

#[test]
fn generated_message_survives_protobuf_encoding() -> TestResult {
    let spec = rich_spec()?;
    let message = spec_to_grpc(&spec);
    let bytes = message.write_to_bytes()?;
    let decoded = grpc::Spec::parse_from_bytes(&bytes)?;
    assert_eq!(decoded, message);
    assert_eq!(spec_from_grpc(&decoded)?, spec);
    Ok(())
}

#[test]
fn names_use_the_spellings_kata_hosts_send() -> TestResult {
    let message = spec_to_grpc(&rich_spec()?);
    let linux = message.Linux.as_ref().expect("linux section");
    let types: Vec<&str> = linux.Namespaces.iter().map(|ns| ns.Type.as_str()).collect();
    assert_eq!(
        types,
        ["pid", "network", "ipc", "uts", "mount", "user", "cgroup"]
    );
    let process = message.Process.as_ref().expect("process section");
    let caps = &process
        .Capabilities
        .as_ref()
        .expect("capabilities")
        .Bounding;
    assert_eq!(
        caps,
        &["CAP_CHOWN", "CAP_NET_BIND_SERVICE", "CAP_SYS_ADMIN"]
    );
    assert_eq!(process.Rlimits[0].Type, "RLIMIT_NOFILE");
    let seccomp = linux.Seccomp.as_ref().expect("seccomp");
    assert_eq!(seccomp.DefaultAction, "SCMP_ACT_ERRNO");
    assert_eq!(
        seccomp.Architectures,
        ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64", "SCMP_ARCH_PPC64LE"]
    );
    assert_eq!(seccomp.Syscalls[1].Args[0].Op, "SCMP_CMP_MASKED_EQ");
    let wildcard = &linux.Resources.as_ref().expect("resources").Devices[0];
    assert_eq!(
        (wildcard.Type.as_str(), wildcard.Major, wildcard.Minor),
        ("", -1, -1)
    );
    Ok(())
}

#[test]
fn proc_namespace_names_and_bare_capabilities_are_accepted() -> TestResult {
    let mut message = spec_to_grpc(&rich_spec()?);
    linux(&mut message).Namespaces[1].Type = "net".into();
    linux(&mut message).Namespaces[4].Type = "mnt".into();
    let caps = process(&mut message)
        .Capabilities
        .as_mut()
        .expect("capabilities");
    caps.Bounding = vec!["sys_admin".into()];
    let spec = spec_from_grpc(&message)?;
    let namespaces = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default();
    assert_eq!(namespaces[1].typ(), LinuxNamespaceType::Network);
    assert_eq!(namespaces[4].typ(), LinuxNamespaceType::Mount);
    let caps = spec
        .process()
        .as_ref()
        .and_then(|p| p.capabilities().clone())
        .expect("caps");
    assert_eq!(
        caps.bounding().clone(),
        Some([Capability::SysAdmin].into_iter().collect())
    );
    Ok(())
}

fn mutate_and_convert(f: impl FnOnce(&mut grpc::Spec)) -> Result<Spec, OciConvertError> {
    let mut message = spec_to_grpc(&rich_spec().expect("rich spec builds"));
    f(&mut message);
    spec_from_grpc(&message)
}

fn linux(m: &mut grpc::Spec) -> &mut grpc::Linux {
    m.Linux.as_mut().expect("linux section")
}

fn process(m: &mut grpc::Spec) -> &mut grpc::Process {
    m.Process.as_mut().expect("process section")
}

#[test]
fn unknown_strings_are_errors() {
    let err = mutate_and_convert(|m| linux(m).Namespaces[0].Type = "pidns".into());
    assert_eq!(err, Err(OciConvertError::UnknownNamespace("pidns".into())));

    let err = mutate_and_convert(|m| linux(m).Devices[0].Type = "x".into());
    assert_eq!(err, Err(OciConvertError::UnknownDeviceType("x".into())));

    let err = mutate_and_convert(|m| {
        process(m).Capabilities.as_mut().expect("caps").Ambient = vec!["CAP_FLY".into()];
    });
    assert_eq!(
        err,
        Err(OciConvertError::UnknownCapability("CAP_FLY".into()))
    );

    let err = mutate_and_convert(|m| process(m).Rlimits[0].Type = "RLIMIT_BOGUS".into());
    assert_eq!(
        err,
        Err(OciConvertError::UnknownRlimit("RLIMIT_BOGUS".into()))
    );

    let err = mutate_and_convert(|m| {
        linux(m).Seccomp.as_mut().expect("seccomp").DefaultAction = "SCMP_ACT_MAYBE".into();
    });
    let expected = OciConvertError::UnknownSeccomp {
        kind: "action",
        value: "SCMP_ACT_MAYBE".into(),
    };
    assert_eq!(err, Err(expected));
}

#[test]
fn out_of_range_numbers_are_errors() {
    let err = mutate_and_convert(|m| process(m).OOMScoreAdj = 1 << 40);
    assert!(matches!(
        err,
        Err(OciConvertError::OutOfRange {
            field: "process.oomScoreAdj",
            ..
        })
    ));
}

#[test]
fn empty_message_gives_a_bare_spec() -> TestResult {
    let spec = spec_from_grpc(&grpc::Spec::new())?;
    assert!(spec.process().is_none() && spec.root().is_none() && spec.linux().is_none());
    assert!(spec.hostname().is_none() && spec.mounts().is_none() && spec.hooks().is_none());
    Ok(())
}

#[test]
fn device_file_mode_zero_means_absent() -> TestResult {
    // The protocol sends an absent fileMode as 0; the runtime then applies runc's 0666.
    let mut spec = spec_from_grpc(&spec_to_grpc(&Spec::default()))?;
    let device = LinuxDeviceBuilder::default()
        .path("/dev/fuse")
        .typ(LinuxDeviceType::C)
        .major(10i64)
        .minor(229i64)
        .build()?;
    let mut linux = spec.linux().clone().unwrap_or_default();
    linux.set_devices(Some(vec![device]));
    spec.set_linux(Some(linux));
    let back = round_trip(&spec);
    let devices = back.linux().as_ref().and_then(|l| l.devices().clone());
    assert_eq!(devices.unwrap()[0].file_mode(), None);
    Ok(())
}

#[test]
fn umask_travels_as_an_annotation_and_comes_back_as_the_field() -> TestResult {
    let mut spec = rich_spec()?;
    let mut process = spec.process().clone().unwrap();
    let mut user = process.user().clone();
    user.set_umask(Some(0o077));
    process.set_user(user);
    spec.set_process(Some(process));
    let sent = spec_to_grpc(&spec);
    assert_eq!(sent.Annotations[grpc::UMASK_ANNOTATION], "0077");
    let back = spec_from_grpc(&sent)?;
    assert_eq!(back, spec, "umask kept, annotation taken out again");
    assert_eq!(back.process().as_ref().unwrap().user().umask(), Some(0o077));
    Ok(())
}

#[test]
fn a_bad_umask_annotation_is_an_error() {
    for value in ["", "8", "0o77", "1000", "01777", "-1", "00000"] {
        let r = mutate_and_convert(|m| {
            m.Annotations
                .insert(grpc::UMASK_ANNOTATION.into(), value.into());
        });
        assert!(
            matches!(r, Err(OciConvertError::BadAnnotation { .. })),
            "{value:?}: {r:?}"
        );
    }
    let r = mutate_and_convert(|m| {
        m.Annotations
            .insert(grpc::UMASK_ANNOTATION.into(), "027".into());
    });
    let spec = r.expect("027 is a umask");
    assert_eq!(spec.process().as_ref().unwrap().user().umask(), Some(0o027));
    assert!(!spec
        .annotations()
        .as_ref()
        .unwrap()
        .contains_key(grpc::UMASK_ANNOTATION));
}
