//! The floor: what launching a container costs with nothing but the essentials, measured in
//! the same run as the agents. `zagent-bench floor` is a single-threaded helper (no tokio, so
//! fork-like clone3 is sound): per iteration it clones a child into new mount, pid, uts, ipc
//! and net namespaces (the default spec's), the child joins a pre-made cgroup in every
//! hierarchy zagent uses, unshares its cgroup namespace, makes / a slave, bind-mounts the
//! rootfs onto itself, pivot_roots into it (".", "." + MNT_DETACH) and execs /bin/true; the
//! parent waits. One sample = before clone3 to after waitpid.

use super::helper::{self, Reply};
use super::model::StepSample;
use anyhow::{bail, Context, Result};
use jail::cgroups::{Layout, Resources};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

pub struct FloorArgs {
    pub rootfs: PathBuf,
    /// Created (in every hierarchy) before the loop, removed after; must start with "zagent".
    pub cgroup: String,
    /// Run this many and print one JSON line; without it, serve counts from stdin.
    pub iterations: Option<usize>,
}

/// The namespaces of the default spec that exist at clone time (the cgroup namespace is
/// unshared after joining the cgroup, as zagent's child does).
const CLONE_FLAGS: i32 = libc::CLONE_NEWNS
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWNET;

/// What the child needs, allocated before the clock starts.
struct Prepared {
    procs: Vec<CString>,
    rootfs: CString,
    exe: CString,
    env: CString,
}

/// The child's steps, named for the error when one fails (exit status 100 + index).
const STEPS: [&str; 9] = [
    "join cgroup",
    "unshare cgroup ns",
    "make / rslave",
    "bind rootfs",
    "chdir rootfs",
    "pivot_root",
    "umount old root",
    "chdir /",
    "execve /bin/true",
];

pub fn main(args: &FloorArgs) -> Result<()> {
    if !args.cgroup.starts_with("zagent") {
        bail!(
            "the floor's cgroup name must start with \"zagent\" (got {:?})",
            args.cgroup
        );
    }
    let layout = Layout::detect(Path::new("/proc/self/mountinfo")).context("detecting cgroups")?;
    let cgroup = layout
        .create(Path::new(&args.cgroup), &Resources::default())
        .with_context(|| format!("creating cgroup {}", args.cgroup))?;
    let result = prepare(&args.rootfs, &cgroup.join_files()).and_then(|p| match args.iterations {
        Some(n) => {
            let reply = match run(&p, n) {
                Ok(samples) => Reply::Samples(samples),
                Err(e) => Reply::Failed(format!("{e:#}")),
            };
            println!("{}", serde_json::to_string(&reply)?);
            Ok(())
        }
        None => helper::serve(|n| run(&p, n)),
    });
    let removed = cgroup
        .remove()
        .with_context(|| format!("removing cgroup {}", args.cgroup));
    result.and(removed)
}

fn cstring(bytes: &[u8]) -> Result<CString> {
    CString::new(bytes).context("path with a NUL byte")
}

fn prepare(rootfs: &Path, procs: &[PathBuf]) -> Result<Prepared> {
    let rootfs = rootfs
        .canonicalize()
        .with_context(|| format!("rootfs {}", rootfs.display()))?;
    if !rootfs.join("bin/true").exists() {
        bail!("{} has no /bin/true", rootfs.display());
    }
    Ok(Prepared {
        procs: procs
            .iter()
            .map(|p| cstring(p.as_os_str().as_bytes()))
            .collect::<Result<_>>()?,
        rootfs: cstring(rootfs.as_os_str().as_bytes())?,
        exe: cstring(b"/bin/true")?,
        env: cstring(b"PATH=/usr/sbin:/usr/bin:/sbin:/bin")?,
    })
}

fn run(p: &Prepared, n: usize) -> Result<Vec<StepSample>> {
    (0..n)
        .map(|_| {
            let mono_ns = super::clock::mono_ns();
            one(p).map(|ns| StepSample {
                total_ns: ns,
                mono_ns: Some(mono_ns),
                ..Default::default()
            })
        })
        .collect()
}

/// One clone-to-reap, in ns.
fn one(p: &Prepared) -> Result<u64> {
    let begin = Instant::now();
    let pid = clone_child()?;
    if pid == 0 {
        let failed = child(p);
        // SAFETY: _exit ends the child at once, without running the parent's atexit handlers
        // or destructors on our copy of its memory.
        unsafe { libc::_exit(100 + failed) }
    }
    let status = waitpid(Pid::from_raw(pid), None).context("waitpid")?;
    let ns = begin.elapsed().as_nanos() as u64;
    match status {
        WaitStatus::Exited(_, 0) => Ok(ns),
        WaitStatus::Exited(_, code) if (100..100 + STEPS.len() as i32).contains(&code) => {
            bail!(
                "floor child failed at step {:?}",
                STEPS[(code - 100) as usize]
            )
        }
        other => bail!("floor child ended with {other:?}"),
    }
}

/// clone3 without a stack (zygote's, the zygote's own clone): the child returns here with 0,
/// which is sound because this helper has one thread.
fn clone_child() -> Result<i32> {
    let (pid, _) = zygote::fork::clone3(CLONE_FLAGS as u64, libc::SIGCHLD as u64)
        .map_err(std::io::Error::from)
        .context("clone3")?;
    Ok(pid)
}

/// The child's path to exec; returns the index of the step that failed.
fn child(p: &Prepared) -> i32 {
    use nix::fcntl::{open, OFlag};
    use nix::sys::stat::Mode;
    for file in &p.procs {
        let Ok(fd) = open(
            file.as_c_str(),
            OFlag::O_WRONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) else {
            return 0;
        };
        // SAFETY: `open` just returned this fd and nothing else owns it.
        let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        if nix::unistd::write(&fd, b"0").is_err() {
            return 0;
        }
    }
    let none: Option<&str> = None;
    let steps: [&dyn Fn() -> nix::Result<()>; 7] = [
        &|| nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP),
        &|| mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_SLAVE, none),
        &|| {
            mount(
                Some(p.rootfs.as_c_str()),
                p.rootfs.as_c_str(),
                none,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                none,
            )
        },
        &|| nix::unistd::chdir(p.rootfs.as_c_str()),
        &|| nix::unistd::pivot_root(".", "."),
        &|| umount2(".", MntFlags::MNT_DETACH),
        &|| nix::unistd::chdir("/"),
    ];
    for (i, step) in steps.iter().enumerate() {
        if step().is_err() {
            return i as i32 + 1;
        }
    }
    let _ = nix::unistd::execve(&p.exe, &[&p.exe], &[&p.env]);
    8
}
