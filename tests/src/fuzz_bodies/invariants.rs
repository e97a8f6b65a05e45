//! The promises a validated launch config makes to the zygote and the child, checked on whatever
//! validation accepted: the child trusts them (it never re-checks a path for ".." or a string
//! for NUL before using it), so a config that breaks one is a validation bug.

use jail::init::Prepared;
use jail::validate::Validated;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};
use wire::zygote::{ContainerConfig, NamespaceKind, ProcessConfig, Request};

/// Everything `jail::validate::validate` returns.
pub fn validated(v: &Validated) {
    let cfg = &v.config;
    cgroup_path(&v.cgroup_path);
    assert!(
        cfg.namespaces
            .iter()
            .any(|n| n.kind == NamespaceKind::Mount),
        "validated config without a mount namespace"
    );
    let joined: Vec<NamespaceKind> = cfg
        .namespaces
        .iter()
        .filter(|n| n.join)
        .map(|n| n.kind)
        .collect();
    let join_kinds: Vec<NamespaceKind> = v.join_namespaces.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        join_kinds, joined,
        "join list out of step with the namespaces"
    );
    for (_, path) in &v.join_namespaces {
        assert!(path.is_absolute(), "namespace path {path:?} is relative");
    }
    for m in &cfg.mounts {
        clean_absolute("mount destination", &m.destination);
        if m.flags & libc::MS_BIND != 0 {
            let source = m.source.as_deref().expect("a bind mount has a source");
            assert!(
                source.starts_with('/'),
                "bind source {source:?} is relative"
            );
        } else {
            assert!(m.fstype.is_some(), "a non-bind mount without a type: {m:?}");
        }
    }
    for d in &cfg.devices {
        clean_absolute("device path", &d.path);
        assert!(
            d.mode & !0o7777 == 0,
            "device mode {:o} has type bits",
            d.mode
        );
    }
    if let Some(adj) = cfg.oom_score_adj {
        assert!((-1000..=1000).contains(&adj), "oom_score_adj {adj}");
    }
    no_nul_in_config(cfg);
    process(&cfg.process);
    for rule in &v.resources.devices {
        let line = rule.v1_line();
        assert!(!line.contains('\n'), "device rule line {line:?}");
    }
    zygote_launch_plan(cfg);
    super::encodes_or_too_large(&Request::Launch(Box::new(cfg.clone())));
}

/// Joined below the cgroup root(s): it must name a path strictly below them.
fn cgroup_path(path: &Path) {
    assert!(
        path.components().next().is_some()
            && path.components().all(|c| matches!(c, Component::Normal(_))),
        "cgroup path {path:?} is not a plain relative path"
    );
}

fn clean_absolute(what: &str, path: &Path) {
    assert!(
        path.is_absolute() && !path.components().any(|c| c == Component::ParentDir),
        "{what} {path:?} is not a clean absolute path"
    );
}

/// A process config (a container's, or an exec's) that validation accepted.
pub fn process(p: &ProcessConfig) {
    assert!(!p.args.is_empty(), "validated process without args");
    assert!(p.cwd.is_absolute(), "cwd {:?} is relative", p.cwd);
    // The child converts these right before building the jail; validation promised it works.
    if let Err(e) = Prepared::new(p) {
        panic!("the child cannot prepare a validated process: {e}");
    }
    let strings = p.args.iter().chain(&p.env);
    for s in strings {
        assert!(!s.contains('\0'), "NUL in {s:?}");
    }
    assert!(!p.cwd.as_os_str().as_bytes().contains(&0), "NUL in cwd");
}

/// Every string that reaches a syscall as a C string must be free of NUL bytes.
fn no_nul_in_config(cfg: &ContainerConfig) {
    let mut texts: Vec<&[u8]> = vec![cfg.id.as_bytes(), cfg.rootfs.as_os_str().as_bytes()];
    texts.extend(cfg.hostname.iter().map(|s| s.as_bytes()));
    texts.extend(cfg.domainname.iter().map(|s| s.as_bytes()));
    for m in &cfg.mounts {
        texts.push(m.destination.as_os_str().as_bytes());
        texts.extend(m.fstype.iter().map(|s| s.as_bytes()));
        texts.extend(m.source.iter().map(|s| s.as_bytes()));
        texts.push(m.data.as_bytes());
    }
    texts.extend(cfg.devices.iter().map(|d| d.path.as_os_str().as_bytes()));
    let paths = cfg.masked_paths.iter().chain(&cfg.readonly_paths);
    texts.extend(paths.map(|p| p.as_os_str().as_bytes()));
    for (k, v) in &cfg.sysctl {
        texts.push(k.as_bytes());
        texts.push(v.as_bytes());
    }
    for t in texts {
        assert!(!t.contains(&0), "NUL in {:?}", String::from_utf8_lossy(t));
    }
}

/// The zygote's pure steps on a launch request before it clones: the clone flags and whether a
/// warm-pool set can serve it. A pooled launch joins nothing (the pool holds fresh namespaces).
pub fn zygote_launch_plan(cfg: &ContainerConfig) {
    let flags = zygote::fork::namespace_flags(&cfg.namespaces);
    let known = libc::CLONE_NEWNS
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWNET
        | libc::CLONE_NEWUSER;
    assert!(flags & !(known as u64) == 0, "clone flags {flags:#x}");
    if zygote::pool::eligible(&cfg.namespaces) {
        assert!(
            cfg.namespaces.iter().all(|n| !n.join),
            "a launch that joins namespaces is pool-eligible: {:?}",
            cfg.namespaces
        );
    }
}
