//! Tier 2 (root): regression tests of attacks an attack review tried against zagent and that
//! failed. Each one really attempts the attack, for both launchers, and checks what the attacker
//! would observe: a CVE-2024-21626-style cwd in /proc/self/fd, fds leaked into the container,
//! writing the sealed launcher binary, and masked and read-only paths. Rootfs symlink races are
//! in attack_mounts.rs, resource exhaustion in attack_limits.rs.

use oci_spec::runtime::{Process, Spec};
use std::collections::BTreeMap;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tests::agent::{code, message, Launcher, RpcResult, TestAgent};
use tests::leftovers::assert_nothing_left;
use tests::{bundle, procs, unique_id};
use ttrpc::Code;

/// The default spec's process with `args`.
fn process(args: &[&str]) -> Process {
    bundle::spec(args).process().clone().unwrap()
}

/// Runs `p` as exec `exec_id` in the running container `id`: (status, stdout, stderr).
async fn exec_output(
    a: &TestAgent,
    id: &str,
    exec_id: &str,
    p: &Process,
) -> RpcResult<(i32, String, String)> {
    a.exec(id, exec_id, p).await?;
    let (out, err) = tokio::join!(
        a.read_all_exec(id, exec_id, false),
        a.read_all_exec(id, exec_id, true)
    );
    let status = a.wait_exec(id, exec_id).await?;
    let s = |v: Vec<u8>| String::from_utf8_lossy(&v).into_owned();
    Ok((status, s(out?), s(err?)))
}

/// Starts a container running `sleep 1000` and returns its id.
async fn sleeper(a: &TestAgent, spec: Option<Spec>) -> String {
    let id = unique_id("atk");
    let spec = spec.unwrap_or_else(|| bundle::spec(&["sleep", "1000"]));
    a.create(&id, &spec).await.unwrap();
    a.start_container(&id).await.unwrap();
    id
}

/// A secret file on the host, outside every rootfs, and the relative path that reaches it from
/// any directory up to 16 levels deep: what an escaped cwd would `cat`.
struct HostSecret {
    dir: tempfile::TempDir,
    secret: String,
}

impl HostSecret {
    fn new() -> HostSecret {
        let dir = tempfile::Builder::new()
            .prefix("zagent-secret")
            .tempdir_in("/tmp")
            .unwrap();
        let secret = format!("host-secret-{}", std::process::id());
        std::fs::write(dir.path().join("secret"), &secret).unwrap();
        HostSecret { dir, secret }
    }

    fn climbing_path(&self) -> String {
        let abs = self.dir.path().join("secret");
        format!(
            "{}{}",
            "../".repeat(16),
            abs.strip_prefix("/").unwrap().display()
        )
    }

    /// Where the cwd is and whether the host secret is reachable from it by climbing.
    fn probe_script(&self) -> String {
        format!(
            "echo \"cwd=$(pwd 2>&1)\"; cat {} 2>/dev/null; ls -a / | tr '\\n' ' '; echo; echo probe-ran",
            self.climbing_path()
        )
    }

    /// Fails if `out` (of `probe_script`) shows an escape; `what` names the attempt.
    fn assert_contained(&self, what: &str, out: &str) {
        assert!(
            out.contains("probe-ran"),
            "{what}: the probe did not run: {out}"
        );
        assert!(
            !out.contains(&self.secret),
            "{what}: host secret read: {out}"
        );
        let cwd = out
            .lines()
            .find_map(|l| l.strip_prefix("cwd="))
            .unwrap_or("");
        assert!(
            cwd.starts_with('/') && !cwd.contains("unreachable"),
            "{what}: cwd outside the container root: {out}"
        );
    }
}

/// The cwds tried: the CVE's form for fds 3..=10 and spellings that dodge a lexical check
/// (a symlink to /proc/self/fd, another pid, `..`, thread-self).
fn proc_fd_cwds() -> Vec<String> {
    let mut cwds = Vec::new();
    for n in 3..=10 {
        cwds.push(format!("/proc/self/fd/{n}"));
        cwds.push(format!("/proc/thread-self/fd/{n}"));
        cwds.push(format!("/proc/1/fd/{n}"));
        cwds.push(format!("/proc/self/../self/fd/{n}"));
        cwds.push(format!("/dev/fd/{n}"));
        cwds.push(format!("/dev/fd/../fd/{n}"));
    }
    cwds
}

/// A refused cwd must be a clean error: bad input or a failed "cwd" step, never a crash.
fn assert_clean_refusal<T: std::fmt::Debug>(what: &str, r: &RpcResult<T>) {
    let c = code(r);
    assert!(
        c == Code::INVALID_ARGUMENT || c == Code::FAILED_PRECONDITION,
        "{what}: {c:?} {}",
        message(r)
    );
}

tests::both_launchers!(cwd_in_proc_self_fd_never_leads_outside_the_root);
async fn cwd_in_proc_self_fd_never_leads_outside_the_root(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    let secret = HostSecret::new();
    // Control: the climbing path does reach the secret from a directory outside the root.
    let from_host = std::fs::read_to_string(bundle::rootfs().join(secret.climbing_path()));
    assert_eq!(from_host.unwrap(), secret.secret, "control: climbing path");
    let script = secret.probe_script();
    let (mut refused, mut contained) = (0, 0);
    for cwd in proc_fd_cwds() {
        let id = unique_id("cwd");
        let mut spec = bundle::spec(&["sh", "-c", &script]);
        let mut p = spec.process().clone().unwrap();
        p.set_cwd(PathBuf::from(&cwd));
        spec.set_process(Some(p));
        let r = a.create(&id, &spec).await;
        if r.is_err() {
            assert_clean_refusal(&format!("create with cwd {cwd}"), &r);
            refused += 1;
        } else {
            a.start_container(&id).await.unwrap();
            let out = String::from_utf8(a.read_all(&id, false).await.unwrap()).unwrap();
            a.wait(&id).await.unwrap();
            a.remove(&id).await.unwrap();
            secret.assert_contained(&format!("container with cwd {cwd}"), &out);
            contained += 1;
        }
        assert_nothing_left(&a, &id, &[bundle::rootfs()]).await;
    }
    // The same attempts from an exec into a running container.
    let id = sleeper(&a, None).await;
    for (i, cwd) in proc_fd_cwds().iter().enumerate() {
        let mut p = process(&["sh", "-c", &script]);
        p.set_cwd(PathBuf::from(cwd));
        let r = exec_output(&a, &id, &format!("e{i}"), &p).await;
        match r {
            Err(_) => {
                assert_clean_refusal(&format!("exec with cwd {cwd}"), &r);
                refused += 1;
            }
            Ok((_, out, _)) => {
                secret.assert_contained(&format!("exec with cwd {cwd}"), &out);
                contained += 1;
            }
        }
    }
    // The agent still serves execs in that container after all the refusals.
    let (status, out, _) = exec_output(&a, &id, "ok", &process(&["sh", "-c", &script]))
        .await
        .unwrap();
    assert_eq!(status, 0);
    secret.assert_contained("control exec with cwd /", &out);
    a.remove(&id).await.unwrap();
    assert_nothing_left(&a, &id, &[bundle::rootfs()]).await;
    eprintln!("{l:?}: proc-fd cwds refused {refused}, contained {contained}");
}

/// Parses `ls -l /proc/self/fd` into fd -> link target.
fn fd_table(ls: &str) -> BTreeMap<u32, String> {
    ls.lines()
        .filter_map(|l| {
            let (left, target) = l.split_once(" -> ")?;
            let fd = left.split_whitespace().last()?.parse().ok()?;
            Some((fd, target.trim().to_string()))
        })
        .collect()
}

/// Exactly 0, 1 and 2, plus at most the directory fd `ls` itself has open on /proc/<pid>/fd.
fn assert_only_stdio(what: &str, ls: &str) {
    let table = fd_table(ls);
    for fd in 0..=2 {
        assert!(table.contains_key(&fd), "{what}: fd {fd} missing: {ls}");
    }
    let extra: Vec<_> = table
        .iter()
        .filter(|(fd, target)| {
            let own_dir = target.starts_with("/proc/") && target.ends_with("/fd");
            **fd > 2 && !own_dir
        })
        .collect();
    assert!(
        extra.is_empty(),
        "{what}: fds leaked into the container: {extra:?}\n{ls}"
    );
    assert!(table.len() <= 4, "{what}: {ls}");
}

/// The fds of a host-visible process, by number.
fn host_fds(pid: i32) -> Vec<u32> {
    let mut fds: Vec<u32> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    fds.sort_unstable();
    fds
}

tests::both_launchers!(only_stdio_is_open_in_container_processes);
async fn only_stdio_is_open_in_container_processes(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    for terminal in [false, true] {
        let what = |w: &str| format!("{w} (terminal: {terminal})");
        let mut spec = bundle::spec(&["ls", "-l", "/proc/self/fd"]);
        let mut p = spec.process().clone().unwrap();
        p.set_terminal(Some(terminal));
        spec.set_process(Some(p.clone()));
        let (status, out, _) = a.run(&unique_id("fds"), &spec).await;
        assert_eq!(status, 0, "{out}");
        assert_only_stdio(&what("container init"), &out);
        // The same seen from the host, on a long-running init (nothing of ls in the way).
        p.set_args(Some(vec!["sleep".into(), "1000".into()]));
        spec.set_process(Some(p));
        let id = sleeper(&a, Some(spec)).await;
        let (_, pid, _) = a.info(&id).await.unwrap();
        assert_eq!(
            host_fds(pid),
            vec![0, 1, 2],
            "{}",
            what("init from the host")
        );
        let mut e = process(&["ls", "-l", "/proc/self/fd"]);
        e.set_terminal(Some(terminal));
        let (status, out, _) = exec_output(&a, &id, "ls", &e).await.unwrap();
        assert_eq!(status, 0, "{out}");
        assert_only_stdio(&what("exec"), &out);
        a.remove(&id).await.unwrap();
        assert_nothing_left(&a, &id, &[bundle::rootfs()]).await;
    }
}

/// Asserts that `pid` runs from a sealed memfd that refuses every way of opening it for writing.
fn assert_sealed_memfd(what: &str, pid: i32) {
    let exe = format!("/proc/{pid}/exe");
    let link = std::fs::read_link(&exe).unwrap();
    assert!(
        link.to_string_lossy().starts_with("/memfd:"),
        "{what}: exe is {}",
        link.display()
    );
    let file = std::fs::File::open(&exe).unwrap();
    let seals = nix::fcntl::fcntl(file.as_raw_fd(), nix::fcntl::FcntlArg::F_GET_SEALS)
        .unwrap_or_else(|e| panic!("{what}: F_GET_SEALS: {e}"));
    let wanted = libc::F_SEAL_WRITE | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
    assert_eq!(seals & wanted, wanted, "{what}: seals {seals:#x}");
    for (write, read) in [(true, false), (true, true)] {
        let r = std::fs::OpenOptions::new()
            .write(write)
            .read(read)
            .append(!read)
            .open(&exe);
        let errno = r.as_ref().err().and_then(std::io::Error::raw_os_error);
        assert!(
            matches!(errno, Some(libc::ETXTBSY | libc::EPERM | libc::EACCES)),
            "{what}: open for writing: {r:?}"
        );
    }
}

/// The processes of container `id` (its pids cgroup), seen from the host.
fn cgroup_pids(id: &str) -> Vec<i32> {
    tests::leftovers::cgroup_dirs(id)
        .into_iter()
        .find_map(|d| std::fs::read_to_string(d.join("cgroup.procs")).ok())
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// The container's init: over and over, every process it can see whose exe it cannot even
/// read is reported as hidden, and every /proc/PID/exe is opened for appending (writing
/// nothing); any success is reported as wrote.
const EXE_PROBE: &str = "while :; do for d in /proc/[0-9]*; do \
      [ \"$d\" = /proc/$$ ] && continue; \
      readlink $d/exe >/dev/null 2>&1 || { [ -e $d/comm ] && echo \"hidden ${d#/proc/}\"; }; \
      if (: >> $d/exe) 2>/dev/null; then echo \"wrote ${d#/proc/}\"; fi; \
    done; sleep 0.05; done";

/// Polls the container's cgroup for a process still running launcher code (exe a memfd),
/// checks its seals and returns its pid inside the container.
async fn joiner_in_cgroup(id: &str) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // Only the process born inside the container's pid namespace (two NSpid entries): the
        // first stage of the double clone is in the cgroup too, briefly, but no probe sees it.
        let found = cgroup_pids(id).into_iter().find(|pid| {
            let inside = procs::status_field(*pid, "NSpid")
                .is_some_and(|ns| ns.split_whitespace().count() > 1);
            inside
                && std::fs::read_link(format!("/proc/{pid}/exe"))
                    .is_ok_and(|l| l.to_string_lossy().starts_with("/memfd:"))
        });
        if let Some(pid) = found {
            assert_sealed_memfd("joining exec before its execve", pid);
            let nspid = procs::status_field(pid, "NSpid").unwrap();
            return nspid.split_whitespace().last().unwrap().parse().unwrap();
        }
        assert!(Instant::now() < deadline, "no joining process seen in {id}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

tests::both_launchers!(launcher_code_in_containers_runs_from_a_sealed_memfd);
async fn launcher_code_in_containers_runs_from_a_sealed_memfd(l: Launcher) {
    let a = TestAgent::start_opts(l, &["--test-exec-pause-ms", "1500"]).await;
    if l == Launcher::Zygote {
        let zygote = procs::zygote_of(a.pid()).expect("zygote");
        assert_sealed_memfd("zygote", zygote);
    }
    // A parked child (a fork of the zygote, or of `zagent init` for reexec) sits in the
    // container's namespaces running launcher code until StartContainer.
    let parked = unique_id("park");
    a.create(&parked, &bundle::spec(&["true"])).await.unwrap();
    let (_, pid, _) = a.info(&parked).await.unwrap();
    assert_sealed_memfd("parked container child", pid);
    a.remove(&parked).await.unwrap();
    assert_nothing_left(&a, &parked, &[bundle::rootfs()]).await;
    // A joining exec, paused right before its execve, attacked from the host's view and from
    // the container's init.
    let id = sleeper(&a, Some(bundle::spec(&["sh", "-c", EXE_PROBE]))).await;
    let joining = process(&["true"]);
    let (r, joiner) = tokio::join!(a.exec(&id, "j", &joining), joiner_in_cgroup(&id));
    r.unwrap();
    assert_eq!(a.wait_exec(&id, "j").await.unwrap(), 0);
    let (status, _, err) = exec_output(
        &a,
        &id,
        "w",
        &process(&["sh", "-c", "echo x > /proc/self/exe"]),
    )
    .await
    .unwrap();
    assert_ne!(
        status, 0,
        "writing /proc/self/exe from an exec worked: {err}"
    );
    a.signal(&id, 9).await.unwrap();
    let out = String::from_utf8(a.read_all(&id, false).await.unwrap()).unwrap();
    assert!(
        !out.contains("wrote"),
        "an exe was opened for writing: {out}"
    );
    assert!(
        out.lines().any(|l| l == format!("hidden {joiner}")),
        "the probe never saw the joining process {joiner}: {out}"
    );
    a.remove(&id).await.unwrap();
    assert_nothing_left(&a, &id, &[bundle::rootfs()]).await;
}

/// Masked paths (type and size), read-only paths (the error a write gets), then attempts to
/// undo both, then the read-only check again.
const MASK_PROBE: &str = "for p in /proc/keys /proc/timer_list /proc/kcore /proc/sched_debug; do \
      [ -e $p ] && echo \"file $p $(stat -c %t:%T $p) $(head -c 64 $p | wc -c)\"; done; \
    for d in /sys/firmware /proc/acpi /proc/scsi; do \
      [ -e $d ] && echo \"dir $d $(stat -f -c %T $d) $(ls -A $d | wc -l)\"; done; \
    for p in /proc/sys/kernel/hostname /proc/sysrq-trigger /sys/firmware/x; do \
      echo \"write $p: $( (: > $p) 2>&1)\"; done; \
    mount -o remount,rw /proc/sys 2>/dev/null; echo \"rc remount-rw /proc/sys $?\"; \
    mount -o remount,rw,bind /proc/sys 2>/dev/null; echo \"rc remount-bind-rw /proc/sys $?\"; \
    umount /proc/keys 2>/dev/null; echo \"rc umount /proc/keys $?\"; \
    umount -l /proc/sys 2>/dev/null; echo \"rc umount /proc/sys $?\"; \
    umount -l /sys/firmware 2>/dev/null; echo \"rc umount /sys/firmware $?\"; \
    mount -t proc proc /tmp 2>/dev/null; echo \"rc mount-proc /tmp $?\"; \
    echo \"after: $( (: > /proc/sys/kernel/hostname) 2>&1)\"; \
    echo \"after-keys $(stat -c %t:%T /proc/keys)\"";

fn assert_masked_and_readonly(what: &str, out: &str) {
    let line = |prefix: &str| {
        out.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("{what}: no {prefix:?} in {out}"))
    };
    // Each masked path this host has: /dev/null (char 1:3, nothing to read) or an empty tmpfs.
    for p in [
        "/proc/keys",
        "/proc/timer_list",
        "/proc/kcore",
        "/proc/sched_debug",
    ] {
        if Path::new(p).exists() {
            assert_eq!(
                line(&format!("file {p} ")),
                format!("file {p} 1:3 0"),
                "{what}"
            );
        }
    }
    for d in ["/sys/firmware", "/proc/acpi", "/proc/scsi"] {
        if Path::new(d).exists() {
            assert_eq!(
                line(&format!("dir {d} ")),
                format!("dir {d} tmpfs 0"),
                "{what}"
            );
        }
    }
    for p in [
        "/proc/sys/kernel/hostname",
        "/proc/sysrq-trigger",
        "/sys/firmware/x",
    ] {
        if !Path::new(p).exists() && !p.starts_with("/sys/firmware") {
            continue; // not in this kernel (e.g. no CONFIG_MAGIC_SYSRQ)
        }
        let l = line(&format!("write {p}:"));
        assert!(l.contains("Read-only file system"), "{what}: {l}");
    }
    for l in out.lines().filter(|l| l.starts_with("rc ")) {
        assert!(!l.ends_with(" 0"), "{what}: attack worked: {l}\n{out}");
    }
    assert_eq!(
        out.lines().filter(|l| l.starts_with("rc ")).count(),
        6,
        "{out}"
    );
    assert!(
        line("after:").contains("Read-only file system"),
        "{what}: {out}"
    );
    assert_eq!(line("after-keys"), "after-keys 1:3", "{what}");
}

tests::both_launchers!(masked_and_readonly_paths_hold_against_default_caps);
async fn masked_and_readonly_paths_hold_against_default_caps(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    // Controls: on the host these paths are real, so the checks below can tell.
    assert!(Path::new("/proc/keys").exists() && Path::new("/sys/firmware").exists());
    assert!(std::fs::read_dir("/sys/firmware").unwrap().count() > 0);
    // Control: without masked and read-only paths the probe sees the real files.
    let mut bare = bundle::spec(&["sh", "-c", MASK_PROBE]);
    let mut linux = bare.linux().clone().unwrap();
    linux.set_masked_paths(None).set_readonly_paths(None);
    bare.set_linux(Some(linux));
    let (_, out, _) = a.run(&unique_id("bare"), &bare).await;
    assert!(out.contains("file /proc/keys 0:0"), "control: {out}");
    assert!(
        out.contains("write /proc/sys/kernel/hostname: \n"),
        "control: {out}"
    );
    let id = unique_id("mask");
    let (status, out, err) = a.run(&id, &bundle::spec(&["sh", "-c", MASK_PROBE])).await;
    assert_eq!(status, 0, "{out}{err}");
    assert_masked_and_readonly("container init", &out);
    assert_nothing_left(&a, &id, &[bundle::rootfs()]).await;
    let id = sleeper(&a, None).await;
    let (status, out, err) = exec_output(&a, &id, "m", &process(&["sh", "-c", MASK_PROBE]))
        .await
        .unwrap();
    assert_eq!(status, 0, "{out}{err}");
    assert_masked_and_readonly("exec", &out);
    a.remove(&id).await.unwrap();
    assert_nothing_left(&a, &id, &[bundle::rootfs()]).await;
}
