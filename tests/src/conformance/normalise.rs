//! Normalising a probe report: what differs between any two runs of the same spec, whichever
//! the runtime, is rewritten to a stable form, so that only real differences are left.
//! - the run's bundle dir (a random temp path) becomes `<bundle>`, the container id `<id>`;
//! - `pipe:[N]`, `socket:[N]` and `anon_inode` numbers become `*`;
//! - a namespace link becomes `host` when it is the test process's (the host's) namespace and
//!   `new` otherwise;
//! - in mountinfo, mount ids, parent ids, anonymous device numbers (`0:N`: tmpfs, proc, ...)
//!   and peer group ids become mount points (so which mounts share a superblock or a peer
//!   group still shows, and a line does not depend on where it is in the table), a parent
//!   outside the container's table is `-`;
//! - a PPid other than 0 (a variant without a pid namespace) is `other`.

use std::collections::HashMap;

pub struct Normaliser {
    pub bundle: String,
    pub id: String,
    /// `kind:[inode]` of the host's namespaces.
    pub host_ns: Vec<String>,
}

/// The test process's namespace links (`net:[4026531840]`, ...): the host's.
pub fn host_namespaces() -> Vec<String> {
    let Ok(rd) = std::fs::read_dir("/proc/self/ns") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .map(|l| l.to_string_lossy().into_owned())
        .collect()
}

impl Normaliser {
    pub fn report(&self, text: &str) -> String {
        let text = text
            .replace(&self.bundle, "<bundle>")
            .replace(&self.id, "<id>");
        let mut out: Vec<String> = Vec::new();
        let mut section = "";
        let mut table: Vec<&str> = Vec::new();
        for line in text.lines() {
            if let Some(name) = line.strip_prefix("== ") {
                out.extend(mountinfo(&std::mem::take(&mut table)));
                section = name;
                out.push(line.to_string());
                continue;
            }
            match section {
                "mountinfo" => table.push(line),
                "namespaces" => out.push(self.namespace(line)),
                _ => out.push(inodes(&ppid(line))),
            }
        }
        out.extend(mountinfo(&table));
        out.iter().map(|l| format!("{l}\n")).collect()
    }

    fn namespace(&self, line: &str) -> String {
        match line.split_once(": ") {
            Some((name, link)) if link.ends_with(']') => {
                let whose = if self.host_ns.iter().any(|h| h == link) {
                    "host"
                } else {
                    "new"
                };
                format!("{name}: {whose}")
            }
            _ => line.to_string(),
        }
    }
}

fn ppid(line: &str) -> String {
    match line.strip_prefix("PPid: ") {
        Some(p) if p.trim() != "0" => "PPid: other".into(),
        _ => line.to_string(),
    }
}

/// `pipe:[123]` -> `pipe:[*]`, and the same for sockets and anonymous inodes.
fn inodes(line: &str) -> String {
    let mut out = line.to_string();
    for kind in ["pipe:[", "socket:[", "anon_inode:["] {
        let mut from = 0;
        while let Some(at) = out[from..].find(kind).map(|i| i + from + kind.len()) {
            let Some(end) = out[at..].find(']').map(|i| i + at) else {
                break;
            };
            out.replace_range(at..end, "*");
            from = at + 1;
        }
    }
    out
}

/// A mountinfo table with every number that differs between runs replaced by a mount point,
/// so that a line reads the same wherever it is in the table (a different mount order then
/// shows as the same lines moved): a mount's id and its parent's become their mount points
/// (`#2` for the second mount stacked on the same point, and so on), an anonymous device
/// (`0:N`: tmpfs, proc, ...) the first mount point (in sort order) it is mounted at, a peer
/// group the first mount point of its members (`outside` for a master group none of the
/// container's mounts is in).
fn mountinfo<'a>(lines: &[&'a str]) -> Vec<String> {
    let fields: Vec<Vec<&'a str>> = lines.iter().map(|l| l.split(' ').collect()).collect();
    let mut names: HashMap<&'a str, String> = HashMap::new();
    let mut seen: HashMap<&'a str, usize> = HashMap::new();
    let mut devices: HashMap<&'a str, String> = HashMap::new();
    let mut groups: HashMap<&'a str, String> = HashMap::new();
    for f in fields.iter().filter(|f| f.len() >= 7) {
        let n = seen.entry(f[4]).or_insert(0);
        *n += 1;
        let name = if *n == 1 {
            f[4].to_string()
        } else {
            format!("{}#{n}", f[4])
        };
        let first = |map: &mut HashMap<&'a str, String>, key: &'a str| {
            let e = map.entry(key).or_insert_with(|| name.clone());
            if name < *e {
                *e = name.clone();
            }
        };
        if f[2].starts_with("0:") {
            first(&mut devices, f[2]);
        }
        for tag in optional(f) {
            if let Some(g) = tag.strip_prefix("shared:") {
                first(&mut groups, g);
            }
        }
        names.insert(f[0], name);
    }
    lines
        .iter()
        .zip(&fields)
        .map(|(line, f)| {
            if f.len() < 7 {
                return line.to_string();
            }
            let parent = names.get(f[1]).map_or("-", String::as_str);
            let dev = devices
                .get(f[2])
                .map_or_else(|| f[2].to_string(), |m| format!("0:<{m}>"));
            let mut out = vec![names[f[0]].clone(), parent.to_string(), dev];
            out.extend(f[3..6].iter().map(|x| x.to_string()));
            for tag in optional(f) {
                out.push(match tag.split_once(':') {
                    Some((kind @ ("shared" | "master"), g)) => {
                        let group = groups.get(g).map_or("outside", String::as_str);
                        format!("{kind}:<{group}>")
                    }
                    _ => tag.to_string(),
                });
            }
            out.extend(f[6 + optional(f).len()..].iter().map(|x| x.to_string()));
            out.join(" ")
        })
        .collect()
}

/// The optional fields of a mountinfo line (between the options and the "-").
fn optional<'a>(f: &[&'a str]) -> Vec<&'a str> {
    f[6..].iter().take_while(|x| **x != "-").copied().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n() -> Normaliser {
        Normaliser {
            bundle: "/tmp/zagent-rootfsAB12".into(),
            id: "zagent-conf-1-2".into(),
            host_ns: vec!["net:[4026531840]".into()],
        }
    }

    #[test]
    fn mountinfo_numbers_become_mount_points() {
        let text = "== mountinfo\n\
            103 57 254:0 /tmp/zagent-rootfsAB12/rootfs / ro,relatime - ext4 /dev/vda rw\n\
            104 103 0:60 / /proc rw,relatime shared:7 - proc proc rw\n\
            58 104 0:60 /bus /proc/bus ro,relatime shared:7 master:1 - proc proc rw\n\
            59 58 0:61 / /proc/bus rw - tmpfs tmpfs rw\n";
        assert_eq!(
            n().report(text),
            "== mountinfo\n\
             / - 254:0 <bundle>/rootfs / ro,relatime - ext4 /dev/vda rw\n\
             /proc / 0:</proc> / /proc rw,relatime shared:</proc> - proc proc rw\n\
             /proc/bus /proc 0:</proc> /bus /proc/bus ro,relatime shared:</proc> master:<outside> - proc proc rw\n\
             /proc/bus#2 /proc/bus 0:</proc/bus#2> / /proc/bus rw - tmpfs tmpfs rw\n"
        );
    }

    #[test]
    fn namespaces_are_host_or_new_and_inodes_go() {
        let text = "== namespaces\nnet: net:[4026531840]\npid: pid:[4026532536]\n\
                    == fds\n0 -> pipe:[1043178]\n1 -> socket:[9]\n== identity\nPPid: 77\n\
                    cgroup: /zagent/zagent-conf-1-2\n";
        assert_eq!(
            n().report(text),
            "== namespaces\nnet: host\npid: new\n== fds\n0 -> pipe:[*]\n1 -> socket:[*]\n\
             == identity\nPPid: other\ncgroup: /zagent/<id>\n"
        );
    }
}
