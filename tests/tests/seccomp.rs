//! Seccomp (root, both launchers): Docker's default profile, as Docker hands it to runc, in a
//! busybox container: the shell and the usual tools work, `unshare` and `mount` fail with EPERM,
//! the process reports seccomp mode 2, and an exec into the container gets the same filter.
//! With and without no_new_privs (the filter is loaded at different points), and for a
//! container that shares another's pid namespace (its process is spawned under the filter).

use oci_spec::runtime::{LinuxNamespaceBuilder, LinuxNamespaceType, LinuxSeccomp, Spec};
use tests::agent::{Launcher, TestAgent};
use tests::{bundle, procs, unique_id};

fn docker_default() -> LinuxSeccomp {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/data/seccomp/docker-default-x86_64.oci.json"
    );
    let text = std::fs::read_to_string(path).expect("tests/data/seccomp is in the repo");
    serde_json::from_str(&text).expect("Docker's profile parses as linux.seccomp")
}

const PROBE: &str = "ls / >/dev/null && echo ok; grep Seccomp: /proc/self/status; \
                     unshare -m true 2>&1; echo unshare=$?; mount -t tmpfs x /tmp 2>&1; echo mount=$?";

fn confined(args: &[&str], nnp: bool) -> Spec {
    let mut spec = bundle::spec(args);
    let mut linux = spec.linux().clone().unwrap();
    linux.set_seccomp(Some(docker_default()));
    spec.set_linux(Some(linux));
    let mut p = spec.process().clone().unwrap();
    p.set_no_new_privileges(Some(nnp));
    spec.set_process(Some(p));
    spec
}

fn check_probe(out: &str, err: &str) {
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.first(), Some(&"ok"), "{out}{err}");
    assert!(out.contains("Seccomp:\t2"), "{out}");
    assert!(out.contains("Operation not permitted"), "{out}");
    assert!(out.contains("unshare=1"), "{out}");
    assert!(!out.contains("mount=0"), "{out}");
}

async fn docker_profile(l: Launcher, nnp: bool) {
    let a = TestAgent::start_with(l).await;
    let (status, out, err) = a
        .run(&unique_id("sc"), &confined(&["sh", "-c", PROBE], nnp))
        .await;
    assert_eq!(status, 0, "{out}{err}");
    check_probe(&out, &err);
    // An exec into a confined container is confined too.
    let id = unique_id("scx");
    a.create(&id, &confined(&["sleep", "100"], nnp))
        .await
        .unwrap();
    a.start_container(&id).await.unwrap();
    let mut p = bundle::spec(&["sh", "-c", PROBE])
        .process()
        .clone()
        .unwrap();
    p.set_no_new_privileges(Some(nnp));
    a.exec(&id, "probe", &p).await.unwrap();
    assert_eq!(a.wait_exec(&id, "probe").await.unwrap(), 0);
    let out = String::from_utf8(a.read_all_exec(&id, "probe", false).await.unwrap()).unwrap();
    check_probe(&out, "");
    // A container sharing its pid namespace is spawned into it under the filter.
    let (_, pid, _) = a.info(&id).await.unwrap();
    let mut shared = confined(&["sh", "-c", PROBE], nnp);
    let mut linux = shared.linux().clone().unwrap();
    let mut nss = linux.namespaces().clone().unwrap();
    for ns in nss
        .iter_mut()
        .filter(|n| n.typ() == LinuxNamespaceType::Pid)
    {
        *ns = LinuxNamespaceBuilder::default()
            .typ(LinuxNamespaceType::Pid)
            .path(format!("/proc/{pid}/ns/pid"))
            .build()
            .unwrap();
    }
    linux.set_namespaces(Some(nss));
    shared.set_linux(Some(linux));
    let (status, out, err) = a.run(&unique_id("scs"), &shared).await;
    assert_eq!(status, 0, "{out}{err}");
    check_probe(&out, &err);
    a.remove(&id).await.unwrap();
    assert!(procs::zombies_of(a.pid()).is_empty());
}

tests::both_launchers!(docker_profile_with_no_new_privs);
async fn docker_profile_with_no_new_privs(l: Launcher) {
    docker_profile(l, true).await
}

tests::both_launchers!(docker_profile_without_no_new_privs);
async fn docker_profile_without_no_new_privs(l: Launcher) {
    docker_profile(l, false).await
}
