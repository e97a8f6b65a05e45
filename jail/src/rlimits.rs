//! Step "rlimits": the process's resource limits, set on the child itself so that the
//! container's process inherits them through execve.

use crate::error::{JailError, Step};
use crate::sys;
use wire::zygote::Rlimit;

pub fn apply(limits: &[Rlimit]) -> Result<(), JailError> {
    for l in limits {
        sys::setrlimit(l.resource, l.soft, l.hard).map_err(|errno| {
            JailError::new(
                Step::Rlimits,
                format!(
                    "set rlimit {} to soft {} hard {}",
                    l.resource, l.soft, l.hard
                ),
                errno,
            )
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soft_above_hard_is_einval() {
        let bad = Rlimit {
            resource: 7,
            soft: 10,
            hard: 5,
        }; // RLIMIT_NOFILE
        let e = apply(&[bad]).unwrap_err();
        assert_eq!((e.step(), e.errno()), ("rlimits", libc::EINVAL));
        assert_eq!(e.to_string(), "set rlimit 7 to soft 10 hard 5: EINVAL");
    }
}
