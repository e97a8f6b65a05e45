//! Root tests of terminals (`process.terminal`, for a container and for an exec) and of
//! `prepare_exec` joining a running container. `#[ignore]`d like the other root tests: run them
//! with `cargo test -p jail -- --ignored` as root.

use super::tests::{base_config, standard_mounts, CAP_KILL, UNSHARE};
use crate::test_util::{
    busybox_rootfs, environ_access, mounts_under, read_console, require_root, run_jailed,
    spawn_exec, spawn_jailed, wait_until, Run,
};
use nix::errno::Errno;
use nix::unistd::Pid;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use wire::zygote::{Capabilities, ExecConfig, NamespaceKind, ProcessConfig};

/// `ls -ln` fields of the line ending in `path`: mode, links, uid, gid, "major,", minor.
fn ls_fields(out: &str, path: &str) -> Vec<String> {
    let suffix = format!(" {path}");
    let line = out
        .lines()
        .find(|l| l.ends_with(&suffix))
        .unwrap_or_default();
    line.split_whitespace().take(6).map(String::from).collect()
}

fn assert_clean(run: &Run) {
    assert_eq!((run.code, run.failure()), (0, None), "{}", run.output);
}

#[test]
#[ignore = "requires root"]
fn container_with_a_terminal() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let rootfs = busybox_rootfs(tmp.path());
    let script = "\
tty; stty size; ls -ln $(tty) /dev/console
echo ctty-ok > /dev/tty
[ -t 0 ] && [ -t 1 ] && [ -t 2 ] && echo stdio-is-the-tty
";
    let mut cfg = base_config(&rootfs, script);
    cfg.process.terminal = true;
    (cfg.process.uid, cfg.process.gid) = (1000, 1000);
    cfg.console_size = Some((24, 80));

    let spawned = spawn_jailed(&cfg, UNSHARE);
    let master = spawned.take_console();
    let tty = master.map(read_console).unwrap_or_default();
    let run = spawned.finish();
    eprintln!("{tty}");
    assert_clean(&run);
    assert_eq!(run.output, "", "nothing may reach the zygote's stdio pipes");
    assert!(tty.starts_with("/dev/pts/0\n24 80\n"), "{tty}");
    assert!(
        tty.contains("ctty-ok\n") && tty.contains("stdio-is-the-tty\n"),
        "{tty}"
    );
    // Owned by the process's uid (identity step), group and mode from devpts (gid of the
    // creator, mode=0620): what runc does.
    let want = ["crw--w----", "1", "1000", "0", "136,", "0"];
    assert_eq!(ls_fields(&tty, "/dev/pts/0"), want, "{tty}");
    assert_eq!(ls_fields(&tty, "/dev/console"), want, "{tty}");
    assert_eq!(mounts_under(tmp.path()), Vec::<PathBuf>::new());
}

#[test]
#[ignore = "requires root"]
fn a_terminal_without_devpts_fails_in_the_terminal_step() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let rootfs = busybox_rootfs(tmp.path());
    let mut cfg = base_config(&rootfs, "echo unreachable");
    cfg.process.terminal = true;
    cfg.mounts = standard_mounts();
    cfg.mounts.retain(|m| m.fstype.as_deref() != Some("devpts"));
    let run = run_jailed(&cfg, UNSHARE);
    assert_eq!(
        run.failure(),
        Some(("terminal".into(), libc::ENOENT)),
        "{}",
        run.output
    );
    assert!(run.output.contains("open /dev/ptmx"), "{}", run.output);
    assert_eq!(run.code, 100);
}

fn only_kill() -> Capabilities {
    Capabilities {
        bounding: CAP_KILL,
        effective: CAP_KILL,
        permitted: CAP_KILL,
        ..Default::default()
    }
}

fn exec_config(script: &str) -> ExecConfig {
    use NamespaceKind::*;
    ExecConfig {
        container_id: "jail-test".into(),
        exec_id: "exec-1".into(),
        namespaces: vec![Mount, Pid, Uts, Ipc, Network, Cgroup],
        process: ProcessConfig {
            args: vec!["sh".into(), "-c".into(), script.into()],
            env: vec!["PATH=/bin".into()],
            cwd: "/tmp".into(),
            capabilities: only_kill(),
            no_new_privileges: true,
            ..Default::default()
        },
        ..Default::default()
    }
}

const EXEC_SCRIPT: &str = "\
hostname; echo pid=$$; cat /proc/1/comm /marker; pwd
stat -c root=%d:%i /
for n in mnt uts ipc net cgroup pid; do
  [ \"$(readlink /proc/self/ns/$n)\" = \"$(readlink /proc/1/ns/$n)\" ] && echo same-$n
done
grep NoNewPrivs /proc/self/status
";

/// The running container: pid 1 is `sleep`, uid 0 with only CAP_KILL, like the exec.
fn start_container(rootfs: &Path) -> crate::test_util::Spawned {
    std::fs::write(rootfs.join("marker"), "in-the-container\n").unwrap();
    let mut cfg = base_config(rootfs, "echo ready; exec sleep 100");
    cfg.hostname = Some("exec-host".into());
    cfg.process.capabilities = only_kill();
    let mut container = spawn_jailed(&cfg, UNSHARE);
    let line = container.read_line();
    if line != "ready\n" {
        container.kill();
        panic!(
            "container did not start: {line}{}",
            container.finish().output
        );
    }
    container
}

#[test]
#[ignore = "requires root"]
fn exec_joins_a_running_container() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let rootfs = busybox_rootfs(tmp.path());
    let container = start_container(&rootfs);
    let init = container.pid.unwrap();

    let mut cfg = exec_config(EXEC_SCRIPT);
    cfg.test_pause_before_exec_ms = 500;
    let exec = spawn_exec(&cfg, init);
    let pid = exec.pid.expect("the exec child was forked");
    check_not_dumpable_while_joining(init, pid);
    let run = exec.finish();
    let out = &run.output;
    eprintln!("{out}");
    assert_clean(&run);
    assert!(
        out.starts_with("exec-host\npid=") && out.contains("\nsleep\nin-the-container\n/tmp\n"),
        "{out}"
    );
    let ns_pid: i32 = out.lines().nth(1).unwrap()[4..].parse().unwrap();
    assert!(ns_pid > 1 && ns_pid != pid.as_raw(), "{out}");
    // "/" is the container's rootfs (the bind of it has the directory's device and inode).
    let meta = std::fs::metadata(&rootfs).unwrap();
    assert!(
        out.contains(&format!("root={}:{}\n", meta.dev(), meta.ino())),
        "{out}"
    );
    for ns in ["mnt", "uts", "ipc", "net", "cgroup", "pid"] {
        assert!(
            out.contains(&format!("same-{ns}\n")),
            "{ns} not joined:\n{out}"
        );
    }
    assert!(out.contains("NoNewPrivs:\t1\n"), "{out}");

    exec_with_a_terminal(init);
    exec_into_a_missing_cwd(init);

    container.kill();
    assert_eq!(container.finish().code, 128 + libc::SIGKILL);
    assert_eq!(mounts_under(tmp.path()), Vec::<PathBuf>::new());
}

/// During the exec's pause (after `prepare_exec`, before execve) a helper with the same uid,
/// gid and capabilities, but no CAP_SYS_PTRACE, cannot open its /proc/PID/environ; it can open
/// the dumpable container init's, so nothing but dumpability makes the difference.
fn check_not_dumpable_while_joining(init: Pid, pid: Pid) {
    let status = || std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    assert!(
        wait_until(Duration::from_secs(10), || status()
            .contains("NoNewPrivs:\t1")),
        "prepare_exec did not finish:\n{}",
        status()
    );
    assert_eq!(
        environ_access(init, CAP_KILL),
        Ok(()),
        "control: the dumpable init"
    );
    assert_eq!(environ_access(pid, CAP_KILL), Err(Errno::EACCES));
    assert!(
        status().contains("NoNewPrivs:\t1"),
        "the pause ended too early"
    );
}

fn exec_with_a_terminal(init: Pid) {
    let mut cfg =
        exec_config("tty; stty size; ls -ln $(tty); [ -e /dev/console ] || echo no-console");
    cfg.process.terminal = true;
    (cfg.process.uid, cfg.process.gid) = (1000, 1000);
    cfg.process.capabilities = Capabilities::default();
    cfg.console_size = Some((30, 100));
    let exec = spawn_exec(&cfg, init);
    let tty = exec.take_console().map(read_console).unwrap_or_default();
    let run = exec.finish();
    eprintln!("{tty}");
    assert_clean(&run);
    assert!(tty.starts_with("/dev/pts/0\n30 100\n"), "{tty}");
    let fields = ls_fields(&tty, "/dev/pts/0");
    assert_eq!(
        fields.get(..3),
        Some(&["crw--w----", "1", "1000"].map(String::from)[..])
    );
    // An exec leaves /dev/console alone (the container has no terminal, so there is none).
    assert!(tty.ends_with("\nno-console\n"), "{tty}");
}

fn exec_into_a_missing_cwd(init: Pid) {
    let mut cfg = exec_config("echo unreachable");
    cfg.process.cwd = "/nonexistent".into();
    let run = spawn_exec(&cfg, init).finish();
    assert_eq!(
        run.failure(),
        Some(("cwd".into(), libc::ENOENT)),
        "{}",
        run.output
    );
    assert_eq!(run.code, 100);
}
