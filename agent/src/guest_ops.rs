//! The guest-wide RPCs of Kata's agent that touch the guest rather than a container, as plain
//! functions of the roots they work under (sysfs, /dev/random, the copy base), so that tests
//! run them against temp dirs: OnlineCPUMem and MemHotplugByProbe (sysfs writes), CopyFile
//! (files the shim copies in when there is no shared filesystem), GetVolumeStats (statfs),
//! SetGuestDateTime (the guest's clock), ReseedRandomDev (entropy from the host) and
//! RemoveStaleVirtiofsShareMounts (the share's mount points stat'ed, from a mount table given).

use crate::error::AgentError;
use nix::sys::stat::SFlag;
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};
use wire::agent::{CopyFileRequest, OnlineCPUMemRequest};
use wire::csi::{volume_usage::Unit, VolumeStatsResponse, VolumeUsage};

/// The largest file CopyFile makes (Kata copies config files: hosts, resolv.conf, secrets).
pub const MAX_COPY_SIZE: i64 = 256 << 20;

/// How long OnlineCPUMem keeps trying to bring the CPUs it was asked for online.
const CPU_ONLINE_WAIT: Duration = Duration::from_secs(5);

fn invalid(what: impl Into<String>) -> AgentError {
    AgentError::InvalidArgument(what.into())
}

fn write_file(path: &Path, text: &str) -> Result<(), AgentError> {
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| AgentError::io(format!("write {text:?} to {}", path.display()), e))
}

/// OnlineCPUMem: every offline memory block online (unless `cpu_only`), then offline CPUs
/// online until `nb_cpus` of them came online (retried for a while: a hot-plugged CPU can show
/// up late); fewer than asked is DEADLINE_EXCEEDED.
pub fn online_cpu_mem(sys: &Path, req: &OnlineCPUMemRequest) -> Result<(), AgentError> {
    if !req.cpu_only {
        for block in entries(&sys.join("devices/system/memory"), "memory")? {
            let state = block.join("state");
            if std::fs::read_to_string(&state).is_ok_and(|s| s.trim() == "offline") {
                write_file(&state, "online")?;
            }
        }
    }
    let mut onlined = 0u32;
    let deadline = Instant::now() + CPU_ONLINE_WAIT;
    while onlined < req.nb_cpus {
        for cpu in entries(&sys.join("devices/system/cpu"), "cpu")? {
            let online = cpu.join("online");
            if onlined < req.nb_cpus
                && std::fs::read_to_string(&online).is_ok_and(|s| s.trim() == "0")
            {
                write_file(&online, "1")?;
                onlined += 1;
            }
        }
        if onlined >= req.nb_cpus {
            break;
        }
        if Instant::now() >= deadline {
            return Err(AgentError::Timeout(format!(
                "only {onlined} of {} CPUs came online",
                req.nb_cpus
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// The `<prefix>N` entries of `dir` (cpu0, memory12, ...), in numeric order.
fn entries(dir: &Path, prefix: &str) -> Result<Vec<PathBuf>, AgentError> {
    let read =
        std::fs::read_dir(dir).map_err(|e| AgentError::io(format!("read {}", dir.display()), e))?;
    let mut numbered: Vec<(u64, PathBuf)> = read
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let n = name.strip_prefix(prefix)?.parse().ok()?;
            Some((n, e.path()))
        })
        .collect();
    numbered.sort();
    Ok(numbered.into_iter().map(|(_, p)| p).collect())
}

/// MemHotplugByProbe: each address written to the memory probe file, as Kata writes it.
pub fn mem_hotplug_by_probe(sys: &Path, addrs: &[u64]) -> Result<(), AgentError> {
    if addrs.len() > 4096 {
        return Err(invalid("more than 4096 probe addresses"));
    }
    let probe = sys.join("devices/system/memory/probe");
    addrs
        .iter()
        .try_for_each(|a| write_file(&probe, &format!("{a:#X}")))
}

/// SetGuestDateTime: the guest's wall clock.
pub fn set_guest_date_time(sec: i64, usec: i64) -> Result<(), AgentError> {
    if sec < 0 || !(0..1_000_000).contains(&usec) {
        return Err(invalid(format!("time {sec}s {usec}us is out of range")));
    }
    let tv = libc::timeval {
        tv_sec: sec as libc::time_t,
        tv_usec: usec as libc::suseconds_t,
    };
    // SAFETY: settimeofday reads the timeval we pass, valid for the call, and no timezone.
    let r = unsafe { libc::settimeofday(&tv, std::ptr::null()) };
    nix::errno::Errno::result(r)
        .map(drop)
        .map_err(|e| AgentError::io("settimeofday", e.into()))
}

/// ReseedRandomDev: the host's entropy mixed into the guest's pool, then the CRNG reseeded
/// from it (RNDRESEEDCRNG), as Kata does.
pub fn reseed_random_dev(random: &Path, data: &[u8]) -> Result<(), AgentError> {
    if data.len() > 4096 {
        return Err(invalid("more than 4096 bytes of seed"));
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(random)
        .map_err(|e| AgentError::io(format!("open {}", random.display()), e))?;
    f.write_all(data)
        .map_err(|e| AgentError::io("write the seed", e))?;
    nix::ioctl_none!(reseed_crng, b'R', 0x07);
    // SAFETY: RNDRESEEDCRNG takes no argument; the fd is the random device we just opened.
    unsafe { reseed_crng(std::os::fd::AsRawFd::as_raw_fd(&f)) }
        .map_err(|e| AgentError::io("RNDRESEEDCRNG", e.into()))?;
    Ok(())
}

/// GetVolumeStats: bytes and inodes of the filesystem at `path`, in CSI's shape.
pub fn volume_stats(path: &Path) -> Result<VolumeStatsResponse, AgentError> {
    if !path.is_absolute() {
        return Err(invalid(format!("volume path {path:?} is not absolute")));
    }
    let st = nix::sys::statvfs::statvfs(path)
        .map_err(|e| AgentError::io(format!("statvfs {}", path.display()), e.into()))?;
    let frag = st.fragment_size();
    let usage = |unit: Unit, total: u64, free: u64, avail: u64| VolumeUsage {
        total,
        available: avail,
        used: total.saturating_sub(free),
        unit: unit.into(),
        ..Default::default()
    };
    Ok(VolumeStatsResponse {
        usage: vec![
            usage(
                Unit::BYTES,
                st.blocks() * frag,
                st.blocks_free() * frag,
                st.blocks_available() * frag,
            ),
            usage(
                Unit::INODES,
                st.files(),
                st.files_free(),
                st.files_available(),
            ),
        ],
        ..Default::default()
    })
}

/// CopyFile: a directory, a symlink (to `data`) or a chunk of a regular file at `offset`, under
/// `base` only; a file is written to `<path>.tmp` and renamed into place, with its mode and
/// owner, once it is `file_size` bytes long (Kata's protocol: the shim sends the chunks in
/// order, so the file reaches its size with the last one).
pub fn copy_file(base: &Path, req: &CopyFileRequest) -> Result<(), AgentError> {
    let path = PathBuf::from(&req.path);
    let clean = path
        .components()
        .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
    if !clean || !path.starts_with(base) || path == base {
        return Err(invalid(format!(
            "path {path:?} is not a clean path under {base:?}"
        )));
    }
    let (size, offset) = (req.file_size, req.offset);
    let end = offset.checked_add(req.data.len() as i64);
    if !(0..=MAX_COPY_SIZE).contains(&size)
        || offset < 0
        || end.is_none_or(|e| e > size.max(req.data.len() as i64))
    {
        return Err(invalid(format!(
            "offset {offset} + {} bytes does not fit file_size {size}",
            req.data.len()
        )));
    }
    if let Some(parent) = path.parent().filter(|p| !p.exists()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| AgentError::io(format!("mkdir {}", parent.display()), e))?;
        let mode = std::fs::Permissions::from_mode(req.dir_mode & 0o7777);
        std::fs::set_permissions(parent, mode)
            .map_err(|e| AgentError::io("chmod the parent", e))?;
    }
    let owner = |p: &Path| {
        let uid = (req.uid >= 0).then(|| nix::unistd::Uid::from_raw(req.uid as u32));
        let gid = (req.gid >= 0).then(|| nix::unistd::Gid::from_raw(req.gid as u32));
        nix::unistd::fchownat(None, p, uid, gid, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
            .map_err(|e| AgentError::io(format!("chown {}", p.display()), e.into()))
    };
    let kind = SFlag::from_bits_truncate(req.file_mode) & SFlag::S_IFMT;
    if kind == SFlag::S_IFDIR {
        match std::fs::create_dir(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                return Err(AgentError::io(format!("mkdir {}", path.display()), e))
            }
            _ => {}
        }
        let mode = std::fs::Permissions::from_mode(req.file_mode & 0o7777);
        std::fs::set_permissions(&path, mode).map_err(|e| AgentError::io("chmod", e))?;
        return owner(&path);
    }
    if kind == SFlag::S_IFLNK {
        let target = <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&req.data);
        if path.is_symlink() {
            std::fs::remove_file(&path).map_err(|e| AgentError::io("replace the symlink", e))?;
        }
        std::os::unix::fs::symlink(target, &path).map_err(|e| AgentError::io("symlink", e))?;
        return owner(&path);
    }
    let tmp = path.with_extension("tmp");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| AgentError::io(format!("open {}", tmp.display()), e))?;
    f.write_all_at(&req.data, offset as u64)
        .map_err(|e| AgentError::io("write", e))?;
    let len = f.metadata().map_err(|e| AgentError::io("stat", e))?.len();
    if len as i64 != size {
        return Ok(()); // more chunks to come
    }
    f.set_permissions(std::fs::Permissions::from_mode(req.file_mode & 0o7777))
        .map_err(|e| AgentError::io("chmod", e))?;
    owner(&tmp)?;
    std::fs::rename(&tmp, &path)
        .map_err(|e| AgentError::io(format!("rename to {}", path.display()), e))
}

/// The most of the mount table RemoveStaleVirtiofsShareMounts reads.
const MAX_MOUNTINFO_BYTES: u64 = 16 << 20;

/// RemoveStaleVirtiofsShareMounts, as Kata's agent does it: every mount point under
/// `share_dir` in the mount table at `mountinfo` is stat'ed, which makes virtiofsd drop what it
/// still holds (cache entries, fds) of one the host removed (Kata's issue 6455); nothing is
/// unmounted. Returns each mount point and whether it still stat'ed (a stale one does not,
/// which is no error: that stat was the point).
pub fn refresh_share_mounts(
    mountinfo: &Path,
    share_dir: &Path,
) -> Result<Vec<(PathBuf, bool)>, AgentError> {
    use std::io::Read;
    let read_err = |e| AgentError::io(format!("read {}", mountinfo.display()), e);
    let mut text = String::new();
    std::fs::File::open(mountinfo)
        .map_err(read_err)?
        .take(MAX_MOUNTINFO_BYTES)
        .read_to_string(&mut text)
        .map_err(read_err)?;
    let points = jail::mountinfo::parse(&text)
        .into_iter()
        .map(|m| m.mount_point)
        .filter(|p| p.starts_with(share_dir) && p != share_dir);
    Ok(points
        .map(|p| {
            let live = std::fs::metadata(&p).is_ok();
            tracing::debug!(mount_point = %p.display(), live, "share mount refreshed");
            (p, live)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sysfs() -> tempfile::TempDir {
        let sys = tempfile::tempdir().unwrap();
        let put = |p: &str, v: &str| {
            let p = sys.path().join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, v).unwrap();
        };
        put("devices/system/memory/memory0/state", "online\n");
        put("devices/system/memory/memory1/state", "offline\n");
        put("devices/system/memory/probe", "");
        put("devices/system/cpu/cpu0/online", "1\n");
        put("devices/system/cpu/cpu1/online", "0\n");
        put("devices/system/cpu/cpu2/online", "0\n");
        sys
    }

    fn read(sys: &Path, p: &str) -> String {
        std::fs::read_to_string(sys.join(p)).unwrap()
    }

    #[test]
    fn memory_and_the_cpus_asked_for_come_online() {
        let sys = sysfs();
        let req = OnlineCPUMemRequest {
            nb_cpus: 1,
            ..Default::default()
        };
        online_cpu_mem(sys.path(), &req).unwrap();
        assert_eq!(
            read(sys.path(), "devices/system/memory/memory1/state"),
            "online"
        );
        assert_eq!(read(sys.path(), "devices/system/cpu/cpu1/online"), "1");
        assert_eq!(
            read(sys.path(), "devices/system/cpu/cpu2/online"),
            "0\n",
            "one asked for"
        );
        let too_many = OnlineCPUMemRequest {
            nb_cpus: 5,
            cpu_only: true,
            ..Default::default()
        };
        let e = online_cpu_mem(sys.path(), &too_many).unwrap_err();
        assert_eq!(e.code(), ttrpc::Code::DEADLINE_EXCEEDED, "{e}");
    }

    #[test]
    fn probe_addresses_are_written_in_hex() {
        let sys = sysfs();
        mem_hotplug_by_probe(sys.path(), &[0x1_0000_0000]).unwrap();
        assert_eq!(
            read(sys.path(), "devices/system/memory/probe"),
            "0x100000000"
        );
    }

    #[test]
    fn a_file_arrives_in_chunks_and_is_renamed_into_place() {
        let base = tempfile::tempdir().unwrap();
        let path = base.path().join("c1/etc/hosts");
        let chunk = |offset: i64, data: &[u8]| CopyFileRequest {
            path: path.display().to_string(),
            file_size: 10,
            file_mode: 0o100640,
            dir_mode: 0o750,
            uid: -1,
            gid: -1,
            offset,
            data: data.to_vec(),
            ..Default::default()
        };
        copy_file(base.path(), &chunk(0, b"hello")).unwrap();
        assert!(!path.exists(), "not complete yet");
        copy_file(base.path(), &chunk(5, b"world")).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"helloworld");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o640);
        let link = CopyFileRequest {
            file_mode: 0o120777,
            data: b"hosts".to_vec(),
            path: base.path().join("c1/etc/link").display().to_string(),
            ..chunk(0, b"")
        };
        copy_file(base.path(), &link).unwrap();
        assert_eq!(
            std::fs::read_link(base.path().join("c1/etc/link")).unwrap(),
            Path::new("hosts")
        );
        for bad in [
            CopyFileRequest {
                path: "/etc/passwd".into(),
                ..chunk(0, b"x")
            },
            CopyFileRequest {
                path: format!("{}/../x", base.path().display()),
                ..chunk(0, b"x")
            },
            chunk(8, b"toolong"),
            CopyFileRequest {
                file_size: MAX_COPY_SIZE + 1,
                ..chunk(0, b"")
            },
        ] {
            let e = copy_file(base.path(), &bad).unwrap_err();
            assert_eq!(e.code(), ttrpc::Code::INVALID_ARGUMENT, "{e}");
        }
    }

    #[test]
    fn volume_stats_report_bytes_and_inodes() {
        let dir = tempfile::tempdir().unwrap();
        let r = volume_stats(dir.path()).unwrap();
        assert_eq!(r.usage.len(), 2);
        assert!(r.usage[0].total > 0 && r.usage[0].used <= r.usage[0].total);
        assert_eq!(r.usage[1].unit, Unit::INODES.into());
        assert!(volume_stats(Path::new("relative")).is_err());
    }

    #[test]
    fn out_of_range_times_and_seeds_are_refused() {
        assert_eq!(
            set_guest_date_time(-1, 0).unwrap_err().code(),
            ttrpc::Code::INVALID_ARGUMENT
        );
        assert_eq!(
            set_guest_date_time(1, 1_000_000).unwrap_err().code(),
            ttrpc::Code::INVALID_ARGUMENT
        );
        let e = reseed_random_dev(Path::new("/dev/null"), &[0u8; 5000]).unwrap_err();
        assert_eq!(e.code(), ttrpc::Code::INVALID_ARGUMENT);
    }

    #[test]
    fn share_mounts_under_the_dir_are_stat_ed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let share = dir.path().join("shared/containers");
        std::fs::create_dir_all(share.join("live dir")).unwrap();
        let s = share.display();
        let line = |id: u32, point: &str| {
            format!("{id} 1 0:5{id} / {point} rw,relatime shared:{id} - virtiofs kataShared rw\n")
        };
        let table = [
            line(30, "/"),
            line(31, &s.to_string()),
            line(32, &format!("{s}/live\\040dir")),
            line(33, &format!("{s}/gone")),
            line(34, &format!("{}/elsewhere", dir.path().display())),
        ]
        .concat();
        let info = dir.path().join("mountinfo");
        std::fs::write(&info, table).unwrap();
        let seen = refresh_share_mounts(&info, &share).unwrap();
        assert_eq!(
            seen,
            [(share.join("live dir"), true), (share.join("gone"), false)]
        );
        let e = refresh_share_mounts(&dir.path().join("none"), &share).unwrap_err();
        assert_eq!(e.code(), ttrpc::Code::INTERNAL);
    }
}
