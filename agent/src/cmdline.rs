//! The agent's options from the kernel command line, read the way Kata's agent reads them in a
//! guest: whitespace-separated words, the `agent.`-prefixed `key=value` ones are ours, the rest
//! belongs to the kernel and init. Kata's `agent.server_addr` and `agent.log` are understood,
//! and zagent's own `agent.launcher` and `agent.warm_pool`; other `agent.*` words are Kata
//! options zagent does not have and are ignored with a warning (a Kata image's command line
//! still boots). Values given there override the flags, as Kata's command line overrides its
//! config file. The file is a parameter (`--kernel-cmdline`), so the reading is tested on text.

use crate::config::{AgentConfig, LauncherKind};
use std::path::{Path, PathBuf};

/// Where the kernel command line is read in a guest.
pub const PROC_CMDLINE: &str = "/proc/cmdline";

/// The log levels `agent.log` takes (Kata's names; `warning` and `critical` as Kata spells
/// them map onto tracing's levels).
const LEVELS: [(&str, &str); 7] = [
    ("trace", "trace"),
    ("debug", "debug"),
    ("info", "info"),
    ("warn", "warn"),
    ("warning", "warn"),
    ("error", "error"),
    ("critical", "error"),
];

#[derive(Debug, thiserror::Error)]
pub enum CmdlineError {
    #[error("reading the kernel command line {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("kernel command line: {key}={value:?}: {why}")]
    Value {
        key: String,
        value: String,
        why: String,
    },
}

/// What the command line set; `None` leaves the flag's value.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct KernelOptions {
    pub server_addr: Option<String>,
    /// A tracing filter directive (`debug`, ...).
    pub log: Option<String>,
    pub launcher: Option<LauncherKind>,
    pub warm_pool: Option<usize>,
    /// `agent.*` keys zagent does not know, for the start-up warning.
    pub ignored: Vec<String>,
}

pub fn read(path: &Path) -> Result<KernelOptions, CmdlineError> {
    let text = std::fs::read_to_string(path).map_err(|source| CmdlineError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text)
}

/// The `agent.*` options of `text`; a later word wins over an earlier one with the same key.
pub fn parse(text: &str) -> Result<KernelOptions, CmdlineError> {
    let mut opts = KernelOptions::default();
    for word in text.split_ascii_whitespace() {
        let Some(option) = word.strip_prefix("agent.") else {
            continue;
        };
        let (key, value) = option.split_once('=').unwrap_or((option, ""));
        let bad = |why: &str| CmdlineError::Value {
            key: format!("agent.{key}"),
            value: value.into(),
            why: why.into(),
        };
        match key {
            "server_addr" => {
                if !(value.starts_with("vsock://") || value.starts_with("unix://")) {
                    return Err(bad("the agent listens on vsock://CID:PORT or unix:///PATH"));
                }
                opts.server_addr = Some(value.into());
            }
            "log" => {
                let level = LEVELS.iter().find(|(name, _)| *name == value);
                let (_, level) = level.ok_or_else(|| {
                    bad("not a log level (trace, debug, info, warn, error, critical)")
                })?;
                opts.log = Some((*level).into());
            }
            "launcher" => {
                opts.launcher = Some(match value {
                    "zygote" => LauncherKind::Zygote,
                    "reexec" => LauncherKind::Reexec,
                    _ => return Err(bad("the launcher is zygote or reexec")),
                });
            }
            "warm_pool" => {
                let n = value.parse().map_err(|_| bad("not a count"))?;
                opts.warm_pool = Some(n);
            }
            _ => opts.ignored.push(format!("agent.{key}")),
        }
    }
    Ok(opts)
}

impl AgentConfig {
    /// The command line's values over the flags'.
    pub fn apply(&mut self, opts: &KernelOptions) {
        if let Some(addr) = &opts.server_addr {
            self.listen.clone_from(addr);
        }
        if let Some(log) = &opts.log {
            self.log_level = Some(log.clone());
        }
        if let Some(launcher) = opts.launcher {
            self.launcher = launcher;
        }
        if let Some(n) = opts.warm_pool {
            self.warm_pool = n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    const KATA: &str = "tsc_early_khz=2445426 console=ttyS0 quiet agent.log=debug \
        agent.server_addr=vsock://-1:1024 agent.debug_console systemd.unit=x init=/sbin/zagent\n";

    #[test]
    fn kata_options_are_read_and_the_kernels_are_left_alone() {
        let opts = parse(KATA).unwrap();
        assert_eq!(opts.server_addr.as_deref(), Some("vsock://-1:1024"));
        assert_eq!(opts.log.as_deref(), Some("debug"));
        assert_eq!(opts.launcher, None);
        assert_eq!(opts.ignored, ["agent.debug_console"]);
        assert_eq!(parse("ro quiet\n").unwrap(), KernelOptions::default());
    }

    #[test]
    fn zagents_own_options_and_the_last_word_wins() {
        let opts =
            parse("agent.log=warning agent.launcher=reexec agent.warm_pool=0 agent.log=critical")
                .unwrap();
        assert_eq!(opts.log.as_deref(), Some("error"));
        assert_eq!(opts.launcher, Some(LauncherKind::Reexec));
        assert_eq!(opts.warm_pool, Some(0));
    }

    #[test]
    fn bad_values_are_errors_that_name_the_option() {
        for (text, key) in [
            ("agent.log=loud", "agent.log"),
            ("agent.server_addr=tcp://1.2.3.4:5", "agent.server_addr"),
            ("agent.server_addr", "agent.server_addr"),
            ("agent.launcher=fork", "agent.launcher"),
            ("agent.warm_pool=-1", "agent.warm_pool"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(key), "{text}: {e}");
        }
    }

    #[test]
    fn the_file_is_read_and_its_values_override_the_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cmdline");
        std::fs::write(&file, KATA).unwrap();
        let mut cfg =
            AgentConfig::parse_from(["zagent", "--listen", "unix:///x", "--warm-pool", "2"]);
        cfg.apply(&read(&file).unwrap());
        assert_eq!(cfg.listen, "vsock://-1:1024");
        assert_eq!(cfg.log_level.as_deref(), Some("debug"));
        assert_eq!(cfg.warm_pool, 2, "not on the command line: the flag stays");
        let e = read(&dir.path().join("absent")).unwrap_err();
        assert!(matches!(e, CmdlineError::Read { .. }), "{e}");
    }
}
