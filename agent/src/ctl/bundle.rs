//! `zagent-ctl bundle DIR`: a busybox bundle from the host's static busybox, with every applet
//! as a relative symlink (absolute ones, as `busybox --install -s` makes, would point outside
//! the container), a minimal /etc, and the default config.json.

use anyhow::{bail, Context};
use std::path::{Path, PathBuf};

const CANDIDATES: &[&str] = &[
    "/bin/busybox",
    "/usr/bin/busybox",
    "/usr/sbin/busybox",
    "/sbin/busybox",
];

/// The first static busybox found on the host.
pub fn find_static_busybox() -> anyhow::Result<PathBuf> {
    for c in CANDIDATES {
        let p = Path::new(c);
        if p.exists() && is_static_elf(p)? {
            return Ok(p.to_owned());
        }
    }
    bail!("no static busybox found (looked in {}); install it with `apt-get install -y busybox-static`", CANDIDATES.join(", "))
}

/// An ELF without a PT_INTERP program header needs no dynamic loader.
fn is_static_elf(path: &Path) -> anyhow::Result<bool> {
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if data.len() < 64 || &data[..4] != b"\x7fELF" || data[4] != 2 {
        return Ok(false); // not a 64-bit ELF
    }
    let u16_at = |o: usize| u16::from_le_bytes([data[o], data[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(data[32..40].try_into()?) as usize;
    let (phentsize, phnum) = (u16_at(54), u16_at(56));
    for i in 0..phnum {
        let off = phoff + i * phentsize;
        let Some(head) = data.get(off..off + 4) else {
            return Ok(false);
        };
        if u32::from_le_bytes(head.try_into()?) == 3 {
            return Ok(false); // PT_INTERP
        }
    }
    Ok(true)
}

/// The bundle at `dir`; `root_path` replaces config.json's root.path (`rootfs`), and
/// `no_device_rules` leaves linux.resources.devices out.
pub fn make_bundle(
    dir: &Path,
    root_path: Option<&Path>,
    no_device_rules: bool,
) -> anyhow::Result<()> {
    let busybox = find_static_busybox()?;
    let rootfs = dir.join("rootfs");
    if rootfs.exists() {
        bail!("{} already exists", rootfs.display());
    }
    for d in [
        "bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "tmp", "root",
    ] {
        std::fs::create_dir_all(rootfs.join(d))?;
    }
    std::fs::copy(&busybox, rootfs.join("bin/busybox")).context("copying busybox")?;
    for applet in applets(&busybox)? {
        link_applet(&rootfs, &applet)?;
    }
    std::fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )?;
    std::fs::write(
        rootfs.join("etc/group"),
        "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n",
    )?;
    std::fs::write(rootfs.join("etc/hostname"), "zagent\n")?;
    let mut spec = crate::spec::default_spec()?;
    if let (Some(path), Some(mut root)) = (root_path, spec.root().clone()) {
        root.set_path(path.to_owned());
        spec.set_root(Some(root));
    }
    if no_device_rules {
        if let Some(mut linux) = spec.linux().clone() {
            let resources = linux.resources().clone().map(|mut r| {
                r.set_devices(None);
                r
            });
            linux.set_resources(resources);
            spec.set_linux(Some(linux));
        }
    }
    crate::spec::write_config(&spec, &dir.join("config.json"))?;
    Ok(())
}

/// Applet paths relative to the root, e.g. "bin/sh", "usr/bin/env".
fn applets(busybox: &Path) -> anyhow::Result<Vec<String>> {
    let out = std::process::Command::new(busybox)
        .arg("--list-full")
        .output()?;
    if !out.status.success() {
        bail!("{} --list-full failed", busybox.display());
    }
    Ok(String::from_utf8(out.stdout)?
        .lines()
        .map(|l| l.trim_start_matches('/').to_string())
        .collect())
}

fn link_applet(rootfs: &Path, applet: &str) -> anyhow::Result<()> {
    if applet == "bin/busybox" || applet.is_empty() {
        return Ok(());
    }
    let depth = applet.matches('/').count();
    let target = format!("{}bin/busybox", "../".repeat(depth));
    let link = rootfs.join(applet);
    if let Some(parent) = link.parent() {
        std::fs::create_dir_all(parent)?;
    }
    if link.symlink_metadata().is_err() {
        std::os::unix::fs::symlink(target, &link)
            .with_context(|| format!("linking {}", link.display()))?;
    }
    Ok(())
}
