//! Reading the cgroup layout out of a mountinfo file (proc(5), /proc/<pid>/mountinfo), through
//! the jail's one mountinfo parser (`crate::mountinfo`).

use super::{CgroupError, Hierarchy, Layout};
use std::path::Path;

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
        let Some(entry) = crate::mountinfo::parse_line(line) else {
            if line.trim().is_empty() {
                continue;
            }
            return Err(malformed());
        };
        let mount = entry.mount_point;
        match entry.fstype.as_str() {
            "cgroup" => {
                let controllers = controllers(&entry.super_options);
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
        _ if has_controllers => Ok(Layout::v1(hierarchies)),
        Some(root) => Ok(Layout::v2(root)),
        None => Err(CgroupError::NotMounted(mountinfo.to_owned())),
    }
}

fn controllers(super_options: &str) -> Vec<String> {
    super_options
        .split(',')
        .filter(|o| !o.is_empty() && !NOT_CONTROLLERS.contains(o))
        .filter(|o| o.starts_with("name=") || !o.contains('='))
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_named_hierarchies_and_drops_options() {
        let c = controllers("rw,xattr,release_agent=/x,name=systemd");
        assert_eq!(c, vec!["name=systemd".to_owned()]);
        assert_eq!(controllers("rw,cpu,cpuacct"), vec!["cpu", "cpuacct"]);
    }
}
