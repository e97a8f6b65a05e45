//! Mounts of type "cgroup" (what `runc spec` puts at /sys/fs/cgroup): the host's cgroup layout
//! decides what that means. On a unified (v2) host it is a cgroup2 mount. On a v1 or hybrid
//! host it is a tmpfs holding one directory per v1 hierarchy: each one mounted fresh when the
//! container has a cgroup namespace (so it sees its own cgroup as the root), or else a bind of
//! the container's own cgroup directory; co-mounted controllers get the usual symlinks
//! (cpu -> cpu,cpuacct). The cgroup2 "unified" mount of a hybrid host is left out, as runc does.

use super::{fresh, mount_fd, remount_bind_fd, Root, StepResult};
use crate::mountinfo::{self, CgroupEntry, MountEntry};
use crate::paths;
use nix::errno::Errno;
use nix::mount::MsFlags;
use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use wire::zygote::Mount;

pub(super) fn mount(root: &Root, rel: &Path, m: &Mount, cgroupns: bool) -> StepResult {
    let fd = root.fd.as_fd();
    let flags = super::flags(m.flags);
    let host = statfs("/sys/fs/cgroup").map_err(|e| ("statfs host /sys/fs/cgroup for", e))?;
    if host.filesystem_type() == CGROUP2_SUPER_MAGIC {
        return fresh(fd, rel, "cgroup2", "cgroup2", flags, &m.data);
    }
    let tmpfs_flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    super::tmpfs(fd, rel, "tmpfs", tmpfs_flags, "mode=755")?;
    let io = |e: std::io::Error| ("read the cgroup layout for", crate::error::errno_of(&e));
    let mounts = mountinfo::read().map_err(io)?;
    let own = mountinfo::read_cgroups().map_err(io)?;
    for (h, member) in hierarchies(&mounts, &own, &root.real) {
        let name = h.mount_point.file_name().ok_or(("mount", Errno::EINVAL))?;
        let sub = rel.join(name);
        if cgroupns {
            fresh(
                fd,
                &sub,
                "cgroup",
                "cgroup",
                flags,
                &member.controllers.join(","),
            )?;
        } else {
            bind_own(fd, &sub, h, member, flags)?;
        }
        comount_links(fd, rel, &name.to_string_lossy())?;
    }
    if flags.contains(MsFlags::MS_RDONLY) {
        let top = paths::open_target(fd, rel, false).map_err(|e| ("reopen", e))?;
        remount_bind_fd(top.as_fd(), MsFlags::MS_RDONLY | tmpfs_flags)
            .map_err(|e| ("remount", e))?;
    }
    Ok(())
}

/// The host's v1 hierarchies (one mount each, the container's own mounts under the rootfs left
/// out), each paired with the process's membership line for it.
fn hierarchies<'a>(
    mounts: &'a [MountEntry],
    own: &'a [CgroupEntry],
    rootfs: &Path,
) -> Vec<(&'a MountEntry, &'a CgroupEntry)> {
    let mut out: Vec<(&MountEntry, &CgroupEntry)> = Vec::new();
    for h in mounts
        .iter()
        .filter(|e| e.fstype == "cgroup" && !e.mount_point.starts_with(rootfs))
    {
        let opts: Vec<&str> = h.super_options.split(',').collect();
        let member = own.iter().find(|c| {
            !c.controllers.is_empty() && c.controllers.iter().all(|k| opts.contains(&k.as_str()))
        });
        let Some(member) = member else { continue };
        let seen = out
            .iter()
            .any(|(o, _)| o.mount_point.file_name() == h.mount_point.file_name());
        if !seen {
            out.push((h, member));
        }
    }
    out
}

/// Without a cgroup namespace: the container's own cgroup directory of this hierarchy.
fn bind_own(
    root: std::os::fd::BorrowedFd<'_>,
    sub: &Path,
    h: &MountEntry,
    member: &CgroupEntry,
    flags: MsFlags,
) -> StepResult {
    let source = own_dir(h, member);
    let target =
        paths::create_target(root, sub, paths::Leaf::Dir, false).map_err(|e| ("resolve", e))?;
    let source = source.to_str().ok_or(("bind", Errno::EINVAL))?;
    mount_fd(
        Some(source),
        target.as_fd(),
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        "",
    )
    .map_err(|e| ("bind cgroup for", e))?;
    let rest = flags - (MsFlags::MS_BIND | MsFlags::MS_REC);
    if rest.is_empty() {
        return Ok(());
    }
    let mounted = paths::open_target(root, sub, false).map_err(|e| ("reopen", e))?;
    remount_bind_fd(mounted.as_fd(), rest).map_err(|e| ("remount", e))
}

/// Host path of the process's cgroup in hierarchy `h`: its mount point plus the cgroup path
/// relative to the mount's root.
fn own_dir(h: &MountEntry, member: &CgroupEntry) -> PathBuf {
    let rel = member.path.strip_prefix(&h.root).unwrap_or(&member.path);
    h.mount_point.join(paths::clean(rel))
}

fn comount_links(root: std::os::fd::BorrowedFd<'_>, rel: &Path, name: &str) -> StepResult {
    if !name.contains(',') {
        return Ok(());
    }
    let dir = paths::open_target(root, rel, false).map_err(|e| ("reopen", e))?;
    for part in name.split(',') {
        use std::os::fd::AsRawFd;
        match nix::unistd::symlinkat(name, Some(dir.as_raw_fd()), part) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(("link co-mounted controllers for", e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hierarchies_pair_mounts_with_membership() {
        let mounts = mountinfo::parse(
            "\
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
40 31 0:37 /docker /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
42 31 0:39 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids
43 31 0:39 / /r/sys/fs/cgroup/pids rw - cgroup cgroup rw,pids
44 31 0:39 / /elsewhere/pids rw - cgroup cgroup rw,pids
",
        );
        let own = mountinfo::parse_cgroups(
            "5:pids:/c1\n4:cpu,cpuacct:/c1\n1:name=systemd:/docker/c1\n0::/c1\n",
        );
        let h = hierarchies(&mounts, &own, Path::new("/r"));
        let names: Vec<_> = h.iter().map(|(m, _)| m.mount_point.clone()).collect();
        assert_eq!(
            names,
            vec![
                PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"),
                PathBuf::from("/sys/fs/cgroup/systemd"),
                PathBuf::from("/sys/fs/cgroup/pids"),
            ]
        );
        assert_eq!(h[0].1.controllers.join(","), "cpu,cpuacct");
        assert_eq!(h[1].1.controllers.join(","), "name=systemd");
        assert_eq!(
            own_dir(h[1].0, h[1].1),
            PathBuf::from("/sys/fs/cgroup/systemd/c1")
        );
        assert_eq!(
            own_dir(h[2].0, h[2].1),
            PathBuf::from("/sys/fs/cgroup/pids/c1")
        );
    }
}
