//! `linux.resources.blockIO`, written as runc does: on v1 into the blkio controller's files
//! (the CFQ names, or BFQ's `blkio.bfq.*` where the kernel has no CFQ), on v2 into `io.max`
//! and `io.weight` (`io.bfq.weight` where BFQ is the scheduler, with v1's 10..1000 weight
//! unchanged; `io.weight` takes runc's conversion onto 1..10000). A leaf weight has no v2 file
//! and is refused there.

use super::{write, CgroupError};
use std::path::Path;

/// Block I/O limits; weights are v1's (10..=1000).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockIo {
    pub weight: Option<u16>,
    pub leaf_weight: Option<u16>,
    pub weight_devices: Vec<WeightDevice>,
    pub read_bps: Vec<Throttle>,
    pub write_bps: Vec<Throttle>,
    pub read_iops: Vec<Throttle>,
    pub write_iops: Vec<Throttle>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightDevice {
    pub major: u64,
    pub minor: u64,
    pub weight: Option<u16>,
    pub leaf_weight: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Throttle {
    pub major: u64,
    pub minor: u64,
    pub rate: u64,
}

impl BlockIo {
    pub fn is_empty(&self) -> bool {
        *self == BlockIo::default()
    }

    fn throttles(&self) -> [(&'static str, &'static str, &[Throttle]); 4] {
        [
            ("blkio.throttle.read_bps_device", "rbps", &self.read_bps),
            ("blkio.throttle.write_bps_device", "wbps", &self.write_bps),
            ("blkio.throttle.read_iops_device", "riops", &self.read_iops),
            (
                "blkio.throttle.write_iops_device",
                "wiops",
                &self.write_iops,
            ),
        ]
    }
}

/// v1: one line per write, each file as the kernel names it.
pub(super) fn apply_v1(leaf: &Path, b: &BlockIo) -> Result<(), CgroupError> {
    // runc's choice: CFQ's files if the kernel has them, else BFQ's.
    let bfq = !leaf.join("blkio.weight").exists() && leaf.join("blkio.bfq.weight").exists();
    let (weight, weight_device) = if bfq {
        ("blkio.bfq.weight", "blkio.bfq.weight_device")
    } else {
        ("blkio.weight", "blkio.weight_device")
    };
    if let Some(w) = b.weight {
        write(&leaf.join(weight), &w.to_string())?;
    }
    if let Some(w) = b.leaf_weight {
        write(&leaf.join("blkio.leaf_weight"), &w.to_string())?;
    }
    for d in &b.weight_devices {
        let dev = format!("{}:{}", d.major, d.minor);
        if let Some(w) = d.weight {
            write(&leaf.join(weight_device), &format!("{dev} {w}"))?;
        }
        if let Some(w) = d.leaf_weight {
            write(
                &leaf.join("blkio.leaf_weight_device"),
                &format!("{dev} {w}"),
            )?;
        }
    }
    for (file, _, list) in b.throttles() {
        for t in list {
            write(
                &leaf.join(file),
                &format!("{}:{} {}", t.major, t.minor, t.rate),
            )?;
        }
    }
    Ok(())
}

/// v2: `io.max` takes one device line per write ("8:0 rbps=1048576"), `io.weight` a default
/// ("default 100") or a device line.
pub(super) fn apply_v2(leaf: &Path, b: &BlockIo) -> Result<(), CgroupError> {
    let leaf_weight =
        b.leaf_weight.is_some() || b.weight_devices.iter().any(|d| d.leaf_weight.is_some());
    if leaf_weight {
        return Err(CgroupError::Unsupported {
            field: "blockIO.leafWeight",
            reason: "cgroup v2 has no leaf weights",
        });
    }
    let bfq = leaf.join("io.bfq.weight").exists();
    let (file, convert): (&str, fn(u16) -> u64) = if bfq {
        ("io.bfq.weight", u64::from)
    } else {
        ("io.weight", weight_to_v2)
    };
    if let Some(w) = b.weight {
        write(&leaf.join(file), &format!("default {}", convert(w)))?;
    }
    for d in &b.weight_devices {
        if let Some(w) = d.weight {
            let line = format!("{}:{} {}", d.major, d.minor, convert(w));
            write(&leaf.join(file), &line)?;
        }
    }
    for (_, key, list) in b.throttles() {
        for t in list {
            let line = format!("{}:{} {key}={}", t.major, t.minor, t.rate);
            write(&leaf.join("io.max"), &line)?;
        }
    }
    Ok(())
}

/// v1's 10..=1000 onto v2's 1..=10000 (runc's conversion; validation keeps weights >= 10).
pub(super) fn weight_to_v2(weight: u16) -> u64 {
    1 + (u64::from(weight).max(10) - 10) * 9999 / 990
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn limits() -> BlockIo {
        let t = |rate| Throttle {
            major: 8,
            minor: 0,
            rate,
        };
        BlockIo {
            weight: Some(500),
            leaf_weight: None,
            weight_devices: vec![WeightDevice {
                major: 8,
                minor: 16,
                weight: Some(1000),
                leaf_weight: None,
            }],
            read_bps: vec![t(1)],
            write_bps: vec![t(2)],
            read_iops: vec![t(3)],
            write_iops: vec![t(4)],
        }
    }

    fn read(dir: &Path, file: &str) -> String {
        fs::read_to_string(dir.join(file)).unwrap()
    }

    #[test]
    fn v1_writes_cfq_files_or_bfq_ones() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("blkio.bfq.weight"), "100").unwrap();
        apply_v1(tmp.path(), &limits()).unwrap();
        assert_eq!(read(tmp.path(), "blkio.bfq.weight"), "500");
        assert_eq!(read(tmp.path(), "blkio.bfq.weight_device"), "8:16 1000");
        assert_eq!(
            read(tmp.path(), "blkio.throttle.write_iops_device"),
            "8:0 4"
        );
        assert!(!tmp.path().join("blkio.weight").exists());
        fs::write(tmp.path().join("blkio.weight"), "100").unwrap();
        apply_v1(tmp.path(), &limits()).unwrap();
        assert_eq!(read(tmp.path(), "blkio.weight"), "500");
    }

    #[test]
    fn v2_converts_weights_and_refuses_leaf_weights() {
        let tmp = tempfile::tempdir().unwrap();
        let mut b = limits();
        b.weight_devices.clear();
        apply_v2(tmp.path(), &b).unwrap();
        assert_eq!(read(tmp.path(), "io.weight"), "default 4950");
        // A fake tree keeps only the last write: the write IOPS line.
        assert_eq!(read(tmp.path(), "io.max"), "8:0 wiops=4");
        assert_eq!((weight_to_v2(10), weight_to_v2(1000)), (1, 10000));
        b.leaf_weight = Some(100);
        let e = apply_v2(tmp.path(), &b).unwrap_err();
        assert!(matches!(
            e,
            CgroupError::Unsupported {
                field: "blockIO.leafWeight",
                ..
            }
        ));
    }
}
