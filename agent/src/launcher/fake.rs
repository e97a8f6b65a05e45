//! A scripted launcher for the agent's non-root unit tests: instead of a zygote it starts a
//! real, harmless process (`sleep`, the test's own child, so the reaper can wait for it
//! through its pidfd) to stand in for the cloned child, and plays a script of child events on
//! the request's real sync socket, as the jail would. What the agent sends back (`Proceed`
//! after the runtime hooks) and whether it closed its end are recorded for the test.

use super::{LaunchError, LaunchRequest, Launched, Launcher};
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex};
use wire::channel;
use wire::zygote::{ChildEvent, LaunchFds, ToChild};

/// One step of a script.
#[derive(Clone, Debug)]
pub enum Step {
    /// A child event; `Started` and `Spawned` carry a stand-in process's pidfd (`Spawned` a new
    /// one's), `Console` a pipe end standing in for the pty master.
    Send(ChildEvent),
    /// Wait for the agent's `Proceed` (recorded), or its end closing (recorded as None).
    AwaitProceed,
    /// Close the child's end of the sync socket (the child exec'd or died).
    Close,
}

/// What one launch did, for the test to check.
#[derive(Default, Debug)]
pub struct Record {
    /// The stand-in processes, in order (the cloned one first, then each spawned one).
    pub pids: Vec<i32>,
    /// What each `AwaitProceed` got: Some(()) for `Proceed`, None for EOF.
    pub proceeds: Vec<Option<()>>,
}

pub struct FakeLauncher {
    /// The script of each attempt, in order; an attempt beyond them fails as `ZygoteDied`.
    scripts: Mutex<Vec<Result<Vec<Step>, LaunchError>>>,
    pub record: Arc<Mutex<Record>>,
}

impl FakeLauncher {
    pub fn new(scripts: Vec<Result<Vec<Step>, LaunchError>>) -> FakeLauncher {
        FakeLauncher {
            scripts: Mutex::new(scripts.into_iter().rev().collect()),
            record: Default::default(),
        }
    }
}

/// A stand-in process and its pidfd.
fn stand_in() -> (i32, OwnedFd) {
    let child = std::process::Command::new("sleep")
        .arg("600")
        .spawn()
        .expect("spawn sleep");
    let pid = child.id() as i32;
    // The std Child is dropped without waiting: the reaper waits for it through the pidfd.
    drop(child);
    // SAFETY: pidfd_open with a pid and no flags returns a new fd that only we own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0u32) };
    assert!(fd >= 0, "pidfd_open: {}", std::io::Error::last_os_error());
    // SAFETY: the kernel just installed this fd for us.
    (pid, unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn play(sync: OwnedFd, script: Vec<Step>, first: OwnedFd, record: Arc<Mutex<Record>>) {
    let mut pending_pidfd = Some(first);
    for step in script {
        match step {
            Step::Send(ev) => {
                let fd = match &ev {
                    ChildEvent::Started => pending_pidfd.take(),
                    ChildEvent::Spawned { .. } => {
                        let (pid, fd) = stand_in();
                        record.lock().unwrap().pids.push(pid);
                        Some(fd)
                    }
                    ChildEvent::Console => {
                        let (rd, _wr) = nix::unistd::pipe().expect("pipe");
                        Some(rd)
                    }
                    _ => None,
                };
                let ev = match ev {
                    ChildEvent::Spawned { .. } => ChildEvent::Spawned {
                        pid: *record.lock().unwrap().pids.last().unwrap(),
                    },
                    other => other,
                };
                let fds: Vec<_> = fd.iter().map(|f| f.as_fd()).collect();
                if channel::send(sync.as_fd(), &ev, &fds).is_err() {
                    return;
                }
            }
            Step::AwaitProceed => {
                let mut buf = channel::buffer();
                let got = channel::recv::<ToChild>(sync.as_fd(), &mut buf, Some(0)).ok();
                record.lock().unwrap().proceeds.push(got.map(|_| ()));
            }
            Step::Close => return,
        }
    }
    // The script ends with the socket open, as a parked child keeps it: leak the end so
    // the agent sees no EOF.
    std::mem::forget(sync);
}

#[async_trait::async_trait]
impl Launcher for FakeLauncher {
    async fn launch(&self, req: LaunchRequest) -> Result<Launched, LaunchError> {
        let script = self
            .scripts
            .lock()
            .unwrap()
            .pop()
            .unwrap_or(Err(LaunchError::ZygoteDied))?;
        let mut fds = req.fds;
        let sync = fds.swap_remove(LaunchFds::SYNC);
        drop(fds); // stdio, fifo, namespace fds: a real child would hold these
        let (pid, pidfd) = stand_in();
        self.record.lock().unwrap().pids.push(pid);
        let for_child = pidfd.try_clone().expect("dup pidfd");
        let record = self.record.clone();
        std::thread::spawn(move || play(sync, script, for_child, record));
        Ok(Launched { pid, pidfd })
    }
}
