//! The order of one launch as the agent sees it, across the zygote's reply and the child's sync
//! socket: Requested -> Cloned -> Ready -> Released -> Running, or Failed from any step. Pure
//! data, so every ordering (including the wrong ones) is unit-tested without processes.

use wire::zygote::{ChildEvent, Reply};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LaunchState {
    /// Launch sent to the zygote, no reply yet.
    Requested,
    /// The zygote cloned the child; its jail is being built.
    Cloned { pid: i32 },
    /// The jail is built and the child is parked on exec.fifo.
    Ready { pid: i32 },
    /// StartContainer wrote the fifo byte; waiting for the exec to close the sync socket.
    Released { pid: i32 },
    /// The sync socket closed after release: execve succeeded.
    Running { pid: i32 },
    Failed { step: String, errno: i32, message: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LaunchEvent {
    Zygote(Reply),
    Child(ChildEvent),
    /// The child's sync socket reached EOF (exec'd, or died).
    SyncClosed,
    /// The agent wrote the fifo byte.
    Release,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("launch protocol: {event:?} is not valid in state {state:?}")]
pub struct SequenceError {
    pub state: LaunchState,
    pub event: LaunchEvent,
}

impl LaunchState {
    pub fn pid(&self) -> Option<i32> {
        match self {
            LaunchState::Cloned { pid }
            | LaunchState::Ready { pid }
            | LaunchState::Released { pid }
            | LaunchState::Running { pid } => Some(*pid),
            _ => None,
        }
    }

    /// The state after `event`, or an error naming the protocol violation.
    pub fn on(self, event: LaunchEvent) -> Result<LaunchState, SequenceError> {
        use LaunchEvent as E;
        use LaunchState as S;
        let next = match (&self, &event) {
            (S::Requested, E::Zygote(Reply::Launched { pid })) => S::Cloned { pid: *pid },
            (S::Requested, E::Zygote(Reply::Refused { errno, message })) => S::Failed {
                step: "zygote".into(),
                errno: *errno,
                message: message.clone(),
            },
            (S::Cloned { pid }, E::Child(ChildEvent::Ready)) => S::Ready { pid: *pid },
            (S::Cloned { .. } | S::Released { .. }, E::Child(ChildEvent::Failed { step, errno, message })) => {
                S::Failed { step: step.clone(), errno: *errno, message: message.clone() }
            }
            (S::Cloned { .. }, E::SyncClosed) => died("before reporting ready"),
            (S::Ready { .. }, E::SyncClosed) => died("while parked"),
            (S::Ready { pid }, E::Release) => S::Released { pid: *pid },
            (S::Released { pid }, E::SyncClosed) => S::Running { pid: *pid },
            _ => return Err(SequenceError { state: self, event }),
        };
        Ok(next)
    }
}

fn died(when: &str) -> LaunchState {
    LaunchState::Failed {
        step: "child".into(),
        errno: libc::ECHILD,
        message: format!("container process exited {when}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use LaunchEvent as E;
    use LaunchState as S;

    fn run(events: Vec<LaunchEvent>) -> Result<LaunchState, SequenceError> {
        events.into_iter().try_fold(S::Requested, |s, e| s.on(e))
    }

    #[test]
    fn happy_path_reaches_running() {
        let s = run(vec![
            E::Zygote(Reply::Launched { pid: 7 }),
            E::Child(ChildEvent::Ready),
            E::Release,
            E::SyncClosed,
        ]);
        assert_eq!(s.unwrap(), S::Running { pid: 7 });
    }

    #[test]
    fn refusal_and_jail_failure_and_exec_failure_are_failed() {
        let refused = run(vec![E::Zygote(Reply::Refused { errno: 22, message: "x".into() })]);
        assert!(matches!(refused.unwrap(), S::Failed { errno: 22, .. }));
        let jail = ChildEvent::Failed { step: "mount".into(), errno: 2, message: "m".into() };
        let failed = run(vec![E::Zygote(Reply::Launched { pid: 1 }), E::Child(jail.clone())]);
        assert!(matches!(failed.unwrap(), S::Failed { ref step, .. } if step == "mount"));
        let exec = ChildEvent::Failed { step: "exec".into(), errno: 2, message: "e".into() };
        let s = run(vec![
            E::Zygote(Reply::Launched { pid: 1 }),
            E::Child(ChildEvent::Ready),
            E::Release,
            E::Child(exec),
        ]);
        assert!(matches!(s.unwrap(), S::Failed { ref step, .. } if step == "exec"));
    }

    #[test]
    fn death_before_ready_or_while_parked_is_failed() {
        let s = run(vec![E::Zygote(Reply::Launched { pid: 1 }), E::SyncClosed]).unwrap();
        assert!(matches!(s, S::Failed { ref message, .. } if message.contains("before")));
        let s = run(vec![
            E::Zygote(Reply::Launched { pid: 1 }),
            E::Child(ChildEvent::Ready),
            E::SyncClosed,
        ])
        .unwrap();
        assert!(matches!(s, S::Failed { ref message, .. } if message.contains("parked")));
    }

    #[test]
    fn out_of_order_events_are_errors() {
        assert!(run(vec![E::Child(ChildEvent::Ready)]).is_err());
        assert!(run(vec![E::Zygote(Reply::Launched { pid: 1 }), E::Release]).is_err());
        assert!(run(vec![
            E::Zygote(Reply::Launched { pid: 1 }),
            E::Zygote(Reply::Launched { pid: 2 })
        ])
        .is_err());
        let ready_twice = run(vec![
            E::Zygote(Reply::Launched { pid: 1 }),
            E::Child(ChildEvent::Ready),
            E::Child(ChildEvent::Ready),
        ]);
        assert!(ready_twice.is_err());
        assert!(run(vec![E::Zygote(Reply::Hello { version: 1 })]).is_err());
    }

    #[test]
    fn pid_is_known_once_cloned() {
        assert_eq!(S::Requested.pid(), None);
        assert_eq!(S::Ready { pid: 3 }.pid(), Some(3));
    }
}
