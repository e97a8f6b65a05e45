//! What each storage driver mounts, and where its block device is: a PCI path (`02/00`: the
//! slot on the root bus, then on each bridge below) for `blk`, a device path for `mmioblk`,
//! `scsi` id:lun under any SCSI host, `/dev/pmemN` for `nvdimm`. Devices are looked up under
//! the sysfs root given (a temp dir in tests) and waited for briefly, since a hot-plugged disk
//! can show up just after the request that uses it.

use super::options;
use super::{StorageError, StorageSpec};
use nix::mount::MsFlags;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a block device may take to appear.
const DEVICE_WAIT: Duration = Duration::from_secs(3);

/// Mounts `spec`; returns whether something was mounted (false for `local`).
pub fn mount(spec: &StorageSpec, sysfs: &Path) -> Result<bool, StorageError> {
    let mp = &spec.mount_point;
    let invalid = |what: &str| StorageError::Invalid {
        mount_point: mp.clone(),
        what: what.into(),
    };
    let (flags, data) = options::parse(&spec.options);
    let fstype = |default: &'static str| -> String {
        if spec.fstype.is_empty() {
            default.into()
        } else {
            spec.fstype.clone()
        }
    };
    let (source, fstype, flags) = match spec.driver.as_str() {
        "local" => return local(spec).map(|()| false),
        "ephemeral" => ("tmpfs".to_string(), fstype("tmpfs"), flags),
        "bind" => {
            if !Path::new(&spec.source).is_absolute() {
                return Err(invalid("a bind storage needs an absolute source"));
            }
            (spec.source.clone(), String::new(), flags | MsFlags::MS_BIND)
        }
        "9p" | "virtio-fs" => {
            if spec.source.is_empty() {
                return Err(invalid("a shared filesystem needs its tag as source"));
            }
            let default = if spec.driver == "9p" {
                "9p"
            } else {
                "virtiofs"
            };
            (spec.source.clone(), fstype(default), flags)
        }
        "blk" | "mmioblk" | "scsi" | "nvdimm" => {
            if spec.fstype.is_empty() {
                return Err(invalid("a block storage needs its fstype"));
            }
            let dev = wait_for_device(spec, sysfs)?;
            (dev.display().to_string(), spec.fstype.clone(), flags)
        }
        other => return Err(StorageError::UnknownDriver(other.into())),
    };
    std::fs::create_dir_all(mp).map_err(|e| StorageError::Mount {
        mount_point: mp.clone(),
        what: "create the mount point".into(),
        errno: jail::error::errno_of(&e),
    })?;
    let fstype = (!fstype.is_empty()).then_some(fstype.as_str());
    let data = (!data.is_empty()).then_some(data.as_str());
    nix::mount::mount(Some(source.as_str()), mp, fstype, flags, data).map_err(|errno| {
        let _ = std::fs::remove_dir(mp);
        StorageError::Mount {
            mount_point: mp.clone(),
            what: format!("mount {source} ({})", fstype.unwrap_or("bind")),
            errno,
        }
    })?;
    Ok(true)
}

/// A directory, with the `mode=` option's permissions if given.
fn local(spec: &StorageSpec) -> Result<(), StorageError> {
    let mp = &spec.mount_point;
    let io = |e: std::io::Error| StorageError::Mount {
        mount_point: mp.clone(),
        what: "create the directory".into(),
        errno: jail::error::errno_of(&e),
    };
    std::fs::create_dir_all(mp).map_err(io)?;
    let mode = spec.options.iter().find_map(|o| o.strip_prefix("mode="));
    if let Some(mode) = mode {
        let bits = u32::from_str_radix(mode, 8).map_err(|_| StorageError::Invalid {
            mount_point: mp.clone(),
            what: format!("mode {mode:?} is not octal"),
        })?;
        std::fs::set_permissions(mp, std::fs::Permissions::from_mode(bits & 0o7777)).map_err(io)?;
    }
    Ok(())
}

fn wait_for_device(spec: &StorageSpec, sysfs: &Path) -> Result<PathBuf, StorageError> {
    let deadline = Instant::now() + DEVICE_WAIT;
    loop {
        match find_device(spec, sysfs) {
            Ok(dev) if dev.exists() => return Ok(dev),
            Ok(dev) if Instant::now() >= deadline => {
                return Err(not_found(
                    spec,
                    &format!("{} does not exist", dev.display()),
                ))
            }
            Err(e) if Instant::now() >= deadline => return Err(e),
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn not_found(spec: &StorageSpec, what: &str) -> StorageError {
    StorageError::DeviceNotFound {
        mount_point: spec.mount_point.clone(),
        source_name: spec.source.clone(),
        what: what.into(),
    }
}

/// The /dev path of the storage's block device.
pub fn find_device(spec: &StorageSpec, sysfs: &Path) -> Result<PathBuf, StorageError> {
    let src = spec.source.as_str();
    match spec.driver.as_str() {
        "mmioblk" | "nvdimm" | "blk" if src.starts_with("/dev/") => {
            let ok = spec.driver != "nvdimm" || src.starts_with("/dev/pmem");
            ok.then(|| PathBuf::from(src))
                .ok_or_else(|| not_found(spec, "an nvdimm source is /dev/pmemN"))
        }
        "blk" => {
            let slots = src
                .split('/')
                .map(|slot| u8::from_str_radix(slot, 16))
                .collect::<Result<Vec<u8>, _>>()
                .map_err(|_| not_found(spec, "a PCI path is hex slots joined by '/'"))?;
            pci_block_device(sysfs, &slots).map_err(|what| not_found(spec, &what))
        }
        "scsi" => {
            let (id, lun) = src
                .split_once(':')
                .ok_or_else(|| not_found(spec, "a SCSI source is id:lun"))?;
            let suffix = format!(":0:{id}:{lun}");
            let dev = child_matching(&sysfs.join("bus/scsi/devices"), |n| n.ends_with(&suffix))
                .ok_or_else(|| not_found(spec, "no such SCSI device"))?;
            block_under(&dev, 1)
                .ok_or_else(|| not_found(spec, "no block device on that SCSI device"))
        }
        _ => Err(not_found(spec, "not a block device path")),
    }
}

/// The /dev path of the block device on the PCI device at `slots` (the slot on the root bus,
/// then on each bridge below, function 0 each), as Kata's agent finds a virtio-blk disk; why
/// not, in words.
pub fn pci_block_device(sysfs: &Path, slots: &[u8]) -> Result<PathBuf, String> {
    let mut dir = sysfs.join("devices/pci0000:00");
    for slot in slots {
        let suffix = format!(":{slot:02x}.0");
        dir = child_matching(&dir, |name| {
            name.starts_with("0000:") && name.ends_with(&suffix)
        })
        .ok_or_else(|| format!("no PCI device at slot {slot:02x}"))?;
    }
    block_under(&dir, 3).ok_or_else(|| "no block device on that PCI device".to_string())
}

fn child_matching(dir: &Path, want: impl Fn(&str) -> bool) -> Option<PathBuf> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| want(n))
        .collect();
    names.sort();
    names.first().map(|n| dir.join(n))
}

/// `/dev/<name>` of the first `block/<name>` found at most `depth` levels below `dir`.
fn block_under(dir: &Path, depth: u32) -> Option<PathBuf> {
    if let Some(name) = child_matching(&dir.join("block"), |_| true) {
        return name.file_name().map(|n| Path::new("/dev").join(n));
    }
    if depth == 0 {
        return None;
    }
    let mut subdirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    subdirs.sort();
    subdirs.iter().find_map(|d| block_under(d, depth - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(driver: &str, source: &str) -> StorageSpec {
        StorageSpec {
            driver: driver.into(),
            source: source.into(),
            fstype: "ext4".into(),
            mount_point: "/run/kata-containers/x".into(),
            ..Default::default()
        }
    }

    #[test]
    fn block_devices_are_found_in_sysfs() {
        let sys = tempfile::tempdir().unwrap();
        let mk = |p: &str| std::fs::create_dir_all(sys.path().join(p)).unwrap();
        mk("devices/pci0000:00/0000:00:02.0/0000:01:03.0/virtio4/block/vdb");
        mk("devices/pci0000:00/0000:00:05.0/virtio1/block/vda");
        mk("bus/scsi/devices/0:0:1:2/block/sdc");
        let find = |d: &str, s: &str| find_device(&spec(d, s), sys.path());
        assert_eq!(find("blk", "02/03").unwrap(), Path::new("/dev/vdb"));
        assert_eq!(find("blk", "05").unwrap(), Path::new("/dev/vda"));
        assert_eq!(find("scsi", "1:2").unwrap(), Path::new("/dev/sdc"));
        assert_eq!(
            find("nvdimm", "/dev/pmem0").unwrap(),
            Path::new("/dev/pmem0")
        );
        assert_eq!(find("mmioblk", "/dev/vdc").unwrap(), Path::new("/dev/vdc"));
        assert!(find("blk", "02/04").is_err());
        assert!(find("blk", "zz").is_err());
        assert!(find("scsi", "9:9").is_err());
        assert!(find("nvdimm", "/dev/sda").is_err());
    }
}
