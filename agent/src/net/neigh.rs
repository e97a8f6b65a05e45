//! AddARPNeighbors: static neighbour entries the shim knows (Kata adds them so that the guest
//! needs no ARP for its peers), added or replaced. Every entry is checked and its device found
//! before the first one goes in.

use super::link::{find_name, links};
use super::parse::{self, MAX_NEIGHBOURS};
use super::{NetError, Netlink, CHANGES};
use rtnetlink::packet_route::neighbour::{NeighbourFlags, NeighbourState};
use std::net::IpAddr;
use wire::types::ARPNeighbor;

/// NUD_PERMANENT: what an entry without a state gets (as in Kata's agent).
const NUD_PERMANENT: u16 = 0x80;

#[derive(Debug, PartialEq)]
pub(super) struct Entry {
    ip: IpAddr,
    device: String,
    lladdr: Option<[u8; 6]>,
    state: u16,
    flags: u8,
}

pub(super) fn entry(n: &ARPNeighbor) -> Result<Entry, NetError> {
    let to = n
        .toIPAddress
        .as_ref()
        .filter(|a| !a.address.is_empty())
        .ok_or_else(|| NetError::InvalidArgument("ARP neighbor without an IP address".into()))?;
    let ip = parse::ip(&to.address, "neighbor")?;
    parse::check_family(to.family.enum_value_or_default(), ip, "neighbor")?;
    if n.device.is_empty() {
        return Err(NetError::InvalidArgument(format!(
            "ARP neighbor {ip} has no device"
        )));
    }
    let lladdr = match n.lladdr.as_str() {
        "" => None,
        m => Some(parse::mac(m)?),
    };
    let state = match n.state {
        0 => NUD_PERMANENT,
        s => u16::try_from(s).map_err(|_| {
            NetError::InvalidArgument(format!("neighbor {ip}: state {s} is not a NUD_* bit set"))
        })?,
    };
    let flags = u8::try_from(n.flags).map_err(|_| {
        NetError::InvalidArgument(format!(
            "neighbor {ip}: flags {} are not NTF_* bits",
            n.flags
        ))
    })?;
    Ok(Entry {
        ip,
        device: n.device.clone(),
        lladdr,
        state,
        flags,
    })
}

pub async fn add_neighbours(list: &[ARPNeighbor]) -> Result<(), NetError> {
    parse::count(list.len(), MAX_NEIGHBOURS, "ARP neighbors")?;
    let entries = list.iter().map(entry).collect::<Result<Vec<_>, _>>()?;
    let _one = CHANGES.lock().await;
    let nl = Netlink::open()?;
    let all = links(&nl).await?;
    let mut resolved = Vec::with_capacity(entries.len());
    for e in entries {
        let link = find_name(&all, &e.device).ok_or_else(|| {
            NetError::LinkNotFound(format!("{:?} (ARP neighbor {})", e.device, e.ip))
        })?;
        resolved.push((link.header.index, e));
    }
    for (index, e) in resolved {
        let mut req = nl
            .handle
            .neighbours()
            .add(index, e.ip)
            .state(NeighbourState::from(e.state))
            .flags(NeighbourFlags::from_bits_retain(e.flags))
            .replace();
        if let Some(m) = e.lladdr {
            req = req.link_layer_address(&m);
        }
        req.execute()
            .await
            .map_err(|err| NetError::netlink(format!("add ARP neighbor {}", e.ip), err))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use wire::types::{IPAddress, IPFamily};

    fn neigh(ip: &str, dev: &str, mac: &str, state: i32, flags: i32) -> ARPNeighbor {
        ARPNeighbor {
            toIPAddress: Some(IPAddress {
                family: IPFamily::v4.into(),
                address: ip.into(),
                ..Default::default()
            })
            .into(),
            device: dev.into(),
            lladdr: mac.into(),
            state,
            flags,
            ..Default::default()
        }
    }

    #[test]
    fn neighbours_convert_with_kata_defaults() {
        let e = entry(&neigh("10.0.0.9", "eth0", "02:00:00:00:00:09", 0, 0)).unwrap();
        assert_eq!(e.state, NUD_PERMANENT);
        assert_eq!(e.lladdr, Some([2, 0, 0, 0, 0, 9]));
        let e = entry(&neigh("fd00::9", "eth0", "", 2, 0)).unwrap();
        assert_eq!((e.state, e.lladdr), (2, None));
    }

    #[test]
    fn bad_neighbours_are_refused() {
        assert!(entry(&neigh("", "eth0", "", 0, 0)).is_err());
        assert!(entry(&neigh("10.0.0.9", "", "", 0, 0)).is_err());
        assert!(entry(&neigh("10.0.0.x", "eth0", "", 0, 0)).is_err());
        assert!(entry(&neigh("10.0.0.9", "eth0", "02:00", 0, 0)).is_err());
        assert!(entry(&neigh("10.0.0.9", "eth0", "", 0x10000, 0)).is_err());
        assert!(entry(&neigh("10.0.0.9", "eth0", "", -1, 0)).is_err());
        assert!(entry(&neigh("10.0.0.9", "eth0", "", 0, 256)).is_err());
        let mut no_ip = neigh("10.0.0.9", "eth0", "", 0, 0);
        no_ip.toIPAddress = None.into();
        assert!(entry(&no_ip).is_err());
    }
}
