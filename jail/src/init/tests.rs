//! Root tests of the whole jail: `prepare` + `exec` in a forked child against a busybox rootfs.
//! They are `#[ignore]`d (they need root, and fail rather than pass without it); run them with
//! `cargo test -p jail -- --ignored` as root.

use crate::test_util::{
    busybox_rootfs, mounts_under, require_root, run_jailed, run_jailed_joining,
};
use nix::mount::MsFlags as F;
use nix::sched::CloneFlags as C;
use std::path::Path;
use wire::zygote::{
    Capabilities, ContainerConfig, Device, DeviceKind, Mount, Namespace, NamespaceKind,
    ProcessConfig, Rlimit,
};

pub(super) fn mount(dest: &str, fstype: &str, source: &str, flags: F, data: &str) -> Mount {
    Mount {
        destination: dest.into(),
        fstype: (!fstype.is_empty()).then(|| fstype.to_string()),
        source: Some(source.to_string()),
        flags: flags.bits(),
        propagation: vec![],
        data: data.to_string(),
        ..Default::default()
    }
}

pub(super) fn standard_mounts() -> Vec<Mount> {
    let ns = F::MS_NOSUID | F::MS_NOEXEC | F::MS_NODEV;
    vec![
        mount("/proc", "proc", "proc", ns, ""),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            F::MS_NOSUID | F::MS_STRICTATIME,
            "mode=755,size=65536k",
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            F::MS_NOSUID | F::MS_NOEXEC,
            "newinstance,ptmxmode=0666,mode=0620",
        ),
        mount("/dev/shm", "tmpfs", "shm", ns, "mode=1777,size=65536k"),
        mount("/dev/mqueue", "mqueue", "mqueue", ns, ""),
        mount("/sys", "sysfs", "sysfs", ns | F::MS_RDONLY, ""),
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            ns | F::MS_RELATIME | F::MS_RDONLY,
            "",
        ),
    ]
}

fn namespaces(kinds: &[NamespaceKind]) -> Vec<Namespace> {
    kinds
        .iter()
        .map(|&kind| Namespace { kind, join: false })
        .collect()
}

/// What the zygote's clone3 would create for `namespaces` (all but cgroup).
pub(super) const UNSHARE: C = C::CLONE_NEWNS
    .union(C::CLONE_NEWPID)
    .union(C::CLONE_NEWUTS)
    .union(C::CLONE_NEWIPC)
    .union(C::CLONE_NEWNET);

fn device(path: &str, minor: u64) -> Device {
    let (major, minor) = if path == "/dev/tty" {
        (5, 0)
    } else {
        (1, minor)
    };
    Device {
        path: path.into(),
        kind: DeviceKind::Char,
        major,
        minor,
        mode: 0o666,
        uid: 0,
        gid: 0,
    }
}

pub(super) fn base_config(rootfs: &Path, script: &str) -> ContainerConfig {
    use NamespaceKind::*;
    ContainerConfig {
        id: "jail-test".into(),
        rootfs: rootfs.to_path_buf(),
        namespaces: namespaces(&[Mount, Pid, Uts, Ipc, Network, Cgroup]),
        mounts: standard_mounts(),
        devices: [
            ("/dev/null", 3),
            ("/dev/zero", 5),
            ("/dev/full", 7),
            ("/dev/tty", 0),
        ]
        .iter()
        .map(|&(p, m)| device(p, m))
        .collect(),
        process: ProcessConfig {
            args: vec!["sh".into(), "-c".into(), script.into()],
            env: vec!["PATH=/bin".into(), "HOME=/".into()],
            cwd: "/".into(),
            ..Default::default()
        },
        ..Default::default()
    }
}

const CAP_CHOWN: u64 = 1 << 0;
pub(super) const CAP_KILL: u64 = 1 << 5;
const CAP_NET_BIND_SERVICE: u64 = 1 << 10;
const CAP_AUDIT_WRITE: u64 = 1 << 29;

const SCRIPT: &str = "\
echo pid=$$; hostname; cat /proc/sys/kernel/domainname
grep -E '^(Cap|NoNewPrivs|Uid|Gid|Groups)' /proc/self/status
echo umask=$(umask) nofile=$(ulimit -n) oom=$(cat /proc/self/oom_score_adj) cwd=$(pwd)
echo shm_rmid_forced=$(cat /proc/sys/kernel/shm_rmid_forced)
touch /rootfile 2>/dev/null && echo root=rw || echo root=ro
echo data=$(cat /mnt/data/hello) file=$(cat /etc/injected)
touch /mnt/data/new 2>/dev/null && echo datamount=rw || echo datamount=ro
echo keys=$(wc -c < /proc/keys) acpi=$(ls /proc/acpi 2>&1 | wc -l)
echo ptmx=$(readlink /dev/ptmx) stdout=$(readlink /dev/stdout)
ls -l /dev/null /dev/zero
ls /dev /sys/fs/cgroup | tr '\\n' ' '; echo
grep -E ' /proc/sys | /proc/keys | /sys/fs/cgroup/memory | /mnt/data | /etc/injected | / ' /proc/self/mountinfo
";

#[test]
#[ignore = "requires root"]
fn full_jail_as_non_root_user() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let rootfs = busybox_rootfs(tmp.path());
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("hello"), "hi").unwrap();
    std::fs::write(tmp.path().join("injected"), "inj").unwrap();
    let mut cfg = base_config(&rootfs, SCRIPT);
    let ns = F::MS_NOSUID | F::MS_NODEV | F::MS_NOEXEC;
    cfg.mounts.push(Mount {
        propagation: vec![(F::MS_PRIVATE | F::MS_REC).bits()],
        ..mount(
            "/mnt/data",
            "",
            data.to_str().unwrap(),
            F::MS_BIND | F::MS_REC | F::MS_RDONLY,
            "",
        )
    });
    let injected = tmp.path().join("injected");
    cfg.mounts.push(mount(
        "/etc/injected",
        "bind",
        injected.to_str().unwrap(),
        F::MS_BIND | F::MS_RDONLY | ns,
        "",
    ));
    cfg.masked_paths = [
        "/proc/kcore",
        "/proc/keys",
        "/proc/acpi",
        "/sys/firmware",
        "/proc/none",
    ]
    .iter()
    .map(Into::into)
    .collect();
    cfg.readonly_paths = ["/proc/sys", "/proc/sysrq-trigger", "/proc/none2"]
        .iter()
        .map(Into::into)
        .collect();
    cfg.readonly_root = true;
    cfg.hostname = Some("jailtest".into());
    cfg.domainname = Some("example.test".into());
    cfg.sysctl = vec![("kernel.shm_rmid_forced".into(), "1".into())];
    cfg.oom_score_adj = Some(100);
    let p = &mut cfg.process;
    p.rlimits = vec![Rlimit {
        resource: 7, // RLIMIT_NOFILE
        soft: 1000,
        hard: 1000,
    }];
    p.umask = Some(0o027);
    (p.uid, p.gid, p.additional_gids) = (1000, 1000, vec![2000, 3000]);
    let caps = CAP_CHOWN | CAP_KILL | CAP_NET_BIND_SERVICE | CAP_AUDIT_WRITE;
    p.capabilities = Capabilities {
        bounding: caps,
        effective: caps,
        permitted: caps,
        inheritable: CAP_NET_BIND_SERVICE,
        ambient: CAP_NET_BIND_SERVICE,
    };
    p.no_new_privileges = true;
    p.cwd = "/tmp".into();

    let run = run_jailed(&cfg, UNSHARE);
    let out = &run.output;
    eprintln!("{out}");
    assert_eq!((run.code, run.failure()), (0, None), "{out}");
    for want in [
        "pid=1\njailtest\nexample.test\n",
        "CapInh:\t0000000000000400\nCapPrm:\t0000000000000400\nCapEff:\t0000000000000400\n",
        "CapBnd:\t0000000020000421\nCapAmb:\t0000000000000400\n",
        "NoNewPrivs:\t1",
        "Uid:\t1000\t1000\t1000\t1000",
        "Gid:\t1000\t1000\t1000\t1000",
        "Groups:\t2000 3000",
        "umask=0027 nofile=1000 oom=100 cwd=/tmp\n",
        "shm_rmid_forced=1\n",
        "root=ro\n",
        "data=hi file=inj\ndatamount=ro\n",
        "keys=0 acpi=0\n",
        "ptmx=pts/ptmx stdout=/proc/self/fd/1\n",
        " fd full mqueue null ptmx pts shm stderr stdin stdout tty zero ",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    assert!(
        out.contains(" cpu ") && out.contains(" memory ") && out.contains(" systemd "),
        "{out}"
    );
    let null = out
        .lines()
        .find(|l| l.ends_with("/dev/null"))
        .unwrap_or_default();
    let f: Vec<&str> = null.split_whitespace().collect();
    assert_eq!(
        f.get(..6),
        Some(&["crw-rw-rw-", "1", "0", "0", "1,", "3"][..]),
        "{out}"
    );
    let ro_mount = |point: &str| {
        out.lines().any(|l| {
            l.split(' ').nth(4) == Some(point)
                && l.split(' ').nth(5).is_some_and(|o| o.starts_with("ro"))
        })
    };
    assert!(
        ro_mount("/proc/sys") && ro_mount("/") && ro_mount("/sys/fs/cgroup/memory"),
        "{out}"
    );
    assert!(ro_mount("/mnt/data") && ro_mount("/etc/injected"), "{out}");
    assert!(
        out.contains(" /etc/injected ro,nosuid,nodev,noexec"),
        "{out}"
    );
    assert!(
        out.contains(" /proc/keys "),
        "/proc/keys is not masked:\n{out}"
    );
    assert_eq!(mounts_under(tmp.path()), Vec::<std::path::PathBuf>::new());
}

#[test]
#[ignore = "requires root"]
fn failures_name_their_step_and_errno() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let rootfs = busybox_rootfs(tmp.path());

    let mut cfg = base_config(&rootfs, "echo unreachable");
    cfg.mounts.push(mount(
        "/mnt/x",
        "",
        "/nonexistent/zagent-src",
        F::MS_BIND,
        "",
    ));
    let run = run_jailed(&cfg, UNSHARE);
    assert_eq!(
        run.failure(),
        Some(("mount".into(), libc::ENOENT)),
        "{}",
        run.output
    );
    assert_eq!(run.code, 100);

    let cfg = base_config(&rootfs, "echo unreachable");
    let cfg = ContainerConfig {
        process: ProcessConfig {
            args: vec!["nonexistent-program".into()],
            ..cfg.process.clone()
        },
        ..cfg
    };
    let run = run_jailed(&cfg, UNSHARE);
    assert_eq!(
        run.failure(),
        Some(("exec".into(), libc::ENOENT)),
        "{}",
        run.output
    );
    assert!(run
        .output
        .contains("exec nonexistent-program: not found in PATH /bin: ENOENT"));
    assert_eq!(run.code, 101);

    // /proc as a symlink pointing at the host's /proc: refused, nothing mounted through it.
    std::fs::remove_dir(rootfs.join("proc")).unwrap();
    std::os::unix::fs::symlink("/tmp", rootfs.join("proc")).unwrap();
    let run = run_jailed(&base_config(&rootfs, "echo unreachable"), UNSHARE);
    assert_eq!(
        run.failure(),
        Some(("mount".into(), libc::ELOOP)),
        "{}",
        run.output
    );
    assert!(
        run.output.contains("resolve /proc (proc) at "),
        "{}",
        run.output
    );
    assert_eq!(mounts_under(tmp.path()), Vec::<std::path::PathBuf>::new());
}

#[test]
#[ignore = "requires root"]
fn shared_rootfs_propagation_and_a_joined_namespace() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let rootfs = busybox_rootfs(tmp.path());
    let mut cfg = base_config(&rootfs, "echo ok; cat /proc/self/status | grep CapEff");
    cfg.rootfs_propagation = (F::MS_SHARED | F::MS_REC).bits();
    cfg.mounts.truncate(2);
    cfg.process.capabilities.bounding = CAP_KILL;
    // Join the test's own network namespace instead of creating one.
    cfg.namespaces.retain(|n| n.kind != NamespaceKind::Network);
    cfg.namespaces.push(Namespace {
        kind: NamespaceKind::Network,
        join: true,
    });
    let net = std::fs::File::open("/proc/self/ns/net").unwrap();
    let join = [(NamespaceKind::Network, std::os::fd::AsFd::as_fd(&net))];
    let run = run_jailed_joining(&cfg, UNSHARE - C::CLONE_NEWNET, &join);
    assert_eq!((run.code, run.failure()), (0, None), "{}", run.output);
    // uid 0 execs with its bounding set as permitted and effective.
    assert!(
        run.output.contains("ok\nCapEff:\t0000000000000020\n"),
        "{}",
        run.output
    );
    assert_eq!(mounts_under(tmp.path()), Vec::<std::path::PathBuf>::new());
}

/// Three differences from runc the conformance suite found: a bind mount's own propagation
/// (here rshared) survives the rest of the jail, under the propagation a validated spec always
/// has (MS_REC|MS_SLAVE by default); with no /dev mount, /dev/null bound over a masked file is
/// read-only like the read-only root it lives on; a tmpfs over an existing directory takes the
/// directory's mode.
#[test]
#[ignore = "requires root"]
fn bind_propagation_masked_file_and_tmpfs_mode_as_runc() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let rootfs = busybox_rootfs(tmp.path());
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let covered = rootfs.join("mnt/t");
    std::fs::create_dir(&covered).unwrap();
    std::fs::set_permissions(
        &covered,
        std::os::unix::fs::PermissionsExt::from_mode(0o750),
    )
    .unwrap();
    let script = "grep -E ' /mnt/a | /proc/keys ' /proc/self/mountinfo; stat -c 'mode %a' /mnt/t";
    let mut cfg = base_config(&rootfs, script);
    cfg.rootfs_propagation = (F::MS_REC | F::MS_SLAVE).bits();
    cfg.mounts.truncate(1); // proc only: /dev/null is the rootfs's own
    cfg.mounts.push(Mount {
        propagation: vec![(F::MS_SHARED | F::MS_REC).bits()],
        ..mount(
            "/mnt/a",
            "bind",
            data.to_str().unwrap(),
            F::MS_BIND | F::MS_REC,
            "",
        )
    });
    cfg.mounts
        .push(mount("/mnt/t", "tmpfs", "tmpfs", F::MS_RDONLY, "mode=755"));
    cfg.masked_paths = vec!["/proc/keys".into()];
    cfg.readonly_root = true;
    let run = run_jailed(&cfg, UNSHARE);
    let out = &run.output;
    assert_eq!((run.code, run.failure()), (0, None), "{out}");
    let line = |point: &str| {
        out.lines()
            .find(|l| l.split(' ').nth(4) == Some(point))
            .unwrap_or_default()
            .to_string()
    };
    assert!(line("/mnt/a").contains(" shared:"), "{out}");
    assert!(line("/proc/keys").contains(" /proc/keys ro,"), "{out}");
    assert!(out.contains("mode 750\n"), "{out}");
    assert_eq!(mounts_under(tmp.path()), Vec::<std::path::PathBuf>::new());
}
