//! Watching a container's memory cgroup for OOM events (GetOOMEvent), as Kata's agent does:
//! on v1 an eventfd registered for `memory.oom_control` through `cgroup.event_control` (the
//! kernel signals it when the cgroup runs out of memory), on v2 an inotify watch on
//! `memory.events` whose `oom_kill` counter is compared with the last value seen (the kernel
//! notifies a modification on every counter change there).
//!
//! A watch is one non-blocking, close-on-exec fd that the caller polls (the agent through
//! tokio's `AsyncFd`) and then asks `OomWatch::check` what happened (from any thread: an event
//! is reported to one caller only). Dropping the watch
//! unregisters it: the kernel drops a v1 event whose eventfd is closed (EPOLLHUP on the eventfd
//! removes the registration), and an inotify watch goes with its fd.

use super::{CgroupError, Flavor, V1Index};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// What a watch saw since the last `check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OomCheck {
    /// Nothing new (a wake-up for another counter, or none at all).
    Nothing,
    /// This many OOM events (v1: notifications; v2: new `oom_kill` counts).
    Oom(u64),
    /// The cgroup is gone: the watch has nothing more to say.
    Gone,
}

enum Inner {
    V1 {
        eventfd: EventFd,
        /// `memory.oom_control`: its disappearance tells a removal from an OOM (the kernel
        /// signals the eventfd for both).
        control: PathBuf,
    },
    V2 {
        inotify: Inotify,
        events: PathBuf,
        /// The `oom_kill` count already reported (atomic: `check` may run on two threads, the
        /// watch's poller and a last look at teardown, and each kill is reported once).
        seen: AtomicU64,
    },
}

/// A registered OOM watch on one cgroup (see the module doc).
pub struct OomWatch {
    inner: Inner,
}

impl super::Cgroup {
    /// Registers an OOM watch on the cgroup's memory controller; `None` when the cgroup has
    /// none (no v1 memory hierarchy, or no `memory.events` on v2).
    pub fn watch_oom(&self) -> Result<Option<OomWatch>, CgroupError> {
        match &self.flavor {
            Flavor::V1(V1Index {
                memory: Some(i), ..
            }) => v1(&self.dirs[*i]).map(Some),
            Flavor::V1(_) => Ok(None),
            Flavor::V2 => {
                let events = self.dirs[0].join("memory.events");
                if !events.exists() {
                    return Ok(None);
                }
                v2(events).map(Some)
            }
        }
    }
}

fn watch_err(path: &Path, e: impl Into<io::Error>) -> CgroupError {
    CgroupError::Watch {
        path: path.to_owned(),
        source: e.into(),
    }
}

/// `cgroup.event_control` takes "<eventfd> <fd of the control file>"; the kernel resolves both
/// numbers in the writer's fd table during the write, so the control file is closed after it.
fn v1(dir: &Path) -> Result<OomWatch, CgroupError> {
    let control = dir.join("memory.oom_control");
    let flags = EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK;
    let eventfd = EventFd::from_value_and_flags(0, flags).map_err(|e| watch_err(&control, e))?;
    let file = std::fs::File::open(&control).map_err(|e| watch_err(&control, e))?;
    let line = format!("{} {}", eventfd.as_raw_fd(), file.as_raw_fd());
    super::write(&dir.join("cgroup.event_control"), &line)?;
    drop(file);
    Ok(OomWatch {
        inner: Inner::V1 { eventfd, control },
    })
}

fn v2(events: PathBuf) -> Result<OomWatch, CgroupError> {
    let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)
        .map_err(|e| watch_err(&events, e))?;
    inotify
        .add_watch(&events, AddWatchFlags::IN_MODIFY)
        .map_err(|e| watch_err(&events, e))?;
    // Kills before the watch existed are not this container's news.
    let seen = oom_kills(&events)?.unwrap_or(0);
    Ok(OomWatch {
        inner: Inner::V2 {
            inotify,
            events,
            seen: AtomicU64::new(seen),
        },
    })
}

/// The `oom_kill` key of a v2 `memory.events` (0 when absent); `None` when the file is gone.
fn oom_kills(events: &Path) -> Result<Option<u64>, CgroupError> {
    let text = match std::fs::read_to_string(events) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(CgroupError::Read {
                file: events.to_owned(),
                source,
            })
        }
    };
    let value = text
        .lines()
        .filter_map(|line| line.split_once(' '))
        .find(|(key, _)| *key == "oom_kill")
        .map(|(_, v)| v.trim());
    match value {
        None => Ok(Some(0)),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| super::invalid_data(events, v)),
    }
}

impl OomWatch {
    /// Drains the fd and says what happened. Call it when the fd polls readable (calling it
    /// at any other time is harmless: `Nothing`).
    pub fn check(&self) -> Result<OomCheck, CgroupError> {
        match &self.inner {
            Inner::V1 { eventfd, control } => match eventfd.read() {
                Err(nix::errno::Errno::EAGAIN) => Ok(OomCheck::Nothing),
                Err(e) => Err(watch_err(control, e)),
                Ok(_) if !control.exists() => Ok(OomCheck::Gone),
                Ok(n) => Ok(OomCheck::Oom(n)),
            },
            Inner::V2 {
                inotify,
                events,
                seen,
            } => {
                if drain(inotify, events)? {
                    return Ok(OomCheck::Gone);
                }
                match oom_kills(events)? {
                    None => Ok(OomCheck::Gone),
                    Some(now) => match seen.fetch_max(now, Ordering::SeqCst) {
                        before if now > before => Ok(OomCheck::Oom(now - before)),
                        _ => Ok(OomCheck::Nothing),
                    },
                }
            }
        }
    }
}

/// Reads every pending inotify event; true when the watch was removed (the file went away
/// with its cgroup).
fn drain(inotify: &Inotify, events: &Path) -> Result<bool, CgroupError> {
    let mut removed = false;
    loop {
        match inotify.read_events() {
            Ok(list) => {
                removed |= list
                    .iter()
                    .any(|e| e.mask.contains(AddWatchFlags::IN_IGNORED));
            }
            Err(nix::errno::Errno::EAGAIN) => return Ok(removed),
            Err(e) => return Err(watch_err(events, e)),
        }
    }
}

impl AsFd for OomWatch {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match &self.inner {
            Inner::V1 { eventfd, .. } => eventfd.as_fd(),
            Inner::V2 { inotify, .. } => inotify.as_fd(),
        }
    }
}

/// The same fd for the watch's whole life: `check` never replaces the eventfd or inotify
/// instance, and only dropping the watch closes it.
impl AsRawFd for OomWatch {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.as_fd().as_raw_fd()
    }
}

impl std::fmt::Debug for OomWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (kind, path) = match &self.inner {
            Inner::V1 { control, .. } => ("v1", control),
            Inner::V2 { events, .. } => ("v2", events),
        };
        write!(f, "OomWatch({kind}, {})", path.display())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Layout, Resources};
    use super::*;
    use std::fs;

    use super::super::fake_tree::v1_cgroup;

    fn v2_cgroup() -> (tempfile::TempDir, super::super::Cgroup) {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("cgroup.controllers"), "memory pids").unwrap();
        fs::write(tmp.path().join("cgroup.subtree_control"), "").unwrap();
        let layout = Layout::v2(tmp.path().to_owned());
        let cg = layout
            .create(Path::new("c1"), &Resources::default())
            .unwrap();
        (tmp, cg)
    }

    fn readable(w: &OomWatch) -> bool {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let mut fds = [PollFd::new(w.as_fd(), PollFlags::POLLIN)];
        poll(&mut fds, PollTimeout::ZERO).unwrap() == 1
    }

    #[test]
    fn v1_registers_an_eventfd_for_oom_control_and_reports_its_signals() {
        let (tmp, cg) = v1_cgroup(&["memory", "pids"]);
        let dir = tmp.path().join("memory/c1");
        fs::write(dir.join("memory.oom_control"), "oom_kill_disable 0\n").unwrap();
        let w = cg.watch_oom().unwrap().expect("a memory hierarchy");
        // "<eventfd> <control fd>": the eventfd is the watch's own fd.
        let line = fs::read_to_string(dir.join("cgroup.event_control")).unwrap();
        let fds: Vec<i32> = line.split(' ').map(|n| n.parse().unwrap()).collect();
        assert_eq!(fds.len(), 2, "{line:?}");
        assert_eq!(fds[0], w.as_fd().as_raw_fd());
        assert_ne!(fds[1], fds[0]);
        assert!(!readable(&w));
        assert_eq!(w.check().unwrap(), OomCheck::Nothing);
        // The kernel's side, played by hand: two notifications before the watch looks.
        let Inner::V1 { eventfd, .. } = &w.inner else {
            panic!("v1")
        };
        eventfd.write(1).unwrap();
        eventfd.write(1).unwrap();
        assert!(readable(&w));
        assert_eq!(w.check().unwrap(), OomCheck::Oom(2));
        assert!(!readable(&w), "check drains the fd");
        // A removal signals too; then the control file is gone.
        fs::remove_file(dir.join("memory.oom_control")).unwrap();
        let Inner::V1 { eventfd, .. } = &w.inner else {
            panic!("v1")
        };
        eventfd.write(1).unwrap();
        assert_eq!(w.check().unwrap(), OomCheck::Gone);
    }

    #[test]
    fn v1_without_a_memory_hierarchy_has_no_watch() {
        let (_tmp, cg) = v1_cgroup(&["pids"]);
        assert!(cg.watch_oom().unwrap().is_none());
    }

    #[test]
    fn v1_refused_registration_is_an_error() {
        let (_tmp, cg) = v1_cgroup(&["memory"]);
        // No memory.oom_control: nothing to register for.
        let e = cg.watch_oom().unwrap_err();
        assert!(matches!(e, CgroupError::Watch { .. }), "{e}");
    }

    #[test]
    fn v2_reports_new_oom_kills_from_memory_events() {
        let (tmp, cg) = v2_cgroup();
        let events = tmp.path().join("c1/memory.events");
        let counts = |oom, kill| format!("low 0\nhigh 0\nmax 3\noom {oom}\noom_kill {kill}\n");
        // Kills from before the watch are not reported.
        fs::write(&events, counts(1, 1)).unwrap();
        let w = cg.watch_oom().unwrap().expect("memory.events");
        assert!(!readable(&w));
        // A change of another counter wakes the watch but is no OOM kill.
        fs::write(&events, counts(2, 1)).unwrap();
        assert!(readable(&w));
        assert_eq!(w.check().unwrap(), OomCheck::Nothing);
        assert!(!readable(&w), "check drains the fd");
        fs::write(&events, counts(4, 3)).unwrap();
        assert_eq!(w.check().unwrap(), OomCheck::Oom(2));
        assert_eq!(w.check().unwrap(), OomCheck::Nothing);
        fs::remove_file(&events).unwrap();
        assert!(readable(&w), "the removal wakes the watch");
        assert_eq!(w.check().unwrap(), OomCheck::Gone);
    }

    #[test]
    fn v2_without_memory_events_has_no_watch() {
        let (_tmp, cg) = v2_cgroup();
        assert!(cg.watch_oom().unwrap().is_none());
    }

    #[test]
    fn v2_unparsable_counter_is_an_error() {
        let (tmp, cg) = v2_cgroup();
        let events = tmp.path().join("c1/memory.events");
        fs::write(&events, "oom_kill x\n").unwrap();
        assert!(cg.watch_oom().is_err());
    }
}
