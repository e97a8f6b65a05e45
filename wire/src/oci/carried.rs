//! The spec fields the Kata protocol has no slot for but zagent implements, carried as
//! annotations (the `io.zagent.` prefix): `spec_to_grpc` puts them in (replacing any the spec
//! already had), `spec_from_grpc` takes them out again into their fields. A host that is not
//! zagent-ctl may set them too; a malformed value is an error naming the annotation. Each one
//! lands in its field only where the spec has the section it belongs to (a process, a `linux`
//! section, a seccomp profile); a spec without that section is refused by validation anyway.

use std::collections::HashMap;

use oci_spec::runtime as oci;
use serde::de::DeserializeOwned;

use super::OciConvertError;

/// `process.user.umask`: 1 to 4 octal digits, at most 0777 (e.g. `"0077"`).
pub const UMASK_ANNOTATION: &str = "io.zagent.umask";
/// `domainname`, as it is.
pub const DOMAINNAME_ANNOTATION: &str = "io.zagent.domainname";
/// `linux.personality`, as its config.json JSON (`{"domain":"LINUX32"}`).
pub const PERSONALITY_ANNOTATION: &str = "io.zagent.personality";
/// `process.ioPriority`, as its config.json JSON.
pub const IO_PRIORITY_ANNOTATION: &str = "io.zagent.ioPriority";
/// `process.scheduler`, as its config.json JSON.
pub const SCHEDULER_ANNOTATION: &str = "io.zagent.scheduler";
/// `linux.seccomp.defaultErrnoRet`, in decimal.
pub const SECCOMP_ERRNO_ANNOTATION: &str = "io.zagent.seccomp.defaultErrnoRet";

type Result<T> = std::result::Result<T, OciConvertError>;

/// The annotations for `spec`'s carried fields, added to (or replacing those in) `all`.
pub(super) fn put(spec: &oci::Spec, all: &mut HashMap<String, String>) {
    let process = spec.process().as_ref();
    let linux = spec.linux().as_ref();
    let mut set = |key: &str, value: Option<String>| {
        if let Some(value) = value {
            all.insert(key.into(), value);
        }
    };
    set(
        UMASK_ANNOTATION,
        process
            .and_then(|p| p.user().umask())
            .map(|u| format!("{u:04o}")),
    );
    set(DOMAINNAME_ANNOTATION, spec.domainname().clone());
    set(
        PERSONALITY_ANNOTATION,
        linux.and_then(|l| json(l.personality())),
    );
    set(
        IO_PRIORITY_ANNOTATION,
        process.and_then(|p| json(p.io_priority())),
    );
    set(
        SCHEDULER_ANNOTATION,
        process.and_then(|p| json(p.scheduler())),
    );
    let errno = linux.and_then(|l| l.seccomp().as_ref()?.default_errno_ret());
    set(SECCOMP_ERRNO_ANNOTATION, errno.map(|e| e.to_string()));
}

/// Serialising an oci-spec value cannot fail (plain structs, string keys).
fn json<T: serde::Serialize>(value: &Option<T>) -> Option<String> {
    value.as_ref().and_then(|v| serde_json::to_string(v).ok())
}

/// Takes the carried annotations out of `all` and into `spec`'s fields.
pub(super) fn take(all: &mut HashMap<String, String>, spec: &mut oci::Spec) -> Result<()> {
    if let Some(v) = all.remove(DOMAINNAME_ANNOTATION) {
        spec.set_domainname(Some(v));
    }
    if let Some(mut p) = spec.process().clone() {
        let mut user = p.user().clone();
        user.set_umask(
            all.remove(UMASK_ANNOTATION)
                .map(|v| umask(&v))
                .transpose()?,
        );
        p.set_user(user);
        p.set_io_priority(parsed(all, IO_PRIORITY_ANNOTATION, "a process.ioPriority")?);
        p.set_scheduler(parsed(all, SCHEDULER_ANNOTATION, "a process.scheduler")?);
        spec.set_process(Some(p));
    }
    if let Some(mut l) = spec.linux().clone() {
        l.set_personality(parsed(all, PERSONALITY_ANNOTATION, "a linux.personality")?);
        if let Some(mut s) = l.seccomp().clone() {
            let errno = all.remove(SECCOMP_ERRNO_ANNOTATION);
            s.set_default_errno_ret(errno.map(|v| errno_ret(&v)).transpose()?);
            l.set_seccomp(Some(s));
        }
        spec.set_linux(Some(l));
    }
    // Whatever is left names a section the spec does not have: nothing to carry it into.
    for key in [
        UMASK_ANNOTATION,
        IO_PRIORITY_ANNOTATION,
        SCHEDULER_ANNOTATION,
        PERSONALITY_ANNOTATION,
        SECCOMP_ERRNO_ANNOTATION,
    ] {
        all.remove(key);
    }
    Ok(())
}

fn parsed<T: DeserializeOwned>(
    all: &mut HashMap<String, String>,
    key: &'static str,
    expected: &'static str,
) -> Result<Option<T>> {
    let Some(value) = all.remove(key) else {
        return Ok(None);
    };
    serde_json::from_str(&value)
        .map(Some)
        .map_err(|_| OciConvertError::BadAnnotation {
            key,
            value,
            expected,
        })
}

/// The umask annotation's value: octal digits (a leading 0 is usual), at most 0777.
fn umask(value: &str) -> Result<u32> {
    let digits_ok =
        (1..=4).contains(&value.len()) && value.bytes().all(|b| matches!(b, b'0'..=b'7'));
    match u32::from_str_radix(value, 8) {
        Ok(v) if digits_ok && v <= 0o777 => Ok(v),
        _ => Err(OciConvertError::BadAnnotation {
            key: UMASK_ANNOTATION,
            value: value.into(),
            expected: "an octal umask of at most 0777",
        }),
    }
}

/// An errno number (0 to 4095, what SECCOMP_RET_ERRNO can return).
fn errno_ret(value: &str) -> Result<u32> {
    match value.parse::<u32>() {
        Ok(v) if v <= 4095 && !value.starts_with('+') => Ok(v),
        _ => Err(OciConvertError::BadAnnotation {
            key: SECCOMP_ERRNO_ANNOTATION,
            value: value.into(),
            expected: "an errno number (0 to 4095)",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::{spec_from_grpc, spec_to_grpc};
    use serde_json::json;

    fn spec() -> oci::Spec {
        serde_json::from_value(json!({
            "ociVersion": "1.2.0",
            "domainname": "example.org",
            "process": {
                "args": ["sh"], "cwd": "/", "terminal": false, "noNewPrivileges": false,
                "user": { "uid": 0, "gid": 0, "umask": 0o027 },
                "ioPriority": { "class": "IOPRIO_CLASS_BE", "priority": 6 },
                "scheduler": { "policy": "SCHED_BATCH", "nice": 3 }
            },
            "linux": {
                "personality": { "domain": "LINUX32" },
                "seccomp": { "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38 }
            }
        }))
        .expect("test spec parses")
    }

    #[test]
    fn carried_fields_travel_as_annotations_and_come_back_as_fields() {
        let spec = spec();
        let sent = spec_to_grpc(&spec);
        let a = &sent.Annotations;
        assert_eq!(a[UMASK_ANNOTATION], "0027");
        assert_eq!(a[DOMAINNAME_ANNOTATION], "example.org");
        assert_eq!(a[PERSONALITY_ANNOTATION], r#"{"domain":"LINUX32"}"#);
        assert_eq!(a[SECCOMP_ERRNO_ANNOTATION], "38");
        assert!(a[SCHEDULER_ANNOTATION].contains("SCHED_BATCH"));
        assert!(a[IO_PRIORITY_ANNOTATION].contains("IOPRIO_CLASS_BE"));
        let back = spec_from_grpc(&sent).expect("converts back");
        let fields = |s: &oci::Spec| {
            let mut v = serde_json::to_value(s).unwrap();
            v.as_object_mut().unwrap().remove("annotations");
            v
        };
        assert_eq!(fields(&back), fields(&spec));
        assert_eq!(back.annotations().as_ref().map(|a| a.len()), Some(0));
    }

    #[test]
    fn a_malformed_carried_annotation_is_an_error_naming_it() {
        let bad = [
            (PERSONALITY_ANNOTATION, r#"{"domain":"LINUX64"}"#),
            (IO_PRIORITY_ANNOTATION, "best-effort"),
            (SCHEDULER_ANNOTATION, r#"{"policy":1}"#),
            (SECCOMP_ERRNO_ANNOTATION, "-1"),
            (SECCOMP_ERRNO_ANNOTATION, "4096"),
            (UMASK_ANNOTATION, "0800"),
        ];
        for (key, value) in bad {
            let mut sent = spec_to_grpc(&spec());
            sent.Annotations.insert(key.into(), value.into());
            match spec_from_grpc(&sent) {
                Err(OciConvertError::BadAnnotation { key: k, .. }) => assert_eq!(k, key),
                other => panic!("{key}={value}: {other:?}"),
            }
        }
    }
}
