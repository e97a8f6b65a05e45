//! Compiling profiles: Docker's default compiles, a filter really does what it says (checked in
//! a forked child, which is the only place a filter can be loaded without changing the test
//! process), and what cannot be honoured is refused.

use super::*;
use oci_spec::runtime::Spec;

fn profile(json: serde_json::Value) -> LinuxSeccomp {
    serde_json::from_value(json).expect("a valid LinuxSeccomp")
}

/// Docker's default profile in OCI form (tests/data/seccomp).
pub fn docker_default() -> LinuxSeccomp {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/data/seccomp/docker-default-x86_64.oci.json"
    );
    let text = std::fs::read_to_string(path).expect("tests/data/seccomp is in the repo");
    serde_json::from_str(&text).expect("Docker's profile parses as linux.seccomp")
}

#[test]
fn docker_default_compiles_within_the_kernel_limit() {
    let f = compile(&docker_default()).unwrap();
    assert!(
        f.program.len() > 100 && f.program.len() <= MAX_INSNS,
        "{}",
        f.program.len()
    );
    assert_eq!(f.flags, 0);
    // The same profile compiles to the same program (the agent may cache it).
    assert_eq!(compile(&docker_default()).unwrap(), f);
}

#[test]
fn flags_map_to_the_kernel_bits() {
    let p = profile(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]
    }));
    assert_eq!(compile(&p).unwrap().flags, FLAG_LOG | FLAG_SPEC_ALLOW);
}

#[test]
fn what_cannot_be_honoured_is_refused() {
    let notify = profile(serde_json::json!({ "defaultAction": "SCMP_ACT_NOTIFY" }));
    assert!(matches!(compile(&notify), Err(SeccompError::Notify(_))));
    let listener = profile(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock"
    }));
    assert!(matches!(compile(&listener), Err(SeccompError::Listener)));
    let arg = profile(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{ "names": ["read"], "action": "SCMP_ACT_ERRNO",
                       "args": [{ "index": 6, "value": 0, "op": "SCMP_CMP_EQ" }] }]
    }));
    assert!(matches!(
        compile(&arg),
        Err(SeccompError::ArgIndex { index: 6, .. })
    ));
}

#[test]
fn unknown_syscall_names_are_skipped() {
    let p = profile(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{ "names": ["no_such_syscall", "getppid"], "action": "SCMP_ACT_ERRNO" }]
    }));
    compile(&p).unwrap();
}

/// Runs `check` in a forked child after loading `filter` (with no_new_privs); returns its
/// exit status.
fn in_child(filter: &SeccompFilter, check: fn() -> i32) -> i32 {
    // SAFETY: the child only calls prctl, seccomp, the check's raw syscalls and _exit; it
    // touches no lock the test harness's other threads may hold.
    match unsafe { nix::unistd::fork() }.unwrap() {
        nix::unistd::ForkResult::Child => {
            let code = match nix::sys::prctl::set_no_new_privs()
                .map_err(drop)
                .and_then(|_| load(filter).map_err(drop))
            {
                Ok(()) => check(),
                Err(()) => 99,
            };
            // SAFETY: ends the forked child without running the harness's destructors.
            unsafe { libc::_exit(code) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            match nix::sys::wait::waitpid(child, None).unwrap() {
                nix::sys::wait::WaitStatus::Exited(_, code) => code,
                nix::sys::wait::WaitStatus::Signaled(_, sig, _) => 128 + sig as i32,
                other => panic!("{other:?}"),
            }
        }
    }
}

#[test]
fn a_loaded_filter_returns_the_errno_asked_for_and_allows_the_rest() {
    let p = profile(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            { "names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 42 },
            { "names": ["getpgid"], "action": "SCMP_ACT_ERRNO",
              "args": [{ "index": 0, "value": 4242, "op": "SCMP_CMP_EQ" }] }
        ]
    }));
    let f = compile(&p).unwrap();
    let status = in_child(&f, || {
        // SAFETY: raw syscalls with no pointer arguments.
        let ppid = unsafe { libc::syscall(libc::SYS_getppid) };
        let ppid_errno = Errno::last_raw();
        // SAFETY: as above.
        let matched = unsafe { libc::syscall(libc::SYS_getpgid, 4242) };
        let matched_errno = Errno::last_raw();
        // SAFETY: as above.
        let other = unsafe { libc::syscall(libc::SYS_getpgid, 0) };
        match (ppid, ppid_errno, matched, matched_errno, other) {
            (-1, 42, -1, libc::EPERM, pgid) if pgid > 0 => 0,
            _ => 1,
        }
    });
    assert_eq!(status, 0);
}

#[test]
fn docker_default_refuses_unshare_with_eperm_and_allows_getpid() {
    let f = compile(&docker_default()).unwrap();
    let status = in_child(&f, || {
        // SAFETY: raw syscalls with no pointer arguments.
        let unshare = unsafe { libc::syscall(libc::SYS_unshare, libc::CLONE_NEWNS) };
        let errno = Errno::last_raw();
        // SAFETY: as above.
        let pid = unsafe { libc::syscall(libc::SYS_getpid) };
        match (unshare, errno, pid) {
            (-1, libc::EPERM, p) if p > 0 => 0,
            _ => 1,
        }
    });
    assert_eq!(status, 0);
}

#[test]
fn a_spec_with_docker_default_validates_into_a_filter() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec: Spec = serde_json::from_value(serde_json::json!({
        "ociVersion": "1.0.2",
        "process": { "args": ["sh"], "cwd": "/", "user": { "uid": 0, "gid": 0 } },
        "root": { "path": dir.path() },
        "linux": { "namespaces": [{ "type": "pid" }, { "type": "mount" }] }
    }))
    .unwrap();
    let mut linux = spec.linux().clone().unwrap();
    linux.set_seccomp(Some(docker_default()));
    spec.set_linux(Some(linux));
    let v = crate::validate::validate("c1", &spec).unwrap();
    assert_eq!(
        v.config.process.seccomp,
        Some(compile(&docker_default()).unwrap())
    );
}

#[test]
fn the_cache_compiles_a_profile_once_and_stays_bounded() {
    let cache = FilterCache::with_capacity(2);
    let docker = docker_default();
    let first = cache.get(&docker).unwrap();
    assert_eq!(cache.len(), 1);
    assert_eq!(cache.get(&docker).unwrap(), first, "the same program");
    assert_eq!(
        cache.len(),
        1,
        "a profile seen before is not compiled again"
    );
    let errno = |n: i64| {
        profile(
            serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": n}]}),
        )
    };
    let (a, b) = (cache.get(&errno(1)).unwrap(), cache.get(&errno(2)).unwrap());
    assert_ne!(a, b, "different profiles, different programs");
    assert_eq!(cache.len(), 2, "bounded: the oldest (Docker's) went");
    assert_eq!(cache.get(&errno(1)).unwrap(), a);
    let none = FilterCache::with_capacity(0);
    none.get(&docker).unwrap();
    assert!(none.is_empty());
}
