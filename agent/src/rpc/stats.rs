//! StatsContainer's reply: `jail::cgroups::CgroupStats` in Kata's `CgroupStats` message shape
//! (cgroup v1's, which Kata's shims read for both cgroup versions). A figure the kernel does
//! not provide is 0, as in Kata's agent; an unlimited pids limit is 0 too (Kata's reading of
//! "max"). The network list: every interface of the container's network namespace
//! (`netstats`).

use crate::netstats::NetDev;
use jail::cgroups::{BlkioEntry, CgroupStats};
use wire::agent;

pub fn response((s, network): (CgroupStats, Vec<NetDev>)) -> agent::StatsContainerResponse {
    let cpu = agent::CpuStats {
        cpu_usage: Some(agent::CpuUsage {
            total_usage: s.cpu.total_ns.unwrap_or(0),
            percpu_usage: s.cpu.percpu_ns,
            usage_in_kernelmode: s.cpu.system_ns.unwrap_or(0),
            usage_in_usermode: s.cpu.user_ns.unwrap_or(0),
            ..Default::default()
        })
        .into(),
        throttling_data: Some(agent::ThrottlingData {
            periods: s.cpu.periods.unwrap_or(0),
            throttled_periods: s.cpu.throttled_periods.unwrap_or(0),
            throttled_time: s.cpu.throttled_ns.unwrap_or(0),
            ..Default::default()
        })
        .into(),
        ..Default::default()
    };
    let m = s.memory;
    let memory = agent::MemoryStats {
        cache: m.cache.unwrap_or(0),
        usage: Some(agent::MemoryData {
            usage: m.usage.unwrap_or(0),
            max_usage: m.max_usage.unwrap_or(0),
            failcnt: m.failcnt.unwrap_or(0),
            limit: m.limit.unwrap_or(0),
            ..Default::default()
        })
        .into(),
        swap_usage: Some(agent::MemoryData {
            usage: m.swap_usage.unwrap_or(0),
            limit: m.swap_limit.unwrap_or(0),
            ..Default::default()
        })
        .into(),
        use_hierarchy: m.use_hierarchy,
        stats: m.stat.into_iter().collect(),
        ..Default::default()
    };
    let pids = agent::PidsStats {
        current: s.pids.current.unwrap_or(0),
        limit: s.pids.limit.unwrap_or(0),
        ..Default::default()
    };
    let blkio = agent::BlkioStats {
        io_service_bytes_recursive: entries(s.blkio.service_bytes),
        io_serviced_recursive: entries(s.blkio.serviced),
        ..Default::default()
    };
    let cgroup = agent::CgroupStats {
        cpu_stats: Some(cpu).into(),
        memory_stats: Some(memory).into(),
        pids_stats: Some(pids).into(),
        blkio_stats: Some(blkio).into(),
        ..Default::default()
    };
    agent::StatsContainerResponse {
        cgroup_stats: Some(cgroup).into(),
        network_stats: network.into_iter().map(interface).collect(),
        ..Default::default()
    }
}

fn interface(d: NetDev) -> agent::NetworkStats {
    agent::NetworkStats {
        name: d.name,
        rx_bytes: d.rx_bytes,
        rx_packets: d.rx_packets,
        rx_errors: d.rx_errors,
        rx_dropped: d.rx_dropped,
        tx_bytes: d.tx_bytes,
        tx_packets: d.tx_packets,
        tx_errors: d.tx_errors,
        tx_dropped: d.tx_dropped,
        ..Default::default()
    }
}

fn entries(list: Vec<BlkioEntry>) -> Vec<agent::BlkioStatsEntry> {
    list.into_iter()
        .map(|e| agent::BlkioStatsEntry {
            major: e.major,
            minor: e.minor,
            op: e.op,
            value: e.value,
            ..Default::default()
        })
        .collect()
}
