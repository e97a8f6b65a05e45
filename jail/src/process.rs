//! The container's process: the argv/envp prepared up front (`Prepared`, which also carries
//! the pty master of a terminal until the caller takes it), the PATH lookup of args[0] inside
//! the container's root, marking every inherited fd but stdio close-on-exec, and the execve
//! itself. The environment is exactly the configured one, except that HOME is added when it
//! has none (or only an empty one), as runc does (`home`).

use crate::error::{JailError, Step};
use crate::sys;
use nix::errno::Errno;
use nix::fcntl::{FcntlArg, FdFlag, OFlag};
use nix::sys::stat::SFlag;
use std::ffi::{CString, OsStr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use wire::zygote::ProcessConfig;

/// PATH when the configured environment has none (runc's and Docker's default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Everything `exec` needs, converted before the jail is built so that a malformed argument
/// fails early and the post-fifo path does no conversion.
#[derive(Debug)]
pub struct Prepared {
    argv: Vec<CString>,
    envp: Vec<CString>,
    /// The PATH entries to search for a bare args[0] (absolute ones only).
    search: Vec<PathBuf>,
    /// The pty master (O_CLOEXEC) when the process has a terminal, until `take_console`.
    console: Option<OwnedFd>,
    /// Test hook of an exec: sleep this long right before execve. Zero for containers.
    pause_before_exec: Duration,
    /// The process has a terminal, to be made its controlling one last (`init::finish`).
    terminal: bool,
    /// The seccomp filter to load right before execve (with no_new_privs; without it the filter
    /// was loaded while still privileged, in `init`).
    seccomp_at_exec: Option<wire::zygote::SeccompFilter>,
}

fn exec_err(what: String) -> impl FnOnce(Errno) -> JailError {
    move |errno| JailError::new(Step::Exec, what, errno)
}

impl Prepared {
    pub fn new(p: &ProcessConfig) -> Result<Self, JailError> {
        let cstrings = |list: &[String], what: &str| {
            let convert = |s: &String| CString::new(s.as_bytes());
            let all = list.iter().map(convert).collect::<Result<Vec<_>, _>>();
            all.map_err(|_| exec_err(format!("{what} contains a NUL byte"))(Errno::EINVAL))
        };
        let argv = cstrings(&p.args, "an argument")?;
        match argv.first() {
            Some(program) if !program.as_bytes().is_empty() => {}
            _ => {
                return Err(exec_err("no program to run (args is empty)".into())(
                    Errno::EINVAL,
                ))
            }
        }
        let envp = cstrings(&p.env, "an environment entry")?;
        // The last PATH= wins, as when runc applies the entries in order with setenv.
        let path = p.env.iter().rev().find_map(|e| e.strip_prefix("PATH="));
        Ok(Self {
            argv,
            envp,
            search: search_list(path.unwrap_or(DEFAULT_PATH)),
            console: None,
            pause_before_exec: Duration::ZERO,
            terminal: p.terminal,
            seccomp_at_exec: p.seccomp.clone().filter(|_| p.no_new_privileges),
        })
    }

    /// The pty master of a process with a terminal (None without one, or when already taken).
    /// The caller passes it to the agent before reporting `ready`; it is O_CLOEXEC, so a copy
    /// left here never reaches the container's process.
    pub fn take_console(&mut self) -> Option<OwnedFd> {
        self.console.take()
    }

    pub(crate) fn set_console(&mut self, master: OwnedFd) {
        self.console = Some(master);
    }

    pub(crate) fn set_pause_before_exec(&mut self, pause: Duration) {
        self.pause_before_exec = pause;
    }

    pub fn has_terminal(&self) -> bool {
        self.terminal
    }

    /// Whether HOME has to come from /etc/passwd: runc sets it when `getenv("HOME")` is empty
    /// after applying the entries in order, so no HOME, or a last one that is empty.
    pub(crate) fn lacks_home(&self) -> bool {
        let last = self
            .envp
            .iter()
            .rev()
            .find_map(|e| e.as_bytes().strip_prefix(b"HOME="));
        last.is_none_or(<[u8]>::is_empty)
    }

    /// Replaces every HOME entry with `HOME=home` (one entry, as setenv leaves it).
    pub(crate) fn set_home(&mut self, home: &str) -> Result<(), JailError> {
        let entry = CString::new(format!("HOME={home}"))
            .map_err(|_| exec_err(format!("HOME {home:?} contains a NUL byte"))(Errno::EINVAL))?;
        self.envp.retain(|e| !e.as_bytes().starts_with(b"HOME="));
        self.envp.push(entry);
        Ok(())
    }

    pub fn program(&self) -> &OsStr {
        OsStr::from_bytes(self.argv[0].as_bytes())
    }
}

/// Relative PATH entries (including the empty one, meaning ".") are skipped: resolving a
/// program against the working directory is a classic way to run something unintended.
fn search_list(path: &str) -> Vec<PathBuf> {
    path.split(':')
        .filter(|d| d.starts_with('/'))
        .map(PathBuf::from)
        .collect()
}

/// args[0] as execve gets it: unchanged when it has a '/', else the first `dir/name` in the
/// search list that is a regular file with an execute bit, looked up inside `root`.
pub fn lookup(root: BorrowedFd<'_>, prepared: &Prepared) -> Result<CString, JailError> {
    let name = prepared.program();
    if name.as_bytes().contains(&b'/') {
        return Ok(prepared.argv[0].clone());
    }
    let resolve = sys::RESOLVE_IN_ROOT | sys::RESOLVE_NO_MAGICLINKS;
    for dir in &prepared.search {
        let candidate = dir.join(name);
        let rel = crate::paths::clean(&candidate);
        let Ok(fd) = sys::openat2(root, &rel, OFlag::O_PATH, 0, resolve) else {
            continue;
        };
        let Ok(st) = nix::sys::stat::fstat(fd.as_raw_fd()) else {
            continue;
        };
        let regular = st.st_mode & SFlag::S_IFMT.bits() == SFlag::S_IFREG.bits();
        if regular && st.st_mode & 0o111 != 0 {
            return sys::cpath(&candidate)
                .map_err(exec_err(format!("exec {}", candidate.display())));
        }
    }
    let dirs: Vec<_> = prepared
        .search
        .iter()
        .map(|d| d.display().to_string())
        .collect();
    let what = format!(
        "exec {}: not found in PATH {}",
        name.to_string_lossy(),
        dirs.join(":")
    );
    Err(exec_err(what)(Errno::ENOENT))
}

/// Every fd above stdio close-on-exec, so that only 0, 1 and 2 reach the container's process.
pub fn cloexec_all_but_stdio() -> Result<(), Errno> {
    match sys::cloexec_from(3) {
        Err(Errno::ENOSYS | Errno::EINVAL) => {}
        other => return other,
    }
    let entries = std::fs::read_dir("/proc/self/fd").map_err(|e| crate::error::errno_of(&e))?;
    for entry in entries.flatten() {
        let fd = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok());
        let Some(fd) = fd.filter(|&fd| fd > 2) else {
            continue;
        };
        // EBADF: the directory stream's own fd, closed by now.
        match nix::fcntl::fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)) {
            Ok(_) | Err(Errno::EBADF) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Resolves the program in "/" (the container's root by now), marks fds close-on-exec, waits
/// out the test pause if there is one, loads the seccomp filter (with no_new_privs: the last
/// thing before execve, so that none of our own code runs under it), and execs. Returns only on failure.
pub fn exec(prepared: &Prepared) -> JailError {
    let root = match sys::open(Path::new("/"), OFlag::O_PATH | OFlag::O_DIRECTORY) {
        Ok(fd) => fd,
        Err(e) => return exec_err("open / to look up the program".into())(e),
    };
    let path = match lookup(root.as_fd(), prepared) {
        Ok(p) => p,
        Err(e) => return e,
    };
    drop(root);
    if let Err(e) = cloexec_all_but_stdio() {
        return exec_err("mark inherited fds close-on-exec".into())(e);
    }
    if !prepared.pause_before_exec.is_zero() {
        std::thread::sleep(prepared.pause_before_exec);
    }
    if let Some(filter) = &prepared.seccomp_at_exec {
        if let Err(e) = crate::seccomp::load(filter) {
            return e;
        }
    }
    let Err(e) = nix::unistd::execve(&path, &prepared.argv, &prepared.envp);
    exec_err(format!("exec {}", path.to_string_lossy()))(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn process(args: &[&str], env: &[&str]) -> ProcessConfig {
        ProcessConfig {
            args: args.iter().map(|s| s.to_string()).collect(),
            env: env.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn prepare_checks_args_and_picks_path() {
        let e = Prepared::new(&process(&[], &[])).unwrap_err();
        assert_eq!((e.step(), e.errno()), ("exec", libc::EINVAL));
        let e = Prepared::new(&process(&["a\0b"], &[])).unwrap_err();
        assert_eq!(e.to_string(), "an argument contains a NUL byte: EINVAL");
        let mut p = Prepared::new(&process(&["sh"], &["A=1"])).unwrap();
        assert_eq!(p.search.len(), 6);
        assert!(p.take_console().is_none());
        assert!(p.pause_before_exec.is_zero());
        let p = Prepared::new(&process(&["sh"], &["PATH=/x:rel::/y", "PATH=/a:.:/b"])).unwrap();
        assert_eq!(p.search, vec![PathBuf::from("/a"), PathBuf::from("/b")]);
    }

    #[test]
    fn lookup_searches_inside_the_root() {
        let outer = tempfile::tempdir().unwrap();
        let rootp = outer.path().join("root");
        for d in ["root/bin", "root/usr/bin", "root/sbin", "host/bin"] {
            std::fs::create_dir_all(outer.path().join(d)).unwrap();
        }
        let exe = |p: &Path, mode: u32| {
            std::fs::write(p, b"#!/bin/sh\n").unwrap();
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        exe(&rootp.join("usr/bin/tool"), 0o755);
        exe(&rootp.join("bin/noexec"), 0o644);
        exe(&rootp.join("sbin/noexec"), 0o700);
        exe(&outer.path().join("host/bin/hostonly"), 0o755);
        std::fs::create_dir(rootp.join("bin/dir")).unwrap();
        // A symlinked PATH entry pointing at the host's directory stays in the root.
        std::os::unix::fs::symlink(outer.path().join("host/bin"), rootp.join("hostbin")).unwrap();
        let root = sys::open(&rootp, OFlag::O_PATH | OFlag::O_DIRECTORY).unwrap();
        let env = ["PATH=/hostbin:/bin:/usr/bin:/sbin"];
        let find = |name: &str| {
            lookup(
                root.as_fd(),
                &Prepared::new(&process(&[name], &env)).unwrap(),
            )
        };
        assert_eq!(find("tool").unwrap().to_str().unwrap(), "/usr/bin/tool");
        assert_eq!(find("noexec").unwrap().to_str().unwrap(), "/sbin/noexec");
        assert_eq!(find("./rel").unwrap().to_str().unwrap(), "./rel");
        let e = find("hostonly").unwrap_err();
        assert_eq!((e.step(), e.errno()), ("exec", libc::ENOENT));
        assert_eq!(
            e.to_string(),
            "exec hostonly: not found in PATH /hostbin:/bin:/usr/bin:/sbin: ENOENT"
        );
        assert_eq!(find("dir").unwrap_err().errno(), libc::ENOENT);
    }
}
