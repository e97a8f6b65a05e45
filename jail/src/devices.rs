//! Step "devices": the device nodes of the config inside the rootfs, and the standard /dev
//! symlinks (fd, stdin, stdout, stderr, core when the host has /proc/kcore, ptmx -> pts/ptmx),
//! the way runc lays them out. Nodes are mknod'ed, or in a user namespace (where mknod is not
//! allowed) bind-mounted from the host's node of the same path. An existing file at a node's
//! path is never replaced: the same device is kept, anything else is EEXIST. When /dev is a bind mount of a
//! host directory nothing here runs: we must not write into the host's /dev.

use crate::error::{JailError, Step};
use crate::mounts::{self, Root};
use crate::{paths, sys};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::mount::MsFlags;
use nix::sys::stat::{makedev, Mode, SFlag};
use nix::unistd::{Gid, Uid, UnlinkatFlags};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::Path;
use wire::zygote::{ContainerConfig, Device, DeviceKind, NamespaceKind};

pub fn setup(root: &Root, cfg: &ContainerConfig) -> Result<(), JailError> {
    let dev_is_bind = cfg
        .mounts
        .iter()
        .any(|m| mounts::is_bind(m) && paths::clean(&m.destination) == Path::new("dev"));
    if dev_is_bind {
        return Ok(());
    }
    let in_userns = cfg.namespaces.iter().any(|n| n.kind == NamespaceKind::User);
    for d in &cfg.devices {
        let made = if in_userns {
            bind_node(root, d)
        } else {
            make_node(root, d)
        };
        made.map_err(|(op, errno)| {
            JailError::new(
                Step::Devices,
                format!(
                    "{op} {} ({:?} {}:{})",
                    d.path.display(),
                    d.kind,
                    d.major,
                    d.minor
                ),
                errno,
            )
        })?;
    }
    links(root)
}

type OpResult = Result<(), (&'static str, Errno)>;

fn make_node(root: &Root, d: &Device) -> OpResult {
    let rel = paths::clean(&d.path);
    let (parent_rel, name) = paths::split(&rel).ok_or(("mknod", Errno::EINVAL))?;
    let parent = paths::mkdir_all(root.fd.as_fd(), parent_rel).map_err(|e| ("resolve", e))?;
    let dir = Some(parent.as_raw_fd());
    // Whatever is at the path may be the bundle's own file (with a read-only root, or a
    // device outside /dev, nothing else is in between): it is never removed. The runtime spec
    // says a different file there is an error; a node that already is this device is kept
    // as it is (runc does the same).
    match nix::sys::stat::fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) if st.st_mode & SFlag::S_IFMT.bits() == SFlag::S_IFDIR.bits() => {
            return Err(("replace directory with", Errno::EISDIR));
        }
        Ok(st) if is_same_node(&st, d) => return Ok(()),
        Ok(_) => return Err(("refuse to replace the different file at", Errno::EEXIST)),
        Err(Errno::ENOENT) => {}
        Err(e) => return Err(("stat", e)),
    }
    let kind = file_type(d.kind);
    let mode = Mode::from_bits_truncate((d.mode & 0o7777) as libc::mode_t);
    let dev = makedev(d.major, d.minor);
    nix::sys::stat::mknodat(dir, name, kind, mode, dev).map_err(|e| ("mknod", e))?;
    let node = sys::openat(
        parent.as_fd(),
        Path::new(name),
        OFlag::O_PATH | OFlag::O_NOFOLLOW,
        0,
    )
    .map_err(|e| ("open", e))?;
    set_owner_and_mode(node.as_fd(), d).map_err(|e| ("chmod/chown", e))
}

fn file_type(kind: DeviceKind) -> SFlag {
    match kind {
        DeviceKind::Char => SFlag::S_IFCHR,
        DeviceKind::Block => SFlag::S_IFBLK,
        DeviceKind::Fifo => SFlag::S_IFIFO,
    }
}

/// Same file type and, for a char or block device, same major:minor.
fn is_same_node(st: &libc::stat, d: &Device) -> bool {
    if st.st_mode & SFlag::S_IFMT.bits() != file_type(d.kind).bits() {
        return false;
    }
    d.kind == DeviceKind::Fifo
        || (nix::sys::stat::major(st.st_rdev) == d.major
            && nix::sys::stat::minor(st.st_rdev) == d.minor)
}

/// mknod's mode went through the umask; set it exactly, through the fd so that nothing can
/// swap the node for a symlink in between.
fn set_owner_and_mode(node: BorrowedFd<'_>, d: &Device) -> Result<(), Errno> {
    let mode = Mode::from_bits_truncate((d.mode & 0o7777) as libc::mode_t);
    let follow = nix::sys::stat::FchmodatFlags::FollowSymlink;
    nix::sys::stat::fchmodat(None, sys::fd_path(node).as_str(), mode, follow)?;
    let (uid, gid) = (Some(Uid::from_raw(d.uid)), Some(Gid::from_raw(d.gid)));
    nix::unistd::fchownat(Some(node.as_raw_fd()), "", uid, gid, AtFlags::AT_EMPTY_PATH)
}

fn bind_node(root: &Root, d: &Device) -> OpResult {
    let rel = paths::clean(&d.path);
    let target = paths::create_target(root.fd.as_fd(), &rel, paths::Leaf::File, false)
        .map_err(|e| ("resolve", e))?;
    let source = d.path.to_str().ok_or(("bind", Errno::EINVAL))?;
    mounts::mount_fd(Some(source), target.as_fd(), None, MsFlags::MS_BIND, "")
        .map_err(|e| ("bind host node onto", e))
}

/// The /dev symlinks every container gets; an existing entry is left alone, except /dev/ptmx,
/// which must lead to this container's devpts instance and so replaces any non-directory.
fn links(root: &Root) -> Result<(), JailError> {
    let err = |what: String, errno| JailError::new(Step::Devices, what, errno);
    let dev = paths::mkdir_all(root.fd.as_fd(), Path::new("dev"))
        .map_err(|e| err("resolve /dev".into(), e))?;
    let mut wanted = vec![
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
    ];
    // Still the host's /proc here: the link is only useful if the kernel has kcore.
    if Path::new("/proc/kcore").exists() {
        wanted.push(("/proc/kcore", "core"));
    }
    let dir = Some(dev.as_raw_fd());
    for (target, name) in wanted {
        match nix::unistd::symlinkat(target, dir, name) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(err(format!("symlink /dev/{name} -> {target}"), e)),
        }
    }
    match nix::unistd::unlinkat(dir, "ptmx", UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => {}
        Err(e) => return Err(err("remove existing /dev/ptmx".into(), e)),
    }
    nix::unistd::symlinkat("pts/ptmx", dir, "ptmx")
        .map_err(|e| err("symlink /dev/ptmx -> pts/ptmx".into(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(dir: &Path) -> Root {
        let fd = sys::open(dir, OFlag::O_PATH | OFlag::O_DIRECTORY).unwrap();
        Root {
            fd,
            real: dir.to_path_buf(),
        }
    }

    #[test]
    fn links_are_created_and_existing_ones_kept() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("dev")).unwrap();
        std::os::unix::fs::symlink("/elsewhere", tmp.path().join("dev/stdin")).unwrap();
        std::fs::write(tmp.path().join("dev/ptmx"), b"").unwrap();
        let cfg = ContainerConfig::default();
        setup(&root(tmp.path()), &cfg).unwrap();
        let link = |n: &str| std::fs::read_link(tmp.path().join("dev").join(n)).unwrap();
        assert_eq!(link("fd"), Path::new("/proc/self/fd"));
        assert_eq!(link("stdin"), Path::new("/elsewhere"));
        assert_eq!(link("stderr"), Path::new("/proc/self/fd/2"));
        assert_eq!(link("ptmx"), Path::new("pts/ptmx"));
    }

    #[test]
    fn a_directory_in_the_way_of_a_node_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("dev/null")).unwrap();
        let cfg = ContainerConfig {
            devices: vec![Device {
                path: "/dev/null".into(),
                kind: DeviceKind::Char,
                major: 1,
                minor: 3,
                mode: 0o666,
                uid: 0,
                gid: 0,
            }],
            ..Default::default()
        };
        let err = setup(&root(tmp.path()), &cfg).unwrap_err();
        assert_eq!((err.step(), err.errno()), ("devices", libc::EISDIR));
        assert_eq!(
            err.to_string(),
            "replace directory with /dev/null (Char 1:3): EISDIR"
        );
    }

    fn device(path: &str, kind: DeviceKind, major: u64, minor: u64) -> Device {
        Device {
            path: path.into(),
            kind,
            major,
            minor,
            mode: 0o666,
            uid: nix::unistd::getuid().as_raw(),
            gid: nix::unistd::getgid().as_raw(),
        }
    }

    fn with_devices(devices: Vec<Device>) -> ContainerConfig {
        ContainerConfig {
            devices,
            ..Default::default()
        }
    }

    #[test]
    fn an_existing_regular_file_is_refused_and_left_alone() {
        // mknod of a fifo needs no privilege, so the refusal shows unprivileged too.
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("etc")).unwrap();
        let hostname = tmp.path().join("etc/hostname");
        std::fs::write(&hostname, b"bundle\n").unwrap();
        let cfg = with_devices(vec![device("/etc/hostname", DeviceKind::Fifo, 0, 0)]);
        let err = setup(&root(tmp.path()), &cfg).unwrap_err();
        assert_eq!((err.step(), err.errno()), ("devices", libc::EEXIST));
        assert_eq!(
            err.to_string(),
            "refuse to replace the different file at /etc/hostname (Fifo 0:0): EEXIST"
        );
        assert!(std::fs::symlink_metadata(&hostname).unwrap().is_file());
        assert_eq!(std::fs::read(&hostname).unwrap(), b"bundle\n");
    }

    #[test]
    fn an_existing_symlink_is_refused_and_left_alone() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("dev")).unwrap();
        let link = tmp.path().join("dev/fifo");
        std::os::unix::fs::symlink("/nowhere", &link).unwrap();
        let cfg = with_devices(vec![device("/dev/fifo", DeviceKind::Fifo, 0, 0)]);
        let err = setup(&root(tmp.path()), &cfg).unwrap_err();
        assert_eq!((err.step(), err.errno()), ("devices", libc::EEXIST));
        assert_eq!(std::fs::read_link(&link).unwrap(), Path::new("/nowhere"));
    }

    #[test]
    fn an_existing_node_of_the_same_kind_is_kept_as_it_is() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("dev")).unwrap();
        let fifo = tmp.path().join("dev/fifo");
        nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o600)).unwrap();
        let cfg = with_devices(vec![device("/dev/fifo", DeviceKind::Fifo, 0, 0)]);
        setup(&root(tmp.path()), &cfg).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let md = std::fs::symlink_metadata(&fifo).unwrap();
        assert_eq!(md.permissions().mode() & 0o7777, 0o600);
    }

    #[test]
    #[ignore = "requires root"]
    fn an_existing_device_is_kept_only_if_its_numbers_match() {
        crate::test_util::require_root();
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("dev")).unwrap();
        let null = tmp.path().join("dev/null");
        let mode = Mode::from_bits_truncate(0o600);
        nix::sys::stat::mknod(&null, SFlag::S_IFCHR, mode, makedev(1, 3)).unwrap();
        let same = with_devices(vec![device("/dev/null", DeviceKind::Char, 1, 3)]);
        setup(&root(tmp.path()), &same).unwrap();
        let zero = with_devices(vec![device("/dev/null", DeviceKind::Char, 1, 5)]);
        let err = setup(&root(tmp.path()), &zero).unwrap_err();
        assert_eq!((err.step(), err.errno()), ("devices", libc::EEXIST));
        let block = with_devices(vec![device("/dev/null", DeviceKind::Block, 1, 3)]);
        let err = setup(&root(tmp.path()), &block).unwrap_err();
        assert_eq!(err.errno(), libc::EEXIST);
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let md = std::fs::symlink_metadata(&null).unwrap();
        assert!(md.file_type().is_char_device());
        assert_eq!((md.rdev(), md.mode() & 0o7777), (makedev(1, 3), 0o600));
    }

    #[test]
    fn fifo_nodes_get_the_exact_mode() {
        // A fifo needs no privilege, so this runs unprivileged too.
        let tmp = tempfile::tempdir().unwrap();
        let cfg = ContainerConfig {
            devices: vec![Device {
                path: "/dev/sub/fifo".into(),
                kind: DeviceKind::Fifo,
                major: 0,
                minor: 0,
                mode: 0o606,
                uid: nix::unistd::getuid().as_raw(),
                gid: nix::unistd::getgid().as_raw(),
            }],
            ..Default::default()
        };
        setup(&root(tmp.path()), &cfg).unwrap();
        use std::os::unix::fs::{FileTypeExt, PermissionsExt};
        let md = std::fs::symlink_metadata(tmp.path().join("dev/sub/fifo")).unwrap();
        assert!(md.file_type().is_fifo());
        assert_eq!(md.permissions().mode() & 0o7777, 0o606);
    }
}
