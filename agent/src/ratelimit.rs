//! A token bucket for log lines a client can cause at will (one per failed RPC): a burst of
//! `BURST` lines, then `PER_SEC` a second; what it leaves out is counted and reported with the
//! next line it lets through, so a flood of bad requests costs a few lines, not one each.

use std::sync::Mutex;
use std::time::Instant;

pub const BURST: f64 = 20.0;
pub const PER_SEC: f64 = 5.0;

pub struct LogLimiter {
    state: Mutex<State>,
}

struct State {
    tokens: f64,
    last: Option<Instant>,
    suppressed: u64,
}

/// What to do with one line.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Log it; `suppressed` lines were left out since the last one logged.
    Log {
        suppressed: u64,
    },
    Drop,
}

impl LogLimiter {
    pub const fn new() -> LogLimiter {
        LogLimiter {
            state: Mutex::new(State {
                tokens: BURST,
                last: None,
                suppressed: 0,
            }),
        }
    }

    pub fn check(&self) -> Verdict {
        self.check_at(Instant::now())
    }

    fn check_at(&self, now: Instant) -> Verdict {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(last) = s.last {
            let refill = now.saturating_duration_since(last).as_secs_f64() * PER_SEC;
            s.tokens = (s.tokens + refill).min(BURST);
        }
        s.last = Some(now);
        if s.tokens >= 1.0 {
            s.tokens -= 1.0;
            Verdict::Log {
                suppressed: std::mem::take(&mut s.suppressed),
            }
        } else {
            s.suppressed += 1;
            Verdict::Drop
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_then_the_rate_and_a_count_of_what_was_left_out() {
        let l = LogLimiter::new();
        let t0 = Instant::now();
        let logged = (0..1000)
            .filter(|_| l.check_at(t0) != Verdict::Drop)
            .count();
        assert_eq!(logged, BURST as usize);
        assert_eq!(l.check_at(t0 + Duration::from_millis(100)), Verdict::Drop);
        assert_eq!(
            l.check_at(t0 + Duration::from_secs(1)),
            Verdict::Log { suppressed: 981 }
        );
        assert_eq!(
            l.check_at(t0 + Duration::from_secs(1)),
            Verdict::Log { suppressed: 0 }
        );
    }
}
