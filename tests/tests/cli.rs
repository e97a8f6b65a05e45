//! What a new user meets first on the command line: refusals that say what is wrong before
//! anything is started.

use std::os::unix::process::CommandExt;
use std::process::Command;

#[test]
#[ignore = "requires root"]
fn zagent_as_non_root_refuses_at_start() {
    tests::require_root();
    let dir = tempfile::tempdir().unwrap();
    // A copy nobody can reach and run: the build dir may sit under a 0700 dir (a CI clone).
    use std::os::unix::fs::PermissionsExt;
    let exe = dir.path().join("zagent");
    std::fs::copy(tests::bin("zagent"), &exe).unwrap();
    for (path, mode) in [(dir.path(), 0o755), (exe.as_path(), 0o755)] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let sock = dir.path().join("agent.sock");
    let out = Command::new(&exe)
        .args([
            "--listen",
            &format!("unix://{}", sock.display()),
            "--state-dir",
            &dir.path().join("state").display().to_string(),
        ])
        .uid(65534)
        .gid(65534)
        .output()
        .expect("run zagent as nobody");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "zagent as nobody started: {stderr}");
    assert!(stderr.contains("must run as root"), "{stderr}");
    assert!(!sock.exists(), "nothing is bound before the refusal");
}

#[test]
#[ignore = "requires root"]
fn the_log_has_no_colour_codes_when_not_a_terminal() {
    tests::require_root();
    let dir = tempfile::tempdir().unwrap();
    // A path that is a directory: the agent refuses it and logs why, at ERROR, then exits.
    let taken = dir.path().join("taken");
    std::fs::create_dir(&taken).unwrap();
    let out = Command::new(tests::bin("zagent"))
        .args([
            "--listen",
            &format!("unix://{}", taken.display()),
            "--state-dir",
            &dir.path().join("state").display().to_string(),
        ])
        .env("ZAGENT_LOG", "info")
        .output()
        .expect("run zagent");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("is not a socket"), "{stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "escape codes in a piped log: {stderr:?}"
    );
}

#[test]
fn zagent_ctl_explains_a_wrong_address_and_refuses_other_schemes() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nobody.sock");
    let ctl = |addr: &str| {
        let out = Command::new(tests::bin("zagent-ctl"))
            .args(["--addr", addr, "ps"])
            .output()
            .expect("run zagent-ctl");
        assert!(!out.status.success(), "ps against {addr} succeeded");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    // A bare path is taken as unix://PATH, and the error says what to check.
    let err = ctl(&missing.display().to_string());
    assert!(
        err.contains(&format!("unix://{}", missing.display())),
        "{err}"
    );
    assert!(err.contains("is zagent running"), "{err}");
    let err = ctl("tcp://127.0.0.1:1");
    assert!(err.contains("unsupported scheme \"tcp\""), "{err}");
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// runc's verbs and a shell's exit statuses, as a new user expects them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "requires root"]
async fn zagent_ctl_speaks_runc_and_shell_conventions() {
    use tests::agent::TestAgent;
    let a = TestAgent::start().await;
    let b = tests::bundle::bundle_dir(&tests::bundle::spec(&["sleep", "100"]));
    let bundle = b.path().to_str().unwrap();
    // A missing program: 127, as sh says "not found"; the agent's error is still printed.
    let out = a.ctl(&["run", "--bundle", bundle, "--", "/no/such/program"]);
    assert_eq!(out.status.code(), Some(127), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("ENOENT"),
        "{}",
        text(&out.stderr)
    );
    let id = tests::unique_id("cli");
    let out = a.ctl(&["create", "--id", &id, "--bundle", bundle]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(a.ctl(&["start", &id]).status.success());
    let out = a.ctl(&["exec", &id, "--", "/no/such/program"]);
    assert_eq!(out.status.code(), Some(127), "{}", text(&out.stderr));
    // --env needs K=V: refused by zagent-ctl before anything is sent.
    let out = a.ctl(&["exec", "--env", "JUSTANAME", &id, "--", "true"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("is not K=V"),
        "{}",
        text(&out.stderr)
    );
    // runc's `list` and `delete`.
    let listed = text(&a.ctl(&["list"]).stdout);
    assert!(listed.lines().any(|l| l.starts_with(&id)), "{listed}");
    let out = a.ctl(&["delete", "-f", &id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(a.info(&id).await.is_none(), "{id} still there after delete");
}

#[test]
fn zagent_ctl_spec_is_pretty_and_the_same_every_time() {
    let mut written = Vec::new();
    for _ in 0..4 {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(tests::bin("zagent-ctl"))
            .args(["spec", "--bundle", dir.path().to_str().unwrap()])
            .output()
            .expect("run zagent-ctl spec");
        assert!(out.status.success(), "{}", text(&out.stderr));
        written.push(std::fs::read_to_string(dir.path().join("config.json")).unwrap());
    }
    assert!(written[0].lines().count() > 50, "one line: {}", written[0]);
    assert!(
        written.iter().all(|w| *w == written[0]),
        "config.json differs between runs"
    );
    let spec: oci_spec::runtime::Spec = serde_json::from_str(&written[0]).unwrap();
    assert!(spec.process().is_some());
}

/// The agent's log as a user reads it: one INFO line for each create, start, exit and remove
/// of a container, in that order, the zygote's exit status in words, a zygote out of the
/// terminal's reach (its own process group: a Ctrl-C stops the agent, which then stops it),
/// and no new zygote once the agent is shutting down, even when the zygote dies then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "requires root"]
async fn the_log_tells_each_container_step_and_no_zygote_restarts_at_shutdown() {
    use std::time::{Duration, Instant};
    use tests::procs;
    tests::require_root();
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("agent.log");
    let addr = format!("unix://{}", dir.path().join("agent.sock").display());
    // Exec'd processes pause before execve: an exec is still under way at shutdown, which
    // the agent waits for, with the zygote (told not to come back) still up.
    let mut agent = Command::new(tests::bin("zagent"))
        .args([
            "--listen",
            &addr,
            "--test-exec-pause-ms",
            "2000",
            "--state-dir",
        ])
        .arg(dir.path().join("state"))
        .env("ZAGENT_LOG", "info")
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let pid = agent.id() as i32;
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let ctl = |args: &[&str]| {
        Command::new(tests::bin("zagent-ctl"))
            .args(["--addr", &addr])
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ctl(&["check"]).status.success() {
        assert!(
            Instant::now() < deadline,
            "zagent did not come up:\n{}",
            log()
        );
        assert!(
            agent.try_wait().unwrap().is_none(),
            "zagent exited:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let zygote = procs::zygote_of(pid).expect("zygote");
    let pgrp = |p: i32| nix::unistd::getpgid(Some(nix::unistd::Pid::from_raw(p))).unwrap();
    assert_ne!(
        pgrp(zygote),
        pgrp(pid),
        "the zygote is in the agent's process group"
    );
    let b = tests::bundle::bundle_dir(&tests::bundle::spec(&["sleep", "100"]));
    let bundle = b.path().to_str().unwrap();
    let once = tests::unique_id("once");
    let out = ctl(&[
        "run", "--id", &once, "--bundle", bundle, "--", "sh", "-c", "exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let parked = tests::unique_id("parked");
    assert!(ctl(&["create", "--id", &parked, "--bundle", bundle])
        .status
        .success());
    let running = tests::unique_id("running");
    assert!(ctl(&["create", "--id", &running, "--bundle", bundle])
        .status
        .success());
    assert!(ctl(&["start", &running]).status.success());
    let children = procs::children(pid).len();
    let mut exec = Command::new(tests::bin("zagent-ctl"))
        .args(["--addr", &addr, "exec", &running, "--", "true"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while procs::children(pid).len() <= children {
        assert!(Instant::now() < deadline, "the exec never got under way");
        std::thread::sleep(Duration::from_millis(10));
    }
    let signal = |p: i32, s| nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), s).unwrap();
    signal(pid, nix::sys::signal::Signal::SIGINT);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !log().contains("shutting down") {
        assert!(Instant::now() < deadline, "no shutdown:\n{}", log());
        std::thread::sleep(Duration::from_millis(5));
    }
    signal(zygote, nix::sys::signal::Signal::SIGKILL);
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = agent.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = agent.kill();
            panic!("zagent did not stop: {}\n{}", agent.wait().unwrap(), log());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = exec.wait();
    let log = log();
    assert!(status.success(), "zagent: {status}\n{log}");
    let lines: Vec<&str> = log.lines().collect();
    let at = |id: &str, what: &str| {
        let pos = lines
            .iter()
            .position(|l| l.contains(what) && l.contains(&format!("id=\"{id}\"")));
        pos.unwrap_or_else(|| panic!("no {what:?} line for {id}:\n{log}"))
    };
    let once_lines = [
        at(&once, "container created"),
        at(&once, "container started"),
        at(&once, "container exited"),
        at(&once, "container removed"),
    ];
    assert!(
        once_lines.is_sorted(),
        "out of order: {once_lines:?}\n{log}"
    );
    assert!(
        lines[once_lines[2]].contains("status=3"),
        "{}",
        lines[once_lines[2]]
    );
    let parked_lines = [
        at(&parked, "container created"),
        at(&parked, "container exited"),
        at(&parked, "container removed"),
    ];
    assert!(
        parked_lines.is_sorted(),
        "out of order: {parked_lines:?}\n{log}"
    );
    assert!(
        lines[parked_lines[1]].contains("status=137"),
        "{}",
        lines[parked_lines[1]]
    );
    let started = lines
        .iter()
        .filter(|l| l.contains("zygote started"))
        .count();
    assert_eq!(started, 1, "a zygote was started again:\n{log}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("zygote exited (shutting down)")
                && l.contains("signal: 9 (SIGKILL)")),
        "the zygote's end is not in the log in words:\n{log}"
    );
    assert!(!log.contains("starting a new one"), "{log}");
}

/// `exec --user` takes names from the container's own /etc/passwd and /etc/group, resolved
/// as runc does, and only from the container's: a group file that points out of the rootfs
/// resolves inside it (here: to nothing), never to the host's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "requires root"]
async fn zagent_ctl_exec_user_takes_names_from_the_container() {
    use std::collections::BTreeSet;
    use tests::agent::TestAgent;
    use tests::rootfs_copy::RootfsCopy;
    let a = TestAgent::start().await;
    let run = |copy: &RootfsCopy| {
        let b = tests::bundle::bundle_dir(&copy.spec(&["sleep", "100"]));
        let id = tests::unique_id("user");
        let out = a.ctl(&[
            "create",
            "--id",
            &id,
            "--bundle",
            b.path().to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(a.ctl(&["start", &id]).status.success());
        id
    };
    let exec = |id: &str, user: &str, args: &[&str]| {
        let mut all = vec!["exec", "--user", user, id, "--"];
        all.extend(args);
        a.ctl(&all)
    };
    let ids = |out: &std::process::Output| -> BTreeSet<u32> {
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
            .split_whitespace()
            .map(|n| n.parse().unwrap())
            .collect()
    };
    let set = |v: &[u32]| v.iter().copied().collect::<BTreeSet<u32>>();
    let copy = RootfsCopy::new();
    let etc = copy.path().join("etc");
    std::fs::write(
        etc.join("passwd"),
        "root:x:0:0:root:/root:/bin/sh\napp:x:1234:1234::/home/app:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(
        etc.join("group"),
        "root:x:0:\napp:x:1234:\naudio:x:29:app\nstaff:x:50:other,app\nwheel:x:10:other\n",
    )
    .unwrap();
    let c = run(&copy);
    // A name: its uid and gid, and its memberships as supplementary groups.
    assert_eq!(ids(&exec(&c, "app", &["id", "-u"])), set(&[1234]));
    assert_eq!(ids(&exec(&c, "app", &["id", "-g"])), set(&[1234]));
    assert_eq!(ids(&exec(&c, "app", &["id", "-G"])), set(&[1234, 29, 50]));
    // A group given: that group alone.
    assert_eq!(ids(&exec(&c, "app:staff", &["id", "-G"])), set(&[50]));
    assert_eq!(ids(&exec(&c, "1234:wheel", &["id", "-g"])), set(&[10]));
    // Numbers need no entry; without a group, group 0.
    assert_eq!(ids(&exec(&c, "4242", &["id", "-u"])), set(&[4242]));
    assert_eq!(ids(&exec(&c, "4242", &["id", "-g"])), set(&[0]));
    assert_eq!(ids(&exec(&c, "4242:77", &["id", "-g"])), set(&[77]));
    // Unknown names are the caller's mistake, said as such.
    let out = exec(&c, "nosuch", &["true"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("no user \"nosuch\"") && err.contains("INVALID_ARGUMENT"),
        "{err}"
    );
    let out = exec(&c, "app:nogroup", &["true"]);
    assert!(
        text(&out.stderr).contains("no group \"nogroup\""),
        "{}",
        text(&out.stderr)
    );
    // A group file pointing out of the rootfs, at a host file that has the group: followed
    // on the host it would be found; resolved inside the rootfs it is not there at all.
    let escape = RootfsCopy::new();
    std::fs::write(escape.dir().join("outside-group"), "staff:x:50:\n").unwrap();
    let group = escape.path().join("etc/group");
    std::fs::remove_file(&group).unwrap();
    std::os::unix::fs::symlink("../../outside-group", &group).unwrap();
    assert!(std::fs::read_to_string(&group).unwrap().contains("staff"));
    let e = run(&escape);
    let out = exec(&e, "root:staff", &["true"]);
    assert!(
        text(&out.stderr).contains("no group \"staff\""),
        "{}",
        text(&out.stderr)
    );
    for id in [c, e] {
        assert!(a.ctl(&["rm", "--force", &id]).status.success());
    }
}
