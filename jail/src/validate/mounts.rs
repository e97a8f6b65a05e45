//! The spec's `mounts`: destinations made absolute and clean (runtime-spec 1.2: a relative
//! destination is relative to the container's "/", and ".." never climbs above it, as runc's
//! secure join has it), fstab-style options translated into `MS_*` flags, runc's recursive
//! options into `MOUNT_ATTR_*` bits for mount_setattr(2), propagation changes, and a data
//! string the child hands to mount(2) unchanged.

use super::{check_path_nul, check_str_nul, ms, ValidateError};
use std::path::{Component, Path, PathBuf};
use wire::zygote::{Mount, MountAttr};

/// What one fstab-style option means to mount(2).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Opt {
    Set(u64),
    Clear(u64),
    Propagation(u64),
    /// A recursive option (runc's "rro", "rnosuid", ...): `MOUNT_ATTR_*` bits set (or cleared)
    /// on the mount and every mount under it.
    RecSet(u64),
    RecClear(u64),
    /// Options runc implements outside mount(2) (copy-up, id-mapping): as data they would fail
    /// in the child with a confusing EINVAL.
    Unsupported,
    /// Recursive atime options the kernel cannot express: the atime setting is one of
    /// relatime, noatime and strictatime, so "clear noatime" (or strictatime) alone names no
    /// setting, and mount_setattr(2) refuses it (EINVAL, which is where runc 1.1 fails).
    NoAtimeSetting,
    Data,
}

fn classify(option: &str) -> Opt {
    use libc::*;
    let flag = ms;
    match option {
        "defaults" => Opt::Set(0),
        "ro" => Opt::Set(flag(MS_RDONLY)),
        "rw" => Opt::Clear(flag(MS_RDONLY)),
        "nosuid" => Opt::Set(flag(MS_NOSUID)),
        "suid" => Opt::Clear(flag(MS_NOSUID)),
        "nodev" => Opt::Set(flag(MS_NODEV)),
        "dev" => Opt::Clear(flag(MS_NODEV)),
        "noexec" => Opt::Set(flag(MS_NOEXEC)),
        "exec" => Opt::Clear(flag(MS_NOEXEC)),
        "sync" => Opt::Set(flag(MS_SYNCHRONOUS)),
        "async" => Opt::Clear(flag(MS_SYNCHRONOUS)),
        "dirsync" => Opt::Set(flag(MS_DIRSYNC)),
        "remount" => Opt::Set(flag(MS_REMOUNT)),
        "mand" => Opt::Set(flag(MS_MANDLOCK)),
        "nomand" => Opt::Clear(flag(MS_MANDLOCK)),
        "atime" => Opt::Clear(flag(MS_NOATIME)),
        "noatime" => Opt::Set(flag(MS_NOATIME)),
        "diratime" => Opt::Clear(flag(MS_NODIRATIME)),
        "nodiratime" => Opt::Set(flag(MS_NODIRATIME)),
        "relatime" => Opt::Set(flag(MS_RELATIME)),
        "norelatime" => Opt::Clear(flag(MS_RELATIME)),
        "strictatime" => Opt::Set(flag(MS_STRICTATIME)),
        "nostrictatime" => Opt::Clear(flag(MS_STRICTATIME)),
        "nosymfollow" => Opt::Set(flag(MS_NOSYMFOLLOW)),
        "symfollow" => Opt::Clear(flag(MS_NOSYMFOLLOW)),
        "acl" => Opt::Set(flag(MS_POSIXACL)),
        "noacl" => Opt::Clear(flag(MS_POSIXACL)),
        "iversion" => Opt::Set(flag(MS_I_VERSION)),
        "noiversion" => Opt::Clear(flag(MS_I_VERSION)),
        "lazytime" => Opt::Set(flag(MS_LAZYTIME)),
        "nolazytime" => Opt::Clear(flag(MS_LAZYTIME)),
        "silent" => Opt::Set(flag(MS_SILENT)),
        "loud" => Opt::Clear(flag(MS_SILENT)),
        "bind" => Opt::Set(flag(MS_BIND)),
        "rbind" => Opt::Set(flag(MS_BIND | MS_REC)),
        "private" => Opt::Propagation(flag(MS_PRIVATE)),
        "rprivate" => Opt::Propagation(flag(MS_PRIVATE | MS_REC)),
        "shared" => Opt::Propagation(flag(MS_SHARED)),
        "rshared" => Opt::Propagation(flag(MS_SHARED | MS_REC)),
        "slave" => Opt::Propagation(flag(MS_SLAVE)),
        "rslave" => Opt::Propagation(flag(MS_SLAVE | MS_REC)),
        "unbindable" => Opt::Propagation(flag(MS_UNBINDABLE)),
        "runbindable" => Opt::Propagation(flag(MS_UNBINDABLE | MS_REC)),
        "tmpcopyup" | "idmap" | "ridmap" | "copy-symlink" => Opt::Unsupported,
        "rro" => Opt::RecSet(MOUNT_ATTR_RDONLY),
        "rrw" => Opt::RecClear(MOUNT_ATTR_RDONLY),
        "rnosuid" => Opt::RecSet(MOUNT_ATTR_NOSUID),
        "rsuid" => Opt::RecClear(MOUNT_ATTR_NOSUID),
        "rnodev" => Opt::RecSet(MOUNT_ATTR_NODEV),
        "rdev" => Opt::RecClear(MOUNT_ATTR_NODEV),
        "rnoexec" => Opt::RecSet(MOUNT_ATTR_NOEXEC),
        "rexec" => Opt::RecClear(MOUNT_ATTR_NOEXEC),
        "rnodiratime" => Opt::RecSet(MOUNT_ATTR_NODIRATIME),
        "rdiratime" => Opt::RecClear(MOUNT_ATTR_NODIRATIME),
        "rnosymfollow" => Opt::RecSet(MOUNT_ATTR_NOSYMFOLLOW),
        "rsymfollow" => Opt::RecClear(MOUNT_ATTR_NOSYMFOLLOW),
        "rrelatime" => Opt::RecSet(MOUNT_ATTR_RELATIME),
        "rnoatime" => Opt::RecSet(MOUNT_ATTR_NOATIME),
        "rstrictatime" => Opt::RecSet(MOUNT_ATTR_STRICTATIME),
        // runc's mapping: clearing relatime, which is 0 in the atime field, changes nothing,
        // just as "norelatime" leaves a mount relatime (the kernel's default) in mount(2).
        "rnorelatime" => Opt::RecClear(MOUNT_ATTR_RELATIME),
        "ratime" | "rnostrictatime" => Opt::NoAtimeSetting,
        _ => Opt::Data,
    }
}

/// The atime bits are one setting, not flags: setting one means replacing the whole field.
fn rec_set(attr: &mut MountAttr, bits: u64) {
    let field = if bits & libc::MOUNT_ATTR__ATIME == bits {
        libc::MOUNT_ATTR__ATIME
    } else {
        bits
    };
    attr.set = (attr.set & !field) | bits;
    attr.clear = (attr.clear & !bits) | (field & libc::MOUNT_ATTR__ATIME);
}

fn rec_clear(attr: &mut MountAttr, bits: u64) {
    attr.set &= !bits;
    attr.clear |= bits;
}

pub(super) fn convert(mounts: &[oci_spec::runtime::Mount]) -> Result<Vec<Mount>, ValidateError> {
    mounts
        .iter()
        .enumerate()
        .map(|(index, m)| mount(index, m))
        .collect()
}

/// The destination as an absolute path without "." or "..": relative ones start at the
/// container's "/", and ".." stops there (runc: warns, then joins it onto the rootfs securely).
fn destination(index: usize, given: &Path) -> Result<PathBuf, ValidateError> {
    check_path_nul(&format!("mounts[{index}].destination"), given)?;
    if given.as_os_str().is_empty() {
        let destination = given.to_owned();
        return Err(ValidateError::MountDestination { index, destination });
    }
    let mut out = PathBuf::from("/");
    for c in given.components() {
        match c {
            Component::Normal(name) => out.push(name),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    Ok(out)
}

fn mount(index: usize, m: &oci_spec::runtime::Mount) -> Result<Mount, ValidateError> {
    let destination = destination(index, m.destination())?;
    if m.uid_mappings().is_some() || m.gid_mappings().is_some() {
        return Err(ValidateError::MountIdMapping { index, destination });
    }
    let Options {
        mut flags,
        propagation,
        data,
        recursive,
    } = options(index, m)?;
    let fstype = m.typ().clone().filter(|t| !t.is_empty());
    if let Some(t) = &fstype {
        check_str_nul(&format!("mounts[{index}].type"), t)?;
    }
    let is_bind = fstype.as_deref() == Some("bind") || flags & ms(libc::MS_BIND) != 0;
    let source = if is_bind {
        flags |= ms(libc::MS_BIND);
        Some(bind_source(index, m)?)
    } else {
        if fstype.is_none() {
            return Err(ValidateError::MountType { index, destination });
        }
        m.source()
            .as_ref()
            .map(|s| utf8(&format!("mounts[{index}].source"), s))
            .transpose()?
    };
    Ok(Mount {
        destination,
        fstype,
        source,
        flags,
        propagation,
        data,
        recursive,
    })
}

struct Options {
    flags: u64,
    propagation: Vec<u64>,
    data: String,
    recursive: Option<MountAttr>,
}

fn options(index: usize, m: &oci_spec::runtime::Mount) -> Result<Options, ValidateError> {
    let mut flags = 0u64;
    let mut propagation = Vec::new();
    let mut data = Vec::new();
    let mut recursive: Option<MountAttr> = None;
    for option in m.options().as_deref().unwrap_or_default() {
        check_str_nul(&format!("mounts[{index}].options"), option)?;
        let refuse = |reason| ValidateError::MountOption {
            index,
            destination: m.destination().clone(),
            option: option.clone(),
            reason,
        };
        match classify(option) {
            Opt::Set(f) => flags |= f,
            Opt::Clear(f) => flags &= !f,
            Opt::Propagation(p) => propagation.push(p),
            Opt::RecSet(bits) => rec_set(recursive.get_or_insert_with(Default::default), bits),
            Opt::RecClear(bits) => rec_clear(recursive.get_or_insert_with(Default::default), bits),
            Opt::Data => data.push(option.as_str()),
            Opt::Unsupported => return Err(refuse("is not supported")),
            Opt::NoAtimeSetting => {
                return Err(refuse(
                    "names no atime setting (the kernel's are relatime, noatime and \
                     strictatime): use rrelatime, rnoatime or rstrictatime",
                ))
            }
        }
    }
    Ok(Options {
        flags,
        propagation,
        data: data.join(","),
        recursive,
    })
}

/// A bind source must be an absolute host path; whether it exists is the child's to find out
/// (a missing source is a mount failure reported with its errno, as runc does).
fn bind_source(index: usize, m: &oci_spec::runtime::Mount) -> Result<String, ValidateError> {
    match m.source() {
        Some(source) if source.is_absolute() => utf8(&format!("mounts[{index}].source"), source),
        other => Err(ValidateError::BindSource {
            index,
            destination: m.destination().clone(),
            host_path: other.clone(),
        }),
    }
}

fn utf8(field: &str, path: &Path) -> Result<String, ValidateError> {
    let s = path.to_str().ok_or_else(|| ValidateError::NotUtf8 {
        field: field.to_owned(),
    })?;
    check_str_nul(field, s)?;
    Ok(s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use libc::{MOUNT_ATTR_NOATIME, MOUNT_ATTR_NODEV, MOUNT_ATTR_RDONLY, MOUNT_ATTR__ATIME};

    fn attr(options: &[&str]) -> Result<Option<MountAttr>, ValidateError> {
        let m: oci_spec::runtime::Mount = serde_json::from_value(serde_json::json!({
            "destination": "/m", "type": "bind", "source": "/s", "options": options
        }))
        .unwrap();
        mount(0, &m).map(|m| m.recursive)
    }

    #[test]
    fn recursive_options_become_mount_setattr_bits() {
        let rro = attr(&["rbind", "rro", "rnodev"]).unwrap().unwrap();
        assert_eq!(rro.set, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NODEV);
        assert_eq!(rro.clear, 0);
        let rw = attr(&["rro", "rrw"]).unwrap().unwrap();
        assert_eq!((rw.set, rw.clear), (0, MOUNT_ATTR_RDONLY));
        // An atime setting replaces the whole field, as mount_setattr(2) requires.
        let noatime = attr(&["rstrictatime", "rnoatime"]).unwrap().unwrap();
        assert_eq!(
            (noatime.set, noatime.clear),
            (MOUNT_ATTR_NOATIME, MOUNT_ATTR__ATIME)
        );
        assert_eq!(attr(&["rbind", "ro"]).unwrap(), None);
        for option in ["ratime", "rnostrictatime"] {
            let e = attr(&[option]).unwrap_err().to_string();
            assert!(e.contains(option) && e.contains("rrelatime"), "{e}");
        }
    }

    #[test]
    fn destinations_are_made_absolute_inside_the_root() {
        let d = |p: &str| destination(0, Path::new(p)).map(|p| p.display().to_string());
        assert_eq!(d("mnt/rel").unwrap(), "/mnt/rel");
        assert_eq!(d("/mnt/../tmp/x").unwrap(), "/tmp/x");
        assert_eq!(d("../../mnt/up").unwrap(), "/mnt/up");
        assert_eq!(d("./a/./b/").unwrap(), "/a/b");
        assert!(d("").is_err());
    }

    #[test]
    fn every_documented_option_is_classified() {
        assert_eq!(classify("ro"), Opt::Set(ms(libc::MS_RDONLY)));
        assert_eq!(classify("rw"), Opt::Clear(ms(libc::MS_RDONLY)));
        assert_eq!(
            classify("rbind"),
            Opt::Set(ms(libc::MS_BIND | libc::MS_REC))
        );
        assert_eq!(
            classify("rslave"),
            Opt::Propagation(ms(libc::MS_SLAVE | libc::MS_REC))
        );
        assert_eq!(classify("tmpcopyup"), Opt::Unsupported);
        assert_eq!(classify("acl"), Opt::Set(ms(libc::MS_POSIXACL)));
        assert_eq!(classify("nolazytime"), Opt::Clear(ms(libc::MS_LAZYTIME)));
        assert_eq!(classify("rnosuid"), Opt::RecSet(libc::MOUNT_ATTR_NOSUID));
        assert_eq!(classify("mode=755"), Opt::Data);
        assert_eq!(classify("size=65536k"), Opt::Data);
    }
}
