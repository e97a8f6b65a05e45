//! Tier 2 (root): ExecProcess into running containers, its bad input, terminals, and the
//! joining process being out of reach of what already runs in the container.

use oci_spec::runtime::Process;
use std::time::{Duration, Instant};
use tests::agent::{code, message, Launcher, TestAgent};
use tests::{bundle, unique_id};
use ttrpc::Code;

/// The default spec's process with `args` (runc's default caps, no_new_privs, PATH).
fn process(args: &[&str]) -> Process {
    bundle::spec(args).process().clone().unwrap()
}

async fn running(a: &TestAgent, args: &[&str]) -> String {
    let id = unique_id("ex");
    let mut spec = bundle::spec(args);
    spec.set_hostname(Some("exec-host".into()));
    a.create(&id, &spec).await.unwrap();
    a.start_container(&id).await.unwrap();
    id
}

tests::both_launchers!(exec_sees_the_container_pid_namespace_hostname_and_status);
async fn exec_sees_the_container_pid_namespace_hostname_and_status(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    let id = running(&a, &["sleep", "100"]).await;
    a.exec(
        &id,
        "ps",
        &process(&["sh", "-c", "ps -o pid,args; hostname"]),
    )
    .await
    .unwrap();
    let out = String::from_utf8(a.read_all_exec(&id, "ps", false).await.unwrap()).unwrap();
    assert_eq!(a.wait_exec(&id, "ps").await.unwrap(), 0);
    let pid1 = out
        .lines()
        .find(|l| l.trim_start().starts_with("1 "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        pid1.contains("sleep 100"),
        "pid 1 is the container's process: {out}"
    );
    assert_eq!(out.lines().last(), Some("exec-host"));
    a.exec(&id, "three", &process(&["sh", "-c", "exit 3"]))
        .await
        .unwrap();
    assert_eq!(a.wait_exec(&id, "three").await.unwrap(), 3);
    // stdin, stdout and stderr of an exec, kept apart.
    a.exec(&id, "cat", &process(&["sh", "-c", "cat; echo err >&2"]))
        .await
        .unwrap();
    a.write_stdin(&id, "cat", b"via stdin\n").await.unwrap();
    a.close_stdin(&id, "cat").await.unwrap();
    assert_eq!(
        a.read_all_exec(&id, "cat", false).await.unwrap(),
        b"via stdin\n"
    );
    assert_eq!(a.read_all_exec(&id, "cat", true).await.unwrap(), b"err\n");
    assert_eq!(a.wait_exec(&id, "cat").await.unwrap(), 0);
    // A signal to an exec.
    a.exec(&id, "long", &process(&["sleep", "100"]))
        .await
        .unwrap();
    a.signal_exec(&id, "long", 9).await.unwrap();
    assert_eq!(a.wait_exec(&id, "long").await.unwrap(), 137);
    a.remove(&id).await.unwrap();
    assert!(tests::procs::zombies_of(a.pid()).is_empty());
}

tests::both_launchers!(exec_bad_input);
async fn exec_bad_input(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    let created = unique_id("exc");
    a.create(&created, &bundle::spec(&["sleep", "100"]))
        .await
        .unwrap();
    let r = a.exec(&created, "e", &process(&["true"])).await;
    assert_eq!(
        code(&r),
        Code::FAILED_PRECONDITION,
        "created: {}",
        message(&r)
    );
    let id = running(&a, &["sleep", "100"]).await;
    a.exec(&id, "dup", &process(&["sleep", "100"]))
        .await
        .unwrap();
    assert_eq!(
        code(&a.exec(&id, "dup", &process(&["true"])).await),
        Code::ALREADY_EXISTS
    );
    assert_eq!(code(&a.wait_exec(&id, "nope").await), Code::NOT_FOUND);
    assert_eq!(code(&a.signal_exec(&id, "nope", 9).await), Code::NOT_FOUND);
    assert_eq!(
        code(&a.write_stdin(&id, "nope", b"x").await),
        Code::NOT_FOUND
    );
    assert_eq!(
        code(&a.read_all_exec(&id, "nope", false).await),
        Code::NOT_FOUND
    );
    assert_eq!(code(&a.close_stdin(&id, "nope").await), Code::NOT_FOUND);
    assert_eq!(
        code(&a.signal_exec(&id, "dup", 65).await),
        Code::INVALID_ARGUMENT
    );
    let r = a.resize(&id, "dup", 10, 10).await;
    assert_eq!(
        code(&r),
        Code::FAILED_PRECONDITION,
        "no terminal: {}",
        message(&r)
    );
    let mut p = process(&["true"]);
    p.set_cwd("/proc/self/fd".into());
    assert_eq!(
        code(&a.exec(&id, "cwdfd", &p).await),
        Code::INVALID_ARGUMENT
    );
    p.set_cwd("relative".into());
    assert_eq!(
        code(&a.exec(&id, "cwdrel", &p).await),
        Code::INVALID_ARGUMENT
    );
    assert_eq!(
        code(&a.exec(&id, "noargs", &process(&[])).await),
        Code::INVALID_ARGUMENT
    );
    let mut g = wire::oci::process_to_grpc(&process(&["true"]));
    g.Capabilities
        .mut_or_insert_default()
        .Effective
        .push("CAP_BOGUS".into());
    let mut req = wire::agent::ExecProcessRequest::new();
    req.container_id = id.clone();
    req.exec_id = "badcap".into();
    req.process = protobuf::MessageField::some(g);
    let r = a
        .client
        .exec_process(ttrpc::context::with_timeout(0), &req)
        .await;
    assert_eq!(code(&r), Code::INVALID_ARGUMENT, "{}", message(&r));
    a.signal(&id, 9).await.unwrap();
    a.wait(&id).await.unwrap();
    let r = a.exec(&id, "late", &process(&["true"])).await;
    assert_eq!(
        code(&r),
        Code::FAILED_PRECONDITION,
        "stopped: {}",
        message(&r)
    );
    a.remove(&id).await.unwrap();
    a.remove(&created).await.unwrap();
    assert!(tests::procs::zombies_of(a.pid()).is_empty());
}

/// Reads stdout of (id, exec_id) until `done` holds for what arrived (or EOF).
async fn read_until(a: &TestAgent, id: &str, exec_id: &str, done: impl Fn(&str) -> bool) -> String {
    let mut req = wire::agent::ReadStreamRequest::new();
    req.container_id = id.into();
    req.exec_id = exec_id.into();
    req.len = 4096;
    let mut out = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done(&out) && Instant::now() < deadline {
        let data = a
            .client
            .read_stdout(ttrpc::context::with_timeout(0), &req)
            .await
            .unwrap()
            .data;
        if data.is_empty() {
            break;
        }
        out.push_str(&String::from_utf8_lossy(&data));
    }
    out
}

tests::both_launchers!(terminals_for_containers_and_execs);
async fn terminals_for_containers_and_execs(l: Launcher) {
    let a = TestAgent::start_with(l).await;
    let id = unique_id("tty");
    let mut spec = bundle::spec(&["sh"]);
    let mut p = spec.process().clone().unwrap();
    p.set_terminal(Some(true));
    spec.set_process(Some(p));
    a.create(&id, &spec).await.unwrap();
    a.start_container(&id).await.unwrap();
    a.resize(&id, "", 33, 111).await.unwrap();
    // The marker is computed, so the terminal's echo of the command line cannot match it.
    a.write_stdin(&id, "", b"stty size; tty; echo E$((40+2))ND\n")
        .await
        .unwrap();
    let out = read_until(&a, &id, "", |o| o.contains("E42ND")).await;
    assert!(out.contains("33 111\r\n"), "{out:?}");
    assert!(out.contains("/dev/pts/0\r\n"), "{out:?}");
    // An exec with a terminal, as uid 1000: its pts belongs to it.
    let mut p = process(&["sh", "-c", "stty size; ls -ln $(tty)"]);
    p.set_terminal(Some(true));
    p.set_console_size(Some(
        oci_spec::runtime::BoxBuilder::default()
            .height(20u64)
            .width(70u64)
            .build()
            .unwrap(),
    ));
    let mut user = p.user().clone();
    user.set_uid(1000);
    user.set_gid(1000);
    p.set_user(user);
    a.exec(&id, "t", &p).await.unwrap();
    let out =
        String::from_utf8_lossy(&a.read_all_exec(&id, "t", false).await.unwrap()).into_owned();
    assert!(out.contains("20 70\r\n"), "{out:?}");
    let ls = out
        .lines()
        .find(|l| l.contains("/dev/pts/"))
        .unwrap_or_else(|| panic!("{out:?}"));
    assert_eq!(
        ls.split_whitespace().nth(2),
        Some("1000"),
        "pts owner: {ls}"
    );
    assert_eq!(a.wait_exec(&id, "t").await.unwrap(), 0);
    a.close_stdin(&id, "").await.unwrap(); // ^D ends the shell
    assert_eq!(a.wait(&id).await.unwrap(), 0);
    a.remove(&id).await.unwrap();
}

/// What the container's init runs: it finds the joining process (still named like the zygote,
/// not exec'd yet) and tries to read its environ and where its fds lead, after the same reads
/// of a dumpable process of its own as a control. (Listing /proc/PID/fd is allowed by its
/// root ownership alone; following an entry takes the ptrace access check, like environ.)
const PROBE: &str = "sleep 100 & s=$!; \
    cat /proc/$s/environ >/dev/null 2>&1 && readlink /proc/$s/fd/0 >/dev/null 2>&1 \
      && echo control-readable || echo control-denied; \
    while :; do for d in /proc/[0-9]*; do \
      if [ \"$(cat $d/comm 2>/dev/null)\" = zagent-zygote ]; then \
        cat $d/environ >/dev/null 2>&1 && echo environ-readable || echo environ-denied; \
        readlink $d/fd/0 >/dev/null 2>&1 && echo fd-readable || echo fd-denied; echo END; wait; fi; \
    done; sleep 0.05; done";

tests::both_launchers!(the_joining_process_is_out_of_reach_until_it_execs);
async fn the_joining_process_is_out_of_reach_until_it_execs(l: Launcher) {
    let a = TestAgent::start_opts(l, &["--test-exec-pause-ms", "3000"]).await;
    let id = running(&a, &["sh", "-c", PROBE]).await;
    let joiner = process(&["true"]);
    let exec = a.exec(&id, "joiner", &joiner);
    let probe = read_until(&a, &id, "", |o| o.contains("END"));
    let attach = async {
        // The joiner: a child of the agent still named like the zygote, inside a pid namespace.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let joiner = tests::procs::children(a.pid()).into_iter().find(|c| {
                c.2 == "zagent-zygote"
                    && tests::procs::status_field(c.0, "NSpid")
                        .is_some_and(|n| n.split_whitespace().count() == 2)
            });
            if let Some((pid, ..)) = joiner {
                // Still inside the pause: try it now.
                break tokio::task::spawn_blocking(move || ptrace_attach_as_container(pid))
                    .await
                    .ok();
            }
            if Instant::now() > deadline {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let (r, out, joiner) = tokio::join!(exec, probe, attach);
    r.unwrap();
    let attached = joiner.expect("the joining process was seen");
    assert_eq!(
        attached,
        libc::EPERM,
        "ptrace-attach of the joining process"
    );
    let (_, init, _) = a.info(&id).await.unwrap();
    assert_eq!(
        ptrace_attach_as_container(init),
        0,
        "control: a dumpable container process can be attached"
    );
    assert!(out.contains("control-readable"), "{out}");
    assert!(out.contains("environ-denied"), "{out}");
    assert!(out.contains("fd-denied"), "{out}");
    assert_eq!(a.wait_exec(&id, "joiner").await.unwrap(), 0);
    a.remove(&id).await.unwrap();
}

/// Tries PTRACE_ATTACH on `pid` from a forked helper holding what a container process holds:
/// uid 0 and exactly runc's default capabilities (AUDIT_WRITE, KILL, NET_BIND_SERVICE).
/// Returns 0 on success (the helper detaches again) or the errno.
fn ptrace_attach_as_container(pid: i32) -> i32 {
    let caps: u32 = (1 << 29) | (1 << 5) | (1 << 10);
    // SAFETY: the forked child of this multi-threaded test only makes raw syscalls (capset,
    // ptrace, waitpid) on stack data and leaves with _exit; the parent just waits for it.
    unsafe {
        let child = libc::fork();
        if child == 0 {
            #[repr(C)]
            struct Header {
                version: u32,
                pid: i32,
            }
            #[repr(C)]
            struct Data {
                effective: u32,
                permitted: u32,
                inheritable: u32,
            }
            let header = Header {
                version: 0x2008_0522,
                pid: 0,
            };
            let data = [
                Data {
                    effective: caps,
                    permitted: caps,
                    inheritable: 0,
                },
                Data {
                    effective: 0,
                    permitted: 0,
                    inheritable: 0,
                },
            ];
            if libc::syscall(libc::SYS_capset, &header, data.as_ptr()) != 0 {
                libc::_exit(200);
            }
            if libc::ptrace(libc::PTRACE_ATTACH, pid, 0, 0) != 0 {
                libc::_exit(*libc::__errno_location());
            }
            libc::waitpid(pid, std::ptr::null_mut(), libc::__WALL);
            libc::ptrace(libc::PTRACE_DETACH, pid, 0, 0);
            libc::_exit(0);
        }
        let mut status = 0;
        libc::waitpid(child, &mut status, 0);
        libc::WEXITSTATUS(status)
    }
}
