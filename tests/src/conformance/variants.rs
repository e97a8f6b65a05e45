//! The conformance suite's spec variants (tests/tests/conformance.rs runs them): each one a
//! patch of the default spec, and whether runc runs it or refuses it (then zagent must refuse
//! it too).

use serde_json::{json, Value};
use std::path::Path;

/// A spec variant: `patch` edits the default spec (the probe as the process, read-only root,
/// the default mounts, `linux.cgroupsPath` set) given the run's bundle dir (for bind sources).
pub struct Variant {
    pub name: &'static str,
    /// Whether runc runs it (false: runc refuses it, and so must zagent).
    pub runs: bool,
    pub patch: fn(&mut Value, &Path),
}

const fn v(name: &'static str, patch: fn(&mut Value, &Path)) -> Variant {
    Variant {
        name,
        runs: true,
        patch,
    }
}

const fn refused(name: &'static str, patch: fn(&mut Value, &Path)) -> Variant {
    Variant {
        name,
        runs: false,
        patch,
    }
}

const DEFAULT_CAPS: [&str; 3] = ["CAP_KILL", "CAP_AUDIT_WRITE", "CAP_NET_BIND_SERVICE"];

/// Docker's default capability set.
const DOCKER_CAPS: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

fn caps(s: &mut Value, set: &str, names: &[&str]) {
    s["process"]["capabilities"][set] = json!(names);
}

/// Bounding, effective and permitted to `names`, inheritable and ambient empty.
fn caps3(s: &mut Value, names: &[&str]) {
    for set in ["bounding", "effective", "permitted"] {
        caps(s, set, names);
    }
    caps(s, "inheritable", &[]);
    caps(s, "ambient", &[]);
}

fn user(s: &mut Value, uid: u32, gid: u32) {
    s["process"]["user"]["uid"] = json!(uid);
    s["process"]["user"]["gid"] = json!(gid);
}

fn mount(s: &mut Value, m: Value) {
    s["mounts"].as_array_mut().expect("mounts").push(m);
}

fn drop_mount(s: &mut Value, destination: &str) {
    s["mounts"]
        .as_array_mut()
        .expect("mounts")
        .retain(|m| m["destination"] != destination);
}

fn drop_namespace(s: &mut Value, kind: &str) {
    s["linux"]["namespaces"]
        .as_array_mut()
        .expect("namespaces")
        .retain(|n| n["type"] != kind);
}

/// The host's cgroups at /sys/fs/cgroup (the probe then reads the limits there).
fn cgroup_mount(s: &mut Value, ro: bool) {
    let mut options = vec!["nosuid", "noexec", "nodev", "relatime"];
    if ro {
        options.push("ro");
    }
    mount(
        s,
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
               "options": options}),
    );
}

fn bind(s: &mut Value, dir: &Path, dest: &str, options: &[&str]) {
    let src = dir.join("src");
    mount(
        s,
        json!({"destination": dest, "type": "bind", "source": src, "options": options}),
    );
}

fn device(s: &mut Value, dev: Value) {
    let linux = &mut s["linux"];
    if linux["devices"].is_null() {
        linux["devices"] = json!([]);
    }
    linux["devices"].as_array_mut().unwrap().push(dev);
}

fn device_rule(s: &mut Value, rule: Value) {
    s["linux"]["resources"]["devices"]
        .as_array_mut()
        .expect("device rules")
        .push(rule);
}

fn seccomp_docker(s: &mut Value) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/data/seccomp/docker-default-x86_64.oci.json"
    );
    let text = std::fs::read_to_string(path).expect("read Docker's profile");
    s["linux"]["seccomp"] = serde_json::from_str(&text).expect("profile parses");
}

fn fuse(s: &mut Value, extra: Value) {
    let mut dev = json!({"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229});
    for (k, val) in extra.as_object().unwrap() {
        dev[k] = val.clone();
    }
    device(s, dev);
}

const MIB: u64 = 1 << 20;

/// The host id that container id 0 maps to in the user namespace variants.
const MAPPED_ROOT: u32 = 100_000;

/// A new user namespace mapping 0..65536 to MAPPED_ROOT onwards, for uids and gids.
fn userns(s: &mut Value) {
    s["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    let map = json!([{"containerID": 0, "hostID": MAPPED_ROOT, "size": 65536}]);
    s["linux"]["uidMappings"] = map.clone();
    s["linux"]["gidMappings"] = map;
}

/// `chown -R` to the mapped root, as an image unpacked for a user namespace is.
fn chown_mapped(path: &Path) {
    let out = std::process::Command::new("chown")
        .args(["-R", "-h", &format!("{MAPPED_ROOT}:{MAPPED_ROOT}")])
        .arg(path)
        .output()
        .expect("run chown");
    assert!(out.status.success(), "chown {}: {out:?}", path.display());
}

/// Every variant, in the order they are run and reported.
pub fn variants() -> Vec<Variant> {
    vec![
        v("default", |_, _| {}),
        v("root-rw", |s, _| s["root"]["readonly"] = json!(false)),
        // Capabilities.
        v("caps-none", |s, _| caps3(s, &[])),
        v("caps-sys-admin", |s, _| {
            caps3(s, &[&DEFAULT_CAPS[..], &["CAP_SYS_ADMIN"]].concat())
        }),
        v("caps-docker", |s, _| caps3(s, &DOCKER_CAPS)),
        v("caps-bounding-wider", |s, _| {
            caps3(s, &["CAP_KILL"]);
            caps(s, "bounding", &DOCKER_CAPS);
        }),
        v("caps-ambient", |s, _| {
            for set in ["inheritable", "ambient"] {
                caps(s, set, &["CAP_NET_BIND_SERVICE"]);
            }
        }),
        v("caps-ambient-not-inheritable", |s, _| {
            caps(s, "ambient", &["CAP_NET_BIND_SERVICE", "CAP_KILL"]);
        }),
        v("caps-inheritable-only", |s, _| {
            caps(s, "inheritable", &["CAP_KILL"])
        }),
        refused("caps-inheritable-outside-bounding", |s, _| {
            caps(s, "inheritable", &["CAP_NET_RAW", "CAP_KILL"]);
        }),
        refused("caps-effective-not-permitted", |s, _| {
            caps(s, "effective", &["CAP_KILL", "CAP_SYS_ADMIN"]);
        }),
        // Identity.
        v("user-1000", |s, _| user(s, 1000, 1000)),
        v("user-1000-caps", |s, _| {
            user(s, 1000, 1000);
            caps3(s, &DOCKER_CAPS);
        }),
        v("user-1000-ambient", |s, _| {
            user(s, 1000, 1000);
            for set in ["inheritable", "ambient"] {
                caps(s, set, &["CAP_NET_BIND_SERVICE"]);
            }
        }),
        v("user-additional-gids", |s, _| {
            user(s, 1000, 1000);
            s["process"]["user"]["additionalGids"] = json!([50, 10, 1000]);
        }),
        v("user-root-additional-gids", |s, _| {
            s["process"]["user"]["additionalGids"] = json!([5, 50]);
        }),
        v("user-gid-only", |s, _| user(s, 0, 50)),
        v("user-unknown", |s, _| user(s, 4242, 4242)),
        // umask (zagent: the io.zagent.umask annotation).
        v("umask-0077", |s, _| {
            s["process"]["user"]["umask"] = json!(0o077)
        }),
        v("umask-0000", |s, _| {
            s["process"]["user"]["umask"] = json!(0)
        }),
        v("umask-0027-user-1000", |s, _| {
            user(s, 1000, 1000);
            s["process"]["user"]["umask"] = json!(0o027);
        }),
        // rlimits.
        v("rlimits-many", |s, _| {
            s["process"]["rlimits"] = json!([
                {"type": "RLIMIT_NOFILE", "soft": 4096, "hard": 8192},
                {"type": "RLIMIT_NPROC", "soft": 512, "hard": 1024},
                {"type": "RLIMIT_CORE", "soft": 0, "hard": u64::MAX},
                {"type": "RLIMIT_STACK", "soft": 4 * MIB, "hard": 16 * MIB},
                {"type": "RLIMIT_MEMLOCK", "soft": 64 * 1024, "hard": 64 * 1024},
                {"type": "RLIMIT_NICE", "soft": 0, "hard": 0},
                {"type": "RLIMIT_MSGQUEUE", "soft": 1024, "hard": 1024}
            ]);
        }),
        v("rlimits-none", |s, _| {
            s["process"].as_object_mut().unwrap().remove("rlimits");
        }),
        // Above the runtime's own hard limit: the container has no CAP_SYS_RESOURCE for it.
        refused("rlimits-raise-nofile", |s, _| {
            s["process"]["rlimits"] =
                json!([{"type": "RLIMIT_NOFILE", "soft": 1 << 20, "hard": 1 << 20}]);
        }),
        refused("rlimits-soft-above-hard", |s, _| {
            s["process"]["rlimits"] =
                json!([{"type": "RLIMIT_NOFILE", "soft": 2048, "hard": 1024}]);
        }),
        // no_new_privs and seccomp.
        v("nnp-off", |s, _| {
            s["process"]["noNewPrivileges"] = json!(false)
        }),
        v("nnp-off-user-1000", |s, _| {
            s["process"]["noNewPrivileges"] = json!(false);
            user(s, 1000, 1000);
        }),
        v("seccomp-docker", |s, _| seccomp_docker(s)),
        v("seccomp-docker-nnp-off", |s, _| {
            seccomp_docker(s);
            s["process"]["noNewPrivileges"] = json!(false);
        }),
        v("seccomp-docker-caps-docker", |s, _| {
            seccomp_docker(s);
            caps3(s, &DOCKER_CAPS);
        }),
        v("seccomp-errno-mkdir", |s, _| {
            s["linux"]["seccomp"] = json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "architectures": ["SCMP_ARCH_X86_64"],
                "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                              "errnoRet": 95}]
            });
        }),
        refused("seccomp-log-flag", |s, _| {
            s["linux"]["seccomp"] = json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "flags": ["SECCOMP_FILTER_FLAG_LOG"],
                "syscalls": [{"names": ["unshare"], "action": "SCMP_ACT_ERRNO"}]
            });
        }),
        // UTS.
        v("hostname", |s, _| s["hostname"] = json!("conf-host")),
        v("domainname", |s, _| {
            s["hostname"] = json!("h");
            s["domainname"] = json!("example.org");
        }),
        v("no-hostname", |s, _| {
            s.as_object_mut().unwrap().remove("hostname");
        }),
        refused("hostname-without-uts-namespace", |s, _| {
            drop_namespace(s, "uts")
        }),
        // Environment and cwd.
        v("env-custom", |s, _| {
            s["process"]["env"] = json!(["Z=1", "PATH=/bin:/usr/bin", "A=two words", "E="]);
        }),
        v("env-no-path", |s, _| s["process"]["env"] = json!(["A=1"])),
        v("env-home", |s, _| {
            s["process"]["env"] = json!(["PATH=/bin", "HOME=/tmp"]);
        }),
        v("env-home-user-1000", |s, _| {
            user(s, 1000, 1000);
            s["process"]["env"] = json!(["PATH=/bin"]);
        }),
        v("cwd-existing", |s, _| s["process"]["cwd"] = json!("/tmp")),
        v("cwd-missing", |s, _| {
            s["process"]["cwd"] = json!("/work/new")
        }),
        v("cwd-missing-user-1000", |s, _| {
            user(s, 1000, 1000);
            s["process"]["cwd"] = json!("/work/new");
        }),
        refused("cwd-relative", |s, _| s["process"]["cwd"] = json!("tmp")),
        refused("missing-executable", |s, _| {
            s["process"]["args"] = json!(["/no/such/probe"]);
        }),
        // Masked and read-only paths.
        v("masked-extra", |s, _| {
            let m = s["linux"]["maskedPaths"].as_array_mut().unwrap();
            m.extend([
                json!("/proc/cpuinfo"),
                json!("/sys/kernel/mm"),
                json!("/proc/no-such-file"),
            ]);
        }),
        v("masked-under-readonly", |s, _| {
            let m = s["linux"]["maskedPaths"].as_array_mut().unwrap();
            m.push(json!("/proc/sys/kernel/core_pattern"));
        }),
        v("masked-none", |s, _| s["linux"]["maskedPaths"] = json!([])),
        v("readonly-extra", |s, _| {
            s["root"]["readonly"] = json!(false);
            let r = s["linux"]["readonlyPaths"].as_array_mut().unwrap();
            r.extend([json!("/tmp"), json!("/dev/shm"), json!("/no/such/dir")]);
        }),
        v("readonly-none", |s, _| {
            s["linux"]["readonlyPaths"] = json!([])
        }),
        // Mounts.
        v("tmpfs-options", |s, _| {
            mount(
                s,
                json!({"destination": "/mnt/a", "type": "tmpfs", "source": "tmpfs",
                       "options": ["nosuid", "nodev", "noexec", "size=1m", "mode=700",
                                   "uid=1000", "gid=1000"]}),
            );
        }),
        v("tmpfs-ro", |s, _| {
            mount(
                s,
                json!({"destination": "/mnt/a", "type": "tmpfs", "source": "tmpfs",
                       "options": ["ro", "mode=755"]}),
            );
        }),
        v("tmpfs-new-mountpoint", |s, _| {
            mount(
                s,
                json!({"destination": "/run/x", "type": "tmpfs", "source": "tmpfs",
                       "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
            );
        }),
        v("bind-ro", |s, d| bind(s, d, "/mnt/a", &["rbind", "ro"])),
        v("bind-rw", |s, d| bind(s, d, "/mnt/a", &["bind"])),
        v("bind-flags", |s, d| {
            bind(s, d, "/mnt/a", &["bind", "nosuid", "nodev", "noexec", "ro"])
        }),
        v("bind-file", |s, d| {
            mount(
                s,
                json!({"destination": "/mnt/f", "type": "bind",
                       "source": d.join("file"), "options": ["bind", "ro"]}),
            );
        }),
        v("bind-rshared", |s, d| {
            bind(s, d, "/mnt/a", &["rbind", "rshared"])
        }),
        v("bind-rslave", |s, d| {
            bind(s, d, "/mnt/a", &["rbind", "rslave"])
        }),
        v("bind-rprivate", |s, d| {
            bind(s, d, "/mnt/a", &["rbind", "rprivate"])
        }),
        v("bind-twice", |s, d| {
            bind(s, d, "/mnt/a", &["rbind", "ro"]);
            bind(s, d, "/mnt/b", &["rbind", "rw"]);
        }),
        v("rootfs-propagation-private", |s, _| {
            s["linux"]["rootfsPropagation"] = json!("private")
        }),
        v("rootfs-propagation-slave", |s, _| {
            s["linux"]["rootfsPropagation"] = json!("slave")
        }),
        v("rootfs-propagation-shared", |s, _| {
            s["linux"]["rootfsPropagation"] = json!("shared")
        }),
        v("mounts-only-proc", |s, _| {
            s["mounts"] = json!([{"destination": "/proc", "type": "proc", "source": "proc"}]);
        }),
        v("no-mqueue", |s, _| drop_mount(s, "/dev/mqueue")),
        v("no-dev-shm", |s, _| drop_mount(s, "/dev/shm")),
        v("sysfs-rw", |s, _| {
            for m in s["mounts"].as_array_mut().unwrap() {
                if m["destination"] == "/sys" {
                    m["options"] = json!(["nosuid", "noexec", "nodev"]);
                }
            }
        }),
        // Devices.
        v("device-file-mode", |s, _| {
            fuse(s, json!({"fileMode": 0o600}))
        }),
        v("device-no-file-mode", |s, _| fuse(s, json!({}))),
        v("device-owner", |s, _| {
            fuse(s, json!({"fileMode": 0o640, "uid": 1000, "gid": 1000}))
        }),
        v("device-cgroup-allow", |s, _| {
            fuse(s, json!({"fileMode": 0o666}));
            device_rule(
                s,
                json!({"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rwm"}),
            );
        }),
        v("device-cgroup-allow-all", |s, _| {
            s["linux"]["resources"]["devices"] = json!([{"allow": true, "access": "rwm"}]);
            fuse(s, json!({"fileMode": 0o666}));
        }),
        v("device-cgroup-deny-null", |s, _| {
            device_rule(
                s,
                json!({"allow": false, "type": "c", "major": 1, "minor": 3, "access": "rwm"}),
            );
        }),
        v("device-cgroup-read-only-zero", |s, _| {
            s["linux"]["resources"]["devices"] = json!([
                {"allow": false, "access": "rwm"},
                {"allow": true, "type": "c", "major": 1, "minor": 5, "access": "r"}
            ]);
        }),
        // sysctl.
        v("sysctl-net", |s, _| {
            s["linux"]["sysctl"] = json!({
                "net.ipv4.ip_forward": "1", "net.core.somaxconn": "256",
                "net.ipv4.ip_unprivileged_port_start": "80"
            });
        }),
        v("sysctl-kernel", |s, _| {
            s["linux"]["sysctl"] = json!({
                "kernel.shm_rmid_forced": "1", "kernel.msgmax": "16384",
                "kernel.sem": "250 32000 32 128", "fs.mqueue.msg_max": "20"
            });
        }),
        v("sysctl-ping-group-range", |s, _| {
            s["linux"]["sysctl"] = json!({"net.ipv4.ping_group_range": "0 2147483647"});
        }),
        refused("sysctl-net-in-host-netns", |s, _| {
            drop_namespace(s, "network");
            s["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "0"});
        }),
        // Namespaces.
        v("netns-host", |s, _| drop_namespace(s, "network")),
        v("ipcns-host", |s, _| drop_namespace(s, "ipc")),
        v("cgroupns-host", |s, _| drop_namespace(s, "cgroup")),
        v("userns", |s, _| userns(s)),
        v("userns-user-1000", |s, _| {
            userns(s);
            user(s, 1000, 1000);
            s["process"]["user"]["additionalGids"] = json!([50]);
        }),
        v("userns-rootfs-mapped-rw", |s, bundle| {
            userns(s);
            chown_mapped(&bundle.join("rootfs"));
            s["root"]["readonly"] = json!(false);
        }),
        v("userns-bind-mapped", |s, bundle| {
            userns(s);
            chown_mapped(&bundle.join("src"));
            bind(s, bundle, "/tmp", &["rbind", "rw"]);
        }),
        // sysfs can only be mounted for a network namespace the user namespace owns.
        refused("userns-netns-host", |s, _| {
            userns(s);
            drop_namespace(s, "network");
        }),
        v("userns-sysctl-hostname", |s, _| {
            userns(s);
            s["hostname"] = json!("mapped");
            s["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1", "kernel.msgmax": "16384"});
        }),
        refused("userns-without-maps", |s, _| {
            userns(s);
            let linux = s["linux"].as_object_mut().unwrap();
            linux.remove("uidMappings");
            linux.remove("gidMappings");
        }),
        v("maps-without-userns", |s, _| {
            userns(s);
            drop_namespace(s, "user");
        }),
        // oom_score_adj.
        v("oom-500", |s, _| s["process"]["oomScoreAdj"] = json!(500)),
        v("oom-1000", |s, _| s["process"]["oomScoreAdj"] = json!(1000)),
        // Below the runtime's own score: needs CAP_SYS_RESOURCE, which the container lacks.
        refused("oom-minus-100", |s, _| {
            s["process"]["oomScoreAdj"] = json!(-100)
        }),
        // cgroups: membership and limits (through a cgroup mount).
        v("cgroup-mount", |s, _| cgroup_mount(s, true)),
        v("cgroup-mount-rw", |s, _| cgroup_mount(s, false)),
        v("cgroup-mount-no-cgroupns", |s, _| {
            cgroup_mount(s, true);
            drop_namespace(s, "cgroup");
        }),
        v("memory-limits", |s, _| {
            cgroup_mount(s, true);
            s["linux"]["resources"]["memory"] =
                json!({"limit": 64 * MIB, "reservation": 32 * MIB, "swappiness": 10});
        }),
        v("memory-oom-killer-off", |s, _| {
            cgroup_mount(s, true);
            s["linux"]["resources"]["memory"] =
                json!({"limit": 64 * MIB, "disableOOMKiller": true});
        }),
        v("pids-limit", |s, _| {
            cgroup_mount(s, true);
            s["linux"]["resources"]["pids"] = json!({"limit": 64});
        }),
        v("cpu-limits", |s, _| {
            cgroup_mount(s, true);
            s["linux"]["resources"]["cpu"] =
                json!({"shares": 512, "quota": 50000, "period": 100000});
        }),
        v("cpuset", |s, _| {
            cgroup_mount(s, true);
            s["linux"]["resources"]["cpu"] = json!({"cpus": "0", "mems": "0"});
        }),
        v("blkio-weight", |s, _| {
            cgroup_mount(s, true);
            s["linux"]["resources"]["blockIO"] = json!({"weight": 500});
        }),
    ]
}
