//! A sealed in-memory copy of our own binary (memfd + F_SEAL_*), which the zygote is exec'd
//! from: every container child is a fork of the zygote, so its /proc/self/exe must never lead
//! to the writable on-disk agent binary (CVE-2019-5736). Made once per agent, not per container.

use nix::fcntl::{fcntl, FcntlArg, SealFlag};
use nix::sys::memfd::{memfd_create, MemFdCreateFlag};
use std::fs::File;
use std::os::fd::OwnedFd;

pub fn sealed_copy() -> std::io::Result<OwnedFd> {
    let fd = memfd_create(
        c"zagent",
        MemFdCreateFlag::MFD_CLOEXEC | MemFdCreateFlag::MFD_ALLOW_SEALING,
    )?;
    let mut dst = File::from(fd);
    let mut src = File::open("/proc/self/exe")?;
    std::io::copy(&mut src, &mut dst)?;
    let seals = SealFlag::F_SEAL_SEAL
        | SealFlag::F_SEAL_SHRINK
        | SealFlag::F_SEAL_GROW
        | SealFlag::F_SEAL_WRITE;
    fcntl(
        std::os::fd::AsRawFd::as_raw_fd(&dst),
        FcntlArg::F_ADD_SEALS(seals),
    )?;
    Ok(OwnedFd::from(dst))
}
