//! Step "scheduling": `linux.personality` (personality(2)), `process.ioPriority`
//! (ioprio_set(2)) and `process.scheduler` (sched_setattr(2)), all inherited through execve.
//! Set while the child is still privileged (a real-time policy or I/O class needs
//! CAP_SYS_NICE, which the identity step may drop) and before a seccomp filter loaded without
//! no_new_privs could forbid the calls: runc 1.2's order.

use crate::error::{JailError, Step};
use crate::sys;
use wire::zygote::ProcessConfig;

pub fn apply(p: &ProcessConfig) -> Result<(), JailError> {
    let err = |what: String| move |errno| JailError::new(Step::Scheduling, what, errno);
    if let Some(persona) = p.personality {
        sys::set_personality(persona).map_err(err(format!("set personality {persona:#x}")))?;
    }
    if let Some(value) = p.io_priority {
        let (class, level) = (value >> 13, value & 0x1fff);
        let what = format!("set I/O priority class {class} level {level}");
        sys::set_io_priority(value).map_err(err(what))?;
    }
    if let Some(s) = &p.scheduler {
        let what = format!("set scheduler policy {} (sched_setattr)", s.policy);
        sys::set_scheduler(s).map_err(err(what))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use wire::zygote::SchedAttr;

    #[test]
    fn a_policy_the_kernel_refuses_names_the_step() {
        let p = ProcessConfig {
            scheduler: Some(SchedAttr {
                policy: 4, // SCHED_ISO: never merged, EINVAL
                ..Default::default()
            }),
            ..Default::default()
        };
        let e = apply(&p).unwrap_err();
        assert_eq!((e.step(), e.errno()), ("scheduling", libc::EINVAL));
        assert!(e.to_string().contains("policy 4"), "{e}");
    }
}
