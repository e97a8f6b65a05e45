//! protobuf -> oci-spec direction of the spec conversion. Fallible, because the host
//! sends enums as free-form strings. Every field of each OCI struct is set explicitly:
//! oci-spec's `Default` impls are opinionated (a default `Process` runs `sh`), and none
//! of that may leak into a spec the host did not send.

use std::path::PathBuf;
use std::str::FromStr;

use oci_spec::runtime as oci;
use serde::de::value::{Error as DeError, StrDeserializer};
use serde::de::IntoDeserializer;
use serde::Deserialize;

use super::OciConvertError;
use crate::oci as grpc;

type Result<T> = std::result::Result<T, OciConvertError>;

/// Converts the message carried by `CreateContainerRequest.OCI` into an OCI spec.
pub fn spec_from_grpc(g: &grpc::Spec) -> Result<oci::Spec> {
    // Kata's messages for these are empty placeholders; present, they still say the spec is
    // for another platform, which no field of ours could honour.
    if g.Solaris.is_some() {
        return Err(OciConvertError::OtherPlatform("solaris"));
    }
    if g.Windows.is_some() {
        return Err(OciConvertError::OtherPlatform("windows"));
    }
    let process = g.Process.as_ref().map(process_from_grpc).transpose()?;
    let mut spec = oci::Spec::default();
    spec.set_version(g.Version.clone())
        .set_process(process)
        .set_root(g.Root.as_ref().map(root))
        .set_hostname(non_empty(&g.Hostname))
        .set_domainname(None)
        .set_mounts(opt_list(&g.Mounts, mount))
        .set_hooks(g.Hooks.as_ref().map(hooks))
        .set_linux(g.Linux.as_ref().map(linux).transpose()?)
        .set_solaris(None)
        .set_windows(None)
        .set_vm(None)
        .set_zos(None);
    let mut annotations = g.Annotations.clone();
    super::carried::take(&mut annotations, &mut spec)?;
    spec.set_annotations(Some(annotations));
    Ok(spec)
}

/// Converts a process; also used for `ExecProcessRequest.process`.
pub fn process_from_grpc(g: &grpc::Process) -> Result<oci::Process> {
    let oom_score_adj = match g.OOMScoreAdj {
        0 => None,
        v => Some(i32::try_from(v).map_err(|_| out_of_range("process.oomScoreAdj", v))?),
    };
    let mut p = oci::Process::default();
    p.set_terminal(Some(g.Terminal))
        .set_console_size(g.ConsoleSize.as_ref().map(console_box).transpose()?)
        .set_user(g.User.as_ref().map(user).unwrap_or_default())
        .set_args(non_empty_list(&g.Args))
        .set_command_line(None)
        .set_env(non_empty_list(&g.Env))
        .set_cwd(PathBuf::from(&g.Cwd))
        .set_capabilities(g.Capabilities.as_ref().map(capabilities).transpose()?)
        .set_rlimits(try_opt_list(&g.Rlimits, rlimit)?)
        .set_no_new_privileges(Some(g.NoNewPrivileges))
        .set_apparmor_profile(non_empty(&g.ApparmorProfile))
        .set_oom_score_adj(oom_score_adj)
        .set_selinux_label(non_empty(&g.SelinuxLabel))
        .set_io_priority(None)
        .set_scheduler(None)
        .set_exec_cpu_affinity(None);
    Ok(p)
}

/// Converts cgroup resources; also used for `UpdateContainerRequest.resources`.
pub fn resources_from_grpc(g: &grpc::LinuxResources) -> Result<oci::LinuxResources> {
    let devices = g
        .Devices
        .iter()
        .map(device_cgroup)
        .collect::<Result<Vec<_>>>()?;
    let mut r = oci::LinuxResources::default();
    r.set_devices(Some(devices))
        .set_memory(g.Memory.as_ref().map(memory))
        .set_cpu(g.CPU.as_ref().map(cpu))
        .set_pids(
            g.Pids
                .as_ref()
                .map(|p| *oci::LinuxPids::default().set_limit(p.Limit)),
        )
        .set_block_io(g.BlockIO.as_ref().map(block_io).transpose()?)
        .set_hugepage_limits(opt_list(&g.HugepageLimits, hugepage_limit))
        .set_network(g.Network.as_ref().map(network))
        .set_rdma(None)
        .set_unified(None);
    Ok(r)
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

fn non_empty_path(s: &str) -> Option<PathBuf> {
    (!s.is_empty()).then(|| PathBuf::from(s))
}

fn non_empty_list<T: Clone>(items: &[T]) -> Option<Vec<T>> {
    (!items.is_empty()).then(|| items.to_vec())
}

fn non_zero<T: Default + PartialEq>(v: T) -> Option<T> {
    (v != T::default()).then_some(v)
}

fn opt_list<T, U>(items: &[T], f: impl Fn(&T) -> U) -> Option<Vec<U>> {
    (!items.is_empty()).then(|| items.iter().map(f).collect())
}

fn try_opt_list<T, U>(items: &[T], f: impl Fn(&T) -> Result<U>) -> Result<Option<Vec<U>>> {
    if items.is_empty() {
        return Ok(None);
    }
    items.iter().map(f).collect::<Result<Vec<_>>>().map(Some)
}

/// Some oci-spec structs have builders but no setters. Those builders start from
/// all-`None` defaults and validate nothing, so this error path is not expected to fire.
fn built<T>(r: std::result::Result<T, oci_spec::OciSpecError>) -> Result<T> {
    r.map_err(|e| OciConvertError::Build(e.to_string()))
}

fn out_of_range(field: &'static str, value: impl Into<i128>) -> OciConvertError {
    OciConvertError::OutOfRange {
        field,
        value: value.into(),
    }
}

fn console_box(g: &grpc::Box) -> Result<oci::Box> {
    built(
        oci::BoxBuilder::default()
            .height(g.Height)
            .width(g.Width)
            .build(),
    )
}

fn user(g: &grpc::User) -> oci::User {
    let mut u = oci::User::default();
    u.set_uid(g.UID)
        .set_gid(g.GID)
        .set_umask(None)
        .set_additional_gids(non_empty_list(&g.AdditionalGids))
        .set_username(non_empty(&g.Username));
    u
}

fn capabilities(g: &grpc::LinuxCapabilities) -> Result<oci::LinuxCapabilities> {
    let mut c = oci::LinuxCapabilities::default();
    c.set_bounding(cap_set(&g.Bounding)?)
        .set_effective(cap_set(&g.Effective)?)
        .set_inheritable(cap_set(&g.Inheritable)?)
        .set_permitted(cap_set(&g.Permitted)?)
        .set_ambient(cap_set(&g.Ambient)?);
    Ok(c)
}

fn cap_set(names: &[String]) -> Result<Option<oci::Capabilities>> {
    if names.is_empty() {
        return Ok(None);
    }
    names
        .iter()
        .map(|n| capability(n))
        .collect::<Result<_>>()
        .map(Some)
}

/// Goes through oci-spec's serde impl because that is the parser that accepts every
/// spelling config.json may use ("CAP_SYS_ADMIN", "SYS_ADMIN", any case).
fn capability(name: &str) -> Result<oci::Capability> {
    let de: StrDeserializer<'_, DeError> = name.into_deserializer();
    oci::Capability::deserialize(de).map_err(|_| OciConvertError::UnknownCapability(name.into()))
}

fn rlimit(g: &grpc::POSIXRlimit) -> Result<oci::PosixRlimit> {
    let typ = oci::PosixRlimitType::from_str(&g.Type)
        .map_err(|_| OciConvertError::UnknownRlimit(g.Type.clone()))?;
    built(
        oci::PosixRlimitBuilder::default()
            .typ(typ)
            .hard(g.Hard)
            .soft(g.Soft)
            .build(),
    )
}

fn root(g: &grpc::Root) -> oci::Root {
    let mut r = oci::Root::default();
    r.set_path(PathBuf::from(&g.Path))
        .set_readonly(Some(g.Readonly));
    r
}

fn mount(g: &grpc::Mount) -> oci::Mount {
    let mut m = oci::Mount::default();
    m.set_destination(PathBuf::from(&g.destination))
        .set_typ(non_empty(&g.type_))
        .set_source(non_empty_path(&g.source))
        .set_options(non_empty_list(&g.options))
        .set_uid_mappings(None)
        .set_gid_mappings(None);
    m
}

fn hooks(g: &grpc::Hooks) -> oci::Hooks {
    let mut h = oci::Hooks::default();
    h.set_prestart(opt_list(&g.Prestart, hook))
        .set_poststart(opt_list(&g.Poststart, hook))
        .set_poststop(opt_list(&g.Poststop, hook))
        .set_create_runtime(opt_list(&g.CreateRuntime, hook))
        .set_create_container(opt_list(&g.CreateContainer, hook))
        .set_start_container(opt_list(&g.StartContainer, hook));
    h
}

fn hook(g: &grpc::Hook) -> oci::Hook {
    let mut h = oci::Hook::default();
    h.set_path(PathBuf::from(&g.Path))
        .set_args(non_empty_list(&g.Args))
        .set_env(non_empty_list(&g.Env))
        .set_timeout(non_zero(g.Timeout));
    h
}

fn linux(g: &grpc::Linux) -> Result<oci::Linux> {
    let mut l = oci::Linux::default();
    l.set_net_devices(None)
        .set_uid_mappings(try_opt_list(&g.UIDMappings, id_mapping)?)
        .set_gid_mappings(try_opt_list(&g.GIDMappings, id_mapping)?)
        .set_sysctl((!g.Sysctl.is_empty()).then(|| g.Sysctl.clone()))
        .set_resources(g.Resources.as_ref().map(resources_from_grpc).transpose()?)
        .set_cgroups_path(non_empty_path(&g.CgroupsPath))
        .set_namespaces(try_opt_list(&g.Namespaces, namespace)?)
        .set_devices(try_opt_list(&g.Devices, device)?)
        .set_seccomp(g.Seccomp.as_ref().map(seccomp).transpose()?)
        .set_rootfs_propagation(non_empty(&g.RootfsPropagation))
        .set_masked_paths(non_empty_list(&g.MaskedPaths))
        .set_readonly_paths(non_empty_list(&g.ReadonlyPaths))
        .set_mount_label(non_empty(&g.MountLabel))
        .set_intel_rdt(g.IntelRdt.as_ref().map(intel_rdt))
        .set_memory_policy(None)
        .set_personality(None)
        .set_time_offsets(None);
    Ok(l)
}

fn id_mapping(g: &grpc::LinuxIDMapping) -> Result<oci::LinuxIdMapping> {
    let b = oci::LinuxIdMappingBuilder::default()
        .host_id(g.HostID)
        .container_id(g.ContainerID)
        .size(g.Size);
    built(b.build())
}

fn namespace(g: &grpc::LinuxNamespace) -> Result<oci::LinuxNamespace> {
    // Accepts both the OCI names ("network", "mount") and the /proc ones ("net", "mnt").
    let typ = oci::LinuxNamespaceType::try_from(g.Type.as_str())
        .map_err(|_| OciConvertError::UnknownNamespace(g.Type.clone()))?;
    let mut ns = oci::LinuxNamespace::default();
    ns.set_typ(typ).set_path(non_empty_path(&g.Path));
    Ok(ns)
}

fn device_type(s: &str) -> Result<oci::LinuxDeviceType> {
    oci::LinuxDeviceType::from_str(s).map_err(|_| OciConvertError::UnknownDeviceType(s.into()))
}

fn device(g: &grpc::LinuxDevice) -> Result<oci::LinuxDevice> {
    let mut d = oci::LinuxDevice::default();
    d.set_path(PathBuf::from(&g.Path))
        .set_typ(device_type(&g.Type)?)
        .set_major(g.Major)
        .set_minor(g.Minor)
        // 0 is how an absent fileMode travels; the runtime then uses runc's 0666.
        .set_file_mode(non_zero(g.FileMode))
        .set_uid(Some(g.UID))
        .set_gid(Some(g.GID));
    Ok(d)
}

/// Negative major/minor is the wildcard (see `to_grpc::device_cgroup`).
fn device_cgroup(g: &grpc::LinuxDeviceCgroup) -> Result<oci::LinuxDeviceCgroup> {
    let typ = match g.Type.as_str() {
        "" => None,
        t => Some(device_type(t)?),
    };
    let mut d = oci::LinuxDeviceCgroup::default();
    d.set_allow(g.Allow)
        .set_typ(typ)
        .set_major((g.Major >= 0).then_some(g.Major))
        .set_minor((g.Minor >= 0).then_some(g.Minor))
        .set_access(non_empty(&g.Access));
    Ok(d)
}

fn parse_seccomp<T: FromStr>(kind: &'static str, value: &str) -> Result<T> {
    value.parse().map_err(|_| OciConvertError::UnknownSeccomp {
        kind,
        value: value.to_owned(),
    })
}

fn seccomp(g: &grpc::LinuxSeccomp) -> Result<oci::LinuxSeccomp> {
    let arches = |a: &String| parse_seccomp::<oci::Arch>("architecture", a);
    let flags = |f: &String| parse_seccomp::<oci::LinuxSeccompFilterFlag>("flag", f);
    let mut s = oci::LinuxSeccomp::default();
    s.set_default_action(parse_seccomp("action", &g.DefaultAction)?)
        .set_default_errno_ret(None)
        .set_architectures(try_opt_list(&g.Architectures, arches)?)
        .set_flags(try_opt_list(&g.Flags, flags)?)
        .set_listener_path(None)
        .set_listener_metadata(None)
        .set_syscalls(try_opt_list(&g.Syscalls, syscall)?);
    Ok(s)
}

fn syscall(g: &grpc::LinuxSyscall) -> Result<oci::LinuxSyscall> {
    let errno_ret = g
        .ErrnoRet
        .as_ref()
        .map(|grpc::linux_syscall::ErrnoRet::Errnoret(e)| *e);
    let mut s = oci::LinuxSyscall::default();
    s.set_names(g.Names.clone())
        .set_action(parse_seccomp("action", &g.Action)?)
        .set_errno_ret(errno_ret)
        .set_args(try_opt_list(&g.Args, seccomp_arg)?);
    Ok(s)
}

fn seccomp_arg(g: &grpc::LinuxSeccompArg) -> Result<oci::LinuxSeccompArg> {
    let index = usize::try_from(g.Index).map_err(|_| out_of_range("seccomp arg index", g.Index))?;
    let op: oci::LinuxSeccompOperator = parse_seccomp("operator", &g.Op)?;
    let mut b = oci::LinuxSeccompArgBuilder::default()
        .index(index)
        .value(g.Value)
        .op(op);
    if let Some(v) = non_zero(g.ValueTwo) {
        b = b.value_two(v);
    }
    built(b.build())
}

fn intel_rdt(g: &grpc::LinuxIntelRdt) -> oci::LinuxIntelRdt {
    let mut r = oci::LinuxIntelRdt::default();
    r.set_l3_cache_schema(non_empty(&g.L3CacheSchema));
    r
}

#[allow(deprecated)] // kernel memory limits are obsolete but still part of the protocol
fn memory(g: &grpc::LinuxMemory) -> oci::LinuxMemory {
    *oci::LinuxMemory::default()
        .set_limit(non_zero(g.Limit))
        .set_reservation(non_zero(g.Reservation))
        .set_swap(non_zero(g.Swap))
        .set_kernel(non_zero(g.Kernel))
        .set_kernel_tcp(non_zero(g.KernelTCP))
        .set_swappiness(non_zero(g.Swappiness))
        .set_disable_oom_killer(g.DisableOOMKiller.then_some(true))
        .set_use_hierarchy(None)
        .set_check_before_update(None)
}

fn cpu(g: &grpc::LinuxCPU) -> oci::LinuxCpu {
    let mut c = oci::LinuxCpu::default();
    c.set_shares(non_zero(g.Shares))
        .set_quota(non_zero(g.Quota))
        .set_idle(None)
        .set_burst(None)
        .set_period(non_zero(g.Period))
        .set_realtime_runtime(non_zero(g.RealtimeRuntime))
        .set_realtime_period(non_zero(g.RealtimePeriod))
        .set_cpus(non_empty(&g.Cpus))
        .set_mems(non_empty(&g.Mems));
    c
}

fn weight(field: &'static str, v: u32) -> Result<Option<u16>> {
    match v {
        0 => Ok(None),
        v => u16::try_from(v)
            .map(Some)
            .map_err(|_| out_of_range(field, v)),
    }
}

fn block_io(g: &grpc::LinuxBlockIO) -> Result<oci::LinuxBlockIo> {
    let throttle = |d: &grpc::LinuxThrottleDevice| {
        let b = oci::LinuxThrottleDeviceBuilder::default()
            .major(d.Major)
            .minor(d.Minor);
        built(b.rate(d.Rate).build())
    };
    let mut b = oci::LinuxBlockIo::default();
    b.set_weight(weight("blockIO.weight", g.Weight)?)
        .set_leaf_weight(weight("blockIO.leafWeight", g.LeafWeight)?)
        .set_weight_device(try_opt_list(&g.WeightDevice, weight_device)?)
        .set_throttle_read_bps_device(try_opt_list(&g.ThrottleReadBpsDevice, throttle)?)
        .set_throttle_write_bps_device(try_opt_list(&g.ThrottleWriteBpsDevice, throttle)?)
        .set_throttle_read_iops_device(try_opt_list(&g.ThrottleReadIOPSDevice, throttle)?)
        .set_throttle_write_iops_device(try_opt_list(&g.ThrottleWriteIOPSDevice, throttle)?);
    Ok(b)
}

fn weight_device(d: &grpc::LinuxWeightDevice) -> Result<oci::LinuxWeightDevice> {
    let mut b = oci::LinuxWeightDeviceBuilder::default()
        .major(d.Major)
        .minor(d.Minor);
    if let Some(w) = weight("blockIO.weightDevice.weight", d.Weight)? {
        b = b.weight(w);
    }
    if let Some(w) = weight("blockIO.weightDevice.leafWeight", d.LeafWeight)? {
        b = b.leaf_weight(w);
    }
    built(b.build())
}

fn hugepage_limit(g: &grpc::LinuxHugepageLimit) -> oci::LinuxHugepageLimit {
    let mut h = oci::LinuxHugepageLimit::default();
    // Two's complement, the inverse of to_grpc: u64::MAX comes back as -1 ("unlimited").
    h.set_page_size(g.Pagesize.clone())
        .set_limit(g.Limit as i64);
    h
}

fn network(g: &grpc::LinuxNetwork) -> oci::LinuxNetwork {
    let priority = |p: &grpc::LinuxInterfacePriority| {
        let mut out = oci::LinuxInterfacePriority::default();
        out.set_name(p.Name.clone()).set_priority(p.Priority);
        out
    };
    let mut n = oci::LinuxNetwork::default();
    n.set_class_id(non_zero(g.ClassID))
        .set_priorities(opt_list(&g.Priorities, priority));
    n
}
