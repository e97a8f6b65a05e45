//! oci-spec -> protobuf direction of the spec conversion. Infallible: every OCI value
//! has a protobuf spelling, and values the protocol cannot carry are dropped (see the
//! parent module for the exact rules).

use std::path::Path;

use oci_spec::runtime as oci;
use protobuf::MessageField;

use crate::oci as grpc;

/// Converts a whole OCI spec into the message carried by `CreateContainerRequest.OCI`.
pub fn spec_to_grpc(spec: &oci::Spec) -> grpc::Spec {
    grpc::Spec {
        Version: spec.version().clone(),
        Process: spec.process().as_ref().map(process_to_grpc).into(),
        Root: spec.root().as_ref().map(root).into(),
        Hostname: spec.hostname().clone().unwrap_or_default(),
        Mounts: list(spec.mounts(), mount),
        Hooks: spec.hooks().as_ref().map(hooks).into(),
        Annotations: annotations(spec),
        Linux: spec.linux().as_ref().map(linux).into(),
        ..Default::default()
    }
}

/// The spec's annotations, plus those carrying the fields that have no slot of their own.
fn annotations(spec: &oci::Spec) -> std::collections::HashMap<String, String> {
    let mut all = spec.annotations().clone().unwrap_or_default();
    super::carried::put(spec, &mut all);
    all
}

/// Converts a process; also what `ExecProcessRequest.process` carries.
pub fn process_to_grpc(process: &oci::Process) -> grpc::Process {
    grpc::Process {
        Terminal: process.terminal().unwrap_or(false),
        ConsoleSize: process.console_size().map(console_box).into(),
        User: MessageField::some(user(process.user())),
        Args: process.args().clone().unwrap_or_default(),
        Env: process.env().clone().unwrap_or_default(),
        Cwd: path_string(process.cwd()),
        Capabilities: process.capabilities().as_ref().map(capabilities).into(),
        Rlimits: list(process.rlimits(), rlimit),
        NoNewPrivileges: process.no_new_privileges().unwrap_or(false),
        ApparmorProfile: process.apparmor_profile().clone().unwrap_or_default(),
        OOMScoreAdj: process.oom_score_adj().map_or(0, i64::from),
        SelinuxLabel: process.selinux_label().clone().unwrap_or_default(),
        ..Default::default()
    }
}

/// Converts cgroup resources; also what `UpdateContainerRequest.resources` carries.
pub fn resources_to_grpc(res: &oci::LinuxResources) -> grpc::LinuxResources {
    grpc::LinuxResources {
        Devices: list(res.devices(), device_cgroup),
        Memory: res.memory().as_ref().map(memory).into(),
        CPU: res.cpu().as_ref().map(cpu).into(),
        Pids: res
            .pids()
            .map(|p| grpc::LinuxPids {
                Limit: p.limit(),
                ..Default::default()
            })
            .into(),
        BlockIO: res.block_io().as_ref().map(block_io).into(),
        HugepageLimits: list(res.hugepage_limits(), hugepage_limit),
        Network: res.network().as_ref().map(network).into(),
        ..Default::default()
    }
}

fn list<T, U>(items: &Option<Vec<T>>, f: impl Fn(&T) -> U) -> Vec<U> {
    items.iter().flatten().map(f).collect()
}

fn path_string(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

fn console_box(b: oci::Box) -> grpc::Box {
    let clamp = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
    grpc::Box {
        Height: clamp(b.height()),
        Width: clamp(b.width()),
        ..Default::default()
    }
}

fn user(u: &oci::User) -> grpc::User {
    grpc::User {
        UID: u.uid(),
        GID: u.gid(),
        AdditionalGids: u.additional_gids().clone().unwrap_or_default(),
        Username: u.username().clone().unwrap_or_default(),
        ..Default::default()
    }
}

fn capabilities(caps: &oci::LinuxCapabilities) -> grpc::LinuxCapabilities {
    grpc::LinuxCapabilities {
        Bounding: cap_names(caps.bounding()),
        Effective: cap_names(caps.effective()),
        Inheritable: cap_names(caps.inheritable()),
        Permitted: cap_names(caps.permitted()),
        Ambient: cap_names(caps.ambient()),
        ..Default::default()
    }
}

/// Sorted so that the encoding of a spec does not depend on HashSet iteration order.
fn cap_names(set: &Option<oci::Capabilities>) -> Vec<String> {
    // oci-spec's Display omits the "CAP_" prefix that the OCI JSON form (and Kata) uses.
    let mut names: Vec<String> = set.iter().flatten().map(|c| format!("CAP_{c}")).collect();
    names.sort();
    names
}

fn rlimit(r: &oci::PosixRlimit) -> grpc::POSIXRlimit {
    grpc::POSIXRlimit {
        Type: r.typ().to_string(),
        Hard: r.hard(),
        Soft: r.soft(),
        ..Default::default()
    }
}

fn root(r: &oci::Root) -> grpc::Root {
    grpc::Root {
        Path: path_string(r.path()),
        Readonly: r.readonly().unwrap_or(false),
        ..Default::default()
    }
}

fn mount(m: &oci::Mount) -> grpc::Mount {
    grpc::Mount {
        destination: path_string(m.destination()),
        source: m.source().as_deref().map(path_string).unwrap_or_default(),
        type_: m.typ().clone().unwrap_or_default(),
        options: m.options().clone().unwrap_or_default(),
        ..Default::default()
    }
}

fn hooks(h: &oci::Hooks) -> grpc::Hooks {
    grpc::Hooks {
        Prestart: list(h.prestart(), hook),
        Poststart: list(h.poststart(), hook),
        Poststop: list(h.poststop(), hook),
        CreateRuntime: list(h.create_runtime(), hook),
        CreateContainer: list(h.create_container(), hook),
        StartContainer: list(h.start_container(), hook),
        ..Default::default()
    }
}

fn hook(h: &oci::Hook) -> grpc::Hook {
    grpc::Hook {
        Path: path_string(h.path()),
        Args: h.args().clone().unwrap_or_default(),
        Env: h.env().clone().unwrap_or_default(),
        Timeout: h.timeout().unwrap_or(0),
        ..Default::default()
    }
}

fn linux(l: &oci::Linux) -> grpc::Linux {
    grpc::Linux {
        UIDMappings: list(l.uid_mappings(), id_mapping),
        GIDMappings: list(l.gid_mappings(), id_mapping),
        Sysctl: l.sysctl().clone().unwrap_or_default(),
        Resources: l.resources().as_ref().map(resources_to_grpc).into(),
        CgroupsPath: l
            .cgroups_path()
            .as_deref()
            .map(path_string)
            .unwrap_or_default(),
        Namespaces: list(l.namespaces(), namespace),
        Devices: list(l.devices(), device),
        Seccomp: l.seccomp().as_ref().map(seccomp).into(),
        RootfsPropagation: l.rootfs_propagation().clone().unwrap_or_default(),
        MaskedPaths: l.masked_paths().clone().unwrap_or_default(),
        ReadonlyPaths: l.readonly_paths().clone().unwrap_or_default(),
        MountLabel: l.mount_label().clone().unwrap_or_default(),
        IntelRdt: l.intel_rdt().as_ref().map(intel_rdt).into(),
        ..Default::default()
    }
}

fn id_mapping(m: &oci::LinuxIdMapping) -> grpc::LinuxIDMapping {
    grpc::LinuxIDMapping {
        HostID: m.host_id(),
        ContainerID: m.container_id(),
        Size: m.size(),
        ..Default::default()
    }
}

fn namespace(ns: &oci::LinuxNamespace) -> grpc::LinuxNamespace {
    grpc::LinuxNamespace {
        Type: namespace_type(ns.typ()).to_owned(),
        Path: ns.path().as_deref().map(path_string).unwrap_or_default(),
        ..Default::default()
    }
}

/// The OCI config spelling, which Kata hosts send; oci-spec's Display gives the
/// /proc/<pid>/ns names ("mnt", "net") instead.
fn namespace_type(t: oci::LinuxNamespaceType) -> &'static str {
    match t {
        oci::LinuxNamespaceType::Mount => "mount",
        oci::LinuxNamespaceType::Cgroup => "cgroup",
        oci::LinuxNamespaceType::Uts => "uts",
        oci::LinuxNamespaceType::Ipc => "ipc",
        oci::LinuxNamespaceType::User => "user",
        oci::LinuxNamespaceType::Pid => "pid",
        oci::LinuxNamespaceType::Network => "network",
        oci::LinuxNamespaceType::Time => "time",
    }
}

fn device(d: &oci::LinuxDevice) -> grpc::LinuxDevice {
    grpc::LinuxDevice {
        Path: path_string(d.path()),
        Type: d.typ().as_str().to_owned(),
        Major: d.major(),
        Minor: d.minor(),
        FileMode: d.file_mode().unwrap_or(0),
        UID: d.uid().unwrap_or(0),
        GID: d.gid().unwrap_or(0),
        ..Default::default()
    }
}

fn seccomp(s: &oci::LinuxSeccomp) -> grpc::LinuxSeccomp {
    grpc::LinuxSeccomp {
        DefaultAction: s.default_action().to_string(),
        Architectures: list(s.architectures(), ToString::to_string),
        Flags: list(s.flags(), ToString::to_string),
        Syscalls: list(s.syscalls(), syscall),
        ..Default::default()
    }
}

fn syscall(s: &oci::LinuxSyscall) -> grpc::LinuxSyscall {
    let mut out = grpc::LinuxSyscall {
        Names: s.names().clone(),
        Action: s.action().to_string(),
        Args: list(s.args(), seccomp_arg),
        ..Default::default()
    };
    if let Some(errno) = s.errno_ret() {
        out.set_errnoret(errno);
    }
    out
}

fn seccomp_arg(a: &oci::LinuxSeccompArg) -> grpc::LinuxSeccompArg {
    grpc::LinuxSeccompArg {
        Index: a.index() as u64,
        Value: a.value(),
        ValueTwo: a.value_two().unwrap_or(0),
        Op: a.op().to_string(),
        ..Default::default()
    }
}

fn intel_rdt(r: &oci::LinuxIntelRdt) -> grpc::LinuxIntelRdt {
    grpc::LinuxIntelRdt {
        L3CacheSchema: r.l3_cache_schema().clone().unwrap_or_default(),
        ..Default::default()
    }
}

/// A missing major/minor is the device-cgroup wildcard; -1 is its conventional encoding
/// (runc's and Kata's), which `from_grpc` maps back to `None`.
fn device_cgroup(d: &oci::LinuxDeviceCgroup) -> grpc::LinuxDeviceCgroup {
    grpc::LinuxDeviceCgroup {
        Allow: d.allow(),
        Type: d.typ().map(|t| t.as_str().to_owned()).unwrap_or_default(),
        Major: d.major().unwrap_or(-1),
        Minor: d.minor().unwrap_or(-1),
        Access: d.access().clone().unwrap_or_default(),
        ..Default::default()
    }
}

#[allow(deprecated)] // kernel memory limits are obsolete but still part of the protocol
fn memory(m: &oci::LinuxMemory) -> grpc::LinuxMemory {
    grpc::LinuxMemory {
        Limit: m.limit().unwrap_or(0),
        Reservation: m.reservation().unwrap_or(0),
        Swap: m.swap().unwrap_or(0),
        Kernel: m.kernel().unwrap_or(0),
        KernelTCP: m.kernel_tcp().unwrap_or(0),
        Swappiness: m.swappiness().unwrap_or(0),
        DisableOOMKiller: m.disable_oom_killer().unwrap_or(false),
        ..Default::default()
    }
}

fn cpu(c: &oci::LinuxCpu) -> grpc::LinuxCPU {
    grpc::LinuxCPU {
        Shares: c.shares().unwrap_or(0),
        Quota: c.quota().unwrap_or(0),
        Period: c.period().unwrap_or(0),
        RealtimeRuntime: c.realtime_runtime().unwrap_or(0),
        RealtimePeriod: c.realtime_period().unwrap_or(0),
        Cpus: c.cpus().clone().unwrap_or_default(),
        Mems: c.mems().clone().unwrap_or_default(),
        ..Default::default()
    }
}

fn block_io(b: &oci::LinuxBlockIo) -> grpc::LinuxBlockIO {
    grpc::LinuxBlockIO {
        Weight: b.weight().map_or(0, u32::from),
        LeafWeight: b.leaf_weight().map_or(0, u32::from),
        WeightDevice: list(b.weight_device(), weight_device),
        ThrottleReadBpsDevice: list(b.throttle_read_bps_device(), throttle_device),
        ThrottleWriteBpsDevice: list(b.throttle_write_bps_device(), throttle_device),
        ThrottleReadIOPSDevice: list(b.throttle_read_iops_device(), throttle_device),
        ThrottleWriteIOPSDevice: list(b.throttle_write_iops_device(), throttle_device),
        ..Default::default()
    }
}

fn weight_device(d: &oci::LinuxWeightDevice) -> grpc::LinuxWeightDevice {
    grpc::LinuxWeightDevice {
        Major: d.major(),
        Minor: d.minor(),
        Weight: d.weight().map_or(0, u32::from),
        LeafWeight: d.leaf_weight().map_or(0, u32::from),
        ..Default::default()
    }
}

fn throttle_device(d: &oci::LinuxThrottleDevice) -> grpc::LinuxThrottleDevice {
    grpc::LinuxThrottleDevice {
        Major: d.major(),
        Minor: d.minor(),
        Rate: d.rate(),
        ..Default::default()
    }
}

fn hugepage_limit(h: &oci::LinuxHugepageLimit) -> grpc::LinuxHugepageLimit {
    grpc::LinuxHugepageLimit {
        Pagesize: h.page_size().clone(),
        // Two's complement: -1 ("unlimited") becomes u64::MAX and comes back as -1.
        Limit: h.limit() as u64,
        ..Default::default()
    }
}

fn network(n: &oci::LinuxNetwork) -> grpc::LinuxNetwork {
    grpc::LinuxNetwork {
        ClassID: n.class_id().unwrap_or(0),
        Priorities: list(n.priorities(), |p| grpc::LinuxInterfacePriority {
            Name: p.name().clone(),
            Priority: p.priority(),
            ..Default::default()
        }),
        ..Default::default()
    }
}
