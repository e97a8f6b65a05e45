//! The spec's `hooks`: checked (absolute paths, no NUL, timeouts above zero, bounded counts)
//! and split between the child, which runs `createContainer` and `startContainer` in the
//! container's namespaces, and the agent, which runs `prestart`, `createRuntime`, `poststart`
//! and `poststop` in its own (runtime-spec "POSIX-platform Hooks").

use super::{check_str_nul, is_clean_absolute, ValidateError};
use oci_spec::runtime::{Hook as OciHook, Spec};
use std::path::PathBuf;
use wire::zygote::{ChildHooks, Hook, HookState};

/// At most this many hooks of one kind: a bound on what one create can make the agent and the
/// child run (runc has none; 32 is far above what any tool installs).
pub const MAX_PER_KIND: usize = 32;

/// The hooks the agent runs, in the runtime's namespaces, and the state they are told.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeHooks {
    pub prestart: Vec<Hook>,
    pub create_runtime: Vec<Hook>,
    pub poststart: Vec<Hook>,
    pub poststop: Vec<Hook>,
    pub state: HookState,
}

impl RuntimeHooks {
    pub fn is_empty(&self) -> bool {
        self.prestart.is_empty()
            && self.create_runtime.is_empty()
            && self.poststart.is_empty()
            && self.poststop.is_empty()
    }
}

/// The child's and the agent's share of the spec's hooks. `rootfs` is the validated root path,
/// whose parent is reported as the bundle.
#[allow(deprecated)] // `prestart` is deprecated in the spec but still run by runc: run it too.
pub(super) fn convert(
    id: &str,
    spec: &Spec,
    rootfs: &std::path::Path,
) -> Result<(ChildHooks, RuntimeHooks), ValidateError> {
    let state = HookState {
        oci_version: spec.version().clone(),
        id: id.to_owned(),
        bundle: rootfs.parent().unwrap_or(rootfs).to_path_buf(),
        annotations: spec
            .annotations()
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    };
    let Some(h) = spec.hooks() else {
        return Ok((
            ChildHooks {
                state: state.clone(),
                ..Default::default()
            },
            RuntimeHooks {
                state,
                ..Default::default()
            },
        ));
    };
    let runtime = RuntimeHooks {
        prestart: list("hooks.prestart", h.prestart())?,
        create_runtime: list("hooks.createRuntime", h.create_runtime())?,
        poststart: list("hooks.poststart", h.poststart())?,
        poststop: list("hooks.poststop", h.poststop())?,
        state: state.clone(),
    };
    let child = ChildHooks {
        runtime_hooks_due: !runtime.prestart.is_empty() || !runtime.create_runtime.is_empty(),
        create_container: list("hooks.createContainer", h.create_container())?,
        start_container: list("hooks.startContainer", h.start_container())?,
        state,
    };
    Ok((child, runtime))
}

fn list(field: &'static str, hooks: &Option<Vec<OciHook>>) -> Result<Vec<Hook>, ValidateError> {
    let hooks = hooks.as_deref().unwrap_or_default();
    if hooks.len() > MAX_PER_KIND {
        return Err(ValidateError::Hook {
            field: field.into(),
            reason: format!("has {} hooks; at most {MAX_PER_KIND}", hooks.len()),
        });
    }
    hooks
        .iter()
        .enumerate()
        .map(|(i, h)| hook(&format!("{field}[{i}]"), h))
        .collect()
}

fn hook(field: &str, h: &OciHook) -> Result<Hook, ValidateError> {
    let err = |reason: String| ValidateError::Hook {
        field: field.into(),
        reason,
    };
    let path: PathBuf = h.path().clone();
    super::check_path_nul(field, &path)?;
    if !is_clean_absolute(&path) {
        return Err(err(format!("path {path:?} is not a clean absolute path")));
    }
    // Without args, the hook gets its path as args[0] (as runc's exec.Cmd does).
    let args = match h.args() {
        Some(args) if !args.is_empty() => args.clone(),
        _ => vec![path.to_string_lossy().into_owned()],
    };
    for a in &args {
        check_str_nul(&format!("{field}.args"), a)?;
    }
    let env = h.env().clone().unwrap_or_default();
    for e in &env {
        check_str_nul(&format!("{field}.env"), e)?;
    }
    let timeout_secs = match h.timeout() {
        None => None,
        Some(t) if t > 0 => Some(u32::try_from(t).unwrap_or(u32::MAX)),
        Some(t) => return Err(err(format!("timeout {t} must be greater than zero"))),
    };
    Ok(Hook {
        path,
        args,
        env,
        timeout_secs,
    })
}

#[cfg(test)]
mod tests {
    use super::super::validate;
    use super::*;
    use serde_json::{json, Value};

    fn run(hooks: Value) -> Result<super::super::Validated, ValidateError> {
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().join("rootfs");
        std::fs::create_dir(&rootfs).unwrap();
        let value = json!({
            "ociVersion": "1.0.2",
            "process": { "args": ["sh"], "cwd": "/", "user": { "uid": 0, "gid": 0 } },
            "root": { "path": rootfs },
            "annotations": { "b": "2", "a": "1" },
            "hooks": hooks,
            "linux": { "namespaces": [{ "type": "mount" }] }
        });
        let spec: Spec = serde_json::from_value(value).expect("test spec must parse");
        let v = validate("c1", &spec);
        if let Ok(v) = &v {
            assert_eq!(v.config.hooks.state.bundle, dir.path());
        }
        v
    }

    #[test]
    fn hooks_are_split_between_the_child_and_the_agent() {
        let h = |p: &str| json!([{ "path": p }]);
        let v = run(json!({
            "prestart": h("/bin/a"), "createRuntime": h("/bin/b"), "createContainer": h("/bin/c"),
            "startContainer": [{ "path": "/bin/d", "args": ["d", "-x"], "env": ["K=V"], "timeout": 5 }],
            "poststart": h("/bin/e"), "poststop": h("/bin/f")
        }))
        .unwrap();
        let child = &v.config.hooks;
        assert!(child.runtime_hooks_due);
        assert_eq!(child.create_container[0].args, ["/bin/c"]);
        let start = &child.start_container[0];
        assert_eq!(
            (
                start.args.as_slice(),
                start.env.as_slice(),
                start.timeout_secs
            ),
            (
                &["d".to_string(), "-x".into()][..],
                &["K=V".to_string()][..],
                Some(5)
            )
        );
        let rt = &v.hooks;
        let paths = |l: &[Hook]| l.iter().map(|h| h.path.clone()).collect::<Vec<_>>();
        assert_eq!(paths(&rt.prestart), [PathBuf::from("/bin/a")]);
        assert_eq!(paths(&rt.create_runtime), [PathBuf::from("/bin/b")]);
        assert_eq!(paths(&rt.poststart), [PathBuf::from("/bin/e")]);
        assert_eq!(paths(&rt.poststop), [PathBuf::from("/bin/f")]);
        assert_eq!(rt.state.id, "c1");
        let mut ann = rt.state.annotations.clone();
        ann.sort();
        assert_eq!(ann, [("a".into(), "1".into()), ("b".into(), "2".into())]);
        let none = run(json!({ "poststop": h("/bin/f") })).unwrap();
        assert!(!none.config.hooks.runtime_hooks_due);
    }

    #[test]
    fn bad_hooks_are_refused_naming_the_field() {
        let msg = |hooks: Value| run(hooks).unwrap_err().to_string();
        assert_eq!(
            msg(json!({ "poststart": [{ "path": "bin/x" }] })),
            "hooks.poststart[0]: path \"bin/x\" is not a clean absolute path"
        );
        assert_eq!(
            msg(json!({ "createRuntime": [{ "path": "/x", "timeout": 0 }] })),
            "hooks.createRuntime[0]: timeout 0 must be greater than zero"
        );
        let many: Vec<Value> = (0..=MAX_PER_KIND)
            .map(|_| json!({ "path": "/x" }))
            .collect();
        assert_eq!(
            msg(json!({ "prestart": many })),
            "hooks.prestart: has 33 hooks; at most 32"
        );
    }
}
