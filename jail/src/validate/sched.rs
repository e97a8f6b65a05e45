//! `process.scheduler`, `process.ioPriority` and `linux.personality`: checked as runc 1.2 does
//! and turned into the numbers sched_setattr(2), ioprio_set(2) and personality(2) take (the
//! child applies them in its "scheduling" step). Values the kernel would refuse with a bare
//! EINVAL at launch are refused here by name.

use super::ValidateError;
use oci_spec::runtime::{
    IOPriorityClass, LinuxIOPriority, LinuxPersonality, LinuxPersonalityDomain, LinuxSchedulerFlag,
    LinuxSchedulerPolicy, Scheduler,
};
use wire::zygote::SchedAttr;

fn bad(field: &'static str, value: impl ToString, reason: &'static str) -> ValidateError {
    ValidateError::Process {
        field,
        value: value.to_string(),
        reason,
    }
}

/// personality(2)'s PER_LINUX32: uname(2) reports a 32-bit machine.
const PER_LINUX32: u32 = 0x0008;

pub(super) fn personality(p: Option<&LinuxPersonality>) -> Option<u32> {
    p.map(|p| match p.domain() {
        LinuxPersonalityDomain::PerLinux => 0,
        LinuxPersonalityDomain::PerLinux32 => PER_LINUX32,
    })
}

/// The I/O priority value: class in bits 13-15, level (0 highest to 7) below.
pub(super) fn io_priority(p: Option<&LinuxIOPriority>) -> Result<Option<u16>, ValidateError> {
    let Some(p) = p else { return Ok(None) };
    let class: u16 = match p.class() {
        IOPriorityClass::IoprioClassRt => 1,
        IOPriorityClass::IoprioClassBe => 2,
        IOPriorityClass::IoprioClassIdle => 3,
    };
    let level = u16::try_from(p.priority())
        .ok()
        .filter(|l| *l <= 7)
        .ok_or_else(|| bad("ioPriority.priority", p.priority(), "must be 0 to 7"))?;
    Ok(Some(class << 13 | level))
}

pub(super) fn scheduler(s: Option<&Scheduler>) -> Result<Option<SchedAttr>, ValidateError> {
    use LinuxSchedulerPolicy as P;
    let Some(s) = s else { return Ok(None) };
    let policy = match s.policy() {
        P::SchedOther => 0,
        P::SchedFifo => 1,
        P::SchedRr => 2,
        P::SchedBatch => 3,
        P::SchedIso => {
            let reason = "is not a Linux scheduling policy (it was never merged)";
            return Err(bad("scheduler.policy", "SCHED_ISO", reason));
        }
        P::SchedIdle => 5,
        P::SchedDeadline => 6,
    };
    let realtime = matches!(s.policy(), P::SchedFifo | P::SchedRr);
    let nice = s.nice().unwrap_or(0);
    if !(-20..=19).contains(&nice) {
        return Err(bad("scheduler.nice", nice, "must be -20 to 19"));
    }
    let priority = s.priority().unwrap_or(0);
    match (realtime, priority) {
        (true, 1..=99) | (false, 0) => {}
        (true, p) => {
            return Err(bad(
                "scheduler.priority",
                p,
                "must be 1 to 99 for SCHED_FIFO and SCHED_RR",
            ))
        }
        (false, p) => {
            return Err(bad(
                "scheduler.priority",
                p,
                "is only for SCHED_FIFO and SCHED_RR",
            ))
        }
    }
    let deadline = *s.policy() == P::SchedDeadline;
    let (runtime, dl, period) = (
        s.runtime().unwrap_or(0),
        s.deadline().unwrap_or(0),
        s.period().unwrap_or(0),
    );
    if !deadline && (runtime, dl, period) != (0, 0, 0) {
        let reason = "runtime, deadline and period are only for SCHED_DEADLINE";
        return Err(bad("scheduler.runtime", runtime, reason));
    }
    Ok(Some(SchedAttr {
        policy,
        flags: s
            .flags()
            .iter()
            .flatten()
            .map(|f| flag(*f))
            .fold(0, |a, b| a | b),
        nice,
        priority: priority as u32,
        runtime,
        deadline: dl,
        period,
    }))
}

const SCHED_DEADLINE: u32 = 6;
const SCHED_FLAG_RESET_ON_FORK: u64 = 0x01;

/// The process that is spawned into a joined pid namespace (a create that shares another
/// container's, every exec into a container with one) is cloned after the "scheduling" step,
/// which must run while the child is still privileged: it cannot keep SCHED_DEADLINE (a
/// deadline task cannot fork: EAGAIN) or a reset-on-fork scheduler (the clone is reset to
/// SCHED_OTHER). Refused rather than run with another scheduler than asked for.
pub fn check_spawned_scheduler(s: Option<&SchedAttr>) -> Result<(), ValidateError> {
    let Some(s) = s else { return Ok(()) };
    let reason = "cannot be kept by a process spawned into a joined pid namespace (it is \
                  cloned after the scheduler is set: SCHED_DEADLINE cannot fork, and \
                  SCHED_RESET_ON_FORK resets the clone)";
    if s.policy == SCHED_DEADLINE {
        return Err(bad("scheduler.policy", "SCHED_DEADLINE", reason));
    }
    if s.flags & SCHED_FLAG_RESET_ON_FORK != 0 {
        return Err(bad("scheduler.flags", "SCHED_RESET_ON_FORK", reason));
    }
    Ok(())
}

/// The kernel's SCHED_FLAG_* bits.
fn flag(f: LinuxSchedulerFlag) -> u64 {
    use LinuxSchedulerFlag as F;
    match f {
        F::SchedResetOnFork => 0x01,
        F::SchedFlagReclaim => 0x02,
        F::SchedFlagDLOverrun => 0x04,
        F::SchedFlagKeepPolicy => 0x08,
        F::SchedFlagKeepParams => 0x10,
        F::SchedFlagUtilClampMin => 0x20,
        F::SchedFlagUtilClampMax => 0x40,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sched(v: serde_json::Value) -> Result<Option<SchedAttr>, ValidateError> {
        scheduler(Some(&serde_json::from_value(v).unwrap()))
    }

    #[test]
    fn schedulers_are_checked_and_converted() {
        let fifo = sched(json!({"policy": "SCHED_FIFO", "priority": 10}))
            .unwrap()
            .unwrap();
        assert_eq!((fifo.policy, fifo.priority, fifo.nice), (1, 10, 0));
        let batch = sched(json!({"policy": "SCHED_BATCH", "nice": 5,
                                 "flags": ["SCHED_RESET_ON_FORK"]}))
        .unwrap()
        .unwrap();
        assert_eq!((batch.policy, batch.nice, batch.flags), (3, 5, 1));
        let dl = sched(json!({"policy": "SCHED_DEADLINE", "runtime": 10_000_000u64,
                              "deadline": 20_000_000u64, "period": 30_000_000u64}))
        .unwrap()
        .unwrap();
        assert_eq!(
            (dl.policy, dl.runtime, dl.deadline, dl.period),
            (6, 10_000_000, 20_000_000, 30_000_000)
        );
        for (bad, field) in [
            (json!({"policy": "SCHED_FIFO"}), "scheduler.priority"),
            (
                json!({"policy": "SCHED_RR", "priority": 100}),
                "scheduler.priority",
            ),
            (
                json!({"policy": "SCHED_OTHER", "priority": 1}),
                "scheduler.priority",
            ),
            (
                json!({"policy": "SCHED_OTHER", "nice": 20}),
                "scheduler.nice",
            ),
            (json!({"policy": "SCHED_ISO"}), "scheduler.policy"),
            (
                json!({"policy": "SCHED_OTHER", "runtime": 1}),
                "scheduler.runtime",
            ),
        ] {
            match sched(bad.clone()) {
                Err(ValidateError::Process { field: f, .. }) => assert_eq!(f, field, "{bad}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
        assert_eq!(scheduler(None).unwrap(), None);
        assert!(check_spawned_scheduler(Some(&fifo)).is_ok());
        assert!(
            check_spawned_scheduler(Some(&batch)).is_err(),
            "reset on fork"
        );
        assert!(check_spawned_scheduler(Some(&dl)).is_err(), "deadline");
    }

    #[test]
    fn io_priorities_and_personalities_convert() {
        let io = |v| io_priority(Some(&serde_json::from_value(v).unwrap()));
        let be = io(json!({"class": "IOPRIO_CLASS_BE", "priority": 7})).unwrap();
        assert_eq!(be, Some(2 << 13 | 7));
        let rt = io(json!({"class": "IOPRIO_CLASS_RT", "priority": 0})).unwrap();
        assert_eq!(rt, Some(1 << 13));
        assert!(io(json!({"class": "IOPRIO_CLASS_IDLE", "priority": 8})).is_err());
        assert!(io(json!({"class": "IOPRIO_CLASS_BE", "priority": -1})).is_err());
        let p = |v| personality(Some(&serde_json::from_value(v).unwrap()));
        assert_eq!(p(json!({"domain": "LINUX32"})), Some(8));
        assert_eq!(p(json!({"domain": "LINUX"})), Some(0));
        assert_eq!(personality(None), None);
    }
}
