//! The pure half of [`super`]: checks a [`NetPlan`], names every interface and bridge, and
//! computes every host's static routes. Nothing here touches the system, so all of it is
//! tested without root.

use std::collections::VecDeque;
use std::net::Ipv4Addr;

use super::{NetPlan, NsInterface, NsRoute};

/// Longest host name accepted (it becomes part of a namespace name).
pub const MAX_HOST_NAME_LEN: usize = 64;

/// Most nets, and most members of one net, a plan may have: keeps `br<net>p<member>` within
/// the 15 characters Linux allows for an interface name.
pub const MAX_NETS: usize = 65_535;

/// Smallest accepted `rate_mbit` (1 kbit/s): below it the tbf rate would round to nothing.
pub const MIN_RATE_MBIT: f64 = 0.001;

/// Largest accepted `rate_mbit` (100 Gbit/s): far above anything a veth carries here.
pub const MAX_RATE_MBIT: f64 = 100_000.0;

/// Why a [`NetPlan`] cannot be built. Nets are named by their index in [`NetPlan::nets`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    /// The plan has no host.
    #[error("the plan has no host")]
    NoHosts,
    /// A host name is empty, too long, or has a character outside `A-Z a-z 0-9 _ . -`.
    #[error("host name {0:?} is not 1 to {MAX_HOST_NAME_LEN} characters of A-Z a-z 0-9 _ . -")]
    BadHostName(String),
    /// Two hosts have the same name.
    #[error("host {0:?} is listed twice")]
    DuplicateHost(String),
    /// More nets, or more members in one net, than interface names can number.
    #[error("{what} has {count} entries; at most {MAX_NETS} are supported")]
    TooLarge {
        /// "the plan's net list" or "net N".
        what: String,
        /// How many there are.
        count: usize,
    },
    /// A net has no member.
    #[error("net {net} has no member")]
    EmptyNet {
        /// The net's index.
        net: usize,
    },
    /// A prefix length outside 1..=32.
    #[error("net {net} has prefix length /{prefix_len}; use 1 to 32")]
    BadPrefix {
        /// The net's index.
        net: usize,
        /// The prefix length given.
        prefix_len: u8,
    },
    /// A member names a host the plan does not list.
    #[error("net {net} names unknown host {host:?}")]
    UnknownHost {
        /// The net's index.
        net: usize,
        /// The unknown name.
        host: String,
    },
    /// A host is a member of the same net twice.
    #[error("host {host:?} is a member of net {net} twice")]
    DuplicateMember {
        /// The net's index.
        net: usize,
        /// The host.
        host: String,
    },
    /// An address that cannot be a host's interface address (0.0.0.0, loopback, multicast,
    /// broadcast, or the network or broadcast address of its own subnet).
    #[error("address {addr} of host {host:?} in net {net} cannot be an interface address")]
    BadAddr {
        /// The net's index.
        net: usize,
        /// The host.
        host: String,
        /// The address.
        addr: Ipv4Addr,
    },
    /// Members of one net whose addresses lie in different subnets.
    #[error("address {addr} of host {host:?} is not in net {net}'s subnet {subnet}/{prefix_len}")]
    AddrOutsideNet {
        /// The net's index.
        net: usize,
        /// The host.
        host: String,
        /// The address.
        addr: Ipv4Addr,
        /// The subnet of the net's first member.
        subnet: Ipv4Addr,
        /// The net's prefix length.
        prefix_len: u8,
    },
    /// The same address given twice.
    #[error("address {addr} is used twice")]
    DuplicateAddr {
        /// The address.
        addr: Ipv4Addr,
    },
    /// Two nets whose subnets overlap: routes to them would be ambiguous.
    #[error("nets {first} and {second} have overlapping subnets")]
    OverlappingNets {
        /// The lower net index.
        first: usize,
        /// The higher net index.
        second: usize,
    },
    /// A `rate_mbit` that is not a number in range.
    #[error("net {net} has rate {rate_mbit} Mbit/s; use {MIN_RATE_MBIT} to {MAX_RATE_MBIT}")]
    BadRate {
        /// The net's index.
        net: usize,
        /// The rate given.
        rate_mbit: f64,
    },
}

/// Everything to create for a plan, with names that do not depend on the run tag.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// One entry per host, in plan order.
    pub hosts: Vec<HostLayout>,
    /// One entry per net with a bridge (1 or ≥ 3 members), in plan order.
    pub lans: Vec<LanLayout>,
    /// Every veth pair, in plan order of nets then members.
    pub veths: Vec<Veth>,
}

/// One host's interfaces and routes.
#[derive(Debug, Clone, PartialEq)]
pub struct HostLayout {
    /// The host's name in the plan.
    pub name: String,
    /// Whether it forwards.
    pub router: bool,
    /// Its interfaces, `eth0`, `eth1`… in the order of the nets it is on.
    pub interfaces: Vec<NsInterface>,
    /// Its static routes, ordered by destination net.
    pub routes: Vec<NsRoute>,
    /// Per interface (same order): the tbf rate in Mbit/s, if the net has one.
    pub rates: Vec<Option<f64>>,
}

/// A bridge in the switch namespace.
#[derive(Debug, Clone, PartialEq)]
pub struct LanLayout {
    /// The bridge's name, `br<net>`.
    pub bridge: String,
    /// Its ports' names, `br<net>p<member>`, in member order.
    pub ports: Vec<String>,
}

/// One veth pair: always one end in a host, the other in a host or the switch namespace.
#[derive(Debug, Clone, PartialEq)]
pub struct Veth {
    /// Index of the host holding the first end.
    pub host: usize,
    /// The first end's name in that host.
    pub name: String,
    /// Index of the host holding the second end; `None` for the switch namespace.
    pub peer_host: Option<usize>,
    /// The second end's name.
    pub peer_name: String,
}

/// The network address of `addr/prefix_len` (`prefix_len` in 1..=32).
pub fn subnet_of(addr: Ipv4Addr, prefix_len: u8) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(addr) & mask(prefix_len))
}

fn mask(prefix_len: u8) -> u32 {
    match prefix_len {
        0 => 0,
        p if p >= 32 => u32::MAX,
        p => u32::MAX << (32 - u32::from(p)),
    }
}

/// Whether `name` may name a host.
pub fn valid_host_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_HOST_NAME_LEN
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Checks `plan` and lays it out.
pub fn layout(plan: &NetPlan) -> Result<Layout, PlanError> {
    if plan.hosts.is_empty() {
        return Err(PlanError::NoHosts);
    }
    if plan.nets.len() > MAX_NETS {
        return Err(PlanError::TooLarge {
            what: "the plan's net list".to_owned(),
            count: plan.nets.len(),
        });
    }
    let mut names: Vec<(&str, usize)> = Vec::with_capacity(plan.hosts.len());
    for (i, host) in plan.hosts.iter().enumerate() {
        if !valid_host_name(&host.name) {
            return Err(PlanError::BadHostName(host.name.clone()));
        }
        names.push((host.name.as_str(), i));
    }
    names.sort_unstable();
    if let Some(pair) = names.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(PlanError::DuplicateHost(pair[0].0.to_owned()));
    }
    let index_of = |name: &str| {
        names
            .binary_search_by(|(n, _)| (*n).cmp(name))
            .ok()
            .map(|at| names[at].1)
    };

    // members[net] = (host index, address), in listed order.
    let mut members: Vec<Vec<(usize, Ipv4Addr)>> = Vec::with_capacity(plan.nets.len());
    let mut subnets: Vec<(u32, u32, usize)> = Vec::with_capacity(plan.nets.len());
    let mut addrs: Vec<Ipv4Addr> = Vec::new();
    for (n, net) in plan.nets.iter().enumerate() {
        if net.members.is_empty() {
            return Err(PlanError::EmptyNet { net: n });
        }
        if net.members.len() > MAX_NETS {
            return Err(PlanError::TooLarge {
                what: format!("net {n}"),
                count: net.members.len(),
            });
        }
        if !(1..=32).contains(&net.prefix_len) {
            return Err(PlanError::BadPrefix {
                net: n,
                prefix_len: net.prefix_len,
            });
        }
        if let Some(rate) = net.rate_mbit
            && !(MIN_RATE_MBIT..=MAX_RATE_MBIT).contains(&rate)
        {
            return Err(PlanError::BadRate {
                net: n,
                rate_mbit: rate,
            });
        }
        let subnet = subnet_of(net.members[0].addr, net.prefix_len);
        let mut list = Vec::with_capacity(net.members.len());
        for member in &net.members {
            let host = index_of(&member.host).ok_or_else(|| PlanError::UnknownHost {
                net: n,
                host: member.host.clone(),
            })?;
            if list.iter().any(|&(h, _)| h == host) {
                return Err(PlanError::DuplicateMember {
                    net: n,
                    host: member.host.clone(),
                });
            }
            let addr = member.addr;
            if subnet_of(addr, net.prefix_len) != subnet {
                return Err(PlanError::AddrOutsideNet {
                    net: n,
                    host: member.host.clone(),
                    addr,
                    subnet,
                    prefix_len: net.prefix_len,
                });
            }
            let host_bits = u32::from(addr) & !mask(net.prefix_len);
            let edge =
                net.prefix_len <= 30 && (host_bits == 0 || host_bits == !mask(net.prefix_len));
            if addr.is_unspecified()
                || addr.is_loopback()
                || addr.is_multicast()
                || addr.is_broadcast()
                || edge
            {
                return Err(PlanError::BadAddr {
                    net: n,
                    host: member.host.clone(),
                    addr,
                });
            }
            list.push((host, addr));
            addrs.push(addr);
        }
        let low = u32::from(subnet);
        subnets.push((low, low | !mask(net.prefix_len), n));
        members.push(list);
    }
    addrs.sort_unstable();
    if let Some(pair) = addrs.windows(2).find(|w| w[0] == w[1]) {
        return Err(PlanError::DuplicateAddr { addr: pair[0] });
    }
    subnets.sort_unstable();
    // Sorted by start: two ranges overlap iff some range starts before the furthest end so far.
    let mut furthest: Option<(u32, usize)> = None;
    for &(low, high, n) in &subnets {
        if let Some((end, other)) = furthest
            && low <= end
        {
            return Err(PlanError::OverlappingNets {
                first: n.min(other),
                second: n.max(other),
            });
        }
        if furthest.is_none_or(|(end, _)| high > end) {
            furthest = Some((high, n));
        }
    }

    // Interfaces: host h's k-th net (in plan order) is eth<k>.
    let mut hosts: Vec<HostLayout> = plan
        .hosts
        .iter()
        .map(|h| HostLayout {
            name: h.name.clone(),
            router: h.router,
            interfaces: Vec::new(),
            routes: Vec::new(),
            rates: Vec::new(),
        })
        .collect();
    // iface_of[net][member position] = index into hosts[h].interfaces
    let mut iface_of: Vec<Vec<usize>> = Vec::with_capacity(members.len());
    for (n, list) in members.iter().enumerate() {
        let net = &plan.nets[n];
        let mut positions = Vec::with_capacity(list.len());
        for &(h, addr) in list {
            let k = hosts[h].interfaces.len();
            hosts[h].interfaces.push(NsInterface {
                name: format!("eth{k}"),
                net: n,
                addr,
                prefix_len: net.prefix_len,
            });
            hosts[h].rates.push(net.rate_mbit);
            positions.push(k);
        }
        iface_of.push(positions);
    }

    let mut lans = Vec::new();
    let mut veths = Vec::new();
    for (n, list) in members.iter().enumerate() {
        let if_name = |pos: usize| hosts[list[pos].0].interfaces[iface_of[n][pos]].name.clone();
        if list.len() == 2 {
            veths.push(Veth {
                host: list[0].0,
                name: if_name(0),
                peer_host: Some(list[1].0),
                peer_name: if_name(1),
            });
        } else {
            let bridge = format!("br{n}");
            let mut ports = Vec::with_capacity(list.len());
            for (pos, &(host, _)) in list.iter().enumerate() {
                let port = format!("br{n}p{pos}");
                veths.push(Veth {
                    host,
                    name: if_name(pos),
                    peer_host: None,
                    peer_name: port.clone(),
                });
                ports.push(port);
            }
            lans.push(LanLayout { bridge, ports });
        }
    }

    let routers: Vec<bool> = plan.hosts.iter().map(|h| h.router).collect();
    let nets_of: Vec<Vec<usize>> = hosts
        .iter()
        .map(|h| h.interfaces.iter().map(|i| i.net).collect())
        .collect();
    let routes: Vec<Vec<NsRoute>> = hosts
        .iter()
        .enumerate()
        .map(|(h, own)| routes_from(h, &members, &nets_of, &routers, plan, own))
        .collect();
    for (host, routes) in hosts.iter_mut().zip(routes) {
        host.routes = routes;
    }
    Ok(Layout { hosts, lans, veths })
}

/// Host `h`'s routes: a breadth-first search over nets, crossing from one net to another only
/// through a router other than `h`. The first path found to a net wins, and nets are visited
/// in the order they were reached (the plan order for `h`'s own nets), members in listed
/// order and a router's nets in plan order, so ties go to the earliest-listed path.
fn routes_from(
    h: usize,
    members: &[Vec<(usize, Ipv4Addr)>],
    nets_of: &[Vec<usize>],
    routers: &[bool],
    plan: &NetPlan,
    own: &HostLayout,
) -> Vec<NsRoute> {
    // reached[net] = None: not yet; Some(None): h is on it; Some(Some((iface, gateway, routers))).
    type Hop = Option<(usize, Ipv4Addr, usize)>;
    let mut reached: Vec<Option<Hop>> = vec![None; members.len()];
    let mut queue = VecDeque::new();
    for &net in &nets_of[h] {
        reached[net] = Some(None);
        queue.push_back(net);
    }
    while let Some(net) = queue.pop_front() {
        let Some(via) = reached[net] else {
            continue;
        };
        for &(r, addr) in &members[net] {
            if r == h || !routers[r] {
                continue;
            }
            for &next in &nets_of[r] {
                if reached[next].is_some() {
                    continue;
                }
                let hop = match via {
                    None => {
                        let iface = own.interfaces.iter().position(|i| i.net == net);
                        iface.map(|i| (i, addr, 1))
                    }
                    Some((iface, gateway, count)) => Some((iface, gateway, count + 1)),
                };
                if hop.is_some() {
                    reached[next] = Some(hop);
                    queue.push_back(next);
                }
            }
        }
    }
    let mut routes = Vec::new();
    for (net, hop) in reached.iter().enumerate() {
        if let Some(Some((iface, via, routers))) = *hop {
            let prefix_len = plan.nets[net].prefix_len;
            routes.push(NsRoute {
                net,
                subnet: subnet_of(members[net][0].1, prefix_len),
                prefix_len,
                via,
                dev: own.interfaces[iface].name.clone(),
                routers,
            });
        }
    }
    routes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netns::{NsHost, NsMember, NsNet};

    fn host(name: &str, router: bool) -> NsHost {
        NsHost {
            name: name.to_owned(),
            router,
        }
    }

    fn net(prefix_len: u8, members: &[(&str, [u8; 4])]) -> NsNet {
        NsNet {
            prefix_len,
            members: members
                .iter()
                .map(|(h, a)| NsMember {
                    host: (*h).to_owned(),
                    addr: Ipv4Addr::from(*a),
                })
                .collect(),
            rate_mbit: None,
        }
    }

    fn route_of<'a>(l: &'a Layout, host: &str, net: usize) -> Option<&'a NsRoute> {
        let h = l.hosts.iter().find(|h| h.name == host)?;
        h.routes.iter().find(|r| r.net == net)
    }

    /// h1 —0— r1 —1— r2 —2— h2
    fn chain() -> NetPlan {
        NetPlan {
            hosts: vec![
                host("h1", false),
                host("r1", true),
                host("r2", true),
                host("h2", false),
            ],
            nets: vec![
                net(30, &[("h1", [10, 0, 0, 1]), ("r1", [10, 0, 0, 2])]),
                net(30, &[("r1", [10, 0, 1, 1]), ("r2", [10, 0, 1, 2])]),
                net(24, &[("r2", [10, 0, 2, 1]), ("h2", [10, 0, 2, 2])]),
            ],
        }
    }

    #[test]
    fn a_chain_routes_every_far_subnet_through_the_neighbouring_router() {
        let l = layout(&chain()).expect("valid");
        let r = route_of(&l, "h1", 2).expect("h1 reaches net 2");
        assert_eq!(r.subnet, Ipv4Addr::new(10, 0, 2, 0));
        assert_eq!(r.prefix_len, 24);
        assert_eq!(r.via, Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(r.dev, "eth0");
        assert_eq!(r.routers, 2);
        let r = route_of(&l, "r1", 2).expect("r1 reaches net 2");
        assert_eq!(
            (r.via, r.dev.as_str(), r.routers),
            (Ipv4Addr::new(10, 0, 1, 2), "eth1", 1)
        );
        let r = route_of(&l, "h2", 0).expect("h2 reaches net 0");
        assert_eq!(r.via, Ipv4Addr::new(10, 0, 2, 1));
        assert!(
            route_of(&l, "h1", 0).is_none(),
            "no route to a subnet one is on"
        );
        assert_eq!(l.hosts[0].routes.len(), 2);
    }

    #[test]
    fn a_host_that_is_not_a_router_is_never_a_transit() {
        let mut plan = chain();
        plan.hosts[2].router = false; // r2
        let l = layout(&plan).expect("valid");
        assert!(route_of(&l, "h1", 2).is_none());
        assert!(route_of(&l, "h2", 0).is_none());
        assert!(
            route_of(&l, "h1", 1).is_some(),
            "r1 still forwards into net 1"
        );
        // r2 itself may use r1 to leave, though nobody crosses r2.
        assert_eq!(
            route_of(&l, "r2", 0).map(|r| r.via),
            Some(Ipv4Addr::new(10, 0, 1, 1))
        );
    }

    #[test]
    fn equal_paths_are_broken_by_plan_order_and_the_shorter_path_wins() {
        // h —0— a —2— b2 ... diamond: h on nets 0 and 1; a on 0 and 2; b on 1 and 2; t on 2.
        let diamond = |first: &str, second: &str| NetPlan {
            hosts: vec![
                host("h", false),
                host("a", true),
                host("b", true),
                host("t", false),
            ],
            nets: vec![
                net(24, &[("h", [10, 1, 0, 1]), (first, [10, 1, 0, 2])]),
                net(24, &[("h", [10, 1, 1, 1]), (second, [10, 1, 1, 2])]),
                net(
                    24,
                    &[
                        ("a", [10, 1, 2, 1]),
                        ("b", [10, 1, 2, 2]),
                        ("t", [10, 1, 2, 3]),
                    ],
                ),
            ],
        };
        let l = layout(&diamond("a", "b")).expect("valid");
        let r = route_of(&l, "h", 2).expect("route");
        assert_eq!(
            (r.via, r.dev.as_str()),
            (Ipv4Addr::new(10, 1, 0, 2), "eth0")
        );
        let l = layout(&diamond("b", "a")).expect("valid");
        let r = route_of(&l, "h", 2).expect("route");
        assert_eq!(
            (r.via, r.dev.as_str()),
            (Ipv4Addr::new(10, 1, 0, 2), "eth0")
        );
        assert_eq!(
            route_of(&l, "t", 0).map(|r| r.via),
            Some(Ipv4Addr::new(10, 1, 2, 2))
        );
        assert_eq!(
            route_of(&l, "t", 1).map(|r| r.via),
            Some(Ipv4Addr::new(10, 1, 2, 1))
        );

        // A long way listed first loses to a short way listed second.
        let plan = NetPlan {
            hosts: vec![
                host("h", false),
                host("x", true),
                host("y", true),
                host("z", true),
            ],
            nets: vec![
                net(24, &[("h", [10, 2, 0, 1]), ("x", [10, 2, 0, 2])]),
                net(24, &[("x", [10, 2, 1, 1]), ("y", [10, 2, 1, 2])]),
                net(24, &[("y", [10, 2, 2, 1]), ("z", [10, 2, 2, 2])]),
                net(24, &[("h", [10, 2, 3, 1]), ("z", [10, 2, 3, 2])]),
            ],
        };
        let l = layout(&plan).expect("valid");
        let r = route_of(&l, "h", 2).expect("route");
        assert_eq!((r.via, r.routers), (Ipv4Addr::new(10, 2, 3, 2), 1));
    }

    #[test]
    fn lans_get_a_bridge_and_point_to_point_nets_a_direct_pair() {
        let plan = NetPlan {
            hosts: vec![host("a", false), host("b", false), host("c", true)],
            nets: vec![
                net(
                    24,
                    &[
                        ("a", [10, 3, 0, 1]),
                        ("b", [10, 3, 0, 2]),
                        ("c", [10, 3, 0, 3]),
                    ],
                ),
                net(31, &[("b", [10, 3, 1, 0]), ("c", [10, 3, 1, 1])]),
            ],
        };
        let l = layout(&plan).expect("valid");
        assert_eq!(l.lans.len(), 1);
        assert_eq!(l.lans[0].bridge, "br0");
        assert_eq!(l.lans[0].ports, ["br0p0", "br0p1", "br0p2"]);
        assert_eq!(l.veths.len(), 4);
        assert_eq!(
            l.veths[3],
            Veth {
                host: 1,
                name: "eth1".to_owned(),
                peer_host: Some(2),
                peer_name: "eth1".to_owned()
            }
        );
        assert!(l.veths[..3].iter().all(|v| v.peer_host.is_none()));
    }

    #[test]
    fn bad_plans_are_refused_with_the_offending_part_named() {
        let check = |edit: &dyn Fn(&mut NetPlan), want: PlanError| {
            let mut plan = chain();
            edit(&mut plan);
            assert_eq!(layout(&plan), Err(want));
        };
        check(&|p| p.hosts.clear(), PlanError::NoHosts);
        check(
            &|p| p.hosts[0].name = "a/b".into(),
            PlanError::BadHostName("a/b".into()),
        );
        check(
            &|p| p.hosts[3].name = "r1".into(),
            PlanError::DuplicateHost("r1".into()),
        );
        check(
            &|p| p.nets[1].members.clear(),
            PlanError::EmptyNet { net: 1 },
        );
        check(
            &|p| p.nets[2].prefix_len = 0,
            PlanError::BadPrefix {
                net: 2,
                prefix_len: 0,
            },
        );
        check(
            &|p| p.nets[1].members[1].host = "ghost".into(),
            PlanError::UnknownHost {
                net: 1,
                host: "ghost".into(),
            },
        );
        check(
            &|p| p.nets[1].members[1].host = "r1".into(),
            PlanError::DuplicateMember {
                net: 1,
                host: "r1".into(),
            },
        );
        check(
            &|p| p.nets[2].members[1].addr = Ipv4Addr::new(10, 0, 2, 255),
            PlanError::BadAddr {
                net: 2,
                host: "h2".into(),
                addr: Ipv4Addr::new(10, 0, 2, 255),
            },
        );
        check(
            &|p| p.nets[2].members[1].addr = Ipv4Addr::new(10, 0, 3, 2),
            PlanError::AddrOutsideNet {
                net: 2,
                host: "h2".into(),
                addr: Ipv4Addr::new(10, 0, 3, 2),
                subnet: Ipv4Addr::new(10, 0, 2, 0),
                prefix_len: 24,
            },
        );
        check(
            &|p| p.nets[2].prefix_len = 16,
            PlanError::OverlappingNets {
                first: 0,
                second: 2,
            },
        );
        check(
            &|p| p.nets[0].rate_mbit = Some(-1.0),
            PlanError::BadRate {
                net: 0,
                rate_mbit: -1.0,
            },
        );
        let mut plan = chain();
        plan.nets[2].members[1].addr = Ipv4Addr::new(10, 0, 2, 1);
        assert_eq!(
            layout(&plan),
            Err(PlanError::DuplicateAddr {
                addr: Ipv4Addr::new(10, 0, 2, 1)
            })
        );
        let mut plan = chain();
        plan.nets[0].rate_mbit = Some(f64::NAN);
        assert!(matches!(
            layout(&plan),
            Err(PlanError::BadRate { net: 0, .. })
        ));
    }
}
