//! runc and crun on the same bundle, through their CLIs as containerd's shim would call them:
//! `create --bundle B --pid-file F id` (stdio to /dev/null), `start id`, wait for the
//! container's process to exit, `delete id`. `zagent-bench runtime` is the single-threaded
//! helper that runs them: it unshares a private mount namespace in which the cgroup2 mount of
//! a hybrid host is detached (Debian's crun 1.8.1 refuses hybrid layouts), so both runtimes
//! see plain cgroup v1, and becomes a child subreaper so the container process, orphaned when
//! `create` exits, is reparented to it and can be waited for.

use super::helper;
use super::model::StepSample;
use anyhow::{bail, Context, Result};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::fs::File;
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

pub struct RuntimeArgs {
    pub runtime: PathBuf,
    pub bundle: PathBuf,
    /// The runtime's --root (its state dir), private to this run.
    pub root: PathBuf,
    /// Container ids are PREFIX-N; must start with "zagent" (the runtimes name the cgroup
    /// after the id).
    pub prefix: String,
}

/// The runtimes the bench compares with, when they are installed.
pub const RUNTIMES: [&str; 2] = ["runc", "crun"];

/// Which runtimes a run measures and which it does not.
pub struct Chosen {
    /// By name and path.
    pub run: Vec<(String, PathBuf)>,
    /// By name, with why not: the mode left them out, or they are not installed.
    pub not_measured: Vec<(String, String)>,
}

/// The runtimes this run measures: those installed, when the plan wants them (else none, and
/// the reason names the option that left them out).
pub fn choose(plan: &super::Plan) -> Chosen {
    if !plan.runtimes {
        let why = match plan.mode {
            "quick" => "left out by --quick; add --runtimes",
            _ => "left out by --no-runtimes",
        };
        return Chosen {
            run: vec![],
            not_measured: RUNTIMES
                .iter()
                .map(|n| (n.to_string(), why.into()))
                .collect(),
        };
    }
    let run = installed(&RUNTIMES);
    let not_measured = RUNTIMES
        .iter()
        .filter(|n| !run.iter().any(|(f, _)| f == *n))
        .map(|n| (n.to_string(), "not installed".to_string()))
        .collect();
    Chosen { run, not_measured }
}

/// The runtimes installed here, by name and path.
pub fn installed(names: &[&str]) -> Vec<(String, PathBuf)> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    names
        .iter()
        .filter_map(|name| {
            std::env::split_paths(&path)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
                .map(|p| (name.to_string(), p))
        })
        .collect()
}

/// The first line of `runtime --version`.
pub fn version(runtime: &Path) -> String {
    Command::new(runtime)
        .arg("--version")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .to_string()
        })
        .unwrap_or_else(|e| format!("unknown ({e})"))
}

pub fn main(args: &RuntimeArgs) -> Result<()> {
    if !args.prefix.starts_with("zagent") {
        bail!(
            "container ids must start with \"zagent\" (got prefix {:?})",
            args.prefix
        );
    }
    enter_plain_v1_namespace()?;
    nix::sys::prctl::set_child_subreaper(true).context("PR_SET_CHILD_SUBREAPER")?;
    std::fs::create_dir_all(&args.root)?;
    let mut stderr = tempfile::tempfile_in(&args.root).context("stderr file")?;
    let mut n = 0;
    let served = helper::serve(|count| {
        (0..count)
            .map(|_| {
                n += 1;
                lifecycle(args, &format!("{}-{n}", args.prefix), &mut stderr)
            })
            .collect()
    });
    cleanup(args);
    served
}

/// A private mount namespace in which every cgroup2 mount is detached when v1 hierarchies
/// with controllers exist (a hybrid host); on a pure v2 host nothing is detached.
fn enter_plain_v1_namespace() -> Result<()> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).context("unshare(CLONE_NEWNS)")?;
    let none: Option<&str> = None;
    mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none)
        .context("making / private")?;
    let info = std::fs::read_to_string("/proc/self/mountinfo")?;
    let mounts: Vec<(String, String)> = info
        .lines()
        .filter_map(|l| {
            let target = l.split(' ').nth(4)?;
            let fstype = l.split(" - ").nth(1)?.split(' ').next()?;
            Some((target.to_string(), fstype.to_string()))
        })
        .collect();
    if mounts.iter().any(|(_, t)| t == "cgroup") {
        for (target, _) in mounts
            .iter()
            .filter(|(t, ty)| ty == "cgroup2" && t.starts_with("/sys/fs/cgroup"))
        {
            umount2(target.as_str(), MntFlags::MNT_DETACH)
                .with_context(|| format!("detaching {target}"))?;
        }
    }
    Ok(())
}

/// Runs `runtime --root R args...` with stdio at /dev/null and stderr into `stderr`; the
/// error carries what the runtime printed.
fn call(args: &RuntimeArgs, cmd: &[&str], stderr: &mut File) -> Result<()> {
    stderr.set_len(0)?;
    stderr.rewind()?;
    let err = stderr.try_clone()?;
    let status = Command::new(&args.runtime)
        .arg("--root")
        .arg(&args.root)
        .args(cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err)
        .status()
        .with_context(|| format!("running {}", args.runtime.display()))?;
    if !status.success() {
        let mut text = String::new();
        stderr.rewind()?;
        stderr.read_to_string(&mut text)?;
        bail!(
            "`{} {}` failed ({status}): {}",
            args.runtime.display(),
            cmd.join(" "),
            text.trim()
        );
    }
    Ok(())
}

fn lifecycle(args: &RuntimeArgs, id: &str, stderr: &mut File) -> Result<StepSample> {
    let pid_file = args.root.join(format!("{id}.pid"));
    let bundle = args.bundle.to_string_lossy();
    let pid_arg = pid_file.to_string_lossy();
    let mono_ns = super::clock::mono_ns();
    let begin = Instant::now();
    call(
        args,
        &["create", "--bundle", &bundle, "--pid-file", &pid_arg, id],
        stderr,
    )?;
    let create_ns = begin.elapsed().as_nanos() as u64;
    let result = after_create(args, id, &pid_file, stderr);
    if result.is_err() {
        let _ = call(args, &["delete", "--force", id], stderr);
    }
    let _ = std::fs::remove_file(&pid_file);
    reap_orphans();
    let (start_ns, wait_ns, remove_ns) = result?;
    Ok(StepSample {
        create_ns: Some(create_ns),
        start_ns: Some(start_ns),
        wait_ns: Some(wait_ns),
        remove_ns: Some(remove_ns),
        total_ns: begin.elapsed().as_nanos() as u64,
        at_ms: 0.0,
        mono_ns: Some(mono_ns),
    })
}

fn after_create(
    args: &RuntimeArgs,
    id: &str,
    pid_file: &Path,
    stderr: &mut File,
) -> Result<(u64, u64, u64)> {
    let pid: i32 = std::fs::read_to_string(pid_file)
        .with_context(|| format!("reading {}", pid_file.display()))?
        .trim()
        .parse()
        .context("pid file")?;
    let t = Instant::now();
    call(args, &["start", id], stderr)?;
    let start_ns = t.elapsed().as_nanos() as u64;
    let t = Instant::now();
    // The runtime's create has exited, so its container process is ours (subreaper).
    match waitpid(Pid::from_raw(pid), None)
        .with_context(|| format!("waiting for container pid {pid}"))?
    {
        WaitStatus::Exited(_, 0) => {}
        other => bail!("container {id} (/bin/true) ended with {other:?}"),
    }
    let wait_ns = t.elapsed().as_nanos() as u64;
    let t = Instant::now();
    call(args, &["delete", id], stderr)?;
    Ok((start_ns, wait_ns, t.elapsed().as_nanos() as u64))
}

/// Reaps whatever else the runtime left to us (intermediate processes); only called when no
/// runtime command of ours is running, so it cannot steal a status std is waiting for.
fn reap_orphans() {
    while let Ok(status) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
        if status == WaitStatus::StillAlive {
            break;
        }
    }
}

/// Deletes every container still in our --root (after a failure or an early stop).
fn cleanup(args: &RuntimeArgs) {
    let Ok(out) = Command::new(&args.runtime)
        .arg("--root")
        .arg(&args.root)
        .args(["list", "-q"])
        .output()
    else {
        return;
    };
    let mut sink = tempfile::tempfile().ok();
    // PREFIX- only: helpers sharing a --root have prefixes such as X-t1 and X-t10.
    let ours = format!("{}-", args.prefix);
    for id in String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with(&ours))
    {
        if let Some(f) = sink.as_mut() {
            let _ = call(args, &["delete", "--force", id], f);
        }
    }
    reap_orphans();
}

/// Removes the empty cgroup dirs named `prefix*` that a runtime left at the top of any
/// hierarchy (it names the cgroup after the id). rmdir only: a cgroup with processes stays
/// and is reported.
pub fn remove_stray_cgroups(prefix: &str) -> Vec<String> {
    let mut left = Vec::new();
    let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") else {
        return left;
    };
    for h in hierarchies.flatten() {
        let Ok(entries) = std::fs::read_dir(h.path()) else {
            continue;
        };
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(prefix) && e.path().is_dir() {
                if let Err(err) = std::fs::remove_dir(e.path()) {
                    left.push(format!("{}: {err}", e.path().display()));
                }
            }
        }
    }
    left
}
