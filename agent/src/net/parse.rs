//! What the shim sends, checked and turned into typed values before any netlink call, and the
//! kernel's answers turned back into Kata's strings. Pure functions: unit-tested without a
//! network namespace. Every failure here is the client's (INVALID_ARGUMENT).

use super::NetError;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use wire::types::{IPAddress, IPFamily};

/// At most this many addresses in one UpdateInterface.
pub const MAX_ADDRESSES: usize = 64;
/// At most this many routes in one UpdateRoutes.
pub const MAX_ROUTES: usize = 1024;
/// At most this many neighbours in one AddARPNeighbors.
pub const MAX_NEIGHBOURS: usize = 1024;
/// IFNAMSIZ less the terminating NUL.
const MAX_NAME: usize = 15;
/// The smallest MTU an IPv4 link may have (RFC 791); the kernel's per-driver maximum decides
/// the top, below this bound.
const MIN_MTU: u64 = 68;
const MAX_MTU: u64 = 65535;

fn bad(msg: String) -> NetError {
    NetError::InvalidArgument(msg)
}

/// A MAC address as `aa:bb:cc:dd:ee:ff` (either case).
pub fn mac(s: &str) -> Result<[u8; 6], NetError> {
    let parts: Vec<&str> = s.split(':').collect();
    let valid = parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()));
    if !valid {
        return Err(bad(format!("{s:?} is not a MAC address")));
    }
    let mut out = [0u8; 6];
    for (o, p) in out.iter_mut().zip(parts) {
        *o = u8::from_str_radix(p, 16).map_err(|_| bad(format!("{s:?} is not a MAC address")))?;
    }
    Ok(out)
}

/// A link-layer address as `ip` prints it: lower-case hex pairs joined by colons.
pub fn format_mac(bytes: &[u8]) -> String {
    let parts: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
    parts.join(":")
}

pub fn ip(s: &str, what: &str) -> Result<IpAddr, NetError> {
    s.parse()
        .map_err(|_| bad(format!("{what} {s:?} is not an IP address")))
}

fn max_prefix(ip: IpAddr) -> u8 {
    if ip.is_ipv4() {
        32
    } else {
        128
    }
}

fn prefix(s: &str, ip: IpAddr, what: &str) -> Result<u8, NetError> {
    let ok = !s.is_empty() && s.len() <= 3 && s.bytes().all(|b| b.is_ascii_digit());
    match s.parse::<u8>() {
        Ok(p) if ok && p <= max_prefix(ip) => Ok(p),
        _ => Err(bad(format!(
            "{what}: prefix length {s:?} is not a number from 0 to {}",
            max_prefix(ip)
        ))),
    }
}

/// An interface address: Kata sends the address and its prefix length apart.
pub fn address(a: &IPAddress) -> Result<(IpAddr, u8), NetError> {
    let addr = ip(&a.address, "address")?;
    check_family(a.family.enum_value_or_default(), addr, "address")?;
    let len = prefix(&a.mask, addr, &format!("address {}", a.address))?;
    Ok((addr, len))
}

/// `family` defaults to v4 on the wire, so only an explicit v6 beside an IPv4 address is a
/// contradiction; an IPv6 address with the default family is taken as IPv6.
pub fn check_family(family: IPFamily, addr: IpAddr, what: &str) -> Result<(), NetError> {
    if family == IPFamily::v6 && addr.is_ipv4() {
        return Err(bad(format!("{what} {addr} is IPv4 but its family is v6")));
    }
    Ok(())
}

pub fn ip_address(addr: IpAddr, prefix_len: u8) -> IPAddress {
    IPAddress {
        family: family_of(addr).into(),
        address: addr.to_string(),
        mask: prefix_len.to_string(),
        ..Default::default()
    }
}

pub fn family_of(addr: IpAddr) -> IPFamily {
    if addr.is_ipv4() {
        IPFamily::v4
    } else {
        IPFamily::v6
    }
}

/// A network `ip/len` (a plain address is a host route: /32 or /128). Host bits must be
/// clear, as the kernel wants them for a route's destination.
pub fn network(s: &str, what: &str) -> Result<(IpAddr, u8), NetError> {
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => {
            let addr = ip(a, what)?;
            (addr, prefix(l, addr, &format!("{what} {s:?}"))?)
        }
        None => {
            let addr = ip(s, what)?;
            (addr, max_prefix(addr))
        }
    };
    if masked(addr, len) != addr {
        return Err(bad(format!(
            "{what} {s:?} has host bits set (the network is {}/{len})",
            masked(addr, len)
        )));
    }
    Ok((addr, len))
}

fn masked(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
        }
        IpAddr::V6(a) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
        }
    }
}

/// A new interface name: what the kernel's `dev_valid_name` accepts.
pub fn link_name(s: &str) -> Result<(), NetError> {
    let ok = !s.is_empty()
        && s.len() <= MAX_NAME
        && s != "."
        && s != ".."
        && !s
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b == 0);
    if ok {
        Ok(())
    } else {
        Err(bad(format!(
            "interface name {s:?} is not 1 to {MAX_NAME} bytes without '/', ':' or spaces"
        )))
    }
}

/// An MTU the shim asks for; 0 leaves the link's MTU alone.
pub fn mtu(m: u64) -> Result<Option<u32>, NetError> {
    match m {
        0 => Ok(None),
        MIN_MTU..=MAX_MTU => Ok(Some(m as u32)),
        _ => Err(bad(format!("MTU {m} is not from {MIN_MTU} to {MAX_MTU}"))),
    }
}

pub fn count(n: usize, max: usize, what: &str) -> Result<(), NetError> {
    if n > max {
        return Err(bad(format!("{n} {what}: at most {max} in one call")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_parse_in_either_case_and_print_lower() {
        let m = mac("02:AB:cd:00:11:FF").unwrap();
        assert_eq!(m, [0x02, 0xab, 0xcd, 0x00, 0x11, 0xff]);
        assert_eq!(format_mac(&m), "02:ab:cd:00:11:ff");
        for bad in [
            "",
            "02:ab:cd:00:11",
            "02:ab:cd:00:11:ff:00",
            "2:ab:cd:00:11:ff",
            "02-ab-cd-00-11-ff",
            "zz:ab:cd:00:11:ff",
            "+2:ab:cd:00:11:ff",
        ] {
            assert!(mac(bad).is_err(), "{bad:?}");
        }
    }

    fn ipa(family: IPFamily, address: &str, mask: &str) -> IPAddress {
        IPAddress {
            family: family.into(),
            address: address.into(),
            mask: mask.into(),
            ..Default::default()
        }
    }

    #[test]
    fn addresses_check_prefix_range_and_family() {
        let v4 = address(&ipa(IPFamily::v4, "10.1.2.3", "24")).unwrap();
        assert_eq!(v4, ("10.1.2.3".parse().unwrap(), 24));
        let v6 = address(&ipa(IPFamily::v4, "fd00::1", "128")).unwrap();
        assert_eq!(v6, ("fd00::1".parse().unwrap(), 128));
        assert!(address(&ipa(IPFamily::v4, "10.1.2.3", "33")).is_err());
        assert!(address(&ipa(IPFamily::v6, "fd00::1", "129")).is_err());
        assert!(address(&ipa(IPFamily::v4, "10.1.2.3", "")).is_err());
        assert!(address(&ipa(IPFamily::v4, "10.1.2.3", "-1")).is_err());
        assert!(address(&ipa(IPFamily::v4, "10.1.2.3", "+8")).is_err());
        assert!(address(&ipa(IPFamily::v4, "10.1.2.3/24", "24")).is_err());
        assert!(address(&ipa(IPFamily::v4, "10.1.2", "24")).is_err());
        assert!(address(&ipa(IPFamily::v6, "10.1.2.3", "24")).is_err());
    }

    #[test]
    fn addresses_convert_back_to_kata_shape() {
        let a = ip_address("fd00::5".parse().unwrap(), 64);
        assert_eq!(a.family.enum_value_or_default(), IPFamily::v6);
        assert_eq!((a.address.as_str(), a.mask.as_str()), ("fd00::5", "64"));
        let a = ip_address("192.168.1.1".parse().unwrap(), 16);
        assert_eq!(a.family.enum_value_or_default(), IPFamily::v4);
        assert_eq!(a.mask, "16");
    }

    #[test]
    fn networks_default_to_host_routes_and_refuse_host_bits() {
        assert_eq!(
            network("10.0.0.0/8", "d").unwrap(),
            ("10.0.0.0".parse().unwrap(), 8)
        );
        assert_eq!(
            network("10.0.0.7", "d").unwrap(),
            ("10.0.0.7".parse().unwrap(), 32)
        );
        assert_eq!(network("0.0.0.0/0", "d").unwrap().1, 0);
        assert_eq!(network("fd00:1::/32", "d").unwrap().1, 32);
        assert_eq!(network("::/0", "d").unwrap().1, 0);
        assert!(network("10.0.0.1/8", "d").is_err());
        assert!(network("fd00::1/64", "d").is_err());
        assert!(network("10.0.0.0/40", "d").is_err());
        assert!(network("10.0.0.0/", "d").is_err());
        assert!(network("nope/8", "d").is_err());
    }

    #[test]
    fn names_mtus_and_counts_are_bounded() {
        assert!(link_name("eth0").is_ok());
        assert!(link_name("abcdefghijklmno").is_ok());
        for bad in [
            "",
            "abcdefghijklmnop",
            ".",
            "..",
            "a/b",
            "a b",
            "a:b",
            "a\0",
        ] {
            assert!(link_name(bad).is_err(), "{bad:?}");
        }
        assert_eq!(mtu(0).unwrap(), None);
        assert_eq!(mtu(1500).unwrap(), Some(1500));
        assert!(mtu(67).is_err());
        assert!(mtu(65536).is_err());
        assert!(mtu(u64::MAX).is_err());
        assert!(count(MAX_ROUTES, MAX_ROUTES, "routes").is_ok());
        assert!(count(MAX_ROUTES + 1, MAX_ROUTES, "routes").is_err());
    }
}
