//! A storage's mount options: the flag words mount(8) knows turned into MS_* flags, the rest
//! (`size=64m`, `trans=virtio`, ...) passed to the filesystem as its data string.

use nix::mount::MsFlags;

/// (flags, data) of `options`; `mode=` is kept out for the `local` driver, which reads it itself.
pub fn parse(options: &[String]) -> (MsFlags, String) {
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for opt in options {
        let (set, clear) = match opt.as_str() {
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
            "bind" => (MsFlags::MS_BIND, MsFlags::empty()),
            "rbind" => (MsFlags::MS_BIND | MsFlags::MS_REC, MsFlags::empty()),
            "defaults" => (MsFlags::empty(), MsFlags::empty()),
            other => {
                data.push(other.to_owned());
                continue;
            }
        };
        flags = (flags | set) - clear;
    }
    (flags, data.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_words_become_flags_and_the_rest_data() {
        let opts: Vec<String> = ["ro", "nodev", "size=64m", "rw", "noexec", "trans=virtio"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (flags, data) = parse(&opts);
        assert_eq!(flags, MsFlags::MS_NODEV | MsFlags::MS_NOEXEC);
        assert_eq!(data, "size=64m,trans=virtio");
    }
}
