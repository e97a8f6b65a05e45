//! The launch sequence: the order of one launch as the agent sees it, across the launcher's
//! reply and the child's sync socket. A container: Requested -> Cloned -> Announced (child sent
//! `started`, maybe one `console`, and up to two `spawned`, each naming the process that carries
//! on: inside a user namespace, inside a joined pid namespace) -> Ready (parked) -> Released (fifo written) -> Running
//! (sync EOF: execve worked). An exec has no parking: Announced -> Running on EOF. Failed from any
//! step. Pure data, so every ordering (including the wrong ones) is unit-tested without
//! processes; `child_sync::follow` drives it from the socket. Only the agent reads a child's
//! sync socket, so the machine lives here, not in the zygote.

use wire::zygote::{ChildEvent, Reply};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Container,
    Exec,
}

impl Kind {
    /// A container with a user namespace that joins a pid namespace is carried on twice: into
    /// the user namespace, then into the pid namespace. An exec joins every namespace at once,
    /// and spawns only into a pid namespace.
    fn max_spawns(self) -> u8 {
        match self {
            Kind::Container => 2,
            Kind::Exec => 1,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LaunchState {
    /// Request sent to the zygote, no reply yet.
    Requested(Kind),
    /// The zygote cloned the child.
    Cloned { pid: i32, kind: Kind },
    /// The child announced itself (its pidfd came with `started`); it is building the jail.
    /// `spawns`: how many times the process `pid` was replaced by one it cloned (`spawned`):
    /// once into new namespaces under a user namespace, once into a joined pid namespace, so at
    /// most twice. `console`: the pty master came, which happens at most once.
    Announced {
        pid: i32,
        kind: Kind,
        spawns: u8,
        console: bool,
        hooks: Hooks,
    },
    /// The jail is built and the container child is parked on exec.fifo.
    Ready { pid: i32 },
    /// StartContainer wrote the fifo byte; waiting for the exec to close the sync socket.
    Released { pid: i32 },
    /// The sync socket closed after release (or, for an exec, after announcing): execve worked.
    Running { pid: i32 },
    Failed {
        step: String,
        errno: i32,
        message: String,
    },
}

/// Where a container's runtime hooks (`prestart`, `createRuntime`) stand: the child stops
/// once for them (`HooksDue`), and nothing else happens until the agent ran them (`HooksRan`,
/// after which it told the child to proceed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hooks {
    NotYet,
    Due,
    Ran,
}

/// The fields of `LaunchState::Announced`, to change one or two of them in one place.
struct Announced {
    pid: i32,
    kind: Kind,
    spawns: u8,
    console: bool,
    hooks: Hooks,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LaunchEvent {
    Zygote(Reply),
    Child(ChildEvent),
    /// The child's sync socket reached EOF (exec'd, or died).
    SyncClosed,
    /// The agent wrote the fifo byte.
    Release,
    /// The agent ran the runtime hooks the child stopped for, and told it to proceed.
    HooksRan,
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
            LaunchState::Cloned { pid, .. }
            | LaunchState::Announced { pid, .. }
            | LaunchState::Ready { pid }
            | LaunchState::Released { pid }
            | LaunchState::Running { pid } => Some(*pid),
            _ => None,
        }
    }

    /// Whether the child stopped for the runtime's hooks, which the agent must run now.
    pub fn hooks_due(&self) -> bool {
        matches!(
            self,
            LaunchState::Announced {
                hooks: Hooks::Due,
                ..
            }
        )
    }

    /// An `Announced` state like this one with `change` applied (only called on `Announced`).
    fn announced(&self, change: impl FnOnce(&mut Announced)) -> LaunchState {
        let LaunchState::Announced {
            pid,
            kind,
            spawns,
            console,
            hooks,
        } = *self
        else {
            unreachable!("announced() is only called on an Announced state")
        };
        let mut a = Announced {
            pid,
            kind,
            spawns,
            console,
            hooks,
        };
        change(&mut a);
        LaunchState::Announced {
            pid: a.pid,
            kind: a.kind,
            spawns: a.spawns,
            console: a.console,
            hooks: a.hooks,
        }
    }

    /// The state after `event`, or an error naming the protocol violation.
    pub fn on(self, event: LaunchEvent) -> Result<LaunchState, SequenceError> {
        use ChildEvent as C;
        use LaunchEvent as E;
        use LaunchState as S;
        let next = match (&self, &event) {
            (S::Requested(kind), E::Zygote(Reply::Launched { pid })) => S::Cloned {
                pid: *pid,
                kind: *kind,
            },
            (S::Requested(_), E::Zygote(Reply::Refused { errno, message })) => S::Failed {
                step: "zygote".into(),
                errno: *errno,
                message: message.clone(),
            },
            (S::Cloned { pid, kind }, E::Child(C::Started)) => S::Announced {
                pid: *pid,
                kind: *kind,
                spawns: 0,
                console: false,
                hooks: Hooks::NotYet,
            },
            (
                S::Announced {
                    console: false,
                    hooks,
                    ..
                },
                E::Child(C::Console),
            ) if *hooks != Hooks::Due => self.announced(|a| a.console = true),
            (
                S::Announced {
                    kind,
                    spawns,
                    hooks,
                    ..
                },
                E::Child(C::Spawned { pid }),
            ) if *spawns < kind.max_spawns() && *hooks != Hooks::Due => self.announced(|a| {
                a.pid = *pid;
                a.spawns += 1;
            }),
            (
                S::Announced {
                    kind: Kind::Container,
                    hooks: Hooks::NotYet,
                    ..
                },
                E::Child(C::HooksDue),
            ) => self.announced(|a| a.hooks = Hooks::Due),
            (
                S::Announced {
                    hooks: Hooks::Due, ..
                },
                E::HooksRan,
            ) => self.announced(|a| a.hooks = Hooks::Ran),
            (
                S::Announced {
                    pid,
                    kind: Kind::Container,
                    hooks: Hooks::NotYet | Hooks::Ran,
                    ..
                },
                E::Child(C::Ready),
            ) => S::Ready { pid: *pid },
            (
                S::Announced {
                    pid,
                    kind: Kind::Exec,
                    ..
                },
                E::SyncClosed,
            ) => S::Running { pid: *pid },
            (
                S::Cloned { .. } | S::Announced { .. } | S::Released { .. },
                E::Child(C::Failed {
                    step,
                    errno,
                    message,
                }),
            ) => S::Failed {
                step: step.clone(),
                errno: *errno,
                message: message.clone(),
            },
            (S::Cloned { .. } | S::Announced { .. }, E::SyncClosed) => {
                died("before reporting ready")
            }
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
    use ChildEvent as C;
    use LaunchEvent as E;
    use LaunchState as S;

    fn run(kind: Kind, events: Vec<LaunchEvent>) -> Result<LaunchState, SequenceError> {
        events
            .into_iter()
            .try_fold(S::Requested(kind), |s, e| s.on(e))
    }

    fn launched(pid: i32) -> LaunchEvent {
        E::Zygote(Reply::Launched { pid })
    }

    #[test]
    fn container_happy_path_reaches_running_with_or_without_console() {
        let plain = vec![
            launched(7),
            E::Child(C::Started),
            E::Child(C::Ready),
            E::Release,
            E::SyncClosed,
        ];
        assert_eq!(run(Kind::Container, plain).unwrap(), S::Running { pid: 7 });
        let tty = vec![
            launched(7),
            E::Child(C::Started),
            E::Child(C::Console),
            E::Child(C::Ready),
            E::Release,
            E::SyncClosed,
        ];
        assert_eq!(run(Kind::Container, tty).unwrap(), S::Running { pid: 7 });
    }

    #[test]
    fn exec_runs_on_eof_after_announcing_and_never_parks() {
        let ok = vec![launched(3), E::Child(C::Started), E::SyncClosed];
        assert_eq!(run(Kind::Exec, ok).unwrap(), S::Running { pid: 3 });
        assert!(run(
            Kind::Exec,
            vec![launched(3), E::Child(C::Started), E::Child(C::Ready)]
        )
        .is_err());
        assert!(run(
            Kind::Container,
            vec![launched(3), E::Child(C::Started), E::SyncClosed]
        )
        .is_ok_and(|s| matches!(s, S::Failed { .. })));
    }

    #[test]
    fn refusal_and_jail_failure_and_exec_failure_are_failed() {
        let refused = run(
            Kind::Container,
            vec![E::Zygote(Reply::Refused {
                errno: 22,
                message: "x".into(),
            })],
        );
        assert!(matches!(refused.unwrap(), S::Failed { errno: 22, .. }));
        let jail = C::Failed {
            step: "mount".into(),
            errno: 2,
            message: "m".into(),
        };
        let failed = run(
            Kind::Container,
            vec![launched(1), E::Child(C::Started), E::Child(jail)],
        );
        assert!(matches!(failed.unwrap(), S::Failed { ref step, .. } if step == "mount"));
        let exec = C::Failed {
            step: "exec".into(),
            errno: 2,
            message: "e".into(),
        };
        let s = run(
            Kind::Container,
            vec![
                launched(1),
                E::Child(C::Started),
                E::Child(C::Ready),
                E::Release,
                E::Child(exec.clone()),
            ],
        );
        assert!(matches!(s.unwrap(), S::Failed { ref step, .. } if step == "exec"));
        let s = run(
            Kind::Exec,
            vec![launched(1), E::Child(C::Started), E::Child(exec)],
        );
        assert!(matches!(s.unwrap(), S::Failed { ref step, .. } if step == "exec"));
    }

    #[test]
    fn death_before_ready_or_while_parked_is_failed() {
        let s = run(Kind::Container, vec![launched(1), E::SyncClosed]).unwrap();
        assert!(matches!(s, S::Failed { ref message, .. } if message.contains("before")));
        let s = run(
            Kind::Container,
            vec![
                launched(1),
                E::Child(C::Started),
                E::Child(C::Ready),
                E::SyncClosed,
            ],
        );
        assert!(matches!(s.unwrap(), S::Failed { ref message, .. } if message.contains("parked")));
    }

    #[test]
    fn out_of_order_events_are_errors() {
        let k = Kind::Container;
        assert!(run(k, vec![E::Child(C::Ready)]).is_err());
        assert!(
            run(k, vec![launched(1), E::Child(C::Ready)]).is_err(),
            "ready before started"
        );
        assert!(run(k, vec![launched(1), E::Release]).is_err());
        assert!(run(k, vec![launched(1), launched(2)]).is_err());
        assert!(run(
            k,
            vec![launched(1), E::Child(C::Started), E::Child(C::Started)]
        )
        .is_err());
        let ready_twice = vec![
            launched(1),
            E::Child(C::Started),
            E::Child(C::Ready),
            E::Child(C::Ready),
        ];
        assert!(run(k, ready_twice).is_err());
        assert!(run(k, vec![E::Zygote(Reply::Hello { version: 1 })]).is_err());
        let console_after_ready = vec![
            launched(1),
            E::Child(C::Started),
            E::Child(C::Ready),
            E::Child(C::Console),
        ];
        assert!(run(k, console_after_ready).is_err());
    }

    #[test]
    fn one_spawn_moves_the_pid_and_nothing_of_the_old_child_follows() {
        let spawned = |pid| E::Child(C::Spawned { pid });
        let exec = vec![launched(3), E::Child(C::Started), spawned(9), E::SyncClosed];
        assert_eq!(run(Kind::Exec, exec).unwrap(), S::Running { pid: 9 });
        let create = vec![
            launched(3),
            E::Child(C::Started),
            E::Child(C::Console),
            spawned(9),
            E::Child(C::Ready),
            E::Release,
            E::SyncClosed,
        ];
        assert_eq!(run(Kind::Container, create).unwrap(), S::Running { pid: 9 });
        let twice = vec![launched(3), E::Child(C::Started), spawned(9), spawned(10)];
        assert!(run(Kind::Exec, twice).is_err());
        assert!(run(Kind::Exec, vec![launched(3), spawned(9)]).is_err());
    }

    #[test]
    fn a_user_namespace_container_spawns_up_to_twice_with_one_console_anywhere() {
        let spawned = |pid| E::Child(C::Spawned { pid });
        let userns_and_joined_pid = vec![
            launched(3),
            E::Child(C::Started),
            spawned(9),
            E::Child(C::Console),
            spawned(11),
            E::Child(C::Ready),
        ];
        let s = run(Kind::Container, userns_and_joined_pid).unwrap();
        assert_eq!(s, S::Ready { pid: 11 });
        let thrice = vec![
            launched(3),
            E::Child(C::Started),
            spawned(9),
            spawned(10),
            spawned(11),
        ];
        assert!(run(Kind::Container, thrice).is_err());
        let two_consoles = vec![
            launched(3),
            E::Child(C::Started),
            E::Child(C::Console),
            spawned(9),
            E::Child(C::Console),
        ];
        assert!(run(Kind::Container, two_consoles).is_err());
        assert!(
            run(Kind::Exec, vec![launched(3), spawned(9)]).is_err(),
            "before started"
        );
        let parked = vec![
            launched(3),
            E::Child(C::Started),
            E::Child(C::Ready),
            spawned(9),
        ];
        assert!(run(Kind::Container, parked).is_err(), "after ready");
    }

    #[test]
    fn a_container_stops_once_for_the_runtime_hooks_and_nothing_else_happens_meanwhile() {
        let start = || vec![launched(3), E::Child(C::Started), E::Child(C::HooksDue)];
        let due = run(Kind::Container, start()).unwrap();
        assert!(due.hooks_due());
        let mut ok = start();
        ok.extend([E::HooksRan, spawned_event(9), E::Child(C::Ready)]);
        assert_eq!(run(Kind::Container, ok).unwrap(), S::Ready { pid: 9 });
        for meanwhile in [
            E::Child(C::Ready),
            E::Child(C::Console),
            spawned_event(9),
            E::Child(C::HooksDue),
            E::Release,
        ] {
            let mut events = start();
            events.push(meanwhile.clone());
            assert!(run(Kind::Container, events).is_err(), "{meanwhile:?}");
        }
        let mut twice = start();
        twice.extend([E::HooksRan, E::Child(C::HooksDue)]);
        assert!(run(Kind::Container, twice).is_err());
        let mut failed = start();
        failed.push(E::Child(C::Failed {
            step: "hooks".into(),
            errno: libc::EIO,
            message: "createContainer[0]".into(),
        }));
        assert!(matches!(run(Kind::Container, failed), Ok(S::Failed { .. })));
        let exec = vec![launched(3), E::Child(C::Started), E::Child(C::HooksDue)];
        assert!(run(Kind::Exec, exec).is_err(), "an exec has no hooks");
        assert!(run(
            Kind::Container,
            vec![launched(3), E::Child(C::Started), E::HooksRan]
        )
        .is_err());
    }

    fn spawned_event(pid: i32) -> LaunchEvent {
        E::Child(C::Spawned { pid })
    }

    #[test]
    fn pid_is_known_once_cloned() {
        assert_eq!(S::Requested(Kind::Exec).pid(), None);
        assert_eq!(S::Ready { pid: 3 }.pid(), Some(3));
    }
}
