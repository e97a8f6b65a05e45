//! Non-root tests of `launch`, through the scripted launcher (`launcher::fake`): what the
//! agent does with each child event, the runtime hooks stop, and that every process a failed
//! launch made is killed and reaped.

use super::*;
use crate::launcher::fake::{FakeLauncher, Step};
use crate::sequence::Kind;
use jail::validate::RuntimeHooks;
use wire::zygote::{ChildEvent as C, Hook};

fn exited(pid: i32) -> bool {
    // Reaped (the reaper waited for it) means gone from /proc altogether.
    !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

async fn wait_exited(pids: &[i32]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !pids.iter().all(|&p| exited(p)) {
        assert!(Instant::now() < deadline, "not all of {pids:?} were reaped");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Launches a container job with `hooks` through `fake`, with a throwaway fifo path.
async fn launch_container(
    fake: &FakeLauncher,
    hooks: &RuntimeHooks,
) -> Result<LaunchedProcess, AgentError> {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("exec.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let config = ContainerConfig::default();
    let job = Job::Container {
        config: &config,
        fifo: &fifo,
        join_ns: &[],
        hooks,
    };
    launch(fake, job).await
}

fn failed(step: &str) -> Step {
    Step::Send(C::Failed {
        step: step.into(),
        errno: libc::ENOENT,
        message: format!("{step} went wrong"),
    })
}

#[tokio::test]
async fn a_child_that_reports_ready_is_parked_and_kept() {
    let fake = FakeLauncher::new(vec![Ok(vec![Step::Send(C::Started), Step::Send(C::Ready)])]);
    let launched = launch_container(&fake, &RuntimeHooks::default())
        .await
        .unwrap();
    let pid = fake.record.lock().unwrap().pids[0];
    assert_eq!(launched.seq, LaunchState::Ready { pid });
    assert_eq!(launched.process.pid, pid);
    assert!(!exited(pid), "a parked child is left alive");
    launched.process.kill().await;
    wait_exited(&[pid]).await;
}

#[tokio::test]
async fn a_failed_step_kills_and_reaps_every_process_of_the_launch() {
    let fake = FakeLauncher::new(vec![Ok(vec![
        Step::Send(C::Started),
        Step::Send(C::Spawned { pid: 0 }),
        Step::Send(C::Spawned { pid: 0 }),
        failed("mount"),
    ])]);
    let e = launch_container(&fake, &RuntimeHooks::default())
        .await
        .err()
        .expect("the launch fails");
    assert!(
        matches!(&e, AgentError::Jail { step, .. } if step == "mount"),
        "{e}"
    );
    let pids = fake.record.lock().unwrap().pids.clone();
    assert_eq!(pids.len(), 3, "the cloned child and two spawned ones");
    wait_exited(&pids).await;
}

#[tokio::test]
async fn an_early_eof_and_an_event_out_of_order_fail_the_launch() {
    let eof = FakeLauncher::new(vec![Ok(vec![Step::Send(C::Started), Step::Close])]);
    let e = launch_container(&eof, &RuntimeHooks::default())
        .await
        .err()
        .unwrap();
    assert!(e.to_string().contains("before reporting ready"), "{e}");
    // `ready` before `started`: the child never announced itself.
    let twice = FakeLauncher::new(vec![Ok(vec![Step::Send(C::Ready)])]);
    let e = launch_container(&twice, &RuntimeHooks::default())
        .await
        .err()
        .unwrap();
    assert!(matches!(e, AgentError::Sequence(_)), "{e}");
    for fake in [eof, twice] {
        let pids = fake.record.lock().unwrap().pids.clone();
        wait_exited(&pids).await;
    }
}

fn hook_writing(path: &std::path::Path, exit: i32) -> Hook {
    Hook {
        path: "/bin/sh".into(),
        args: vec![
            "sh".into(),
            "-c".into(),
            format!("cat > {}; exit {exit}", path.display()),
        ],
        env: vec![],
        timeout_secs: Some(10),
    }
}

#[tokio::test]
async fn the_runtime_hooks_run_at_the_child_s_stop_and_it_is_told_to_proceed() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let hooks = RuntimeHooks {
        create_runtime: vec![hook_writing(&state, 0)],
        ..Default::default()
    };
    let fake = FakeLauncher::new(vec![Ok(vec![
        Step::Send(C::Started),
        Step::Send(C::HooksDue),
        Step::AwaitProceed,
        Step::Send(C::Ready),
    ])]);
    let launched = launch_container(&fake, &hooks).await.unwrap();
    assert_eq!(fake.record.lock().unwrap().proceeds, [Some(())]);
    let told: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(told["status"], "creating");
    assert_eq!(told["pid"], launched.process.pid);
    launched.process.kill().await;
}

#[tokio::test]
async fn a_failing_runtime_hook_ends_the_launch_without_a_proceed() {
    let dir = tempfile::tempdir().unwrap();
    let hooks = RuntimeHooks {
        prestart: vec![hook_writing(&dir.path().join("x"), 7)],
        ..Default::default()
    };
    let fake = FakeLauncher::new(vec![Ok(vec![
        Step::Send(C::Started),
        Step::Send(C::HooksDue),
        Step::AwaitProceed,
        Step::Send(C::Ready),
    ])]);
    let e = launch_container(&fake, &hooks).await.err().unwrap();
    assert!(matches!(e, AgentError::Hook(_)), "{e}");
    let pids = fake.record.lock().unwrap().pids.clone();
    wait_exited(&pids).await;
    // The child's end saw EOF (the sync socket went with the failed launch), never Proceed.
    let deadline = Instant::now() + Duration::from_secs(5);
    while fake.record.lock().unwrap().proceeds.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(fake.record.lock().unwrap().proceeds, [None]);
}

#[tokio::test]
async fn a_zygote_that_died_before_cloning_is_retried_once_for_a_create_never_for_an_exec() {
    let fake = FakeLauncher::new(vec![
        Err(LaunchError::ZygoteDied),
        Ok(vec![Step::Send(C::Started), Step::Send(C::Ready)]),
    ]);
    let launched = launch_container(&fake, &RuntimeHooks::default())
        .await
        .unwrap();
    assert!(matches!(launched.seq, LaunchState::Ready { .. }));
    launched.process.kill().await;

    let fake = FakeLauncher::new(vec![
        Err(LaunchError::ZygoteDied),
        Ok(vec![Step::Send(C::Started), Step::Close]),
    ]);
    let (pid, pidfd) = {
        let child = std::process::Command::new("sleep")
            .arg("600")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        drop(child);
        (
            pid,
            crate::reaper::PidFd(std::sync::Arc::new(jail_pidfd(pid))),
        )
    };
    let config = ExecConfig::default();
    let init = pidfd.0.try_clone().unwrap();
    let e = launch(
        &fake,
        Job::Exec {
            config: &config,
            init_pidfd: &init,
        },
    )
    .await
    .err()
    .expect("an exec is not retried");
    assert!(
        matches!(e, AgentError::Launch(LaunchError::ZygoteDied)),
        "{e}"
    );
    assert_eq!(
        Kind::Exec,
        Job::Exec {
            config: &config,
            init_pidfd: &init
        }
        .kind()
    );
    let _ = pidfd.signal(libc::SIGKILL);
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
}

fn jail_pidfd(pid: i32) -> OwnedFd {
    // SAFETY: pidfd_open with a pid and no flags returns a new fd that only we own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0u32) };
    assert!(fd >= 0);
    // SAFETY: the kernel just installed this fd for us.
    unsafe { std::os::fd::FromRawFd::from_raw_fd(fd as i32) }
}
