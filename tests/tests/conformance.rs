//! Tier 2 (root): the conformance suite (issue 8, "A side-by-side test of your own"). Every
//! variant below is an OCI spec run under runc and under zagent (both launchers), each time in a
//! fresh copy of the busybox rootfs with the probe (tests/data/conformance/probe.sh) as the
//! container's process; the probe prints what the process sees (identity, capabilities,
//! NoNewPrivs, seccomp, umask, rlimits, hostname, cwd, env, namespaces, mountinfo, /dev, fds,
//! oom_score_adj, cgroups and their limits, masked and read-only paths, sysctls, lo). The
//! reports are normalised (tests::conformance::normalise) and compared line by line; every
//! difference must be in JUSTIFIED, with its reason, and every entry of JUSTIFIED must still
//! be needed (a stale entry fails the suite too).

use serde_json::{json, Value};
use std::path::Path;
use std::time::Instant;
use tests::agent::{Launcher, TestAgent};
use tests::conformance::diff::{self, Hunk};
use tests::conformance::normalise::{host_namespaces, Normaliser};
use tests::conformance::{run_runc, run_zagent, runc, Base, Outcome, RunDir};
use tests::{leftovers, procs, unique_id};

/// Runs at once (each is a container; the machine has 2 cores and runc's Go start-up is
/// CPU-bound, so more would only queue).
const CONCURRENCY: usize = 6;

/// A spec variant: `patch` edits the default spec (the probe as the process, read-only root,
/// the default mounts, `linux.cgroupsPath` set) given the run's bundle dir (for bind sources).
struct Variant {
    name: &'static str,
    /// Whether runc runs it (false: runc refuses it, and so must zagent).
    runs: bool,
    patch: fn(&mut Value, &Path),
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

/// A difference between runc's report and zagent's that is known and justified, in `section`
/// of the named variants (empty: every variant).
struct Justified {
    variants: &'static [&'static str],
    section: &'static str,
    accept: Accept,
    reason: &'static str,
}

enum Accept {
    /// One hunk of the diff: the lines only runc has and the lines only zagent has there,
    /// line for line (`*` in a pattern matches any run of characters, e.g. a host's device
    /// number). In section
    /// "outcome", a spec one runtime ran and the other refused (`ran` / `refused`).
    Lines(&'static [&'static str], &'static [&'static str]),
}

/// Differences that are NOT justified: zagent bugs found by this suite and not fixed yet
/// (issue 8 stays open for them). Listed apart from JUSTIFIED so that the rest of the suite
/// guards against new differences meanwhile; an entry whose bug is fixed goes stale and fails
/// the suite, so the list cannot outlive the bugs.
const KNOWN_BUGS: &[Justified] = &[];

/// THE list of justified differences, each with its reason.
const JUSTIFIED: &[Justified] = &[
    Justified {
        variants: &["seccomp-log-flag"],
        section: "outcome",
        accept: Accept::Lines(&["refused"], &["ran"]),
        reason: "runc 1.1.5 refuses every linux.seccomp.flags (\"seccomp flags are not yet \
                 supported by runc\"); runc 1.2 and the runtime spec (1.0.2+) support them, \
                 and so does zagent",
    },
    Justified {
        variants: &["userns"],
        section: "outcome",
        accept: Accept::Lines(&["ran"], &["refused"]),
        reason: "zagent has no user namespace support yet and refuses the spec \
                 (INVALID_ARGUMENT) rather than run it without one (README, \"Unsupported yet\")",
    },
    Justified {
        variants: &[],
        section: "identity",
        accept: Accept::Lines(&["SigIgn: 0000000080000004"], &["SigIgn: 0000000180000004"]),
        reason: "signals 32 and 33 are the C library's own (glibc's SIGCANCEL and SIGSETXID, \
                 below SIGRTMIN; musl reserves 32-34 too) and it installs its handlers for \
                 them itself: runc's process starts with 32 ignored (from runc's Go runtime), \
                 zagent's with 32 and 33 (the zygote resets only signals 1-31). Bit 3 is the \
                 probe's shell ignoring SIGQUIT",
    },
    Justified {
        variants: &["cgroupns-host", "cgroup-mount-no-cgroupns"],
        section: "cgroup",
        accept: Accept::Lines(&["0::/zagent/<id>"], &["0::/"]),
        reason: "on a hybrid host (cgroup v1 plus a controller-less cgroup2 mount) runc also \
                 puts the container in the cgroup2 hierarchy; zagent uses the v1 hierarchies \
                 only (README, \"Cgroups\"), so without a cgroup namespace the process shows \
                 the agent's cgroup2 path. No limit lives there (no controllers)",
    },
    Justified {
        variants: &[],
        section: "mountinfo",
        accept: Accept::Lines(
            &[
                "/sys/fs/cgroup/systemd /sys/fs/cgroup 0:</sys/fs/cgroup/systemd> / \
               /sys/fs/cgroup/systemd ro,nosuid,nodev,noexec,relatime - cgroup systemd \
               rw,name=systemd",
            ],
            &[
                "/sys/fs/cgroup/systemd /sys/fs/cgroup 0:</sys/fs/cgroup/systemd> / \
               /sys/fs/cgroup/systemd ro,nosuid,nodev,noexec,relatime - cgroup cgroup \
               rw,name=systemd",
            ],
        ),
        reason: "only the source name passed to mount(2) differs (runc names a named \
                 hierarchy's mount after it, zagent calls every one \"cgroup\"): same \
                 hierarchy, same options",
    },
    Justified {
        variants: &["cgroup-mount-rw"],
        section: "mountinfo",
        accept: Accept::Lines(
            &[
                "/sys/fs/cgroup/systemd /sys/fs/cgroup 0:</sys/fs/cgroup/systemd> / \
               /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime - cgroup systemd \
               rw,name=systemd",
            ],
            &[
                "/sys/fs/cgroup/systemd /sys/fs/cgroup 0:</sys/fs/cgroup/systemd> / \
               /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime - cgroup cgroup \
               rw,name=systemd",
            ],
        ),
        reason: "as above, for a cgroup mount without \"ro\"",
    },
    Justified {
        variants: &[],
        section: "mountinfo",
        accept: Accept::Lines(
            &["/sys/fs/cgroup /sys 0:</sys/fs/cgroup> / /sys/fs/cgroup \
               rw,nosuid,nodev,noexec,relatime - tmpfs tmpfs rw,mode=755"],
            &["/sys/fs/cgroup /sys 0:</sys/fs/cgroup> / /sys/fs/cgroup \
               ro,nosuid,nodev,noexec,relatime - tmpfs tmpfs rw,mode=755"],
        ),
        reason: "a cgroup mount with \"ro\" on a v1 host is a tmpfs with a read-only bind of \
                 each hierarchy in it: runc 1.1.5 leaves that tmpfs itself read-write, zagent \
                 makes it read-only too, as the mount's options ask (the hierarchies are \
                 read-only in both)",
    },
    Justified {
        variants: &[],
        section: "writable",
        accept: Accept::Lines(
            &["/sys/fs/cgroup not writable: Permission denied"],
            &["/sys/fs/cgroup not writable: Read-only file system"],
        ),
        reason: "the same read-only cgroup tmpfs (see above): EROFS under zagent",
    },
    Justified {
        variants: &["tmpfs-ro"],
        section: "mountinfo",
        accept: Accept::Lines(
            &["/mnt/a / 0:</mnt/a> / /mnt/a ro,relatime - tmpfs tmpfs rw,mode=755"],
            &["/mnt/a / 0:</mnt/a> / /mnt/a ro,relatime - tmpfs tmpfs ro,mode=755"],
        ),
        reason: "a tmpfs mount with \"ro\" is read-only in both: runc mounts it read-write \
                 and remounts the mount read-only, zagent mounts it read-only at once (so its \
                 superblock says ro as well); nothing can write to it either way",
    },
    Justified {
        variants: &["rootfs-propagation-shared"],
        section: "mountinfo",
        accept: Accept::Lines(
            &["/ - * <bundle>/rootfs / ro,relatime - *"],
            &["/ - * <bundle>/rootfs / ro,relatime shared:</> - *"],
        ),
        reason: "linux.rootfsPropagation \"shared\": zagent's root is shared, as the runtime \
                 spec asks; runc 1.1.5's root ends up private (it binds the rootfs under a \
                 parent it made private). The host's / is private here, so the peer group \
                 has no host mount in it",
    },
];
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

fn variants() -> Vec<Variant> {
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
        v("userns", |s, _| {
            s["linux"]["namespaces"]
                .as_array_mut()
                .unwrap()
                .push(json!({"type": "user"}));
            s["linux"]["uidMappings"] =
                json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
            s["linux"]["gidMappings"] =
                json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
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

/// The three sides of a variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Runc,
    Zagent(Launcher),
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Runc => "runc",
            Side::Zagent(l) => l.arg(),
        }
    }
}

struct Ctx {
    base: Base,
    runc: std::path::PathBuf,
    runc_root: tempfile::TempDir,
    zygote: TestAgent,
    reexec: TestAgent,
    host_ns: Vec<String>,
    permits: tokio::sync::Semaphore,
    ids: std::sync::Mutex<Vec<String>>,
}

/// One run of `variant` on `side`: (normalised report, outcome).
async fn run(ctx: &Ctx, variant: &Variant, side: Side) -> (String, Outcome) {
    let _permit = ctx.permits.acquire().await.expect("semaphore");
    let dir = RunDir::new(&ctx.base);
    let id = unique_id(&format!("zagent-conf-{}", side.name()));
    ctx.ids.lock().unwrap().push(id.clone());
    let mut spec = dir.spec();
    spec["linux"]["cgroupsPath"] = json!(format!("/zagent/{id}"));
    (variant.patch)(&mut spec, dir.bundle());
    let outcome = match side {
        Side::Runc => run_runc(&ctx.runc, ctx.runc_root.path(), dir.bundle(), &id, &spec).await,
        Side::Zagent(Launcher::Zygote) => run_zagent(&ctx.zygote, &id, &spec).await,
        Side::Zagent(Launcher::Reexec) => run_zagent(&ctx.reexec, &id, &spec).await,
    };
    let mounts = leftovers::host_mounts_at_or_under(dir.bundle());
    assert!(
        mounts.is_empty(),
        "{} on {}: host mounts left under the bundle: {mounts:?}",
        variant.name,
        side.name()
    );
    let n = Normaliser {
        bundle: dir.bundle().to_string_lossy().into_owned(),
        id,
        host_ns: ctx.host_ns.clone(),
    };
    (outcome.report(&n), outcome)
}

/// `line` against `pattern`, in which each `*` matches any run of characters.
fn matches(pattern: &str, line: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = line.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    for (i, part) in parts.iter().enumerate() {
        if i + 1 == parts.len() {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

fn all_match(patterns: &[&str], lines: &[String]) -> bool {
    patterns.len() == lines.len() && patterns.iter().zip(lines).all(|(p, l)| matches(p, l))
}

/// JUSTIFIED, then KNOWN_BUGS: every difference the suite accepts, in one index space.
fn entries() -> impl Iterator<Item = &'static Justified> {
    JUSTIFIED.iter().chain(KNOWN_BUGS)
}

fn applies(j: &Justified, variant: &str, section: &str) -> bool {
    (j.variants.is_empty() || j.variants.contains(&variant)) && j.section == section
}

/// The `Accept::Lines` entry of JUSTIFIED that accepts `hunk` of `variant`, if any.
fn justified(variant: &str, hunk: &Hunk) -> Option<usize> {
    entries().position(|j| {
        applies(j, variant, &hunk.section)
            && match j.accept {
                Accept::Lines(runc, zagent) => {
                    all_match(runc, &hunk.left) && all_match(zagent, &hunk.right)
                }
            }
    })
}

/// The hunks of one side's report against runc's that no entry of JUSTIFIED accepts, noting
/// the entries used in `used`. A spec one side ran and the other refused is one hunk in
/// section "outcome", with each side's message.
fn unjustified(
    variant: &str,
    runc: &(String, Outcome),
    other: &(String, Outcome),
    used: &mut [bool],
) -> Vec<Hunk> {
    let outcome = |o: &Outcome| match o {
        Outcome::Ran { .. } => "ran",
        Outcome::Refused(_) => "refused",
    };
    let hunks = if outcome(&runc.1) != outcome(&other.1) {
        vec![Hunk {
            section: "outcome".into(),
            left: vec![outcome(&runc.1).into()],
            right: vec![outcome(&other.1).into()],
        }]
    } else {
        diff::hunks(&runc.0, &other.0)
    };
    let mut out = Vec::new();
    for h in &hunks {
        match justified(variant, h) {
            Some(i) => used[i] = true,
            None if h.section == "outcome" => out.push(Hunk {
                left: vec![format!("{}: {}", h.left[0], runc.1.detail().trim())],
                right: vec![format!("{}: {}", h.right[0], other.1.detail().trim())],
                ..h.clone()
            }),
            None => out.push(h.clone()),
        }
    }
    out
}

/// Each distinct unjustified hunk once, with the variants and launchers it came up in.
fn render_failures(found: &[(String, Hunk)]) -> Vec<String> {
    let mut by_hunk: Vec<(&Hunk, Vec<&str>)> = Vec::new();
    for (where_, h) in found {
        match by_hunk.iter_mut().find(|(k, _)| *k == h) {
            Some((_, places)) => places.push(where_),
            None => by_hunk.push((h, vec![where_])),
        }
    }
    by_hunk
        .into_iter()
        .map(|(h, places)| {
            let mut text = format!(
                "in section {:?} of {} run(s): {}\n",
                h.section,
                places.len(),
                places.join(", ")
            );
            for l in &h.left {
                text.push_str(&format!("  - {l}\n"));
            }
            for l in &h.right {
                text.push_str(&format!("  + {l}\n"));
            }
            text
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn runc_and_zagent_show_the_process_the_same_world() {
    tests::require_root();
    let started = Instant::now();
    // ZAGENT_CONFORMANCE=name,name runs only those variants, printing their whole diffs.
    let only = std::env::var("ZAGENT_CONFORMANCE").ok();
    let variants: Vec<Variant> = variants()
        .into_iter()
        .filter(|v| {
            only.as_deref()
                .is_none_or(|o| o.split(',').any(|n| n == v.name))
        })
        .collect();
    let ctx = Ctx {
        base: Base::new(),
        runc: runc(),
        runc_root: tempfile::Builder::new()
            .prefix("zagent-conf-runc")
            .tempdir()
            .expect("tempdir"),
        zygote: TestAgent::start_with(Launcher::Zygote).await,
        reexec: TestAgent::start_with(Launcher::Reexec).await,
        host_ns: host_namespaces(),
        permits: tokio::sync::Semaphore::new(CONCURRENCY),
        ids: Default::default(),
    };
    let results = futures::future::join_all(variants.iter().map(|variant| {
        let ctx = &ctx;
        async move {
            tokio::join!(
                run(ctx, variant, Side::Runc),
                run(ctx, variant, Side::Zagent(Launcher::Zygote)),
                run(ctx, variant, Side::Zagent(Launcher::Reexec)),
            )
        }
    }))
    .await;

    let mut failures = Vec::new();
    let mut found = Vec::new();
    let mut used = vec![false; JUSTIFIED.len() + KNOWN_BUGS.len()];
    for (variant, (runc, zygote, reexec)) in variants.iter().zip(&results) {
        let ran = matches!(runc.1, Outcome::Ran { .. });
        if ran != variant.runs {
            failures.push(format!(
                "{}: runc {} it (the variant says it {}): {}",
                variant.name,
                if ran { "ran" } else { "refused" },
                if variant.runs { "runs" } else { "is refused" },
                runc.1.detail().trim()
            ));
        }
        for (side, other) in [(Launcher::Zygote, zygote), (Launcher::Reexec, reexec)] {
            if only.is_some() {
                // Working on a few variants: the whole diff, justified lines included.
                eprintln!(
                    "{} ({} vs runc):\n{}",
                    variant.name,
                    side.arg(),
                    diff::render(&runc.0, &other.0)
                );
            }
            for h in unjustified(variant.name, runc, other, &mut used) {
                found.push((format!("{}/{}", variant.name, side.arg()), h));
            }
        }
    }
    if !found.is_empty() {
        failures.push(format!(
            "differences from runc that JUSTIFIED does not list (- runc, + zagent):\n\n{}",
            render_failures(&found).join("\n")
        ));
    }
    for (j, used) in entries().zip(&used) {
        if !used {
            failures.push(format!(
                "stale entry in JUSTIFIED or KNOWN_BUGS (no variant needs it any more): {:?} in {}: {}",
                j.variants, j.section, j.reason
            ));
        }
    }

    // Nothing of any run may be left: runc's and the agents' cgroups, the agents' zombies.
    for id in ctx.ids.lock().unwrap().iter() {
        let left = leftovers::cgroups_left(id);
        assert!(left.is_empty(), "cgroups of {id} left: {left:?}");
    }
    for a in [&ctx.zygote, &ctx.reexec] {
        assert_eq!(procs::zombies_of(a.pid()), Vec::<i32>::new(), "zombies");
    }
    // runc (not zagent) makes the `zagent` parent in the hybrid host's cgroup2 hierarchy
    // too; remove it once empty (rmdir fails on a non-empty one, so nobody else's goes).
    let _ = std::fs::remove_dir("/sys/fs/cgroup/unified/zagent");

    eprintln!(
        "conformance: {} variants x (runc, zygote, reexec) in {:.1?}, {} justified differences, \
         {} known bugs",
        variants.len(),
        started.elapsed(),
        JUSTIFIED.len(),
        KNOWN_BUGS.len()
    );
    assert!(
        failures.is_empty(),
        "{} conformance failures:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn patterns_match_with_stars() {
    assert!(matches("a*c", "abbc"));
    assert!(matches("a*", "a"));
    assert!(matches("/ - * x - *", "/ - 254:0 x - ext4 y"));
    assert!(!matches("a*c", "abcd"));
    assert!(!matches("abc", "abcd"));
    assert!(matches("abc", "abc"));
}
