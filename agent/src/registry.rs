//! id -> container. The map's lock is held only to look up, reserve or remove an entry; each
//! container has its own async lock for its lifecycle operations. A create reserves its id
//! (so a second create gets ALREADY_EXISTS) and fills the slot only after the launch, so no lock
//! is held across a launch's awaits.

use crate::container::Container;
use crate::error::AgentError;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub type Entry = Arc<tokio::sync::Mutex<Container>>;

enum Slot {
    Creating,
    Ready(Entry),
}

#[derive(Default)]
pub struct Registry {
    map: Mutex<HashMap<String, Slot>>,
}

/// Holds a reserved id; dropping it without `fill` frees the id again.
pub struct Reservation {
    registry: Arc<Registry>,
    id: String,
    filled: bool,
}

impl Reservation {
    pub fn fill(mut self, container: Container) -> Entry {
        let entry = Arc::new(tokio::sync::Mutex::new(container));
        self.registry
            .lock()
            .insert(self.id.clone(), Slot::Ready(entry.clone()));
        self.filled = true;
        entry
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.filled {
            self.registry.lock().remove(&self.id);
        }
    }
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
        // A panic while holding this short lock leaves the map consistent; keep serving.
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn reserve(self: &Arc<Self>, id: &str) -> Result<Reservation, AgentError> {
        let mut map = self.lock();
        if map.contains_key(id) {
            return Err(AgentError::Exists(id.into()));
        }
        map.insert(id.into(), Slot::Creating);
        Ok(Reservation {
            registry: self.clone(),
            id: id.into(),
            filled: false,
        })
    }

    pub fn get(&self, id: &str) -> Result<Entry, AgentError> {
        match self.lock().get(id) {
            Some(Slot::Ready(e)) => Ok(e.clone()),
            Some(Slot::Creating) => Err(AgentError::State {
                id: id.into(),
                state: "being created",
                op: "use it",
            }),
            None => Err(AgentError::NotFound(id.into())),
        }
    }

    pub fn remove(&self, id: &str) {
        self.lock().remove(id);
    }

    /// How many ids are reserved by creates under way.
    pub fn creating(&self) -> usize {
        let map = self.lock();
        map.values().filter(|s| matches!(s, Slot::Creating)).count()
    }

    /// Every ready container, for listing and sandbox teardown.
    pub fn all(&self) -> Vec<(String, Entry)> {
        let map = self.lock();
        let mut v: Vec<_> = map
            .iter()
            .filter_map(|(k, s)| match s {
                Slot::Ready(e) => Some((k.clone(), e.clone())),
                Slot::Creating => None,
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

/// Exec ids follow the container id rule (`jail::validate::check_id`): they name nothing on
/// disk, but a bounded, printable id keeps logs and errors sane.
pub fn check_exec_id(exec_id: &str) -> Result<(), AgentError> {
    jail::validate::check_id(exec_id)
        .map_err(|_| AgentError::InvalidArgument(format!("invalid exec id {exec_id:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_ids_follow_the_container_id_rule() {
        for bad in ["", ".", "..", "a/b", "a\0b", &"x".repeat(256), "a b"] {
            assert!(check_exec_id(bad).is_err(), "{bad:?}");
        }
        for good in ["a", "c-1.x_y+z", &"x".repeat(255)] {
            check_exec_id(good).unwrap();
        }
    }

    #[test]
    fn reservation_blocks_a_second_create_and_frees_on_drop() {
        let r = Arc::new(Registry::default());
        let res = r.reserve("a").unwrap();
        assert!(matches!(r.reserve("a"), Err(AgentError::Exists(_))));
        assert!(matches!(r.get("a"), Err(AgentError::State { .. })));
        assert_eq!(r.creating(), 1);
        drop(res);
        assert_eq!(r.creating(), 0);
        assert!(matches!(r.get("a"), Err(AgentError::NotFound(_))));
        r.reserve("a").unwrap();
    }
}
