//! GetOOMEvent, a long poll as Kata's agent serves it: every container's memory cgroup is
//! watched (`jail::cgroups::OomWatch`, one task per container), and an OOM there answers the
//! oldest waiting GetOOMEvent call with the container's id. Events that come while nobody waits
//! are queued, at most `QUEUE_BOUND` (Kata's channel holds 100); beyond that they are dropped,
//! counted and logged. A waiting call whose client goes away (ttrpc drops the handler) gives
//! up its place, and an event already handed to it goes to the next call instead; when the agent
//! stops, every waiting call ends with UNAVAILABLE.
//!
//! A container's watch lives as long as the container (registered during its create's launch,
//! `create.rs`): teardown stops it before the cgroup is removed, after one last look so that
//! an OOM kill just before RemoveContainer is not lost. Stopping or dropping it aborts the
//! task, which closes the watch's fd (and so unregisters it) as it goes.

use crate::error::AgentError;
use jail::cgroups::{Cgroup, OomCheck, OomWatch};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::io::unix::AsyncFd;
use tokio::sync::oneshot;

/// Events kept for calls yet to come (as many as Kata's agent keeps in its channel).
pub const QUEUE_BOUND: usize = 100;

#[derive(Default)]
struct State {
    queue: VecDeque<String>,
    waiters: VecDeque<oneshot::Sender<String>>,
    closed: bool,
}

/// The events and the calls waiting for them (see the module doc).
#[derive(Default)]
pub struct OomEvents {
    state: Mutex<State>,
    /// OOM events seen in any container, and those dropped because the queue was full.
    pub seen: AtomicU64,
    pub dropped: AtomicU64,
}

static DROPS_LOGGED: crate::ratelimit::LogLimiter = crate::ratelimit::LogLimiter::new();

impl OomEvents {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Held only for queue operations that cannot panic half way.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An OOM in container `id`: to the oldest waiting call, else to the queue.
    pub fn publish(&self, id: &str) {
        self.seen.fetch_add(1, Ordering::Relaxed);
        let mut s = self.lock();
        if let Some(id) = hand_over(&mut s, id.to_owned()) {
            self.enqueue(&mut s, id, false);
        }
    }

    /// An event taken by a call that was cancelled before returning it: it was the oldest, so
    /// it goes first again.
    fn redeliver(&self, id: String) {
        let mut s = self.lock();
        if let Some(id) = hand_over(&mut s, id) {
            self.enqueue(&mut s, id, true);
        }
    }

    fn enqueue(&self, s: &mut State, id: String, front: bool) {
        if s.closed {
            return;
        }
        if s.queue.len() >= QUEUE_BOUND {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            if let crate::ratelimit::Verdict::Log { suppressed } = DROPS_LOGGED.check() {
                tracing::warn!(
                    id,
                    suppressed,
                    "OOM event dropped: nobody polls and the queue is full"
                );
            }
            return;
        }
        if front {
            s.queue.push_front(id);
        } else {
            s.queue.push_back(id);
        }
    }

    /// The next event: a queued one at once, else the next one to come (see the module doc).
    pub async fn next(self: &Arc<Self>) -> Result<String, AgentError> {
        let rx = {
            let mut s = self.lock();
            if s.closed {
                return Err(AgentError::Stopping);
            }
            if let Some(id) = s.queue.pop_front() {
                return Ok(id);
            }
            // Calls whose clients left are gone from the line before a new one joins it.
            s.waiters.retain(|w| !w.is_closed());
            let (tx, rx) = oneshot::channel();
            s.waiters.push_back(tx);
            rx
        };
        let mut pending = Pending {
            rx,
            events: self.clone(),
        };
        (&mut pending.rx).await.map_err(|_| AgentError::Stopping)
    }

    /// The agent stops: every waiting call ends, and no call waits from now on.
    pub fn close(&self) {
        let mut s = self.lock();
        s.closed = true;
        s.waiters.clear();
        s.queue.clear();
    }

    #[cfg(test)]
    fn queued(&self) -> usize {
        self.lock().queue.len()
    }
}

/// Gives `id` to the oldest waiting call that is still there; back if there is none.
fn hand_over(s: &mut State, mut id: String) -> Option<String> {
    while let Some(waiter) = s.waiters.pop_front() {
        match waiter.send(id) {
            Ok(()) => return None,
            Err(back) => id = back,
        }
    }
    Some(id)
}

/// A waiting call's place in line. Dropped before the call returned (the client left), it
/// hands an event it was already given to the next call.
struct Pending {
    rx: oneshot::Receiver<String>,
    events: Arc<OomEvents>,
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.rx.close();
        if let Ok(id) = self.rx.try_recv() {
            self.events.redeliver(id);
        }
    }
}

/// A container's OOM watch (see the module doc): the polling task and a handle on the watch
/// for the last look.
pub struct Watch {
    fd: Arc<AsyncFd<OomWatch>>,
    task: tokio::task::JoinHandle<()>,
    id: String,
    events: Arc<OomEvents>,
}

/// Starts watching `cgroup` for container `id`; `None` when it has no memory controller.
pub fn watch(
    cgroup: &Cgroup,
    id: &str,
    events: &Arc<OomEvents>,
) -> Result<Option<Watch>, AgentError> {
    let Some(w) = cgroup.watch_oom()? else {
        return Ok(None);
    };
    // SAFETY: the watch owns its one fd and keeps it open and the same until it is dropped,
    // which happens only with (inside) this AsyncFd.
    let fd = unsafe { AsyncFd::register_with_interest(w, tokio::io::Interest::READABLE) }
        .map_err(|e| AgentError::io("registering the OOM watch", e.into()))?;
    let fd = Arc::new(fd);
    let task = tokio::spawn(run(fd.clone(), id.to_owned(), events.clone()));
    Ok(Some(Watch {
        fd,
        task,
        id: id.to_owned(),
        events: events.clone(),
    }))
}

impl Watch {
    /// Ends the watch after a last look at what happened so far (an OOM kill the task has not
    /// read yet is still reported). The fd closes when the aborted task lets go of it, on a
    /// runtime worker: closing it makes the kernel take the v1 registration down, work that
    /// need not delay the RPC that removes the container.
    pub fn stop(self) {
        self.task.abort();
        if let Ok(OomCheck::Oom(_)) = self.fd.get_ref().check() {
            report(&self.events, &self.id);
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run(fd: Arc<AsyncFd<OomWatch>>, id: String, events: Arc<OomEvents>) {
    loop {
        let check = match fd.readable().await {
            Ok(mut guard) => {
                let check = guard.get_inner().check();
                // check read the fd until it was empty; newer readiness is kept by tokio.
                guard.clear_ready();
                check
            }
            Err(e) => {
                tracing::warn!(id, error = %e, "polling the OOM watch");
                return;
            }
        };
        match check {
            Ok(OomCheck::Nothing) => {}
            // One event per wake-up, as Kata's agent: kills that come together are one OOM.
            Ok(OomCheck::Oom(_)) => report(&events, &id),
            Ok(OomCheck::Gone) => return,
            Err(e) => {
                tracing::warn!(id, error = %e, "reading the OOM watch; it ends");
                return;
            }
        }
    }
}

fn report(events: &OomEvents, id: &str) {
    tracing::info!(id, "OOM event");
    events.publish(id);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn hub() -> Arc<OomEvents> {
        Arc::new(OomEvents::default())
    }

    async fn settle() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    #[tokio::test]
    async fn a_queued_event_answers_at_once_in_order() {
        let h = hub();
        h.publish("a");
        h.publish("b");
        assert_eq!(h.next().await.unwrap(), "a");
        assert_eq!(h.next().await.unwrap(), "b");
        assert_eq!(h.queued(), 0);
    }

    #[tokio::test]
    async fn the_oldest_waiting_call_gets_the_event() {
        let h = hub();
        let first = tokio::spawn({
            let h = h.clone();
            async move { h.next().await.unwrap() }
        });
        settle().await;
        let second = tokio::spawn({
            let h = h.clone();
            async move { h.next().await.unwrap() }
        });
        settle().await;
        h.publish("x");
        assert_eq!(first.await.unwrap(), "x");
        assert!(!second.is_finished());
        h.publish("y");
        assert_eq!(second.await.unwrap(), "y");
        assert_eq!(h.queued(), 0);
    }

    #[tokio::test]
    async fn a_cancelled_call_loses_no_event() {
        let h = hub();
        let gone = tokio::spawn({
            let h = h.clone();
            async move { h.next().await }
        });
        settle().await;
        gone.abort();
        let _ = gone.await;
        h.publish("x");
        assert_eq!(h.queued(), 1, "the event waits for the next call");
        assert_eq!(h.next().await.unwrap(), "x");
    }

    #[tokio::test]
    async fn an_event_given_to_a_call_dropped_before_returning_goes_to_the_next() {
        let h = hub();
        let mut call = Box::pin(h.next());
        // Polled once: in line.
        assert!(futures_poll_once(&mut call).await.is_none());
        h.publish("x");
        // The event was handed over, but the call is dropped before it returns it.
        drop(call);
        assert_eq!(h.next().await.unwrap(), "x");
    }

    async fn futures_poll_once<F: std::future::Future + Unpin>(f: &mut F) -> Option<F::Output> {
        tokio::time::timeout(Duration::from_millis(10), f)
            .await
            .ok()
    }

    #[tokio::test]
    async fn the_queue_is_bounded_and_counts_what_it_drops() {
        let h = hub();
        for i in 0..QUEUE_BOUND + 5 {
            h.publish(&format!("c{i}"));
        }
        assert_eq!(h.queued(), QUEUE_BOUND);
        assert_eq!(h.dropped.load(Ordering::Relaxed), 5);
        assert_eq!(h.seen.load(Ordering::Relaxed), QUEUE_BOUND as u64 + 5);
        assert_eq!(h.next().await.unwrap(), "c0", "the oldest are kept");
    }

    #[tokio::test]
    async fn closing_ends_waiting_calls_and_refuses_new_ones() {
        let h = hub();
        let waiting = tokio::spawn({
            let h = h.clone();
            async move { h.next().await }
        });
        settle().await;
        h.close();
        let r = waiting.await.unwrap();
        assert!(matches!(r, Err(AgentError::Stopping)), "{r:?}");
        assert!(matches!(h.next().await, Err(AgentError::Stopping)));
        h.publish("late");
        assert_eq!(h.queued(), 0);
    }

    /// A v2 cgroup in a temp dir: its watch reports a new oom_kill count as the container's
    /// event, and stopping it closes its fd.
    #[tokio::test]
    async fn a_watch_publishes_the_containers_id_and_stops() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("cgroup.controllers"), "memory").unwrap();
        std::fs::write(tmp.path().join("cgroup.subtree_control"), "").unwrap();
        let layout = jail::cgroups::Layout::v2(tmp.path().to_owned());
        let cg = layout
            .create(std::path::Path::new("c1"), &Default::default())
            .unwrap();
        let events_file = tmp.path().join("c1/memory.events");
        std::fs::write(&events_file, "oom 0\noom_kill 0\n").unwrap();
        let h = hub();
        // Other tests open fds meanwhile: count the inotify fds watching this very file.
        let ino = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&events_file).unwrap());
        let watching = move || {
            let needle = format!("ino:{ino:x} ");
            std::fs::read_dir("/proc/self/fdinfo")
                .unwrap()
                .filter_map(|e| std::fs::read_to_string(e.unwrap().path()).ok())
                .filter(|info| info.contains(&needle))
                .count()
        };
        let w = watch(&cg, "c1", &h).unwrap().expect("memory.events");
        assert_eq!(watching(), 1);
        let waiting = tokio::spawn({
            let h = h.clone();
            async move { h.next().await.unwrap() }
        });
        std::fs::write(&events_file, "oom 1\noom_kill 1\n").unwrap();
        let id = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the event arrives")
            .unwrap();
        assert_eq!(id, "c1");
        // A kill just before the stop is still reported by the last look.
        std::fs::write(&events_file, "oom 2\noom_kill 2\n").unwrap();
        w.stop();
        assert_eq!(h.next().await.unwrap(), "c1");
        assert_eq!(h.queued(), 0, "one event for one kill, whoever read it");
        // The aborted task lets go of the fd on a worker, at once.
        for _ in 0..100 {
            if watching() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(watching(), 0, "the watch's fd is closed");
        cg.remove().unwrap();
    }
}
