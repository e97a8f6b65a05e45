//! Frame encoding for the zygote protocol: a 4-byte little-endian protocol version followed by
//! the bincode body. This is the only module that names bincode, so the codec can be swapped
//! (bincode is unmaintained) without touching anything else.

use crate::zygote::{MAX_FRAME, PROTOCOL_VERSION};
use serde::{de::DeserializeOwned, Serialize};

const HEADER: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("frame of {0} bytes exceeds the {MAX_FRAME}-byte limit")]
    TooLarge(usize),
    #[error("frame of {0} bytes is shorter than its header")]
    Short(usize),
    #[error("frame has protocol version {got}, expected {PROTOCOL_VERSION}")]
    Version { got: u32 },
    #[error("encoding a frame: {0}")]
    Encode(String),
    #[error("decoding a frame: {0}")]
    Decode(String),
    #[error("frame has {0} trailing bytes")]
    Trailing(usize),
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_FRAME>()
}

/// Encodes `msg` into a frame, refusing frames over `MAX_FRAME`.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = PROTOCOL_VERSION.to_le_bytes().to_vec();
    let body = bincode::serde::encode_to_vec(msg, config())
        .map_err(|e| CodecError::Encode(e.to_string()))?;
    out.extend_from_slice(&body);
    if out.len() > MAX_FRAME {
        return Err(CodecError::TooLarge(out.len()));
    }
    Ok(out)
}

/// Decodes one whole frame; the size is checked before anything is allocated for the body.
pub fn decode<T: DeserializeOwned>(frame: &[u8]) -> Result<T, CodecError> {
    if frame.len() > MAX_FRAME {
        return Err(CodecError::TooLarge(frame.len()));
    }
    if frame.len() < HEADER {
        return Err(CodecError::Short(frame.len()));
    }
    let (head, body) = frame.split_at(HEADER);
    let got = u32::from_le_bytes(head.try_into().expect("header is 4 bytes"));
    if got != PROTOCOL_VERSION {
        return Err(CodecError::Version { got });
    }
    let (msg, used) = bincode::serde::decode_from_slice(body, config())
        .map_err(|e| CodecError::Decode(e.to_string()))?;
    if used != body.len() {
        return Err(CodecError::Trailing(body.len() - used));
    }
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zygote::*;

    #[test]
    fn round_trips_an_all_default_config() {
        let req = Request::Launch(Box::default());
        let back: Request = decode(&encode(&req).unwrap()).unwrap();
        assert_eq!(back, req);
    }

    #[test]
    fn round_trips_a_full_config() {
        let cfg = ContainerConfig {
            id: "c1".into(),
            rootfs: "/r".into(),
            readonly_root: true,
            rootfs_propagation: 1,
            hostname: Some("h".into()),
            domainname: None,
            namespaces: vec![Namespace {
                kind: NamespaceKind::Pid,
                join: true,
            }],
            mounts: vec![Mount {
                destination: "/proc".into(),
                flags: 7,
                ..Default::default()
            }],
            devices: vec![Device {
                path: "/dev/null".into(),
                kind: DeviceKind::Char,
                major: 1,
                minor: 3,
                mode: 0o666,
                uid: 0,
                gid: 0,
            }],
            masked_paths: vec!["/proc/kcore".into()],
            readonly_paths: vec![],
            sysctl: vec![("net.ipv4.ip_forward".into(), "1".into())],
            cgroup_procs: vec!["/sys/fs/cgroup/pids/zagent/c1/cgroup.procs".into()],
            oom_score_adj: Some(-1),
            console_size: Some((24, 80)),
            uid_mappings: vec![IdMapping {
                container_id: 0,
                host_id: 100_000,
                size: 65536,
            }],
            gid_mappings: vec![],
            hooks: ChildHooks {
                runtime_hooks_due: true,
                create_container: vec![Hook {
                    path: "/bin/hook".into(),
                    args: vec!["hook".into()],
                    env: vec!["K=V".into()],
                    timeout_secs: Some(3),
                }],
                start_container: vec![],
                state: HookState::default(),
            },
            process: ProcessConfig {
                args: vec!["sh".into()],
                rlimits: vec![Rlimit {
                    resource: 7,
                    soft: 1,
                    hard: 2,
                }],
                umask: Some(0o22),
                ..Default::default()
            },
        };
        let req = Request::Launch(Box::new(cfg));
        assert_eq!(decode::<Request>(&encode(&req).unwrap()).unwrap(), req);
        let ev = ChildEvent::Failed {
            step: "mount".into(),
            errno: 2,
            message: "x".into(),
        };
        assert_eq!(decode::<ChildEvent>(&encode(&ev).unwrap()).unwrap(), ev);
    }

    #[test]
    fn rejects_wrong_version_short_oversized_and_trailing_frames() {
        let mut f = encode(&Reply::Launched { pid: 5 }).unwrap();
        f[0] ^= 0xff;
        assert!(matches!(
            decode::<Reply>(&f),
            Err(CodecError::Version { .. })
        ));
        assert!(matches!(
            decode::<Reply>(&[1, 0]),
            Err(CodecError::Short(2))
        ));
        let big = vec![0u8; MAX_FRAME + 1];
        assert!(matches!(
            decode::<Reply>(&big),
            Err(CodecError::TooLarge(_))
        ));
        let mut t = encode(&Reply::Launched { pid: 5 }).unwrap();
        t.push(0);
        assert!(matches!(decode::<Reply>(&t), Err(CodecError::Trailing(1))));
        let huge = ContainerConfig {
            id: "x".repeat(MAX_FRAME),
            ..Default::default()
        };
        assert!(matches!(
            encode(&Request::Launch(Box::new(huge))),
            Err(CodecError::TooLarge(_))
        ));
    }
}
