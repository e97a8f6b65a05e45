//! Tier 2 (root): the network RPCs for real (issue 9). The agent runs in a network namespace
//! of the test's own with veth links of known MACs; every RPC's effect is read back with
//! `ip -n NS -j`, and bad input gets its code and changes nothing. The machine's own
//! interfaces are never touched; the namespace goes away on every path (`NetNs`'s drop).
//! GetIPTables/SetIPTables change the namespace's packet filter only (iptables from
//! `scripts/deps.sh`; without it the test fails).

use serde_json::Value;
use std::process::Command;
use std::time::{Duration, Instant};
use tests::agent::{code, message, Launcher, TestAgent};
use ttrpc::Code;
use wire::agent as pb;
use wire::types::{ARPNeighbor, IPAddress, IPFamily, Interface, Route};

fn ctx() -> ttrpc::context::Context {
    ttrpc::context::with_timeout(Duration::from_secs(30).as_nanos() as i64)
}

/// A named network namespace, deleted on drop.
struct NetNs(String);

impl NetNs {
    fn new() -> NetNs {
        let name = tests::unique_id("zagent-net");
        ip(&["netns", "add", &name]);
        NetNs(name)
    }

    fn ip(&self, args: &[&str]) -> String {
        let mut all = vec!["-n", &self.0];
        all.extend_from_slice(args);
        ip(&all)
    }

    fn json(&self, args: &[&str]) -> Vec<Value> {
        let mut all = vec!["-j"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.ip(&all)).expect("ip -j output")
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn ipa(address: &str, mask: &str) -> IPAddress {
    IPAddress {
        family: if address.contains(':') {
            IPFamily::v6
        } else {
            IPFamily::v4
        }
        .into(),
        address: address.into(),
        mask: mask.into(),
        ..Default::default()
    }
}

fn iface(mac: &str, name: &str, mtu: u64, addrs: &[(&str, &str)]) -> Interface {
    Interface {
        hwAddr: mac.into(),
        name: name.into(),
        device: name.into(),
        mtu,
        IPAddresses: addrs.iter().map(|(a, m)| ipa(a, m)).collect(),
        ..Default::default()
    }
}

fn route(dest: &str, gw: &str, dev: &str, scope: u32) -> Route {
    let v6 = dest.contains(':') || gw.contains(':');
    Route {
        dest: dest.into(),
        gateway: gw.into(),
        device: dev.into(),
        scope,
        family: if v6 { IPFamily::v6 } else { IPFamily::v4 }.into(),
        ..Default::default()
    }
}

fn neighbour(to: &str, dev: &str, mac: &str) -> ARPNeighbor {
    ARPNeighbor {
        toIPAddress: Some(ipa(to, "32")).into(),
        device: dev.into(),
        lladdr: mac.into(),
        ..Default::default()
    }
}

async fn update_interface(a: &TestAgent, i: Interface) -> ttrpc::Result<Interface> {
    let mut req = pb::UpdateInterfaceRequest::new();
    req.interface = Some(i).into();
    a.client.update_interface(ctx(), &req).await
}

async fn update_routes(a: &TestAgent, routes: Vec<Route>) -> ttrpc::Result<Vec<Route>> {
    let mut req = pb::UpdateRoutesRequest::new();
    req.routes = Some(pb::Routes {
        Routes: routes,
        ..Default::default()
    })
    .into();
    a.client.update_routes(ctx(), &req).await.map(|r| r.Routes)
}

async fn add_neighbours(a: &TestAgent, list: Vec<ARPNeighbor>) -> ttrpc::Result<()> {
    let mut req = pb::AddARPNeighborsRequest::new();
    req.neighbors = Some(pb::ARPNeighbors {
        ARPNeighbors: list,
        ..Default::default()
    })
    .into();
    a.client.add_arp_neighbors(ctx(), &req).await.map(|_| ())
}

/// `ip -j addr show dev NAME`'s one link.
fn link(ns: &NetNs, name: &str) -> Value {
    ns.json(&["addr", "show", "dev", name]).remove(0)
}

fn has_addr(link: &Value, local: &str, prefix: u64) -> bool {
    link["addr_info"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["local"] == local && a["prefixlen"] == prefix)
}

fn fds(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

const MAC_A: &str = "02:00:00:aa:bb:01";
const MAC_B: &str = "02:00:00:aa:bb:02";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_rpcs_configure_the_agent_s_namespace() {
    tests::require_root();
    let ns = NetNs::new();
    // veth pairs (this kernel has no dummy driver); the peers up, so the links get carrier.
    ns.ip(&[
        "link", "add", "veth7", "address", MAC_A, "type", "veth", "peer", "name", "peer7",
    ]);
    ns.ip(&[
        "link", "add", "eth1", "address", MAC_B, "type", "veth", "peer", "name", "peer1",
    ]);
    ns.ip(&["link", "set", "peer7", "up"]);
    ns.ip(&["link", "set", "peer1", "up"]);
    ns.ip(&["addr", "add", "192.168.77.1/24", "dev", "veth7"]);
    let a = TestAgent::start_in_netns(Launcher::Zygote, &ns.0).await;
    let fds_before = fds(a.pid());

    // ListInterfaces sees the namespace's links, not the host's.
    let list = a
        .client
        .list_interfaces(ctx(), &Default::default())
        .await
        .unwrap();
    let mut names: Vec<&str> = list.Interfaces.iter().map(|i| i.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["eth1", "lo", "peer1", "peer7", "veth7"]);
    let d = list
        .Interfaces
        .iter()
        .find(|i| i.name == "veth7")
        .expect("veth7");
    assert_eq!((d.hwAddr.as_str(), d.type_.as_str()), (MAC_A, "veth"));
    assert!(d
        .IPAddresses
        .iter()
        .any(|x| x.address == "192.168.77.1" && x.mask == "24"));

    // UpdateInterface: found by MAC (any case), renamed, MTU set, addresses replaced, up.
    let want = iface(
        &MAC_A.to_uppercase(),
        "eth0",
        1400,
        &[("10.20.0.5", "24"), ("fd00:20::5", "64")],
    );
    let got = update_interface(&a, want).await.expect("UpdateInterface");
    assert_eq!(
        (got.name.as_str(), got.mtu, got.hwAddr.as_str()),
        ("eth0", 1400, MAC_A)
    );
    assert!(got
        .IPAddresses
        .iter()
        .any(|x| x.address == "10.20.0.5" && x.mask == "24"));
    assert!(got
        .IPAddresses
        .iter()
        .any(|x| x.address == "fd00:20::5" && x.mask == "64"));
    assert!(!got.IPAddresses.iter().any(|x| x.address == "192.168.77.1"));
    let l = link(&ns, "eth0");
    assert_eq!(l["address"], MAC_A);
    assert_eq!(l["mtu"], 1400);
    assert!(
        l["flags"].as_array().unwrap().iter().any(|f| f == "UP"),
        "{l}"
    );
    assert!(
        has_addr(&l, "10.20.0.5", 24) && has_addr(&l, "fd00:20::5", 64),
        "{l}"
    );
    assert!(!has_addr(&l, "192.168.77.1", 24), "old address kept: {l}");

    // UpdateRoutes: a static route is replaced, the kernel's link route kept; the gateway
    // route comes first in the request but needs the link route that follows it.
    ns.ip(&["route", "add", "10.99.0.0/16", "dev", "eth0"]);
    let routes = vec![
        route("", "10.40.0.1", "eth0", 0),
        route("10.40.0.0/24", "", "eth0", 253),
        route("fd00:30::/64", "fd00:20::1", "eth0", 0),
    ];
    let got = update_routes(&a, routes).await.expect("UpdateRoutes");
    assert!(
        got.iter()
            .any(|r| r.dest.is_empty() && r.gateway == "10.40.0.1" && r.device == "eth0"),
        "{got:?}"
    );
    let v4 = ns.json(&["route", "show"]);
    let find = |dst: &str| v4.iter().find(|r| r["dst"] == dst).cloned();
    assert_eq!(
        find("default").expect("default route")["gateway"],
        "10.40.0.1"
    );
    assert_eq!(find("10.40.0.0/24").expect("link route")["scope"], "link");
    assert_eq!(
        find("10.20.0.0/24").expect("kernel route")["protocol"],
        "kernel"
    );
    assert!(find("10.99.0.0/16").is_none(), "old route kept: {v4:?}");
    let v6 = ns.json(&["-6", "route", "show"]);
    let r6 = v6
        .iter()
        .find(|r| r["dst"] == "fd00:30::/64")
        .expect("v6 route");
    assert_eq!(r6["gateway"], "fd00:20::1");

    // ListRoutes reports the same table in Kata's shape.
    let listed = a
        .client
        .list_routes(ctx(), &Default::default())
        .await
        .unwrap()
        .Routes;
    assert!(listed
        .iter()
        .any(|r| r.dest == "10.40.0.0/24" && r.device == "eth0" && r.scope == 253));
    assert!(listed.iter().any(|r| r.dest == "fd00:30::/64"
        && r.gateway == "fd00:20::1"
        && r.family.enum_value_or_default() == IPFamily::v6));

    // AddARPNeighbors adds, then replaces, a permanent entry.
    add_neighbours(
        &a,
        vec![neighbour("10.20.0.9", "eth0", "02:00:00:00:00:09")],
    )
    .await
    .unwrap();
    add_neighbours(
        &a,
        vec![neighbour("10.20.0.9", "eth0", "02:00:00:00:00:0a")],
    )
    .await
    .unwrap();
    let n = ns.json(&["neigh", "show", "dev", "eth0"]);
    let e = n
        .iter()
        .find(|e| e["dst"] == "10.20.0.9")
        .expect("neighbour");
    assert_eq!(e["lladdr"], "02:00:00:00:00:0a");
    assert!(
        e["state"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "PERMANENT"),
        "{e}"
    );

    bad_input_is_refused_and_changes_nothing(&a, &ns).await;

    // A name already held by another link: the two swap names.
    let got = update_interface(&a, iface(MAC_B, "eth0", 0, &[("10.50.0.5", "24")]))
        .await
        .unwrap();
    assert_eq!(got.name, "eth0");
    assert_eq!(link(&ns, "eth0")["address"], MAC_B);
    assert_eq!(link(&ns, "eth1")["address"], MAC_A);

    // The agent keeps serving and holds no netlink socket after the calls.
    a.health
        .check(ctx(), &Default::default())
        .await
        .expect("health");
    let deadline = Instant::now() + Duration::from_secs(5);
    while fds(a.pid()) > fds_before && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(fds(a.pid()), fds_before, "fds leaked");
}

async fn bad_input_is_refused_and_changes_nothing(a: &TestAgent, ns: &NetNs) {
    let unknown = iface("02:00:00:00:99:99", "eth9", 0, &[]);
    assert_eq!(code(&update_interface(a, unknown).await), Code::NOT_FOUND);
    for bad in [
        iface("02:00:00:aa:bb", "eth0", 0, &[]),
        iface(MAC_A, "eth0", 0, &[("10.20.0.5", "33")]),
        iface(MAC_A, "eth0", 0, &[("10.20.0.500", "24")]),
        iface(MAC_A, "eth0", 70000, &[]),
        iface(MAC_A, "a-name-far-too-long", 0, &[]),
    ] {
        assert_eq!(
            code(&update_interface(a, bad).await),
            Code::INVALID_ARGUMENT
        );
    }
    let none = a.client.update_interface(ctx(), &Default::default()).await;
    assert_eq!(code(&none), Code::INVALID_ARGUMENT);
    let l = link(ns, "eth0");
    assert!(
        has_addr(&l, "10.20.0.5", 24) && l["mtu"] == 1400,
        "changed: {l}"
    );

    let r = update_routes(a, vec![route("10.60.0.0/24", "", "nope0", 253)]).await;
    assert_eq!(code(&r), Code::NOT_FOUND);
    let r = update_routes(a, vec![route("10.60.0.1/24", "", "eth0", 253)]).await;
    assert_eq!(code(&r), Code::INVALID_ARGUMENT);
    let r = update_routes(a, vec![route("10.60.0.0/24", "fd00::1", "eth0", 0)]).await;
    assert_eq!(code(&r), Code::INVALID_ARGUMENT);
    let many = vec![route("10.60.0.0/24", "", "eth0", 253); 1025];
    assert_eq!(code(&update_routes(a, many).await), Code::INVALID_ARGUMENT);
    // A gateway nothing reaches: the kernel's refusal, after the old routes went.
    let r = update_routes(a, vec![route("", "10.70.0.1", "eth0", 0)]).await;
    assert_eq!(code(&r), Code::FAILED_PRECONDITION);
    let v4 = ns.json(&["route", "show"]);
    assert!(
        v4.iter().any(|r| r["dst"] == "10.20.0.0/24"),
        "kernel route gone: {v4:?}"
    );

    let r = add_neighbours(a, vec![neighbour("10.20.0.x", "eth0", "")]).await;
    assert_eq!(code(&r), Code::INVALID_ARGUMENT);
    let r = add_neighbours(a, vec![neighbour("10.20.0.8", "eth0", "02:00")]).await;
    assert_eq!(code(&r), Code::INVALID_ARGUMENT);
    let r = add_neighbours(a, vec![neighbour("10.20.0.8", "nope0", "")]).await;
    assert_eq!(code(&r), Code::NOT_FOUND);
    let n = ns.json(&["neigh", "show", "dev", "eth0"]);
    assert!(!n.iter().any(|e| e["dst"] == "10.20.0.8"), "added: {n:?}");
}

/// The `*-save` tool run in the test's namespace, for reading back what the agent set.
fn saved_in(ns: &NetNs, tool: &str) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.0, tool])
        .output()
        .expect("run ip netns exec");
    assert!(
        out.status.success(),
        "{tool}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iptables_rules_are_set_and_read_back_in_the_agent_s_namespace() {
    for tool in [
        "iptables-save",
        "iptables-restore",
        "ip6tables-save",
        "ip6tables-restore",
    ] {
        let found = ["/usr/sbin", "/sbin"]
            .iter()
            .any(|d| std::path::Path::new(d).join(tool).exists());
        assert!(found, "{tool} is not installed: run scripts/deps.sh");
    }
    let ns = NetNs::new();
    let a = TestAgent::start_in_netns(Launcher::Zygote, &ns.0).await;
    let cases = [
        (false, "iptables-save", "-A INPUT -s 10.9.8.7/32 -j DROP"),
        (
            true,
            "ip6tables-save",
            "-A INPUT -s 2001:db8::7/128 -j DROP",
        ),
    ];
    for (ipv6, save, rule) in cases {
        let rules = format!(
            "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n{rule}\nCOMMIT\n"
        );
        let set = pb::SetIPTablesRequest {
            is_ipv6: ipv6,
            data: rules.into_bytes(),
            ..Default::default()
        };
        a.client
            .set_ip_tables(ctx(), &set)
            .await
            .expect("SetIPTables");
        assert!(
            saved_in(&ns, save).contains(rule),
            "{save} in the namespace"
        );
        let get = pb::GetIPTablesRequest {
            is_ipv6: ipv6,
            ..Default::default()
        };
        let got = a
            .client
            .get_ip_tables(ctx(), &get)
            .await
            .expect("GetIPTables");
        let got = String::from_utf8(got.data).unwrap();
        assert!(got.contains("*filter") && got.contains(rule), "{got}");
        // Rules the tool cannot parse change nothing.
        let bad = pb::SetIPTablesRequest {
            is_ipv6: ipv6,
            data: b"*filter\n-A INPUT -j NO-SUCH-TARGET\nCOMMIT\n".to_vec(),
            ..Default::default()
        };
        let r = a.client.set_ip_tables(ctx(), &bad).await;
        assert_eq!(code(&r), Code::INVALID_ARGUMENT, "{r:?}");
        assert!(saved_in(&ns, save).contains(rule), "kept after a refusal");
    }
    let host = Command::new("iptables-save")
        .output()
        .expect("iptables-save");
    let host = String::from_utf8_lossy(&host.stdout);
    assert!(
        !host.contains("10.9.8.7"),
        "the machine's own tables were changed"
    );
    let big = pb::SetIPTablesRequest {
        data: vec![b'#'; 3 << 20],
        ..Default::default()
    };
    let r = a.client.set_ip_tables(ctx(), &big).await;
    assert_eq!(code(&r), Code::INVALID_ARGUMENT, "{}", message(&r));
    assert!(message(&r).contains("more than"), "{}", message(&r));
}
