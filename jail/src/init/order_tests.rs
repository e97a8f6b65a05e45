//! The documented order of `prepare`, `prepare_outside_userns`, `prepare_exec` and `finish`,
//! checked without root through a recording double of `Steps`: each list below is the order
//! `init`'s module doc gives, and a failure at any step must stop everything after it and name
//! that step.

use super::{finish_with, prepare_exec_with, prepare_outside_userns_with, prepare_with};
use crate::error::{JailError, Step};
use crate::mounts::MountContext;
use crate::steps::Steps;
use crate::terminal::Console;
use nix::errno::Errno;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use wire::zygote::{
    Capabilities, ContainerConfig, ExecConfig, Hook, Mount, Namespace, NamespaceKind,
    ProcessConfig, Rlimit, SeccompFilter,
};

/// Records each step it is asked for (a label, and the step an error there is reported as),
/// and fails the `fail_at`-th one.
#[derive(Default)]
struct Recorder {
    calls: Vec<&'static str>,
    fail_at: Option<usize>,
    /// The values `keep_caps` was called with, in order.
    keep_caps: Vec<bool>,
}

impl Recorder {
    fn failing_at(n: usize) -> Recorder {
        Recorder {
            fail_at: Some(n),
            ..Recorder::default()
        }
    }

    fn step(&mut self, label: &'static str, step: Step) -> Result<(), JailError> {
        self.calls.push(label);
        if self.fail_at == Some(self.calls.len() - 1) {
            return Err(JailError::new(
                step,
                format!("injected at {label}"),
                Errno::EIO,
            ));
        }
        Ok(())
    }
}

impl Steps for Recorder {
    type Root = ();

    fn non_dumpable(&mut self) -> Result<(), JailError> {
        self.step("dumpable", Step::Dumpable)
    }
    fn oom_score_adj(&mut self, _: Option<i32>) -> Result<(), JailError> {
        self.step("oom-score-adj", Step::OomScoreAdj)
    }
    fn join_cgroups(&mut self, _: &[PathBuf]) -> Result<(), JailError> {
        self.step("cgroup", Step::Cgroup)
    }
    fn become_root_in_userns(&mut self) -> Result<(), JailError> {
        self.step("userns", Step::UserNamespace)
    }
    fn unshare_in_userns(&mut self, _: &ContainerConfig) -> Result<(), JailError> {
        self.step("namespaces (unshare in userns)", Step::Namespaces)
    }
    fn enter_namespaces(
        &mut self,
        _: &ContainerConfig,
        _: &[(NamespaceKind, BorrowedFd<'_>)],
    ) -> Result<(), JailError> {
        self.step("namespaces", Step::Namespaces)
    }
    fn join_namespaces(&mut self, _: &[(NamespaceKind, BorrowedFd<'_>)]) -> Result<(), JailError> {
        self.step("namespaces (join)", Step::Namespaces)
    }
    fn join_container(&mut self, _: &[NamespaceKind], _: BorrowedFd<'_>) -> Result<(), JailError> {
        self.step("namespaces (container's)", Step::Namespaces)
    }
    fn loopback(&mut self, _: &ContainerConfig) -> Result<(), JailError> {
        self.step("loopback", Step::Loopback)
    }
    fn propagation(&mut self, _: u64, _: &Path) -> Result<(), JailError> {
        self.step("propagation", Step::Propagation)
    }
    fn bind_rootfs(&mut self, _: &Path) -> Result<(), JailError> {
        self.step("rootfs-bind", Step::RootfsBind)
    }
    fn mount_all(&mut self, _: &(), _: &[Mount], _: MountContext) -> Result<(), JailError> {
        self.step("mount", Step::Mount)
    }
    fn devices(&mut self, _: &(), _: &ContainerConfig) -> Result<(), JailError> {
        self.step("devices", Step::Devices)
    }
    fn run_hooks(&mut self, kind: &str, _: &[Hook], _: &str) -> Result<(), JailError> {
        assert_eq!(kind, "createContainer");
        self.step("hooks (createContainer)", Step::Hook)
    }
    fn pivot(&mut self, _: ()) -> Result<(), JailError> {
        self.step("pivot_root", Step::PivotRoot)
    }
    fn root_propagation(&mut self, _: u64) -> Result<(), JailError> {
        self.step("propagation (new /)", Step::Propagation)
    }
    fn create_cwd(&mut self, _: &Path) -> Result<(), JailError> {
        self.step("cwd (create)", Step::Cwd)
    }
    fn terminal(&mut self, _: Option<(u16, u16)>, _: Console) -> Result<OwnedFd, JailError> {
        self.step("terminal", Step::Terminal)?;
        Ok(std::fs::File::open("/dev/null").unwrap().into())
    }
    fn readonly_root(&mut self) -> Result<(), JailError> {
        self.step("readonly-root", Step::ReadonlyRoot)
    }
    fn names(&mut self, _: &ContainerConfig) -> Result<(), JailError> {
        self.step("hostname", Step::Hostname)
    }
    fn sysctls(&mut self, _: &[(String, String)]) -> Result<(), JailError> {
        self.step("sysctl", Step::Sysctl)
    }
    fn readonly_paths(&mut self, _: &[PathBuf]) -> Result<(), JailError> {
        self.step("readonly-paths", Step::ReadonlyPaths)
    }
    fn masked_paths(&mut self, _: &[PathBuf]) -> Result<(), JailError> {
        self.step("masked-paths", Step::MaskedPaths)
    }
    fn home_of(&mut self, _: u32) -> Result<String, JailError> {
        self.step("identity (HOME)", Step::Identity)?;
        Ok("/root".into())
    }
    fn rlimits(&mut self, _: &[Rlimit]) -> Result<(), JailError> {
        self.step("rlimits", Step::Rlimits)
    }
    fn scheduling(&mut self, _: &ProcessConfig) -> Result<(), JailError> {
        self.step("scheduling", Step::Scheduling)
    }
    fn umask(&mut self, _: Option<u32>) -> Result<(), JailError> {
        self.step("umask", Step::Umask)
    }
    fn seccomp(&mut self, _: &SeccompFilter) -> Result<(), JailError> {
        self.step("seccomp", Step::Seccomp)
    }
    fn drop_bounding(&mut self, _: u64) -> Result<(), JailError> {
        self.step("capabilities (bounding)", Step::Capabilities)
    }
    fn keep_caps(&mut self, keep: bool) -> Result<(), JailError> {
        self.keep_caps.push(keep);
        self.step("capabilities (keepcaps)", Step::Capabilities)
    }
    fn switch_user(&mut self, _: &ProcessConfig) -> Result<(), JailError> {
        self.step("identity", Step::Identity)
    }
    fn capabilities(&mut self, _: &Capabilities) -> Result<(), JailError> {
        self.step("capabilities", Step::Capabilities)
    }
    fn change_dir(&mut self, _: &Path) -> Result<(), JailError> {
        self.step("cwd", Step::Cwd)
    }
    fn no_new_privs(&mut self, _: bool) -> Result<(), JailError> {
        self.step("no-new-privs", Step::NoNewPrivs)
    }
    fn session(&mut self) -> Result<(), JailError> {
        self.step("session", Step::Session)
    }
    fn controlling_terminal(&mut self) -> Result<(), JailError> {
        self.step("controlling-terminal", Step::Terminal)
    }
}

/// Steps 14 to 18 of `init`'s doc, with HOME already in the environment.
const PROCESS: &[&str] = &[
    "rlimits",
    "scheduling",
    "umask",
    "capabilities (bounding)",
    "capabilities (keepcaps)",
    "identity",
    "capabilities (keepcaps)",
    "capabilities",
    "cwd",
    "no-new-privs",
];

/// Steps 0 to 13 of `init`'s doc for a container without a terminal, a read-only root or hooks.
const PLAIN_JAIL: &[&str] = &[
    "oom-score-adj",
    "cgroup",
    "namespaces",
    "loopback",
    "propagation",
    "rootfs-bind",
    "mount",
    "devices",
    "pivot_root",
    "propagation (new /)",
    "cwd (create)",
    "hostname",
    "sysctl",
    "readonly-paths",
    "masked-paths",
];

fn process() -> ProcessConfig {
    ProcessConfig {
        args: vec!["/bin/true".into()],
        env: vec!["HOME=/home/u".into(), "PATH=/bin".into()],
        cwd: "/".into(),
        ..Default::default()
    }
}

fn plain() -> ContainerConfig {
    ContainerConfig {
        rootfs: "/nonexistent/rootfs".into(),
        process: process(),
        namespaces: vec![Namespace {
            kind: NamespaceKind::Mount,
            join: false,
        }],
        ..Default::default()
    }
}

/// Every optional step on: runtime and createContainer hooks, a terminal, a read-only root,
/// no HOME, and a seccomp filter loaded while privileged (no no_new_privs).
fn everything() -> ContainerConfig {
    let mut cfg = plain();
    cfg.hooks.runtime_hooks_due = true;
    cfg.hooks.create_container = vec![Hook {
        path: "/bin/true".into(),
        ..Default::default()
    }];
    cfg.readonly_root = true;
    cfg.process.terminal = true;
    cfg.process.env = vec!["PATH=/bin".into()];
    cfg.process.seccomp = Some(SeccompFilter::default());
    cfg
}

fn everything_order() -> Vec<&'static str> {
    [
        &PLAIN_JAIL[..8],
        &["hooks (runtime)", "hooks (createContainer)"],
        &PLAIN_JAIL[8..11],
        &["terminal", "readonly-root"],
        &PLAIN_JAIL[11..],
        &[
            "identity (HOME)",
            "rlimits",
            "scheduling",
            "umask",
            "seccomp",
        ],
        &PROCESS[3..],
    ]
    .concat()
}

/// Runs `prepare` over `rec`, recording the runtime hooks' hand-over as a step too.
fn run_prepare(rec: &mut Recorder, cfg: &ContainerConfig) -> Result<(), JailError> {
    let calls = std::cell::RefCell::new(Vec::new());
    let mut runtime_hooks = || {
        calls.borrow_mut().push(());
        Ok(())
    };
    // The hand-over is not a `Steps` method (it is the zygote's wait on the agent): splice it
    // into the record where it happened, just before the createContainer hooks.
    let r = prepare_with(rec, cfg, &[], &mut runtime_hooks).map(drop);
    if !calls.borrow().is_empty() {
        let at = rec.calls.iter().position(|c| *c == "devices").unwrap() + 1;
        rec.calls.insert(at, "hooks (runtime)");
    }
    r
}

#[test]
fn a_plain_container_runs_the_documented_steps_in_order() {
    let mut rec = Recorder::default();
    run_prepare(&mut rec, &plain()).unwrap();
    assert_eq!(rec.calls, [PLAIN_JAIL, PROCESS].concat());
    assert_eq!(
        rec.keep_caps,
        [true, false],
        "keepcaps set around the uid change"
    );
}

#[test]
fn optional_steps_come_where_documented() {
    let mut rec = Recorder::default();
    run_prepare(&mut rec, &everything()).unwrap();
    assert_eq!(rec.calls, everything_order());
}

#[test]
fn with_no_new_privs_seccomp_waits_for_exec() {
    let mut cfg = plain();
    cfg.process.seccomp = Some(SeccompFilter::default());
    cfg.process.no_new_privileges = true;
    let mut rec = Recorder::default();
    run_prepare(&mut rec, &cfg).unwrap();
    assert!(!rec.calls.contains(&"seccomp"), "{:?}", rec.calls);
    assert_eq!(rec.calls.last(), Some(&"no-new-privs"));
}

#[test]
fn a_failing_step_stops_everything_after_it_and_is_named() {
    let order = everything_order();
    for (n, label) in order.iter().enumerate() {
        if *label == "hooks (runtime)" {
            continue; // not a `Steps` call: see the next test
        }
        // The record of a failing run has no runtime hooks entry unless they were reached.
        let calls_before = order[..n]
            .iter()
            .filter(|c| **c != "hooks (runtime)")
            .count();
        let mut rec = Recorder::failing_at(calls_before);
        let err = run_prepare(&mut rec, &everything()).unwrap_err();
        assert_eq!(rec.calls, order[..=n], "failing at {label}");
        assert_eq!(err.to_string(), format!("injected at {label}: EIO"));
    }
}

#[test]
fn a_failed_runtime_hook_hand_over_stops_before_pivot_root() {
    let mut rec = Recorder::default();
    let mut runtime_hooks =
        || -> Result<(), JailError> { Err(Step::Hook.err("agent's hooks")(Errno::EPERM)) };
    let err = prepare_with(&mut rec, &everything(), &[], &mut runtime_hooks).unwrap_err();
    assert_eq!(err.step(), "hooks");
    assert_eq!(rec.calls, PLAIN_JAIL[..8]);
}

#[test]
fn in_a_user_namespace_root_comes_first_and_host_steps_stay_outside() {
    let mut cfg = plain();
    cfg.namespaces.push(Namespace {
        kind: NamespaceKind::User,
        join: false,
    });
    let mut outside = Recorder::default();
    prepare_outside_userns_with(&mut outside, &cfg, &[]).unwrap();
    assert_eq!(
        outside.calls,
        ["oom-score-adj", "cgroup", "rlimits", "namespaces (join)"]
    );

    let mut inside = Recorder::default();
    run_prepare(&mut inside, &cfg).unwrap();
    let expected = [
        &["userns", "namespaces (unshare in userns)"],
        &PLAIN_JAIL[2..],
        &PROCESS[1..], // no rlimits: set outside
    ]
    .concat();
    assert_eq!(inside.calls, expected);
}

fn exec_config() -> ExecConfig {
    ExecConfig {
        namespaces: vec![NamespaceKind::Mount, NamespaceKind::Pid],
        process: process(),
        ..Default::default()
    }
}

#[test]
fn an_exec_is_non_dumpable_first_and_joins_before_anything_of_its_own() {
    let pidfd = std::fs::File::open("/dev/null").unwrap();
    let fd = std::os::fd::AsFd::as_fd(&pidfd);
    let mut rec = Recorder::default();
    prepare_exec_with(&mut rec, &exec_config(), fd).unwrap();
    let expected = [
        &[
            "dumpable",
            "oom-score-adj",
            "cgroup",
            "namespaces (container's)",
        ],
        PROCESS,
    ]
    .concat();
    assert_eq!(rec.calls, expected);

    let mut cfg = exec_config();
    cfg.namespaces.push(NamespaceKind::User);
    cfg.process.terminal = true;
    let mut rec = Recorder::default();
    prepare_exec_with(&mut rec, &cfg, fd).unwrap();
    let expected = [
        &[
            "dumpable",
            "oom-score-adj",
            "cgroup",
            "rlimits",
            "namespaces (container's)",
            "userns",
            "terminal",
        ],
        &PROCESS[1..],
    ]
    .concat();
    assert_eq!(rec.calls, expected);
}

#[test]
fn finish_leads_a_session_before_taking_its_terminal() {
    let mut p = process();
    let mut rec = Recorder::default();
    finish_with(&mut rec, &crate::process::Prepared::new(&p).unwrap()).unwrap();
    assert_eq!(rec.calls, ["session"]);

    p.terminal = true;
    let mut rec = Recorder::default();
    finish_with(&mut rec, &crate::process::Prepared::new(&p).unwrap()).unwrap();
    assert_eq!(rec.calls, ["session", "controlling-terminal"]);

    let mut rec = Recorder::failing_at(0);
    let err = finish_with(&mut rec, &crate::process::Prepared::new(&p).unwrap()).unwrap_err();
    assert_eq!((err.step(), rec.calls.len()), ("session", 1));
}
