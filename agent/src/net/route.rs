//! The main routing table: ListRoutes, and UpdateRoutes, which replaces the routes the shim
//! owns with its list. As Kata's agent, it keeps what the kernel made (`proto kernel`: the
//! link routes of the addresses) and routes through the loopback, and adds link routes before
//! gateway routes so that each gateway is reachable when its route goes in.

use super::link::{find_name, links, name_of};
use super::parse::{self, MAX_ROUTES};
use super::{NetError, Netlink, CHANGES};
use futures_util::TryStreamExt;
use rtnetlink::packet_route::link::LinkMessage;
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope,
};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::RouteMessageBuilder;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use wire::types::{IPFamily, Route};

/// One route of an UpdateRoutes request, checked.
#[derive(Debug, PartialEq)]
pub(super) struct Planned {
    dest: (IpAddr, u8),
    gateway: Option<IpAddr>,
    /// `ip/len` is a source prefix, a plain address the preferred source (`ip route ... src`).
    source: Option<(IpAddr, Option<u8>)>,
    device: String,
    scope: u8,
}

fn same_family(a: IpAddr, b: IpAddr, what: &str, r: &Route) -> Result<(), NetError> {
    if a.is_ipv4() != b.is_ipv4() {
        return Err(NetError::InvalidArgument(format!(
            "route to {:?}: {what} {b} is not of the destination's family",
            r.dest
        )));
    }
    Ok(())
}

pub(super) fn plan(r: &Route) -> Result<Planned, NetError> {
    if r.device.is_empty() {
        return Err(NetError::InvalidArgument(format!(
            "route to {:?} has no device",
            r.dest
        )));
    }
    let gateway = match r.gateway.as_str() {
        "" => None,
        g => Some(parse::ip(g, "gateway")?),
    };
    let v6 =
        r.family.enum_value_or_default() == IPFamily::v6 || gateway.is_some_and(|g| g.is_ipv6());
    let dest = match r.dest.as_str() {
        "" | "default" if v6 => (IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
        "" | "default" => (IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        d => parse::network(d, "route destination")?,
    };
    parse::check_family(
        r.family.enum_value_or_default(),
        dest.0,
        "route destination",
    )?;
    if let Some(g) = gateway {
        same_family(dest.0, g, "gateway", r)?;
    }
    let source = match r.source.split_once('/') {
        _ if r.source.is_empty() => None,
        Some(_) => {
            let (ip, len) = parse::network(&r.source, "route source")?;
            Some((ip, Some(len)))
        }
        None => Some((parse::ip(&r.source, "route source")?, None)),
    };
    if let Some((s, _)) = source {
        same_family(dest.0, s, "source", r)?;
    }
    let scope = u8::try_from(r.scope)
        .map_err(|_| NetError::InvalidArgument(format!("route scope {} is above 255", r.scope)))?;
    Ok(Planned {
        dest,
        gateway,
        source,
        device: r.device.clone(),
        scope,
    })
}

/// Link routes first: a gateway route needs the route to its gateway in place.
pub(super) fn in_order(mut routes: Vec<Planned>) -> Vec<Planned> {
    routes.sort_by_key(|r| r.gateway.is_some());
    routes
}

fn bad<E: std::fmt::Display>(e: E) -> NetError {
    NetError::InvalidArgument(e.to_string())
}

fn message(p: &Planned, oif: u32) -> Result<RouteMessage, NetError> {
    let mut b = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(p.dest.0, p.dest.1)
        .map_err(bad)?;
    if let Some(g) = p.gateway {
        b = b.gateway(g).map_err(bad)?;
    }
    match p.source {
        Some((s, Some(len))) => b = b.source_prefix(s, len).map_err(bad)?,
        Some((s, None)) => b = b.pref_source(s).map_err(bad)?,
        None => {}
    }
    Ok(b.output_interface(oif)
        .protocol(RouteProtocol::Boot)
        .scope(RouteScope::from(p.scope))
        .build())
}

/// Every route of the main table, IPv4 then IPv6 (one dump at a time on a connection).
async fn main_routes(nl: &Netlink) -> Result<Vec<RouteMessage>, NetError> {
    let mut out = Vec::new();
    let queries = [
        RouteMessageBuilder::<Ipv4Addr>::new().build(),
        RouteMessageBuilder::<Ipv6Addr>::new().build(),
    ];
    for q in queries {
        let got: Vec<RouteMessage> = nl
            .handle
            .route()
            .get(q)
            .execute()
            .try_collect()
            .await
            .map_err(|e| NetError::netlink("list routes", e))?;
        out.extend(
            got.into_iter()
                .filter(|m| m.header.table == RouteHeader::RT_TABLE_MAIN),
        );
    }
    Ok(out)
}

fn oif_of(m: &RouteMessage) -> Option<u32> {
    m.attributes.iter().find_map(|a| match a {
        RouteAttribute::Oif(i) => Some(*i),
        _ => None,
    })
}

fn addr_of(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

/// A kernel route in Kata's shape: a default route has an empty `dest`, as the Go shim
/// reports one from the host's namespace.
pub(super) fn to_route(m: &RouteMessage, all: &[LinkMessage]) -> Route {
    let h = &m.header;
    let mut r = Route {
        scope: u8::from(h.scope).into(),
        family: if h.address_family == AddressFamily::Inet6 {
            IPFamily::v6
        } else {
            IPFamily::v4
        }
        .into(),
        ..Default::default()
    };
    for a in &m.attributes {
        match a {
            RouteAttribute::Destination(d) => {
                if let Some(ip) = addr_of(d) {
                    r.dest = format!("{ip}/{}", h.destination_prefix_length);
                }
            }
            RouteAttribute::Gateway(g) => {
                r.gateway = addr_of(g).map(|ip| ip.to_string()).unwrap_or_default()
            }
            RouteAttribute::PrefSource(s) => {
                r.source = addr_of(s).map(|ip| ip.to_string()).unwrap_or_default()
            }
            RouteAttribute::Source(s) => {
                if let Some(ip) = addr_of(s) {
                    r.source = format!("{ip}/{}", h.source_prefix_length);
                }
            }
            _ => {}
        }
    }
    if let Some(i) = oif_of(m) {
        r.device = all
            .iter()
            .find(|l| l.header.index == i)
            .map(name_of)
            .unwrap_or_default();
    }
    r
}

async fn list(nl: &Netlink) -> Result<Vec<Route>, NetError> {
    let all = links(nl).await?;
    let routes = main_routes(nl).await?;
    Ok(routes.iter().map(|m| to_route(m, &all)).collect())
}

pub async fn list_routes() -> Result<Vec<Route>, NetError> {
    list(&Netlink::open()?).await
}

/// The routes UpdateRoutes takes away: not the kernel's, not through the loopback.
fn replaceable(m: &RouteMessage, all: &[LinkMessage]) -> bool {
    if m.header.protocol == RouteProtocol::Kernel {
        return false;
    }
    match oif_of(m) {
        None => false,
        Some(i) => all
            .iter()
            .find(|l| l.header.index == i)
            .is_some_and(|l| name_of(l) != "lo"),
    }
}

pub async fn update_routes(routes: &[Route]) -> Result<Vec<Route>, NetError> {
    parse::count(routes.len(), MAX_ROUTES, "routes")?;
    let planned = routes.iter().map(plan).collect::<Result<Vec<_>, _>>()?;
    let _one = CHANGES.lock().await;
    let nl = Netlink::open()?;
    let all = links(&nl).await?;
    let mut msgs = Vec::with_capacity(planned.len());
    for p in in_order(planned) {
        let link = find_name(&all, &p.device).ok_or_else(|| {
            NetError::LinkNotFound(format!(
                "{:?} (route to {}/{})",
                p.device, p.dest.0, p.dest.1
            ))
        })?;
        msgs.push(message(&p, link.header.index)?);
    }
    for old in main_routes(&nl).await? {
        if !replaceable(&old, &all) {
            continue;
        }
        if let Err(e) = nl.handle.route().del(old).execute().await {
            let e = NetError::netlink("delete a route", e);
            // Gone already (taken with a route it depended on).
            if e.errno() != Some(libc::ESRCH) {
                return Err(e);
            }
        }
    }
    for m in msgs {
        if let Err(e) = nl.handle.route().add(m).execute().await {
            let e = NetError::netlink("add a route", e);
            // The same route is there already (e.g. the kernel's link route of an address).
            if e.errno() != Some(libc::EEXIST) {
                return Err(e);
            }
        }
    }
    list(&nl).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(dest: &str, gw: &str, dev: &str, src: &str, scope: u32, fam: IPFamily) -> Route {
        Route {
            dest: dest.into(),
            gateway: gw.into(),
            device: dev.into(),
            source: src.into(),
            scope,
            family: fam.into(),
            ..Default::default()
        }
    }

    #[test]
    fn routes_parse_into_plans() {
        let p = plan(&route("", "10.0.0.1", "eth0", "", 0, IPFamily::v4)).unwrap();
        assert_eq!(p.dest, ("0.0.0.0".parse().unwrap(), 0));
        assert_eq!(p.gateway, Some("10.0.0.1".parse().unwrap()));
        let p = plan(&route("default", "fd00::1", "eth0", "", 0, IPFamily::v4)).unwrap();
        assert_eq!(p.dest, ("::".parse().unwrap(), 0));
        let p = plan(&route(
            "10.0.0.0/24",
            "",
            "eth0",
            "10.0.0.5",
            253,
            IPFamily::v4,
        ))
        .unwrap();
        assert_eq!(p.source, Some(("10.0.0.5".parse().unwrap(), None)));
        assert_eq!(p.scope, 253);
        let p = plan(&route(
            "fd00::/64",
            "",
            "eth0",
            "fd01::/64",
            0,
            IPFamily::v6,
        ))
        .unwrap();
        assert_eq!(p.source, Some(("fd01::".parse().unwrap(), Some(64))));
    }

    #[test]
    fn bad_routes_are_refused() {
        let four = IPFamily::v4;
        assert!(plan(&route("10.0.0.0/24", "", "", "", 0, four)).is_err());
        assert!(plan(&route("10.0.0.1/24", "", "eth0", "", 0, four)).is_err());
        assert!(plan(&route("10.0.0.0/33", "", "eth0", "", 0, four)).is_err());
        assert!(plan(&route("10.0.0.0/8", "fd00::1", "eth0", "", 0, four)).is_err());
        assert!(plan(&route("10.0.0.0/8", "10.0.0.300", "eth0", "", 0, four)).is_err());
        assert!(plan(&route("10.0.0.0/8", "", "eth0", "fd00::1", 0, four)).is_err());
        assert!(plan(&route("10.0.0.0/8", "", "eth0", "", 256, four)).is_err());
        assert!(plan(&route("10.0.0.0/8", "", "eth0", "", 0, IPFamily::v6)).is_err());
    }

    #[test]
    fn link_routes_go_before_gateway_routes() {
        let rs = [
            route("", "10.0.0.1", "eth0", "", 0, IPFamily::v4),
            route("10.0.0.0/24", "", "eth0", "", 253, IPFamily::v4),
            route("10.9.0.0/16", "10.0.0.1", "eth0", "", 0, IPFamily::v4),
            route("10.1.0.0/24", "", "eth1", "", 253, IPFamily::v4),
        ];
        let planned: Vec<_> = rs.iter().map(|r| plan(r).unwrap()).collect();
        let order: Vec<_> = in_order(planned).into_iter().map(|p| p.dest).collect();
        let want: Vec<(IpAddr, u8)> = vec![
            ("10.0.0.0".parse().unwrap(), 24),
            ("10.1.0.0".parse().unwrap(), 24),
            ("0.0.0.0".parse().unwrap(), 0),
            ("10.9.0.0".parse().unwrap(), 16),
        ];
        assert_eq!(order, want);
    }

    #[test]
    fn kernel_routes_convert_to_kata_shape() {
        let mut m = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix("10.2.0.0".parse().unwrap(), 16)
            .gateway("10.0.0.1".parse().unwrap())
            .pref_source("10.0.0.5".parse().unwrap())
            .output_interface(7)
            .scope(RouteScope::Universe)
            .build();
        let mut lo = LinkMessage::default();
        lo.header.index = 7;
        lo.attributes
            .push(rtnetlink::packet_route::link::LinkAttribute::IfName(
                "eth9".into(),
            ));
        let r = to_route(&m, std::slice::from_ref(&lo));
        assert_eq!(r.dest, "10.2.0.0/16");
        assert_eq!(r.gateway, "10.0.0.1");
        assert_eq!(r.source, "10.0.0.5");
        assert_eq!(r.device, "eth9");
        assert_eq!(r.family.enum_value_or_default(), IPFamily::v4);
        m.attributes
            .retain(|a| !matches!(a, RouteAttribute::Destination(_)));
        m.header.destination_prefix_length = 0;
        assert_eq!(to_route(&m, &[]).dest, "");
        assert_eq!(to_route(&m, &[]).device, "");
    }
}
