//! From a topology to network namespaces: which hosts exist, which process runs on which host.
//!
//! A topology with an underlay (`[[host]]`, `[[net]]`, as `import` makes from CORE files) is
//! built as written: one namespace per host, routers (and every host with two or more
//! interfaces) forwarding along shortest paths, each
//! server, node and bootstrapper on the host that owns its address, each client on its `host`
//! (default: its first PoP's host).
//!
//! A topology without one (the overlay-only files of `topologies/`) gets one host per distinct
//! IP address, all on one LAN (a bridge), like hosts on one switch in CORE. Loopback addresses
//! cannot leave a namespace's `lo`, so `127.a.b.c` becomes `10.a.b.c/8`; other addresses are
//! kept, on the smallest subnet holding them all. Clients run on their first PoP's host.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use anyhow::{Context, Result, bail};
use meshcast_topology::{Ipv4Subnet, Topology};

use crate::netns::{self, NetPlan, Netns, NsHost, NsMember, NsNet};
use crate::runner::Placement;

/// Port clients bind (plus their index in namespaces), so that PoP stats tell them apart.
pub const CLIENT_PORT: u16 = 7600;

/// Whether namespaces can be made here (root, iproute2); the error says what is missing.
pub fn available() -> Result<()> {
    netns::available().map_err(anyhow::Error::from)
}

/// Deletes the namespaces a crashed run left (listed in its run dir).
pub fn cleanup_stale(run_dir: &Path) -> Result<Vec<String>> {
    netns::cleanup_stale(run_dir).map_err(anyhow::Error::from)
}

/// The hosts and nets for `topology`, the topology as the processes will see it (addresses
/// moved when needed), and the host of every node and client id.
pub fn plan(topology: &Topology) -> Result<(NetPlan, Topology, BTreeMap<String, String>)> {
    if topology.has_underlay() {
        underlay_plan(topology)
    } else {
        lan_plan(topology)
    }
}

fn underlay_plan(topology: &Topology) -> Result<(NetPlan, Topology, BTreeMap<String, String>)> {
    // A host with two or more interfaces forwards between them, so that a host behind it (n7
    // behind the server host n4 in CORE's first.imn) reaches the rest of the network. (The CORE
    // export reaches the same goal differently, with host routes to such a host's addresses.)
    let hosts = topology
        .hosts()
        .iter()
        .map(|h| NsHost {
            name: h.id.clone(),
            router: h.router
                || topology
                    .nets()
                    .iter()
                    .filter(|n| n.addr_of(&h.id).is_some())
                    .count()
                    >= 2,
        })
        .collect();
    let nets = topology
        .nets()
        .iter()
        .map(|n| NsNet {
            prefix_len: n.subnet.prefix(),
            members: n
                .members
                .iter()
                .map(|m| NsMember {
                    host: m.host.clone(),
                    addr: m.addr,
                })
                .collect(),
            rate_mbit: n.rate_mbit,
        })
        .collect();
    let mut host_of = BTreeMap::new();
    for node in topology.nodes() {
        let host = topology
            .host_of(node.addr.ip())
            .with_context(|| format!("{}: no host owns {}", node.id, node.addr.ip()))?;
        host_of.insert(node.id.clone(), host.id.clone());
    }
    for client in topology.clients() {
        let host = topology
            .client_host(client)
            .with_context(|| format!("client {}: no host to run on", client.id))?;
        host_of.insert(client.id.clone(), host.to_owned());
    }
    Ok((NetPlan { hosts, nets }, topology.clone(), host_of))
}

/// Where `127.a.b.c` goes in a namespace.
fn off_loopback(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) if v4.is_loopback() => {
            let [_, b, c, d] = v4.octets();
            IpAddr::V4(Ipv4Addr::new(10, b, c, d))
        }
        other => other,
    }
}

/// The longest prefix (up to /30) whose subnet holds every address as a host address (not the
/// network or broadcast address).
fn covering_prefix(ips: &[Ipv4Addr]) -> u8 {
    let Some(first) = ips.first() else {
        return 0;
    };
    (0..=30u8)
        .rev()
        .find(|&prefix| {
            Ipv4Subnet::containing(*first, prefix)
                .is_ok_and(|net| ips.iter().all(|ip| net.is_host_addr(*ip)))
        })
        .unwrap_or(0)
}

fn lan_plan(topology: &Topology) -> Result<(NetPlan, Topology, BTreeMap<String, String>)> {
    let moved = topology
        .with_addresses(|n| Some(SocketAddr::new(off_loopback(n.addr.ip()), n.addr.port())))
        .context("moving loopback addresses to 10.0.0.0/8 makes two of them collide")?;
    // One host per distinct address, named after the first node on it.
    let mut hosts: Vec<(Ipv4Addr, String)> = Vec::new();
    let mut host_of = BTreeMap::new();
    for node in moved.nodes() {
        let IpAddr::V4(ip) = node.addr.ip() else {
            bail!(
                "{}: {} is IPv6; namespaces are IPv4 only for now",
                node.id,
                node.addr
            );
        };
        let host = match hosts.iter().find(|(h, _)| *h == ip) {
            Some((_, name)) => name.clone(),
            None => {
                hosts.push((ip, node.id.clone()));
                node.id.clone()
            }
        };
        host_of.insert(node.id.clone(), host);
    }
    for client in moved.clients() {
        let pop = client
            .pops
            .first()
            .with_context(|| format!("client {} has no PoP", client.id))?;
        let host = host_of
            .get(pop)
            .cloned()
            .with_context(|| format!("client {}: PoP {pop} has no host", client.id))?;
        host_of.insert(client.id.clone(), host);
    }
    let ips: Vec<Ipv4Addr> = hosts.iter().map(|(ip, _)| *ip).collect();
    let prefix_len = if ips.iter().all(|ip| ip.octets()[0] == 10) {
        8
    } else {
        covering_prefix(&ips)
    };
    let plan = NetPlan {
        hosts: hosts
            .iter()
            .map(|(_, name)| NsHost {
                name: name.clone(),
                router: false,
            })
            .collect(),
        nets: vec![NsNet {
            prefix_len,
            members: hosts
                .iter()
                .map(|(ip, name)| NsMember {
                    host: name.clone(),
                    addr: *ip,
                })
                .collect(),
            rate_mbit: None,
        }],
    };
    Ok((plan, moved, host_of))
}

/// Creates the namespaces for `topology` (recorded in `run_dir` for cleanup) and places every
/// process in one.
pub fn netns_placement(topology: Topology, run_dir: &Path) -> Result<Placement> {
    let (plan, topology, host_of) = plan(&topology)?;
    let started = std::time::Instant::now();
    let net = Netns::create(run_dir, &plan).context("cannot build the namespaces")?;
    tracing::info!(
        "{} namespaces, {} nets up in {:.1} s",
        plan.hosts.len(),
        plan.nets.len(),
        started.elapsed().as_secs_f64()
    );
    let mut namespaces = BTreeMap::new();
    for (id, host) in &host_of {
        let ns = net
            .namespace(host)
            .with_context(|| format!("{id}: host {host} has no namespace"))?;
        namespaces.insert(id.clone(), ns.to_owned());
    }
    let mut client_binds = BTreeMap::new();
    for (i, client) in topology.clients().iter().enumerate() {
        let Some(host) = host_of.get(&client.id) else {
            continue;
        };
        // The client's address: its host's address on its first net.
        let ip = plan
            .nets
            .iter()
            .flat_map(|n| &n.members)
            .find(|m| m.host == *host)
            .map(|m| m.addr)
            .with_context(|| format!("client {}: host {host} has no address", client.id))?;
        let port = CLIENT_PORT + u16::try_from(i).unwrap_or(0);
        client_binds.insert(client.id.clone(), SocketAddr::from((ip, port)));
    }
    Ok(Placement {
        topology,
        namespaces,
        client_binds,
        guard: Some(Box::new(net)),
        mode: "netns",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loopback_topology_becomes_one_lan_of_ten_addresses() {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../topologies/demo.toml"),
        )
        .unwrap();
        let topology = Topology::parse(&text, "demo.toml").unwrap().topology;
        let (plan, moved, host_of) = plan(&topology).unwrap();
        assert_eq!(plan.nets.len(), 1);
        assert_eq!(plan.nets[0].prefix_len, 8);
        assert_eq!(plan.hosts.len(), moved.nodes().len());
        assert_eq!(moved.node("n1").unwrap().addr.to_string(), "10.0.0.3:7000");
        // The viewer runs on its first PoP's host.
        assert_eq!(host_of["viewer"], host_of["n4"]);
        assert!(plan.hosts.iter().all(|h| !h.router));
    }

    #[test]
    fn the_covering_prefix_avoids_network_and_broadcast_addresses() {
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert_eq!(covering_prefix(&[ip("192.168.1.1"), ip("192.168.1.2")]), 30);
        assert_eq!(covering_prefix(&[ip("192.168.1.1"), ip("192.168.1.3")]), 29);
        assert_eq!(covering_prefix(&[ip("192.168.1.1"), ip("192.168.2.1")]), 22);
    }
}
