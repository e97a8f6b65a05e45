//! The user namespace of the spec: `linux.uidMappings` and `linux.gidMappings` checked against
//! what the kernel accepts in a uid_map/gid_map write (so that a bad map is INVALID_ARGUMENT
//! before anything is made, not EINVAL from a child), and against the ids the process switches
//! to, which must be mapped for setresuid/setresgid/setgroups to work inside.

use super::ValidateError;
use oci_spec::runtime::{Linux, LinuxIdMapping};
use wire::zygote::{IdMapping, Namespace, NamespaceKind, ProcessConfig};

/// The kernel's limit on lines in one uid_map or gid_map (since Linux 4.15).
pub const MAX_LINES: usize = 340;

/// The converted maps, (uid, gid); both empty unless the container gets a new user namespace.
pub type Maps = (Vec<IdMapping>, Vec<IdMapping>);

/// runc's rules: a new user namespace needs both maps (an unmapped namespace would leave root
/// without any id it can switch to), and maps without a new user namespace are an error (a
/// joined one already has its maps, which cannot be written twice).
pub(super) fn maps(linux: Option<&Linux>, namespaces: &[Namespace]) -> Result<Maps, ValidateError> {
    let new_userns = namespaces
        .iter()
        .any(|n| n.kind == NamespaceKind::User && !n.join);
    let uid = linux
        .and_then(|l| l.uid_mappings().as_deref())
        .unwrap_or_default();
    let gid = linux
        .and_then(|l| l.gid_mappings().as_deref())
        .unwrap_or_default();
    let err = |field, reason: String| ValidateError::IdMapping { field, reason };
    if !new_userns {
        for (field, list) in [("linux.uidMappings", uid), ("linux.gidMappings", gid)] {
            if !list.is_empty() {
                let reason = "is set but the container gets no new user namespace".into();
                return Err(err(field, reason));
            }
        }
        return Ok((Vec::new(), Vec::new()));
    }
    Ok((
        convert("linux.uidMappings", uid)?,
        convert("linux.gidMappings", gid)?,
    ))
}

fn convert(field: &'static str, list: &[LinuxIdMapping]) -> Result<Vec<IdMapping>, ValidateError> {
    let err = |reason: String| ValidateError::IdMapping { field, reason };
    if list.is_empty() {
        return Err(err("is empty: a new user namespace needs a mapping".into()));
    }
    if list.len() > MAX_LINES {
        return Err(err(format!(
            "has {} entries; the kernel takes at most {MAX_LINES}",
            list.len()
        )));
    }
    let maps: Vec<IdMapping> = list
        .iter()
        .map(|m| IdMapping {
            container_id: m.container_id(),
            host_id: m.host_id(),
            size: m.size(),
        })
        .collect();
    for (i, m) in maps.iter().enumerate() {
        let end = |start: u32| u64::from(start) + u64::from(m.size);
        if m.size == 0 {
            return Err(err(format!("[{i}] has size 0")));
        }
        if end(m.container_id) > u64::from(u32::MAX) || end(m.host_id) > u64::from(u32::MAX) {
            return Err(err(format!("[{i}] runs past id 4294967294")));
        }
        for (j, other) in maps.iter().enumerate().take(i) {
            if overlaps(m.container_id, other.container_id, m.size, other.size) {
                return Err(err(format!("[{i}] and [{j}] overlap inside the container")));
            }
            if overlaps(m.host_id, other.host_id, m.size, other.size) {
                return Err(err(format!("[{i}] and [{j}] overlap on the host")));
            }
        }
    }
    Ok(maps)
}

fn overlaps(a: u32, b: u32, a_len: u32, b_len: u32) -> bool {
    let (a, b) = (u64::from(a), u64::from(b));
    a < b + u64::from(b_len) && b < a + u64::from(a_len)
}

fn mapped(maps: &[IdMapping], id: u32) -> bool {
    maps.iter().any(|m| {
        id >= m.container_id && u64::from(id) < u64::from(m.container_id) + u64::from(m.size)
    })
}

/// Root and the process's uid, gid and additional gids must be mapped in a new user namespace:
/// setresuid and friends take only ids the namespace has.
pub(super) fn check_process_ids(maps: &Maps, p: &ProcessConfig) -> Result<(), ValidateError> {
    let (uids, gids) = maps;
    if uids.is_empty() {
        return Ok(());
    }
    let unmapped = |field, id| ValidateError::IdMapping {
        field,
        reason: format!("does not map id {id}, which process.user uses"),
    };
    // The jail is built as root inside the namespace (`userns::become_root`).
    if !mapped(uids, 0) {
        return Err(ValidateError::IdMapping {
            field: "linux.uidMappings",
            reason: "does not map id 0, which builds the container inside the namespace".into(),
        });
    }
    if !mapped(gids, 0) {
        return Err(ValidateError::IdMapping {
            field: "linux.gidMappings",
            reason: "does not map id 0, which builds the container inside the namespace".into(),
        });
    }
    if !mapped(uids, p.uid) {
        return Err(unmapped("linux.uidMappings", p.uid));
    }
    for &gid in std::iter::once(&p.gid).chain(&p.additional_gids) {
        if !mapped(gids, gid) {
            return Err(unmapped("linux.gidMappings", gid));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{validate, Validated};
    use super::*;
    use oci_spec::runtime::Spec;
    use serde_json::{json, Value};

    fn run(patch: impl FnOnce(&mut Value)) -> Result<Validated, ValidateError> {
        let dir = tempfile::tempdir().unwrap();
        let mut value = json!({
            "ociVersion": "1.0.2",
            "process": { "args": ["sh"], "cwd": "/", "user": { "uid": 0, "gid": 0 } },
            "root": { "path": dir.path() },
            "linux": {
                "namespaces": [{ "type": "user" }, { "type": "pid" }, { "type": "mount" }],
                "uidMappings": [{ "containerID": 0, "hostID": 100000, "size": 65536 }],
                "gidMappings": [{ "containerID": 0, "hostID": 100000, "size": 65536 }]
            }
        });
        patch(&mut value);
        let spec: Spec = serde_json::from_value(value).expect("test spec must parse");
        validate("c1", &spec)
    }

    fn reason(patch: impl FnOnce(&mut Value)) -> String {
        match run(patch) {
            Err(e @ ValidateError::IdMapping { .. }) => e.to_string(),
            other => panic!("expected an IdMapping error, got {:?}", other.map(|_| ())),
        }
    }

    #[test]
    fn a_new_user_namespace_carries_its_maps() {
        let v = run(|_| {}).unwrap();
        let want = IdMapping {
            container_id: 0,
            host_id: 100_000,
            size: 65536,
        };
        assert_eq!(v.config.uid_mappings, [want]);
        assert_eq!(v.config.gid_mappings, [want]);
        let user = Namespace {
            kind: NamespaceKind::User,
            join: false,
        };
        assert!(v.config.namespaces.contains(&user));
    }

    #[test]
    fn maps_need_a_new_user_namespace_and_it_needs_both_maps() {
        let no_userns = reason(|s| {
            s["linux"]["namespaces"] = json!([{ "type": "mount" }]);
        });
        assert_eq!(
            no_userns,
            "linux.uidMappings is set but the container gets no new user namespace"
        );
        let joined = reason(|s| {
            s["linux"]["namespaces"][0] = json!({ "type": "user", "path": "/proc/1/ns/user" });
        });
        assert!(joined.contains("no new user namespace"), "{joined}");
        let no_gid = reason(|s| drop(s["linux"].as_object_mut().unwrap().remove("gidMappings")));
        assert_eq!(
            no_gid,
            "linux.gidMappings is empty: a new user namespace needs a mapping"
        );
        run(|s| {
            s["linux"]["namespaces"][0] = json!({ "type": "user", "path": "/proc/1/ns/user" });
            let linux = s["linux"].as_object_mut().unwrap();
            linux.remove("uidMappings");
            linux.remove("gidMappings");
        })
        .expect("a joined user namespace needs no maps");
    }

    #[test]
    fn maps_the_kernel_would_refuse_are_refused() {
        let with_uid = |maps: Value| reason(move |s| s["linux"]["uidMappings"] = maps);
        let e = with_uid(json!([{ "containerID": 0, "hostID": 1, "size": 0 }]));
        assert_eq!(e, "linux.uidMappings [0] has size 0");
        let e = with_uid(json!([{ "containerID": 4294967295u32, "hostID": 1, "size": 2 }]));
        assert!(e.ends_with("runs past id 4294967294"), "{e}");
        let e = with_uid(json!([
            { "containerID": 0, "hostID": 100000, "size": 10 },
            { "containerID": 5, "hostID": 200000, "size": 10 }
        ]));
        assert_eq!(
            e,
            "linux.uidMappings [1] and [0] overlap inside the container"
        );
        let e = with_uid(json!([
            { "containerID": 0, "hostID": 100000, "size": 10 },
            { "containerID": 10, "hostID": 100009, "size": 10 }
        ]));
        assert_eq!(e, "linux.uidMappings [1] and [0] overlap on the host");
        let many: Vec<Value> = (0..=MAX_LINES as u32)
            .map(|i| json!({ "containerID": i, "hostID": 100000 + i, "size": 1 }))
            .collect();
        let e = with_uid(Value::Array(many));
        assert!(e.contains("341 entries"), "{e}");
    }

    #[test]
    fn the_process_ids_must_be_mapped() {
        let e = reason(|s| s["process"]["user"]["uid"] = json!(70000));
        assert_eq!(
            e,
            "linux.uidMappings does not map id 70000, which process.user uses"
        );
        let e = reason(|s| s["process"]["user"]["additionalGids"] = json!([5, 65536]));
        assert_eq!(
            e,
            "linux.gidMappings does not map id 65536, which process.user uses"
        );
        run(|s| s["process"]["user"] = json!({ "uid": 65535, "gid": 5, "additionalGids": [6] }))
            .unwrap();
    }
}
