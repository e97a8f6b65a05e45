//! StatsContainer's network figures: the interfaces of a container's network namespace with
//! their receive and transmit counters, read from `/proc/<init pid>/net/dev` (which shows the
//! namespace of that process) under a /proc root given by the caller, so that tests feed it
//! files of their own. Every interface the kernel lists is kept, `lo` included. (Kata's agent
//! leaves the list empty; Kata's message has the slots, and the issue asks for them filled.)

use std::io::Read;
use std::path::{Path, PathBuf};

/// The most of a net/dev file read: about 5,000 interfaces. A longer file is an error rather
/// than a list cut short.
pub const MAX_NET_DEV_BYTES: u64 = 1 << 20;

/// One interface's counters, as Kata's `NetworkStats` carries them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetDev {
    pub name: String,
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum NetStatsError {
    #[error("read {path:?}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path:?} is longer than {MAX_NET_DEV_BYTES} bytes")]
    TooLong { path: PathBuf },
    #[error("net/dev line {line:?} does not hold an interface and 16 counters")]
    Parse { line: String },
}

/// The interfaces of /proc/net/dev's text: two header lines, then `name: 16 counters` (8 for
/// receive: bytes packets errs drop fifo frame compressed multicast; 8 for transmit: bytes
/// packets errs drop fifo colls carrier compressed).
pub fn parse(text: &str) -> Result<Vec<NetDev>, NetStatsError> {
    let mut out = Vec::new();
    for line in text.lines().skip(2).filter(|l| !l.trim().is_empty()) {
        let bad = || NetStatsError::Parse { line: line.into() };
        let (name, rest) = line.split_once(':').ok_or_else(bad)?;
        let counters: Vec<u64> = rest
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map_err(|_| bad())?;
        let name = name.trim();
        if counters.len() != 16 || name.is_empty() {
            return Err(bad());
        }
        out.push(NetDev {
            name: name.into(),
            rx_bytes: counters[0],
            rx_packets: counters[1],
            rx_errors: counters[2],
            rx_dropped: counters[3],
            tx_bytes: counters[8],
            tx_packets: counters[9],
            tx_errors: counters[10],
            tx_dropped: counters[11],
        });
    }
    Ok(out)
}

/// The interfaces of process `pid`'s network namespace. `still_ours` is asked once the file is
/// open: false (the process was reaped, so its pid may name another process now) or a process
/// without a namespace any more (a zombie: ENOENT or EINVAL on read) gives an empty list, as
/// for a stopped container, which has no network namespace.
pub fn read(
    proc_root: &Path,
    pid: i32,
    still_ours: impl FnOnce() -> bool,
) -> Result<Vec<NetDev>, NetStatsError> {
    let path = proc_root.join(pid.to_string()).join("net/dev");
    let gone = |e: &std::io::Error| {
        matches!(
            e.raw_os_error(),
            Some(libc::ENOENT) | Some(libc::ESRCH) | Some(libc::EINVAL)
        )
    };
    let read_err = |source| NetStatsError::Read {
        path: path.clone(),
        source,
    };
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if gone(&e) => return Ok(Vec::new()),
        Err(e) => return Err(read_err(e)),
    };
    if !still_ours() {
        return Ok(Vec::new());
    }
    let mut text = String::new();
    match file.take(MAX_NET_DEV_BYTES + 1).read_to_string(&mut text) {
        Ok(_) => {}
        Err(e) if gone(&e) => return Ok(Vec::new()),
        Err(e) => return Err(read_err(e)),
    }
    if text.len() as u64 > MAX_NET_DEV_BYTES {
        return Err(NetStatsError::TooLong { path });
    }
    parse(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:   22336     236    0    0    0     0          0         0    22336     236    0    0    0     0       0          0
  eth0: 9139848   24471    3    7    0     0          0        12  3285714   17331    1    2    0     0       0          0
";

    #[test]
    fn every_interface_with_its_counters() {
        let list = parse(SAMPLE).unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(
            list[0],
            NetDev {
                name: "lo".into(),
                rx_bytes: 22336,
                rx_packets: 236,
                tx_bytes: 22336,
                tx_packets: 236,
                ..Default::default()
            }
        );
        let eth0 = &list[1];
        assert_eq!(eth0.name, "eth0");
        assert_eq!(
            (
                eth0.rx_bytes,
                eth0.rx_packets,
                eth0.rx_errors,
                eth0.rx_dropped
            ),
            (9139848, 24471, 3, 7)
        );
        assert_eq!(
            (
                eth0.tx_bytes,
                eth0.tx_packets,
                eth0.tx_errors,
                eth0.tx_dropped
            ),
            (3285714, 17331, 1, 2)
        );
    }

    #[test]
    fn a_broken_line_is_an_error_and_headers_alone_are_no_interfaces() {
        let header: String = SAMPLE.lines().take(2).map(|l| format!("{l}\n")).collect();
        assert!(parse(&header).unwrap().is_empty());
        for bad in [
            "  lo: 1 2 3\n",
            "  lo: 1 2 x 4 5 6 7 8 9 10 11 12 13 14 15 16\n",
            "no colon\n",
        ] {
            let e = parse(&format!("{header}{bad}")).unwrap_err();
            assert!(matches!(e, NetStatsError::Parse { .. }), "{bad}: {e}");
        }
    }

    fn proc_with(pid: i32, text: &str) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let net = root.path().join(format!("{pid}/net"));
        std::fs::create_dir_all(&net).unwrap();
        std::fs::write(net.join("dev"), text).unwrap();
        root
    }

    #[test]
    fn read_under_a_proc_root_and_nothing_for_a_process_that_is_gone() {
        let root = proc_with(42, SAMPLE);
        assert_eq!(read(root.path(), 42, || true).unwrap().len(), 2);
        assert!(
            read(root.path(), 42, || false).unwrap().is_empty(),
            "reaped"
        );
        assert!(
            read(root.path(), 43, || true).unwrap().is_empty(),
            "no such pid"
        );
        let long = format!("{SAMPLE}{}", " ".repeat(MAX_NET_DEV_BYTES as usize));
        let root = proc_with(7, &long);
        let e = read(root.path(), 7, || true).unwrap_err();
        assert!(matches!(e, NetStatsError::TooLong { .. }), "{e}");
    }

    #[test]
    fn the_agent_s_own_namespace_lists_lo() {
        let pid = std::process::id() as i32;
        let list = read(Path::new("/proc"), pid, || true).unwrap();
        assert!(list.iter().any(|d| d.name == "lo"), "{list:?}");
    }
}
