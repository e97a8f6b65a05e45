//! Reading a bundle's config.json into the spec zagent-ctl sends, as runc would read it, and
//! with what the Kata protocol cannot carry refused here rather than lost on the way:
//! - capability names oci-spec does not know are dropped with a warning (runc warns and runs;
//!   oci-spec would reject the whole file);
//! - root.path and the sources of bind mounts are made absolute against the bundle dir (runtime
//!   spec 1.0.2+ allows bind sources relative to the bundle; the agent, like Kata's, is handed
//!   absolute host paths by its shim and refuses relative ones);
//! - properties the spec parser does not know are ignored with a warning (the runtime spec:
//!   a runtime MUST ignore unknown properties), except runtime-spec fields it misses, which are
//!   refused: `linux.intelRdt.enableCMT`/`enableMBM` (zagent has no Intel RDT support);
//! - what the Kata protocol cannot carry is refused by name (`wire::oci::check_sendable`), e.g.
//!   `linux.resources.unified` or a memory swappiness of 0 (which proto3 sends as "unset").

use anyhow::{bail, Context};
use oci_spec::runtime::{Capability, Spec};
use serde_json::Value;
use std::path::{Component, Path, PathBuf};

const CAP_SETS: [&str; 5] = [
    "bounding",
    "effective",
    "inheritable",
    "permitted",
    "ambient",
];

/// The bundle's spec, ready to send; `args`, if given, replace the process's.
pub fn load_spec(bundle: &Path, args: Option<Vec<String>>) -> anyhow::Result<Spec> {
    let bundle =
        std::fs::canonicalize(bundle).with_context(|| format!("bundle {}", bundle.display()))?;
    let path = bundle.join("config.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut value: Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    for warning in drop_unknown_capabilities(&mut value) {
        eprintln!("zagent-ctl: warning: {warning}");
    }
    let mut spec: Spec = serde_json::from_value(value.clone())
        .with_context(|| format!("parsing {}", path.display()))?;
    let parsed = serde_json::to_value(&spec).context("re-encoding the spec")?;
    for pointer in unparsed("", &value, &parsed) {
        if MISSED_FIELDS.contains(&pointer.as_str()) {
            bail!("config.json: {pointer} is not supported (zagent has no Intel RDT support)");
        }
        eprintln!("zagent-ctl: warning: config.json: ignoring unknown property {pointer}");
    }
    resolve_paths(&mut spec, &bundle);
    wire::oci::check_sendable(&spec).context("config.json")?;
    if let (Some(args), Some(mut process)) = (args, spec.process().clone()) {
        process.set_args(Some(args));
        spec.set_process(Some(process));
    }
    Ok(spec)
}

/// Runtime-spec fields the spec parser (oci-spec) does not read, under its own spellings.
const MISSED_FIELDS: [&str; 2] = ["/linux/intelRdt/enableCMT", "/linux/intelRdt/enableMBM"];

/// The JSON pointers of the properties of `original` that `parsed` (the spec as the parser
/// read it, encoded again) does not have. Null and empty values ask for nothing and are not
/// listed; arrays are walked element by element.
fn unparsed(at: &str, original: &Value, parsed: &Value) -> Vec<String> {
    let empty = |v: &Value| match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    };
    match (original, parsed) {
        (Value::Object(o), Value::Object(p)) => o
            .iter()
            .filter(|(_, v)| !empty(v))
            .flat_map(|(k, v)| {
                let here = format!("{at}/{k}");
                match p.get(k) {
                    None => vec![here],
                    Some(pv) => unparsed(&here, v, pv),
                }
            })
            .collect(),
        (Value::Array(o), Value::Array(p)) => o
            .iter()
            .zip(p)
            .enumerate()
            .flat_map(|(i, (v, pv))| unparsed(&format!("{at}/{i}"), v, pv))
            .collect(),
        _ => Vec::new(),
    }
}

/// Removes the names oci-spec cannot parse from every capability set; one warning per set
/// that had any, naming them (runc: "ignoring unknown or unavailable capabilities").
fn drop_unknown_capabilities(spec: &mut Value) -> Vec<String> {
    let mut warnings = Vec::new();
    let Some(caps) = spec.pointer_mut("/process/capabilities") else {
        return warnings;
    };
    for set in CAP_SETS {
        let Some(Value::Array(names)) = caps.get_mut(set) else {
            continue;
        };
        let mut unknown = Vec::new();
        names.retain(|name| {
            let known = serde_json::from_value::<Capability>(name.clone()).is_ok();
            if !known {
                unknown.push(name.to_string());
            }
            known
        });
        if !unknown.is_empty() {
            warnings.push(format!(
                "ignoring unknown capabilities in process.capabilities.{set}: {}",
                unknown.join(", ")
            ));
        }
    }
    warnings
}

/// root.path and relative bind mount sources joined onto the (canonical) bundle dir. Like runc,
/// a mount is a bind mount when its options say `bind` or `rbind` (or its type is "bind").
fn resolve_paths(spec: &mut Spec, bundle: &Path) {
    if let Some(mut root) = spec.root().clone() {
        if root.path().is_relative() {
            root.set_path(bundle.join(root.path()));
            spec.set_root(Some(root));
        }
    }
    let Some(mut mounts) = spec.mounts().clone() else {
        return;
    };
    for m in &mut mounts {
        let options = m.options().as_deref().unwrap_or_default();
        let is_bind = m.typ().as_deref() == Some("bind")
            || options.iter().any(|o| o == "bind" || o == "rbind");
        match m.source().clone() {
            Some(source) if is_bind && source.is_relative() => {
                m.set_source(Some(joined_clean(bundle, &source)));
            }
            _ => {}
        }
    }
    spec.set_mounts(Some(mounts));
}

/// `base/rel` cleaned lexically (Go's filepath.Join, which runc uses): "." dropped, ".." pops.
fn joined_clean(base: &Path, rel: &Path) -> PathBuf {
    let mut out = base.to_path_buf();
    for c in rel.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// What of `linux.resources` the Kata protocol cannot carry (create and update alike).
pub fn refuse_unsendable_resources(
    resources: Option<&oci_spec::runtime::LinuxResources>,
) -> anyhow::Result<()> {
    let swappiness = resources.and_then(|r| r.memory().as_ref()?.swappiness());
    if swappiness == Some(0) {
        bail!(
            "linux.resources.memory.swappiness 0 cannot be sent: the Kata protocol sends 0 as \
             \"unset\" (the kernel's default would apply); use 1 for the least swapping"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_capabilities_are_dropped_with_a_warning() {
        let mut spec = json!({ "process": { "capabilities": {
            "bounding": ["CAP_KILL", "CAP_NOT_A_CAP", "CAP_CHOWN"],
            "effective": ["CAP_KILL"],
            "ambient": ["CAP_ALSO_UNKNOWN"]
        }}});
        let warnings = drop_unknown_capabilities(&mut spec);
        assert_eq!(
            spec["process"]["capabilities"],
            json!({ "bounding": ["CAP_KILL", "CAP_CHOWN"], "effective": ["CAP_KILL"], "ambient": [] })
        );
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].contains("bounding") && warnings[0].contains("CAP_NOT_A_CAP"));
        assert!(warnings[1].contains("ambient") && warnings[1].contains("CAP_ALSO_UNKNOWN"));
        assert!(drop_unknown_capabilities(&mut json!({})).is_empty());
    }

    #[test]
    fn properties_the_parser_drops_are_found() {
        let original = json!({
            "ociVersion": "1.2.0",
            "future": {"x": 1},
            "empty": [],
            "process": { "cwd": "/", "user": { "uid": 0, "gid": 0 }, "typo": true },
            "linux": { "intelRdt": { "closID": "c", "enableMBM": true },
                       "devices": [{ "path": "/dev/x", "type": "c", "major": 1, "minor": 2,
                                     "extra": 1 }] }
        });
        let spec: Spec = serde_json::from_value(original.clone()).unwrap();
        let parsed = serde_json::to_value(&spec).unwrap();
        let mut found = unparsed("", &original, &parsed);
        found.sort();
        assert_eq!(
            found,
            [
                "/future",
                "/linux/devices/0/extra",
                "/linux/intelRdt/enableMBM",
                "/process/typo"
            ]
        );
    }

    #[test]
    fn relative_bind_sources_resolve_against_the_bundle() {
        let mut spec: Spec = serde_json::from_value(json!({
            "ociVersion": "1.0.2",
            "root": { "path": "rootfs" },
            "mounts": [
                { "destination": "/a", "source": "data", "options": ["rbind"] },
                { "destination": "/b", "type": "bind", "source": "./x/../y" },
                { "destination": "/c", "source": "/abs", "options": ["bind"] },
                { "destination": "/proc", "type": "proc", "source": "proc" }
            ]
        }))
        .unwrap();
        resolve_paths(&mut spec, Path::new("/bundle"));
        let sources: Vec<_> = spec
            .mounts()
            .as_ref()
            .unwrap()
            .iter()
            .map(|m| m.source().clone().unwrap())
            .collect();
        let want = ["/bundle/data", "/bundle/y", "/abs", "proc"];
        assert_eq!(sources, want.map(PathBuf::from));
        assert_eq!(
            spec.root().as_ref().unwrap().path(),
            Path::new("/bundle/rootfs")
        );
    }
}
