//! GetGuestDetails: what the shim learns about the guest at sandbox start, read from sysfs
//! the way Kata's agent reads it (memory block size, whether memory can be hot-added through
//! the probe file), and the agent's own details. The sysfs root is a parameter, so the reading
//! is tested against a temp dir.

use crate::error::AgentError;
use std::path::Path;
use wire::agent::{AgentDetails, GuestDetailsRequest, GuestDetailsResponse};

/// Where sysfs is mounted in a real guest.
pub const SYSFS: &str = "/sys";

/// The memory block size (hex in sysfs, as the kernel writes it) when asked for, whether the
/// hotplug probe file exists when asked for, and the agent's details. A sysfs without the
/// memory files (no memory hotplug in the kernel) gives 0 and false, as in Kata's agent; a
/// block size file that does not hold a hex number is an error.
pub fn details(
    sysfs: &Path,
    req: &GuestDetailsRequest,
) -> Result<GuestDetailsResponse, AgentError> {
    let memory = sysfs.join("devices/system/memory");
    let mut resp = GuestDetailsResponse::new();
    if req.mem_block_size {
        resp.mem_block_size_bytes = block_size(&memory.join("block_size_bytes"))?;
    }
    if req.mem_hotplug_probe {
        resp.support_mem_hotplug_probe = exists(&memory.join("probe"))?;
    }
    resp.agent_details = Some(agent_details()).into();
    Ok(resp)
}

fn block_size(file: &Path) -> Result<u64, AgentError> {
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(AgentError::io(format!("read {}", file.display()), e)),
    };
    let hex = text.trim();
    let hex = hex.strip_prefix("0x").unwrap_or(hex);
    u64::from_str_radix(hex, 16).map_err(|_| {
        AgentError::io(
            format!("read {}", file.display()),
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("memory block size {text:?} is not a hex number"),
            ),
        )
    })
}

fn exists(file: &Path) -> Result<bool, AgentError> {
    match std::fs::symlink_metadata(file) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(AgentError::io(format!("stat {}", file.display()), e)),
    }
}

/// The storage drivers `storage` mounts; no device handlers yet (CreateContainer refuses
/// hot-plugged devices), so a shim does not send what the agent would not handle. Seccomp is
/// always compiled in.
fn agent_details() -> AgentDetails {
    AgentDetails {
        version: env!("CARGO_PKG_VERSION").into(),
        init_daemon: std::process::id() == 1,
        device_handlers: Vec::new(),
        storage_handlers: crate::storage::DRIVERS
            .iter()
            .map(|d| d.to_string())
            .collect(),
        supports_seccomp: true,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(block: bool, probe: bool) -> GuestDetailsRequest {
        GuestDetailsRequest {
            mem_block_size: block,
            mem_hotplug_probe: probe,
            ..Default::default()
        }
    }

    fn sysfs_with(block: Option<&str>, probe: bool) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let memory = dir.path().join("devices/system/memory");
        std::fs::create_dir_all(&memory).unwrap();
        if let Some(block) = block {
            std::fs::write(memory.join("block_size_bytes"), block).unwrap();
        }
        if probe {
            std::fs::write(memory.join("probe"), "").unwrap();
        }
        dir
    }

    #[test]
    fn reads_the_block_size_as_hex_and_the_probe_file() {
        let sys = sysfs_with(Some("8000000\n"), true);
        let r = details(sys.path(), &req(true, true)).unwrap();
        assert_eq!(r.mem_block_size_bytes, 128 << 20);
        assert!(r.support_mem_hotplug_probe);
        let d = r.agent_details.as_ref().unwrap();
        assert_eq!(d.version, env!("CARGO_PKG_VERSION"));
        assert!(d.supports_seccomp);
        assert!(!d.init_daemon, "a unit test is not pid 1");
        assert!(d.device_handlers.is_empty());
        let drivers = [
            "local",
            "ephemeral",
            "bind",
            "9p",
            "virtio-fs",
            "blk",
            "mmioblk",
            "scsi",
            "nvdimm",
        ];
        assert_eq!(d.storage_handlers, drivers, "the drivers `storage` mounts");
    }

    #[test]
    fn only_what_is_asked_for_is_read() {
        let sys = sysfs_with(Some("8000000"), true);
        let r = details(sys.path(), &req(false, false)).unwrap();
        assert_eq!(r.mem_block_size_bytes, 0);
        assert!(!r.support_mem_hotplug_probe);
        assert!(r.agent_details.is_some());
    }

    #[test]
    fn missing_files_are_zero_and_false_and_garbage_is_an_error() {
        let sys = sysfs_with(None, false);
        let r = details(sys.path(), &req(true, true)).unwrap();
        assert_eq!(r.mem_block_size_bytes, 0);
        assert!(!r.support_mem_hotplug_probe);
        let sys = sysfs_with(Some("zz"), false);
        let e = details(sys.path(), &req(true, false)).unwrap_err();
        assert_eq!(e.code(), ttrpc::Code::INTERNAL);
        let sys = sysfs_with(Some(""), false);
        assert!(details(sys.path(), &req(true, false)).is_err());
    }
}
