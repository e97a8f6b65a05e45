//! Reading the cgroup layout out of a mountinfo file (proc(5), /proc/<pid>/mountinfo).

use super::{CgroupError, Hierarchy, Layout};
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

/// Mount options of a v1 cgroup mount that are not controllers.
const NOT_CONTROLLERS: [&str; 8] = [
    "rw",
    "ro",
    "xattr",
    "noprefix",
    "clone_children",
    "cpuset_v2_mode",
    "favordynmods",
    "nofavordynmods",
];

pub(super) fn detect(mountinfo: &Path) -> Result<Layout, CgroupError> {
    let text = std::fs::read_to_string(mountinfo).map_err(|source| CgroupError::Detect {
        mountinfo: mountinfo.to_owned(),
        source,
    })?;
    let mut hierarchies: Vec<Hierarchy> = Vec::new();
    let mut unified = None;
    for (i, line) in text.lines().enumerate() {
        let malformed = || CgroupError::Mountinfo {
            mountinfo: mountinfo.to_owned(),
            line: i + 1,
        };
        let Some((mount, fstype, super_options)) = parse_line(line) else {
            if line.trim().is_empty() {
                continue;
            }
            return Err(malformed());
        };
        match fstype {
            "cgroup" => {
                let controllers = controllers(super_options);
                // The same hierarchy mounted twice (bind mounts) is used once, where first seen.
                if !controllers.is_empty()
                    && !hierarchies.iter().any(|h| h.controllers == controllers)
                {
                    hierarchies.push(Hierarchy { mount, controllers });
                }
            }
            "cgroup2" if unified.is_none() => unified = Some(mount),
            _ => {}
        }
    }
    // Named hierarchies (name=systemd) alone carry no controllers: then v2 is the real one.
    let has_controllers = hierarchies
        .iter()
        .flat_map(|h| &h.controllers)
        .any(|c| !c.starts_with("name="));
    match unified {
        _ if has_controllers => Ok(Layout::V1(hierarchies)),
        Some(root) => Ok(Layout::V2 { root }),
        None => Err(CgroupError::NotMounted(mountinfo.to_owned())),
    }
}

/// (mount point, fs type, super options) of one line, e.g.
/// `32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu`.
fn parse_line(line: &str) -> Option<(PathBuf, &str, &str)> {
    let fields: Vec<&str> = line.split(' ').collect();
    let mount = fields.get(4)?;
    // Optional fields (shared:N, master:N, ...) come between field 6 and the "-".
    let sep = fields.iter().skip(6).position(|f| *f == "-")? + 6;
    let fstype = fields.get(sep + 1)?;
    let super_options = fields.get(sep + 3)?;
    Some((unescape(mount), fstype, super_options))
}

fn controllers(super_options: &str) -> Vec<String> {
    super_options
        .split(',')
        .filter(|o| !o.is_empty() && !NOT_CONTROLLERS.contains(o))
        .filter(|o| o.starts_with("name=") || !o.contains('='))
        .map(str::to_owned)
        .collect()
}

/// The kernel writes space, tab, newline and backslash in paths as \ooo octal escapes.
fn unescape(field: &str) -> PathBuf {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match (bytes[i], octal) {
            (b'\\', Some(d)) => {
                let value = d.iter().fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
                out.push(value as u8);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_octal() {
        assert_eq!(unescape(r"/a\040b\134c"), Path::new(r"/a b\c"));
        assert_eq!(unescape(r"/plain\"), Path::new(r"/plain\"));
    }

    #[test]
    fn keeps_named_hierarchies_and_drops_options() {
        let c = controllers("rw,xattr,release_agent=/x,name=systemd");
        assert_eq!(c, vec!["name=systemd".to_owned()]);
        assert_eq!(controllers("rw,cpu,cpuacct"), vec!["cpu", "cpuacct"]);
    }
}
