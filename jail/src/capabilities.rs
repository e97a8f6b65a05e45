//! Capabilities (step "capabilities", around "identity"), no_new_privs (step "no-new-privs") and
//! the non-dumpable flag of an exec (step "dumpable"). Capabilities are set in runc's order so
//! that all five sets come out exactly as configured, also for a non-root uid: shrink the
//! bounding set while still privileged, keep the permitted set across the uid change
//! (PR_SET_KEEPCAPS), then set effective/permitted/inheritable in one capset and rebuild the
//! ambient set.
//! Capabilities travel as 64-bit masks (bit n = capability n), so capabilities this crate's
//! `caps` dependency does not know by name are still applied; `caps` only names them in errors.

use crate::error::{JailError, Step};
use crate::sys;
use nix::errno::Errno;
use wire::zygote::Capabilities;

/// "CAP_SYS_ADMIN", or "capability 45" for one newer than the `caps` crate.
pub fn cap_name(n: u32) -> String {
    caps::all()
        .into_iter()
        .find(|c| u32::from(c.index()) == n)
        .map_or_else(|| format!("capability {n}"), |c| format!("{c:?}"))
}

fn err(what: String) -> impl FnOnce(Errno) -> JailError {
    move |errno| JailError::new(Step::Capabilities, what, errno)
}

/// Drops every capability the kernel knows that is not in `bounding`.
pub fn drop_bounding(bounding: u64) -> Result<(), JailError> {
    for cap in 0..64u32 {
        if bounding & (1 << cap) != 0 {
            continue;
        }
        match sys::capbset_read(cap) {
            Ok(false) => {}
            Ok(true) => sys::capbset_drop(cap)
                .map_err(err(format!("drop {} from the bounding set", cap_name(cap))))?,
            // Past the kernel's last capability.
            Err(Errno::EINVAL) => break,
            Err(e) => return Err(err(format!("read bounding set ({})", cap_name(cap)))(e)),
        }
    }
    Ok(())
}

/// PR_SET_KEEPCAPS around the uid change: without it, setresuid to a non-zero uid empties the
/// permitted set and capset could no longer grant anything.
pub fn keep_across_setuid(keep: bool) -> Result<(), JailError> {
    nix::sys::prctl::set_keepcaps(keep).map_err(err(format!("set keepcaps to {keep}")))
}

/// The effective, permitted and inheritable sets exactly, then as much of the ambient set as
/// the kernel allows.
pub fn apply(c: &Capabilities) -> Result<(), JailError> {
    sys::capset(c.effective, c.permitted, c.inheritable).map_err(err(format!(
        "capset effective {:#x} permitted {:#x} inheritable {:#x}",
        c.effective, c.permitted, c.inheritable
    )))?;
    sys::ambient_clear_all().map_err(err("clear the ambient set".into()))?;
    for cap in (0..64u32).filter(|n| c.ambient & (1 << n) != 0) {
        // The kernel refuses (EPERM) an ambient capability that is not both permitted and
        // inheritable, and `runc spec` itself asks for exactly that (ambient = bounding, no
        // inheritable set). The runtime spec says not to fail here, and runc and Kata's
        // agent skip such a capability, so it is skipped here too (EINVAL, a capability
        // the kernel does not have, likewise).
        let _skipped = sys::ambient_raise(cap);
    }
    Ok(())
}

/// Step "dumpable" of an exec, before anything else: a non-dumpable process cannot be
/// ptrace'd, nor its /proc/PID/{environ,fd,mem,...} opened, by the container's processes
/// (same uid, no CAP_SYS_PTRACE) while it joins them holding agent state. execve of a normal
/// binary makes the process dumpable again.
pub fn set_non_dumpable() -> Result<(), JailError> {
    nix::sys::prctl::set_dumpable(false)
        .map_err(Step::Dumpable.err("make the process non-dumpable"))
}

/// Step "no-new-privs".
pub fn set_no_new_privs(enabled: bool) -> Result<(), JailError> {
    if !enabled {
        return Ok(());
    }
    nix::sys::prctl::set_no_new_privs().map_err(Step::NoNewPrivs.err("set no_new_privs"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_known_and_unknown_capabilities() {
        assert_eq!(cap_name(21), "CAP_SYS_ADMIN");
        assert_eq!(cap_name(0), "CAP_CHOWN");
        assert_eq!(cap_name(63), "capability 63");
    }

    #[test]
    fn ambient_caps_that_cannot_be_raised_are_skipped() {
        // Unprivileged and harmless: only lowers what the test thread may keep. Ambient
        // without inheritable is `runc spec`'s default; it must not fail the launch.
        std::thread::spawn(|| {
            apply(&Capabilities {
                ambient: 1 << 10,
                ..Default::default()
            })
            .unwrap();
            assert_eq!(cap_field("CapAmb"), 0);
        })
        .join()
        .unwrap();
    }

    /// A capability set of the calling thread, from /proc/thread-self/status.
    fn cap_field(name: &str) -> u64 {
        let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
        let value = status
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .unwrap();
        u64::from_str_radix(value.trim(), 16).unwrap()
    }

    #[test]
    #[ignore = "requires root"]
    fn ambient_caps_that_are_permitted_and_inheritable_are_raised() {
        crate::test_util::require_root();
        std::thread::spawn(|| {
            let net_bind = 1 << 10;
            let kill = 1 << 5;
            apply(&Capabilities {
                effective: net_bind | kill,
                permitted: net_bind | kill,
                inheritable: net_bind,
                ambient: net_bind | kill,
                ..Default::default()
            })
            .unwrap();
            assert_eq!(cap_field("CapAmb"), net_bind);
            assert_eq!(cap_field("CapPrm"), net_bind | kill);
        })
        .join()
        .unwrap();
    }
}
