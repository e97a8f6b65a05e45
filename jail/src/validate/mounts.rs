//! The spec's `mounts`: destinations checked, fstab-style options translated into `MS_*`
//! flags, propagation changes and a data string the child hands to mount(2) unchanged.

use super::{check_path_nul, check_str_nul, is_clean_absolute, ms, ValidateError};
use std::path::Path;
use wire::zygote::Mount;

/// What one fstab-style option means to mount(2).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Opt {
    Set(u64),
    Clear(u64),
    Propagation(u64),
    /// Options runc implements outside mount(2) (copy-up, id-mapping, recursive
    /// mount_setattr): as data they would fail in the child with a confusing EINVAL.
    Unsupported,
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
        // runc's recursive variants ("rro", "rnosuid", ...) need mount_setattr(2).
        "rro" | "rrw" | "rnosuid" | "rsuid" | "rnodev" | "rdev" | "rnoexec" | "rexec"
        | "rnodiratime" | "rdiratime" | "rrelatime" | "rnorelatime" | "rnoatime" | "ratime"
        | "rstrictatime" | "rnostrictatime" | "rnosymfollow" | "rsymfollow" => Opt::Unsupported,
        _ => Opt::Data,
    }
}

pub(super) fn convert(mounts: &[oci_spec::runtime::Mount]) -> Result<Vec<Mount>, ValidateError> {
    mounts
        .iter()
        .enumerate()
        .map(|(index, m)| mount(index, m))
        .collect()
}

fn mount(index: usize, m: &oci_spec::runtime::Mount) -> Result<Mount, ValidateError> {
    let destination = m.destination().clone();
    check_path_nul(&format!("mounts[{index}].destination"), &destination)?;
    if !is_clean_absolute(&destination) {
        return Err(ValidateError::MountDestination { index, destination });
    }
    if m.uid_mappings().is_some() || m.gid_mappings().is_some() {
        return Err(ValidateError::MountIdMapping { index, destination });
    }
    let (mut flags, propagation, data) = options(index, m)?;
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
    })
}

type Options = (u64, Vec<u64>, String);

fn options(index: usize, m: &oci_spec::runtime::Mount) -> Result<Options, ValidateError> {
    let mut flags = 0u64;
    let mut propagation = Vec::new();
    let mut data = Vec::new();
    for option in m.options().as_deref().unwrap_or_default() {
        check_str_nul(&format!("mounts[{index}].options"), option)?;
        match classify(option) {
            Opt::Set(f) => flags |= f,
            Opt::Clear(f) => flags &= !f,
            Opt::Propagation(p) => propagation.push(p),
            Opt::Data => data.push(option.as_str()),
            Opt::Unsupported => {
                return Err(ValidateError::MountOption {
                    index,
                    destination: m.destination().clone(),
                    option: option.clone(),
                })
            }
        }
    }
    Ok((flags, propagation, data.join(",")))
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
        assert_eq!(classify("mode=755"), Opt::Data);
        assert_eq!(classify("size=65536k"), Opt::Data);
    }
}
