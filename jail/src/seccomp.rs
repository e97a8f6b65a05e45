//! `linux.seccomp`: compiled into a classic BPF program in the agent (`compile`, libseccomp,
//! as runc, crun, youki and Kata do), and loaded in the child with seccomp(2) (`load`, one raw
//! syscall: no library code runs between fork and exec for it). The program travels in the
//! launch config (`wire::zygote::SeccompFilter`), so a profile is compiled in the agent, which
//! keeps the last few (`FilterCache`) for the next container with the same profile, and never in
//! a child.
//!
//! Semantics follow runc: a syscall name unknown to libseccomp is skipped (profiles list
//! syscalls of newer kernels and other architectures); a rule whose action is the default one is
//! skipped; a rule whose conditions all test the same argument becomes one rule per condition
//! (libseccomp cannot AND two tests of one argument); ERRNO and TRACE without `errnoRet` return
//! EPERM. Refused: SCMP_ACT_NOTIFY and `listenerPath` (no seccomp agent), unknown actions,
//! architectures and flags, an argument index above 5.

use crate::error::{JailError, Step};
use libseccomp::ScmpSyscall;
use libseccomp::{ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext};
use nix::errno::Errno;
use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction as Act, LinuxSeccompArg, LinuxSeccompFilterFlag as Flag,
    LinuxSeccompOperator as Op, LinuxSyscall,
};
use std::io::{Read, Seek};
use wire::zygote::SeccompFilter;

/// SECCOMP_FILTER_FLAG_* from linux/seccomp.h.
const FLAG_TSYNC: u32 = 1;
const FLAG_LOG: u32 = 2;
const FLAG_SPEC_ALLOW: u32 = 4;

/// The most instructions a classic BPF program may have (BPF_MAXINSNS).
const MAX_INSNS: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("{0} needs a seccomp agent (listenerPath), which zagent does not support")]
    Notify(&'static str),
    #[error("listenerPath is not supported (no seccomp agent)")]
    Listener,
    #[error("architecture {0} is not known to libseccomp")]
    Arch(String),
    #[error("syscalls[{rule}].args: index {index} is not an argument (0 to 5)")]
    ArgIndex { rule: usize, index: usize },
    #[error("{what}: {message}")]
    Library { what: String, message: String },
    #[error("the compiled program has {0} instructions, more than the kernel's {MAX_INSNS}")]
    TooLong(usize),
}

fn library(
    what: impl Into<String>,
) -> impl FnOnce(libseccomp::error::SeccompError) -> SeccompError {
    let what = what.into();
    move |e| SeccompError::Library {
        what,
        message: e.to_string(),
    }
}

/// The action libseccomp takes for `act`; `errno` is the rule's (or profile's) errnoRet.
fn action(act: Act, errno: Option<u32>) -> Result<ScmpAction, SeccompError> {
    let errno = errno.unwrap_or(libc::EPERM as u32);
    Ok(match act {
        Act::ScmpActKill | Act::ScmpActKillThread => ScmpAction::KillThread,
        Act::ScmpActKillProcess => ScmpAction::KillProcess,
        Act::ScmpActTrap => ScmpAction::Trap,
        Act::ScmpActErrno => ScmpAction::Errno(errno as i32),
        Act::ScmpActTrace => ScmpAction::Trace(errno as u16),
        Act::ScmpActLog => ScmpAction::Log,
        Act::ScmpActAllow => ScmpAction::Allow,
        Act::ScmpActNotify => return Err(SeccompError::Notify("SCMP_ACT_NOTIFY")),
    })
}

fn flags(list: &[Flag]) -> Result<u32, SeccompError> {
    list.iter().try_fold(0, |all, f| {
        Ok(all
            | match f {
                // One thread: TSYNC is moot but harmless, as the spec allows.
                Flag::SeccompFilterFlagTsync => FLAG_TSYNC,
                Flag::SeccompFilterFlagLog => FLAG_LOG,
                Flag::SeccompFilterFlagSpecAllow => FLAG_SPEC_ALLOW,
                Flag::SeccompFilterFlagWaitKillableRecv => {
                    return Err(SeccompError::Notify(
                        "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
                    ))
                }
            })
    })
}

fn compare(rule: usize, arg: &LinuxSeccompArg) -> Result<ScmpArgCompare, SeccompError> {
    if arg.index() > 5 {
        return Err(SeccompError::ArgIndex {
            rule,
            index: arg.index(),
        });
    }
    let (op, datum) = match arg.op() {
        Op::ScmpCmpNe => (ScmpCompareOp::NotEqual, arg.value()),
        Op::ScmpCmpLt => (ScmpCompareOp::Less, arg.value()),
        Op::ScmpCmpLe => (ScmpCompareOp::LessOrEqual, arg.value()),
        Op::ScmpCmpEq => (ScmpCompareOp::Equal, arg.value()),
        Op::ScmpCmpGe => (ScmpCompareOp::GreaterEqual, arg.value()),
        Op::ScmpCmpGt => (ScmpCompareOp::Greater, arg.value()),
        // value is the mask, valueTwo the datum.
        Op::ScmpCmpMaskedEq => (
            ScmpCompareOp::MaskedEqual(arg.value()),
            arg.value_two().unwrap_or(0),
        ),
    };
    Ok(ScmpArgCompare::new(arg.index() as u32, op, datum))
}

/// The condition sets one rule becomes (see the module header).
fn condition_sets(rule: usize, s: &LinuxSyscall) -> Result<Vec<Vec<ScmpArgCompare>>, SeccompError> {
    let args = s.args().as_deref().unwrap_or_default();
    let all: Vec<ScmpArgCompare> = args
        .iter()
        .map(|a| compare(rule, a))
        .collect::<Result<_, _>>()?;
    let same_index = args.len() > 1 && args.iter().all(|a| a.index() == args[0].index());
    Ok(if same_index {
        all.into_iter().map(|c| vec![c]).collect()
    } else {
        vec![all]
    })
}

/// The filters of the last few profiles compiled. Compiling Docker's default profile takes about
/// 10 ms (release build; libseccomp resolves every syscall name and builds the tree), as much as
/// the rest of a create; a dense guest runs many containers with one or two profiles, so each is
/// compiled once. Bounded: the oldest entry goes when a new profile comes.
pub struct FilterCache {
    entries: std::sync::Mutex<std::collections::VecDeque<(LinuxSeccomp, SeccompFilter)>>,
    capacity: usize,
}

impl Default for FilterCache {
    fn default() -> FilterCache {
        FilterCache::with_capacity(16)
    }
}

impl FilterCache {
    /// A cache of `capacity` profiles; 0 compiles every time.
    pub fn with_capacity(capacity: usize) -> FilterCache {
        FilterCache {
            entries: Default::default(),
            capacity,
        }
    }

    /// The filter for `profile`, compiled now unless it was lately. The lock is not held while
    /// compiling, so two first creates with one profile may both compile it.
    pub fn get(&self, profile: &LinuxSeccomp) -> Result<SeccompFilter, SeccompError> {
        let lock = || self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, f)) = lock().iter().find(|(p, _)| p == profile) {
            return Ok(f.clone());
        }
        let filter = compile(profile)?;
        if self.capacity > 0 {
            let mut entries = lock();
            if entries.len() >= self.capacity {
                entries.pop_front();
            }
            entries.push_back((profile.clone(), filter.clone()));
        }
        Ok(filter)
    }

    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Compiles the profile into a BPF program for this machine's architecture (and those listed).
pub fn compile(profile: &LinuxSeccomp) -> Result<SeccompFilter, SeccompError> {
    if profile.listener_path().is_some() {
        return Err(SeccompError::Listener);
    }
    let default = action(profile.default_action(), profile.default_errno_ret())?;
    let mut ctx = ScmpFilterContext::new(default).map_err(library("create the filter"))?;
    for arch in profile.architectures().as_deref().unwrap_or_default() {
        let name = serde_json::to_value(arch)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let scmp: ScmpArch = name.parse().map_err(|_| SeccompError::Arch(name.clone()))?;
        if !ctx
            .is_arch_present(scmp)
            .map_err(library(format!("arch {name}")))?
        {
            ctx.add_arch(scmp)
                .map_err(library(format!("add arch {name}")))?;
        }
    }
    for (i, s) in profile
        .syscalls()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        // A rule without errnoRet returns EPERM, not the default action's errno (runc).
        let act = action(s.action(), s.errno_ret())?;
        if act == default {
            continue;
        }
        let sets = condition_sets(i, s)?;
        for name in s.names() {
            let Ok(nr) = ScmpSyscall::from_name(name) else {
                continue; // unknown here (another architecture, a newer kernel)
            };
            for conds in &sets {
                let added = if conds.is_empty() {
                    ctx.add_rule(act, nr)
                } else {
                    ctx.add_rule_conditional(act, nr, conds)
                };
                added.map_err(library(format!("syscalls[{i}] {name}")))?;
            }
        }
    }
    let program = export(&ctx)?;
    Ok(SeccompFilter {
        program,
        flags: flags(profile.flags().as_deref().unwrap_or_default())?,
    })
}

/// The filter as BPF, through a memfd (libseccomp 2.5 exports to an fd only).
fn export(ctx: &ScmpFilterContext) -> Result<Vec<u64>, SeccompError> {
    let io = |what: &str| {
        let what = what.to_string();
        move |e: std::io::Error| SeccompError::Library {
            what,
            message: e.to_string(),
        }
    };
    let fd = nix::sys::memfd::memfd_create(
        c"zagent-seccomp",
        nix::sys::memfd::MemFdCreateFlag::MFD_CLOEXEC,
    )
    .map_err(|e| io("memfd_create")(e.into()))?;
    ctx.export_bpf(&fd).map_err(library("export the program"))?;
    let mut file = std::fs::File::from(fd);
    file.rewind().map_err(io("rewind"))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(io("read the program"))?;
    let program: Vec<u64> = bytes
        .chunks_exact(8)
        .map(|c| u64::from_ne_bytes(c.try_into().expect("chunks of 8")))
        .collect();
    if program.len() > MAX_INSNS {
        return Err(SeccompError::TooLong(program.len()));
    }
    Ok(program)
}

/// Step "seccomp": installs the program. Needs no_new_privs or CAP_SYS_ADMIN.
pub fn load(filter: &SeccompFilter) -> Result<(), JailError> {
    let err = |errno| {
        JailError::new(
            Step::Seccomp,
            format!("load a {}-instruction filter", filter.program.len()),
            errno,
        )
    };
    let prog = libc::sock_fprog {
        len: u16::try_from(filter.program.len()).map_err(|_| err(Errno::E2BIG))?,
        // Each u64 holds one `struct sock_filter` (8 bytes) as the kernel lays it out.
        filter: filter.program.as_ptr() as *mut libc::sock_filter,
    };
    const SECCOMP_SET_MODE_FILTER: libc::c_uint = 1;
    // SAFETY: seccomp(2) reads `len` instructions from `filter`, which points at that many
    // 8-byte `sock_filter`s alive for the call; it writes nothing of ours.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            filter.flags,
            &prog as *const libc::sock_fprog,
        )
    };
    Errno::result(r).map(drop).map_err(err)
}

#[cfg(test)]
mod tests;
