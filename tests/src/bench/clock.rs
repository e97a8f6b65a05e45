//! One time line for the bench and its helper processes. CLOCK_MONOTONIC is system-wide, so a
//! helper (the floor, runc and crun) stamps each sample with the moment it began on that clock,
//! and the bench places the sample on its own time line (ms since the run began) as measured,
//! rather than reconstructing it from when a batch was asked for.

use std::time::Instant;

/// CLOCK_MONOTONIC now, in ns.
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into `ts`, which is valid for writes.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    assert_eq!(r, 0, "CLOCK_MONOTONIC is always there on Linux");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// When the run began, on both clocks the bench uses.
#[derive(Clone, Copy, Debug)]
pub struct T0 {
    pub instant: Instant,
    pub mono_ns: u64,
}

impl T0 {
    pub fn now() -> T0 {
        T0 {
            instant: Instant::now(),
            mono_ns: mono_ns(),
        }
    }

    /// ms since the run began, now.
    pub fn elapsed_ms(&self) -> f64 {
        self.instant.elapsed().as_secs_f64() * 1e3
    }

    /// ms since the run began at CLOCK_MONOTONIC time `mono_ns` (as a helper stamped it).
    pub fn ms_at(&self, mono_ns: u64) -> f64 {
        (mono_ns as f64 - self.mono_ns as f64) / 1e6
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_clocks_agree_on_the_time_line() {
        let t0 = T0::now();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let (stamped, elapsed) = (t0.ms_at(mono_ns()), t0.elapsed_ms());
        assert!(stamped >= 20.0, "{stamped}");
        assert!((stamped - elapsed).abs() < 5.0, "{stamped} vs {elapsed}");
    }
}
