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
