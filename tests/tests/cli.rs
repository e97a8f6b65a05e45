//! What a new user meets first on the command line: refusals that say what is wrong before
//! anything is started.

use std::os::unix::process::CommandExt;
use std::process::Command;

#[test]
#[ignore = "requires root"]
fn zagent_as_non_root_refuses_at_start() {
    tests::require_root();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("agent.sock");
    let out = Command::new(tests::bin("zagent"))
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
