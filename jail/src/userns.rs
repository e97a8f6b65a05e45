//! User namespaces (step "userns"): which configs have one, and the uid/gid maps of a new one,
//! written from outside it. A process can only map ids it holds itself into a namespace it
//! created; mapping a range (root inside to 100000 outside, say) takes CAP_SETUID/CAP_SETGID in
//! the parent namespace, so the maps are written by the child that is still root on the host,
//! into the process it cloned inside the new namespace, before that process takes a step.
//! setgroups is left allowed, as runc leaves it when it runs as root: only an unprivileged
//! writer must deny it before writing a gid map.

use crate::error::{JailError, Step};
use std::io::Write;
use std::path::Path;
use wire::zygote::{ContainerConfig, IdMapping, NamespaceKind};

/// Whether the container runs in a user namespace, new or joined: its jail is then built by a
/// process born inside that namespace (see `init`).
pub fn in_use(cfg: &ContainerConfig) -> bool {
    cfg.namespaces.iter().any(|n| n.kind == NamespaceKind::User)
}

/// The text of a uid_map or gid_map: one "inside outside count" line per mapping.
pub fn map_text(maps: &[IdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id, m.host_id, m.size))
        .collect()
}

/// Writes the maps of a new user namespace into `/proc/<pid>/{uid,gid}_map` under `proc`
/// (the host's /proc: this runs outside the namespace). Each file takes exactly one write.
/// Nothing to do when the config joins a user namespace (its maps are already written).
pub fn write_maps(proc: &Path, pid: i32, cfg: &ContainerConfig) -> Result<(), JailError> {
    let dir = proc.join(pid.to_string());
    for (file, maps) in [
        ("uid_map", &cfg.uid_mappings),
        ("gid_map", &cfg.gid_mappings),
    ] {
        if maps.is_empty() {
            continue;
        }
        let path = dir.join(file);
        let write = || {
            std::fs::OpenOptions::new()
                .write(true)
                .open(&path)?
                .write_all(map_text(maps).as_bytes())
        };
        write().map_err(|e| {
            JailError::new(
                Step::UserNamespace,
                format!("write {}", path.display()),
                crate::error::errno_of(&e),
            )
        })?;
    }
    Ok(())
}

/// Step "userns" of the process born in (or moved into) a user namespace: become root inside
/// it. Entering a namespace keeps the ids we had outside (host root), which the namespace does
/// not map: until then every file this process makes would fail with EOVERFLOW, and it would
/// show as the overflow id. Capabilities in the namespace are kept (the new effective uid is
/// the namespace's root).
pub fn become_root() -> Result<(), JailError> {
    let err = |what: &str| {
        let what = what.to_owned();
        move |errno| JailError::new(Step::UserNamespace, what, errno)
    };
    let root_gid = nix::unistd::Gid::from_raw(0);
    nix::unistd::setresgid(root_gid, root_gid, root_gid)
        .map_err(err("setresgid 0 in the user namespace (is gid 0 mapped?)"))?;
    let root_uid = nix::unistd::Uid::from_raw(0);
    nix::unistd::setresuid(root_uid, root_uid, root_uid)
        .map_err(err("setresuid 0 in the user namespace (is uid 0 mapped?)"))
}

/// Whether setgroups(2) is denied in the caller's user namespace (`/proc/self/setgroups` says
/// "deny"; a joined namespace may have been set up that way). The host's namespace never is.
pub fn setgroups_denied(proc: &Path) -> bool {
    std::fs::read_to_string(proc.join("self/setgroups")).is_ok_and(|s| s.trim() == "deny")
}

#[cfg(test)]
mod tests {
    use super::*;
    use wire::zygote::Namespace;

    fn map(container_id: u32, host_id: u32, size: u32) -> IdMapping {
        IdMapping {
            container_id,
            host_id,
            size,
        }
    }

    #[test]
    fn map_text_has_one_line_per_mapping() {
        let text = map_text(&[map(0, 100_000, 1000), map(1000, 1000, 1)]);
        assert_eq!(text, "0 100000 1000\n1000 1000 1\n");
    }

    #[test]
    fn maps_go_to_the_pid_s_files_under_the_proc_root() {
        let proc = tempfile::tempdir().unwrap();
        std::fs::create_dir(proc.path().join("42")).unwrap();
        for f in ["uid_map", "gid_map"] {
            std::fs::write(proc.path().join("42").join(f), "").unwrap();
        }
        let cfg = ContainerConfig {
            uid_mappings: vec![map(0, 100_000, 65536)],
            gid_mappings: vec![map(0, 200_000, 65536)],
            ..Default::default()
        };
        write_maps(proc.path(), 42, &cfg).unwrap();
        let read = |f| std::fs::read_to_string(proc.path().join("42").join(f)).unwrap();
        assert_eq!(read("uid_map"), "0 100000 65536\n");
        assert_eq!(read("gid_map"), "0 200000 65536\n");
        let e = write_maps(proc.path(), 43, &cfg).unwrap_err();
        assert_eq!((e.step(), e.errno()), ("userns", libc::ENOENT));
    }

    #[test]
    fn in_use_for_new_and_joined_user_namespaces() {
        let with = |join| ContainerConfig {
            namespaces: vec![Namespace {
                kind: NamespaceKind::User,
                join,
            }],
            ..Default::default()
        };
        assert!(in_use(&with(false)) && in_use(&with(true)));
        assert!(!in_use(&ContainerConfig::default()));
    }

    #[test]
    fn setgroups_denied_reads_the_proc_file() {
        let proc = tempfile::tempdir().unwrap();
        assert!(!setgroups_denied(proc.path()));
        std::fs::create_dir(proc.path().join("self")).unwrap();
        std::fs::write(proc.path().join("self/setgroups"), "deny\n").unwrap();
        assert!(setgroups_denied(proc.path()));
        std::fs::write(proc.path().join("self/setgroups"), "allow\n").unwrap();
        assert!(!setgroups_denied(proc.path()));
    }
}
