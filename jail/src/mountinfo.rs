//! The one parser of the mount table (`/proc/self/mountinfo`) and of a process's cgroup
//! membership (`/proc/self/cgroup`). The child reads both before pivot_root, from the host's
//! /proc (which mount is the rootfs's parent; which cgroup hierarchies to mount in the
//! container); the agent reads the mount table at start-up (`detect`, through
//! `cgroups::Layout::detect`: which cgroup hierarchies exist) and at restart recovery (`parse`:
//! the leftover mounts under a state dir).

use std::path::{Path, PathBuf};

/// One line of /proc/self/mountinfo, with only the fields the jail uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// The path inside the filesystem that is the root of this mount.
    pub root: PathBuf,
    pub mount_point: PathBuf,
    /// The optional fields ("shared:N", "master:N", ...), space-separated.
    pub optional: String,
    pub fstype: String,
    pub super_options: String,
}

impl MountEntry {
    pub fn is_shared(&self) -> bool {
        self.optional.split(' ').any(|f| f.starts_with("shared:"))
    }
}

/// The kernel escapes space, tab, newline and backslash in paths as `\ooo` octal.
fn unescape(field: &str) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], octal) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

/// One line; None when it is not a mountinfo line (too few fields, no " - " separator).
pub fn parse_line(line: &str) -> Option<MountEntry> {
    let (left, right) = line.split_once(" - ")?;
    let mut l = left.split(' ');
    let root = unescape(l.nth(3)?);
    let mount_point = unescape(l.next()?);
    let optional = l.skip(1).collect::<Vec<_>>().join(" ");
    let mut r = right.split(' ');
    let fstype = r.next()?.to_string();
    let super_options = r.nth(1).unwrap_or("").to_string();
    Some(MountEntry {
        root,
        mount_point,
        optional,
        fstype,
        super_options,
    })
}

pub fn parse(text: &str) -> Vec<MountEntry> {
    text.lines().filter_map(parse_line).collect()
}

pub fn read() -> std::io::Result<Vec<MountEntry>> {
    Ok(parse(&std::fs::read_to_string("/proc/self/mountinfo")?))
}

/// The mount that contains `path` (canonical): the last-mounted entry with the longest
/// mount point that is a prefix of it.
pub fn containing<'a>(entries: &'a [MountEntry], path: &Path) -> Option<&'a MountEntry> {
    // max_by_key returns the last of equal maxima: the mount stacked on top.
    entries
        .iter()
        .filter(|e| path.starts_with(&e.mount_point))
        .max_by_key(|e| e.mount_point.as_os_str().len())
}

/// One line of /proc/self/cgroup: the v1 controllers (or "name=..."; empty for v2) and the
/// cgroup path as seen from the process's cgroup namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupEntry {
    pub controllers: Vec<String>,
    pub path: PathBuf,
}

pub fn parse_cgroups(text: &str) -> Vec<CgroupEntry> {
    let entry = |line: &str| {
        let mut f = line.splitn(3, ':');
        let _id = f.next()?;
        let controllers = f
            .next()?
            .split(',')
            .filter(|c| !c.is_empty())
            .map(String::from);
        Some(CgroupEntry {
            controllers: controllers.collect(),
            path: PathBuf::from(f.next()?),
        })
    };
    text.lines().filter_map(entry).collect()
}

pub fn read_cgroups() -> std::io::Result<Vec<CgroupEntry>> {
    Ok(parse_cgroups(&std::fs::read_to_string(
        "/proc/self/cgroup",
    )?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
27 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw,discard
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
40 31 0:37 /docker /sys/fs/cgroup/systemd rw,relatime master:3 - cgroup cgroup rw,name=systemd
50 27 0:40 / /tmp/a\\040b rw - tmpfs tmpfs rw
";

    #[test]
    fn unescapes_octal_only_where_complete() {
        assert_eq!(unescape(r"/a\040b\134c"), Path::new(r"/a b\c"));
        assert_eq!(unescape(r"/plain\"), Path::new(r"/plain\"));
        assert_eq!(unescape(r"/x\08"), Path::new(r"/x\08"));
        assert!(parse_line("1 2 3:4 / /m rw").is_none(), "no separator");
    }

    #[test]
    fn parses_fields_and_escapes() {
        let e = parse(SAMPLE);
        assert_eq!(e.len(), 5);
        assert!(e[0].is_shared());
        assert_eq!(
            e[2].mount_point,
            PathBuf::from("/sys/fs/cgroup/cpu,cpuacct")
        );
        assert_eq!(
            (e[2].fstype.as_str(), e[2].super_options.as_str()),
            ("cgroup", "rw,cpu,cpuacct")
        );
        assert_eq!(e[3].root, PathBuf::from("/docker"));
        assert_eq!(e[3].optional, "master:3");
        assert!(!e[3].is_shared());
        assert_eq!(e[4].mount_point, PathBuf::from("/tmp/a b"));
    }

    #[test]
    fn containing_picks_the_longest_prefix() {
        let e = parse(SAMPLE);
        let m = containing(&e, Path::new("/sys/fs/cgroup/cpu,cpuacct/x")).unwrap();
        assert_eq!(m.mount_point, PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"));
        let m = containing(&e, Path::new("/srv/rootfs")).unwrap();
        assert_eq!(m.mount_point, PathBuf::from("/"));
        // "/tmp/a b" is not a prefix of "/tmp/a bc" component-wise.
        assert_eq!(
            containing(&e, Path::new("/tmp/a bc")).unwrap().mount_point,
            PathBuf::from("/")
        );
    }

    #[test]
    fn parses_cgroup_membership() {
        let c = parse_cgroups("12:cpu,cpuacct:/zagent/c1\n1:name=systemd:/\n0::/x\n");
        assert_eq!(c[0].controllers, vec!["cpu", "cpuacct"]);
        assert_eq!(c[0].path, PathBuf::from("/zagent/c1"));
        assert_eq!(c[1].controllers, vec!["name=systemd"]);
        assert!(c[2].controllers.is_empty());
    }
}
