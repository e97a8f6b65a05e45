//! Links and their addresses: UpdateInterface (the link with the shim's MAC gets its name, MTU
//! and addresses, and goes up) and ListInterfaces, in Kata's `types.Interface` shape.

use super::parse::{self, MAX_ADDRESSES};
use super::{NetError, Netlink, CHANGES};
use futures_util::TryStreamExt;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
use rtnetlink::packet_route::link::{LinkAttribute, LinkInfo, LinkMessage};
use rtnetlink::LinkUnspec;
use std::net::IpAddr;
use wire::types::Interface;

pub(super) async fn links(nl: &Netlink) -> Result<Vec<LinkMessage>, NetError> {
    nl.handle
        .link()
        .get()
        .execute()
        .try_collect()
        .await
        .map_err(|e| NetError::netlink("list links", e))
}

pub(super) fn name_of(link: &LinkMessage) -> String {
    link.attributes
        .iter()
        .find_map(|a| match a {
            LinkAttribute::IfName(n) => Some(n.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

fn mac_of(link: &LinkMessage) -> Option<&[u8]> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::Address(m) => Some(m.as_slice()),
        _ => None,
    })
}

fn mtu_of(link: &LinkMessage) -> u64 {
    let mtu = link.attributes.iter().find_map(|a| match a {
        LinkAttribute::Mtu(m) => Some(*m),
        _ => None,
    });
    mtu.unwrap_or(0).into()
}

/// The link's kind ("veth", "dummy"...); empty for links without one (loopback, most NICs).
fn kind_of(link: &LinkMessage) -> String {
    let infos = link.attributes.iter().find_map(|a| match a {
        LinkAttribute::LinkInfo(i) => Some(i),
        _ => None,
    });
    let kind = infos.and_then(|i| {
        i.iter().find_map(|x| match x {
            LinkInfo::Kind(k) => Some(k.to_string()),
            _ => None,
        })
    });
    kind.unwrap_or_default()
}

/// A link by name, from a dump (the kernel answers a by-name get of a missing link with an
/// error, which would be indistinguishable from a failed call).
pub(super) fn find_name<'a>(all: &'a [LinkMessage], name: &str) -> Option<&'a LinkMessage> {
    all.iter().find(|l| name_of(l) == name)
}

async fn addresses(nl: &Netlink, index: u32) -> Result<Vec<AddressMessage>, NetError> {
    nl.handle
        .address()
        .get()
        .set_link_index_filter(index)
        .execute()
        .try_collect()
        .await
        .map_err(|e| NetError::netlink(format!("list addresses of link {index}"), e))
}

/// An IPv4 address is in IFA_LOCAL (IFA_ADDRESS is the peer's on point-to-point links); an
/// IPv6 one only in IFA_ADDRESS.
fn ip_of(msg: &AddressMessage) -> Option<IpAddr> {
    let pick = |local: bool| {
        msg.attributes.iter().find_map(|a| match a {
            AddressAttribute::Local(ip) if local => Some(*ip),
            AddressAttribute::Address(ip) if !local => Some(*ip),
            _ => None,
        })
    };
    pick(true).or_else(|| pick(false))
}

async fn interface(nl: &Netlink, link: &LinkMessage) -> Result<Interface, NetError> {
    let addrs = addresses(nl, link.header.index).await?;
    let name = name_of(link);
    Ok(Interface {
        device: name.clone(),
        name,
        IPAddresses: addrs
            .iter()
            .filter_map(|a| ip_of(a).map(|ip| parse::ip_address(ip, a.header.prefix_len)))
            .collect(),
        mtu: mtu_of(link),
        hwAddr: mac_of(link).map(parse::format_mac).unwrap_or_default(),
        type_: kind_of(link),
        raw_flags: link.header.flags.bits(),
        ..Default::default()
    })
}

pub async fn list_interfaces() -> Result<Vec<Interface>, NetError> {
    let nl = Netlink::open()?;
    let mut out = Vec::new();
    for link in links(&nl).await? {
        out.push(interface(&nl, &link).await?);
    }
    Ok(out)
}

/// What UpdateInterface asks for, checked.
struct Wanted {
    mac: [u8; 6],
    name: Option<String>,
    mtu: Option<u32>,
    addrs: Vec<(IpAddr, u8)>,
    arp: bool,
}

fn wanted(iface: &Interface) -> Result<Wanted, NetError> {
    let mac = parse::mac(&iface.hwAddr)?;
    // An empty name keeps the link's own (Kata's shims always send one).
    let name = (!iface.name.is_empty()).then(|| iface.name.clone());
    if let Some(n) = &name {
        parse::link_name(n)?;
    }
    parse::count(iface.IPAddresses.len(), MAX_ADDRESSES, "addresses")?;
    let addrs = iface
        .IPAddresses
        .iter()
        .map(parse::address)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Wanted {
        mac,
        name,
        mtu: parse::mtu(iface.mtu)?,
        addrs,
        arp: iface.raw_flags & libc::IFF_NOARP as u32 == 0,
    })
}

async fn set(nl: &Netlink, msg: LinkMessage, what: &str) -> Result<(), NetError> {
    nl.handle
        .link()
        .set(msg)
        .execute()
        .await
        .map_err(|e| NetError::netlink(what, e))
}

/// Kata's UpdateInterface: the link with the given MAC goes down, loses every address, gets
/// the new ones, its name (a link already holding that name takes the old one in exchange),
/// MTU and ARP setting, and comes up. Returns the link as the kernel now reports it.
pub async fn update_interface(iface: &Interface) -> Result<Interface, NetError> {
    let want = wanted(iface)?;
    let _one = CHANGES.lock().await;
    let nl = Netlink::open()?;
    let all = links(&nl).await?;
    let link = all
        .iter()
        .find(|l| mac_of(l) == Some(&want.mac[..]))
        .ok_or_else(|| NetError::LinkNotFound(format!("with hardware address {}", iface.hwAddr)))?;
    let index = link.header.index;
    let old_name = name_of(link);
    set(
        &nl,
        LinkUnspec::new_with_index(index).down().build(),
        "link down",
    )
    .await?;
    replace_addresses(&nl, index, &want.addrs).await?;
    let rival = match &want.name {
        Some(n) if *n != old_name => find_name(&all, n),
        _ => None,
    };
    if let Some(r) = rival {
        // A link cannot be renamed while up, nor to a name in use: park the rival first.
        let parked = LinkUnspec::new_with_index(r.header.index)
            .down()
            .name(format!("zt{}", r.header.index))
            .build();
        set(&nl, parked, "rename the link holding the name").await?;
    }
    let mut b = LinkUnspec::new_with_index(index);
    if let Some(n) = &want.name {
        b = b.name(n.clone());
    }
    if let Some(m) = want.mtu {
        b = b.mtu(m);
    }
    set(&nl, b.arp(want.arp).up().build(), "configure link").await?;
    if let Some(r) = rival {
        let mut back = LinkUnspec::new_with_index(r.header.index).name(old_name);
        if r.header
            .flags
            .contains(rtnetlink::packet_route::link::LinkFlags::Up)
        {
            back = back.up();
        }
        set(&nl, back.build(), "give the old name to the other link").await?;
    }
    let now = links(&nl).await?;
    let link = now
        .iter()
        .find(|l| l.header.index == index)
        .ok_or_else(|| NetError::LinkNotFound(format!("index {index} (gone while updating)")))?;
    interface(&nl, link).await
}

async fn replace_addresses(
    nl: &Netlink,
    index: u32,
    addrs: &[(IpAddr, u8)],
) -> Result<(), NetError> {
    for old in addresses(nl, index).await? {
        let r = nl.handle.address().del(old).execute().await;
        let e = match r {
            Ok(()) => continue,
            Err(e) => NetError::netlink(format!("delete an address of link {index}"), e),
        };
        // Deleting a primary IPv4 address takes its secondaries with it.
        if e.errno() != Some(libc::EADDRNOTAVAIL) {
            return Err(e);
        }
    }
    for (ip, len) in addrs {
        nl.handle
            .address()
            .add(index, *ip, *len)
            .replace()
            .execute()
            .await
            .map_err(|e| NetError::netlink(format!("add address {ip}/{len}"), e))?;
    }
    Ok(())
}
