//! Exporting topologies: CORE scenarios and Mininet scripts.
//!
//! Both need an underlay. A topology without one gets a synthesized underlay
//! ([`with_underlay`]): one host per distinct process address, all on one switch
//! (`10.0.0.0/24`, or `10.0.0.0/16` past 253 hosts), and the exported topology copy uses those
//! addresses instead of the original ones.
//!
//! - CORE ([`to_core`]): hosts become `router`-type nodes (model `router` for routers, `host`
//!   for hosts running a server, `PC` otherwise), LANs (nets of any size but two) `lanswitch`
//!   nodes, point-to-point nets links with the net's bandwidth. Each host running processes
//!   starts them with CORE's UserDefined service: a `meshcast.sh` start script running
//!   `meshcast-bootstrapper/-server/-node … --emulation <topology copy>` (link attributes stay
//!   emulated by the processes, as with `meshcast-lab up`). Non-router hosts also get the
//!   static routes of [`static_routes`] (CORE's routers route with OSPF).
//! - Mininet ([`to_mininet`]): a Python 3 script with the topology as data tables, a `Topo`
//!   of hosts (a `Router` node class forwards IP), `OVSBridge` switches and `TCLink`s
//!   (bandwidth from `rate_mbit`; the delay, jitter and loss of an overlay link that is alone
//!   on a point-to-point net move to that link's netem, the rest stay emulated by the
//!   processes), static routes, the topology TOML embedded and written to a temporary
//!   directory at start, processes started with `host.popen`, the Mininet CLI or a
//!   `--duration` run with headless clients, and every process stopped on exit.
//!
//! # Layout
//!
//! - [`with_underlay`], [`static_routes`]: what both exports need;
//! - [`to_core`] and its helpers (interface order, layout, start script);
//! - [`to_mininet`] and its helpers (names, Python literals, the fixed script body).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use meshcast_topology::{
    HostSpec, Ipv4Subnet, LinkAttrs, NetMember, NetSpec, NodeSpec, Role, Topology,
};

use super::{Draft, InvalidDraft};

/// Why a topology cannot be exported.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// A synthesized underlay has room for 65533 hosts.
    #[error("{count} distinct process addresses: a synthesized underlay holds at most 65533 hosts")]
    TooManyHosts {
        /// Distinct addresses of the topology.
        count: usize,
    },
    /// The topology copy's path cannot be written into a CORE scenario.
    #[error("{}: the topology copy's path must not contain braces, backslashes or control characters (it is written into the CORE scenario)", path.display())]
    UnsafePath {
        /// The path.
        path: PathBuf,
    },
    /// A generated topology did not validate: a bug in the exporter.
    #[error(transparent)]
    Generated(#[from] InvalidDraft),
}

// ---------------------------------------------------------------------------------------------
// underlay and routes

/// `topology` itself when it has an underlay; otherwise a copy on a synthesized one (see the
/// module documentation): hosts named after the first process at each address, in process
/// order; client `addr`s (local binds) dropped.
pub fn with_underlay(topology: &Topology) -> Result<Topology, ExportError> {
    if topology.has_underlay() {
        return Ok(topology.clone());
    }
    let mut ips: Vec<(IpAddr, String)> = Vec::new();
    for node in topology.nodes() {
        if !ips.iter().any(|(ip, _)| *ip == node.addr.ip()) {
            ips.push((node.addr.ip(), node.id.clone()));
        }
    }
    let subnet = if ips.len() <= 253 {
        Ipv4Subnet::new(Ipv4Addr::new(10, 0, 0, 0), 24)
    } else {
        Ipv4Subnet::new(Ipv4Addr::new(10, 0, 0, 0), 16)
    }
    .map_err(|_| ExportError::TooManyHosts { count: ips.len() })?;
    let mut members = Vec::new();
    for (index, (_, host)) in ips.iter().enumerate() {
        let addr = u32::try_from(index)
            .ok()
            .and_then(|index| subnet.host(index))
            .ok_or(ExportError::TooManyHosts { count: ips.len() })?;
        members.push(NetMember {
            host: host.clone(),
            addr,
        });
    }
    let new_ip = |ip: IpAddr| {
        let index = ips.iter().position(|(old, _)| *old == ip).unwrap_or(0);
        IpAddr::V4(members[index].addr)
    };
    let mut draft = Draft::from_topology(topology);
    draft.header = vec![format!(
        "{} on a synthesized underlay: one host per distinct address of the original, all on one switch ({subnet}).",
        topology.name()
    )];
    for node in &mut draft.nodes {
        node.addr.set_ip(new_ip(node.addr.ip()));
    }
    for client in &mut draft.clients {
        client.addr = None;
    }
    draft.hosts = ips
        .iter()
        .map(|(_, id)| HostSpec {
            id: id.clone(),
            router: false,
        })
        .collect();
    draft.nets = vec![NetSpec {
        subnet,
        members,
        rate_mbit: None,
    }];
    Ok(draft
        .build(&format!("{} (synthesized underlay)", topology.name()))?
        .0
        .topology)
}

/// One static route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    /// A subnet, or a single address (`/32`).
    pub dest: Ipv4Subnet,
    /// The next hop, on a net of the host.
    pub via: Ipv4Addr,
}

/// Static routes making every address of the underlay reachable from every host, one list
/// per host in [`Topology::hosts`] order; empty without an underlay. Packets are forwarded by
/// routers only: a subnet gets a route towards its nearest router member (fewest hops through
/// routers, ties to the earlier member); a subnet without a reachable router member gets
/// per-address routes to its members (a host accepts packets for any of its addresses).
pub fn static_routes(topology: &Topology) -> Vec<Vec<Route>> {
    let hosts = topology.hosts();
    let index: BTreeMap<&str, usize> = hosts
        .iter()
        .enumerate()
        .map(|(i, host)| (host.id.as_str(), i))
        .collect();
    let nets = topology.nets();
    // Host → (neighbour host, net joining them), deterministic order.
    let mut adjacency: Vec<Vec<(usize, usize)>> = vec![Vec::new(); hosts.len()];
    for (n, net) in nets.iter().enumerate() {
        for a in &net.members {
            for b in &net.members {
                if let (Some(&x), Some(&y)) =
                    (index.get(a.host.as_str()), index.get(b.host.as_str()))
                    && x != y
                {
                    adjacency[x].push((y, n));
                }
            }
        }
    }
    let mut all = Vec::new();
    for (h, host) in hosts.iter().enumerate() {
        // Breadth-first, expanding only through routers: distance and first hop.
        let mut reached: Vec<Option<(usize, usize, usize)>> = vec![None; hosts.len()];
        reached[h] = Some((0, h, usize::MAX));
        let mut frontier = vec![h];
        let mut distance = 0;
        while !frontier.is_empty() {
            distance += 1;
            let mut next = Vec::new();
            for &at in &frontier {
                if at != h && !hosts[at].router {
                    continue;
                }
                for &(to, net) in &adjacency[at] {
                    if reached[to].is_none() {
                        let first = if at == h {
                            (to, net)
                        } else {
                            reached[at].map_or((to, net), |(_, hop, via)| (hop, via))
                        };
                        reached[to] = Some((distance, first.0, first.1));
                        next.push(to);
                    }
                }
            }
            frontier = next;
        }
        let gateway = |target: usize| -> Option<Ipv4Addr> {
            let (_, hop, via) = reached[target]?;
            nets.get(via)?.addr_of(&hosts[hop].id)
        };
        let mut routes = Vec::new();
        for net in nets {
            if net.addr_of(&host.id).is_some() {
                continue;
            }
            let members: Vec<usize> = net
                .members
                .iter()
                .filter_map(|m| index.get(m.host.as_str()).copied())
                .collect();
            let best_router = members
                .iter()
                .filter(|&&m| hosts[m].router)
                .filter_map(|&m| Some((reached[m]?.0, m)))
                .min_by_key(|&(d, _)| d);
            if let Some((_, router)) = best_router
                && let Some(via) = gateway(router)
            {
                routes.push(Route {
                    dest: net.subnet,
                    via,
                });
                continue;
            }
            for (member, &m) in net.members.iter().zip(&members) {
                if let (Some(via), Ok(dest)) = (gateway(m), Ipv4Subnet::new(member.addr, 32)) {
                    routes.push(Route { dest, via });
                }
            }
        }
        all.push(routes);
    }
    all
}

/// The hosts running each process, and the processes of each host, in node order.
fn processes_by_host(topology: &Topology) -> BTreeMap<String, Vec<&NodeSpec>> {
    let mut by_host: BTreeMap<String, Vec<&NodeSpec>> = BTreeMap::new();
    for node in topology.nodes() {
        if let Some(host) = topology.host_of(node.addr.ip()) {
            by_host.entry(host.id.clone()).or_default().push(node);
        }
    }
    by_host
}

/// Per host (in host order), its nets in interface order: first the nets of its processes'
/// addresses (so `eth0` carries the first process's address, as an import expects), then the
/// others in net order.
fn interface_order(topology: &Topology) -> Vec<Vec<usize>> {
    let by_host = processes_by_host(topology);
    topology
        .hosts()
        .iter()
        .map(|host| {
            let mut order: Vec<usize> = Vec::new();
            for node in by_host.get(&host.id).map_or(&[][..], Vec::as_slice) {
                let net = topology.nets().iter().position(|net| {
                    net.members
                        .iter()
                        .any(|m| m.host == host.id && IpAddr::V4(m.addr) == node.addr.ip())
                });
                if let Some(net) = net
                    && !order.contains(&net)
                {
                    order.push(net);
                }
            }
            for (n, net) in topology.nets().iter().enumerate() {
                if net.addr_of(&host.id).is_some() && !order.contains(&n) {
                    order.push(n);
                }
            }
            order
        })
        .collect()
}

/// Whether a net is drawn as a switch (anything but exactly two members).
fn is_switched(net: &NetSpec) -> bool {
    net.members.len() != 2
}

/// The command line of a process, with `$TOPOLOGY`/`$VIDEOS` style placeholders made by
/// `var`, and its stats file in `stats_dir` (`None`: the working directory).
fn process_argv(
    node: &NodeSpec,
    bootstrapper: &NodeSpec,
    var: &dyn Fn(&str) -> String,
    stats_dir: Option<&str>,
) -> Vec<String> {
    let stats = match stats_dir {
        Some(dir) => format!("{dir}/{}.stats.json", node.id),
        None => format!("{}.stats.json", node.id),
    };
    let mut argv: Vec<String> = Vec::new();
    match node.role {
        Role::Bootstrapper => {
            argv.extend([
                "meshcast-bootstrapper".to_owned(),
                "--topology".to_owned(),
                var("topology"),
            ]);
            return argv;
        }
        Role::Server => argv.push("meshcast-server".to_owned()),
        Role::Node => argv.push("meshcast-node".to_owned()),
    }
    argv.extend([
        "--id".to_owned(),
        node.id.clone(),
        "--bootstrapper".to_owned(),
        bootstrapper.addr.to_string(),
    ]);
    if node.role == Role::Server {
        argv.extend(["--videos".to_owned(), var("videos")]);
    }
    argv.extend([
        "--stats".to_owned(),
        stats,
        "--emulation".to_owned(),
        var("topology"),
    ]);
    argv
}

// ---------------------------------------------------------------------------------------------
// CORE

/// A CORE export.
#[derive(Clone, Debug, PartialEq)]
pub struct CoreExport {
    /// The scenario text.
    pub imn: String,
    /// The topology its processes run (the input, or its copy on a synthesized underlay).
    pub topology: Topology,
    /// The text of the topology copy, to write at the path given to [`to_core`].
    pub toml: String,
}

/// Exports `topology` as a CORE scenario whose start scripts read the topology copy at
/// `copy_path` (absolute; written by the caller from [`CoreExport::toml`]).
pub fn to_core(topology: &Topology, copy_path: &Path) -> Result<CoreExport, ExportError> {
    let copy_text = copy_path.to_string_lossy();
    if copy_text
        .chars()
        .any(|c| matches!(c, '{' | '}' | '\\') || c.is_control())
    {
        return Err(ExportError::UnsafePath {
            path: copy_path.to_owned(),
        });
    }
    let full = with_underlay(topology)?;
    let hosts = full.hosts();
    let nets = full.nets();
    let order = interface_order(&full);
    let by_host = processes_by_host(&full);
    let routes = static_routes(&full);
    let host_index: BTreeMap<&str, usize> = hosts
        .iter()
        .enumerate()
        .map(|(i, host)| (host.id.as_str(), i))
        .collect();

    // CORE node names: n1… for hosts, then switches; CORE numbers nodes by these names.
    let host_name = |i: usize| format!("n{}", i + 1);
    let switched: Vec<usize> = (0..nets.len()).filter(|&n| is_switched(&nets[n])).collect();
    let switch_name = |n: usize| {
        let position = switched.iter().position(|&s| s == n).unwrap_or(0);
        format!("n{}", hosts.len() + position + 1)
    };
    // Interface of host i on net n.
    let interface = |i: usize, n: usize| {
        let k = order[i].iter().position(|&x| x == n).unwrap_or(0);
        format!("eth{k}")
    };
    let positions = layout(&full, &switched);

    let mut out = String::new();
    for (i, host) in hosts.iter().enumerate() {
        let processes = by_host.get(&host.id).map_or(&[][..], Vec::as_slice);
        let runs_server = processes.iter().any(|p| p.role == Role::Server);
        let model = if host.router {
            "router"
        } else if runs_server {
            "host"
        } else {
            "PC"
        };
        let _ = writeln!(out, "node {} {{", host_name(i));
        let _ = writeln!(
            out,
            "    type router\n    model {model}\n    network-config {{"
        );
        let _ = writeln!(out, "\thostname {}\n\t!", host.id);
        for &n in &order[i] {
            if let Some(addr) = nets[n].addr_of(&host.id) {
                let _ = writeln!(
                    out,
                    "\tinterface {}\n\t ip address {addr}/{}\n\t!",
                    interface(i, n),
                    nets[n].subnet.prefix()
                );
            }
        }
        let _ = writeln!(out, "    }}\n    canvas c1");
        let (x, y) = positions[i];
        let _ = writeln!(
            out,
            "    iconcoords {{{x:.1} {y:.1}}}\n    labelcoords {{{x:.1} {:.1}}}",
            y + 32.0
        );
        for &n in &order[i] {
            let peer = if is_switched(&nets[n]) {
                switch_name(n)
            } else {
                let other = nets[n].members.iter().find(|m| m.host != host.id);
                other
                    .and_then(|m| host_index.get(m.host.as_str()))
                    .map_or_else(String::new, |&j| host_name(j))
            };
            let _ = writeln!(out, "    interface-peer {{{} {peer}}}", interface(i, n));
        }
        if !processes.is_empty() {
            let services = match model {
                "router" => "zebra OSPFv2 OSPFv3 IPForward UserDefined",
                "host" => "DefaultRoute SSH UserDefined",
                _ => "DefaultRoute UserDefined",
            };
            let script = start_script(&full, host, processes, &copy_text, &routes[i]);
            let _ = writeln!(out, "    services {{{services}}}");
            let _ = write!(
                out,
                "    custom-config {{\n\
                 \tcustom-config-id service:UserDefined\n\
                 \tcustom-command UserDefined\n\
                 \tconfig {{\n\
                 \tfiles=('meshcast.sh', )\n\
                 \tcmdup=('sh meshcast.sh', )\n\
                 \t}}\n    }}\n"
            );
            let _ = write!(
                out,
                "    custom-config {{\n\
                 \tcustom-config-id service:UserDefined:meshcast.sh\n\
                 \tcustom-command meshcast.sh\n\
                 \tconfig {{\n{script}\t}}\n    }}\n"
            );
        }
        out.push_str("}\n\n");
    }
    for (position, &n) in switched.iter().enumerate() {
        let _ = writeln!(
            out,
            "node {} {{\n    type lanswitch\n    \
             network-config {{\n\thostname {}\n\t!\n    }}\n    canvas c1",
            switch_name(n),
            format_args!("lan{}", position + 1)
        );
        let (x, y) = positions[hosts.len() + position];
        let _ = writeln!(
            out,
            "    iconcoords {{{x:.1} {y:.1}}}\n    labelcoords {{{x:.1} {:.1}}}",
            y + 24.0
        );
        for (e, member) in nets[n].members.iter().enumerate() {
            if let Some(&j) = host_index.get(member.host.as_str()) {
                let _ = writeln!(out, "    interface-peer {{e{e} {}}}", host_name(j));
            }
        }
        out.push_str("}\n\n");
    }
    let mut link = 0;
    for (n, net) in nets.iter().enumerate() {
        let bandwidth = net.rate_mbit.map_or(0, |rate| (rate * 1e6).round() as u64);
        let ends: Vec<(String, String)> = if is_switched(net) {
            net.members
                .iter()
                .filter_map(|m| host_index.get(m.host.as_str()))
                .map(|&j| (host_name(j), switch_name(n)))
                .collect()
        } else {
            let names: Vec<String> = net
                .members
                .iter()
                .filter_map(|m| host_index.get(m.host.as_str()))
                .map(|&j| host_name(j))
                .collect();
            match names.as_slice() {
                [a, b] => vec![(a.clone(), b.clone())],
                _ => Vec::new(),
            }
        };
        for (a, b) in ends {
            link += 1;
            let _ = writeln!(
                out,
                "link l{link} {{\n    nodes {{{a} {b}}}\n    bandwidth {bandwidth}\n}}\n"
            );
        }
    }
    out.push_str(CORE_OPTIONS);
    let toml = format!(
        "# Topology copy read by the meshcast processes of the CORE scenario {}.\n# Written by meshcast-lab export; the scenario's start scripts name this file by its\n# absolute path (TOPOLOGY=...): move both together and edit that line, or export again.\n\n{}",
        copy_path.with_extension("imn").display(),
        full.to_toml()
    );
    Ok(CoreExport {
        imn: out,
        topology: full,
        toml,
    })
}

/// The canvas and display options closing a scenario.
const CORE_OPTIONS: &str = "canvas c1 {
    name {Canvas1}
}

option global {
    interface_names no
    ip_addresses yes
    ipv6_addresses no
    node_labels yes
    link_labels yes
    show_api no
    background_images no
    annotations yes
    grid yes
    traffic_start 0
}

option session {
}
";

/// Text safe inside a Tcl brace group: braces kept only when balanced.
fn brace_safe(text: &str) -> String {
    let mut depth: i64 = 0;
    let balanced = text.chars().all(|c| {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            _ => {}
        }
        depth >= 0 && c != '\\'
    }) && depth == 0;
    if balanced {
        text.to_owned()
    } else {
        text.replace(['{', '}', '\\'], "_")
    }
}

/// A word for `sh`, single-quoted when needed (no backslashes, so Tcl keeps it verbatim).
fn sh_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.,:/=@%+".contains(c));
    if plain || word.starts_with('"') {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\"'\"'"))
    }
}

/// The `meshcast.sh` of one host: routes, then its processes in the background.
fn start_script(
    topology: &Topology,
    host: &HostSpec,
    processes: &[&NodeSpec],
    copy_path: &str,
    routes: &[Route],
) -> String {
    let boot = topology.bootstrapper();
    let mut script = String::new();
    let _ = writeln!(script, "#!/bin/sh");
    let _ = writeln!(
        script,
        "# meshcast processes of host {}, started by the UserDefined service.",
        host.id
    );
    let _ = writeln!(
        script,
        "# TOPOLOGY: absolute path of the topology copy meshcast-lab export wrote next to"
    );
    let _ = writeln!(
        script,
        "# this scenario; edit it here (in every node) if the files move."
    );
    let _ = writeln!(script, "TOPOLOGY={}", sh_word(copy_path));
    if processes.iter().any(|p| p.role == Role::Server) {
        let _ = writeln!(
            script,
            "# VIDEOS: what the servers stream; empty: a test pattern."
        );
        let _ = writeln!(script, "VIDEOS=/tmp/meshcast-videos");
        let _ = writeln!(script, "mkdir -p \"$VIDEOS\"");
    }
    if !host.router && !routes.is_empty() {
        let _ = writeln!(
            script,
            "# static routes through routers (CORE's routers run OSPF)"
        );
        for route in routes {
            let _ = writeln!(
                script,
                "ip route replace {} via {} || true",
                route.dest, route.via
            );
        }
    }
    let var = |name: &str| format!("\"${}\"", name.to_ascii_uppercase());
    for process in processes {
        let argv: Vec<String> = process_argv(process, boot, &var, None)
            .iter()
            .map(|word| sh_word(&brace_safe(word)))
            .collect();
        let _ = writeln!(script, "{} > {}.log 2>&1 &", argv.join(" "), process.id);
    }
    for client in topology.clients() {
        if topology.client_host(client) == Some(host.id.as_str()) {
            let watch = client.watch.as_deref().unwrap_or(super::DEFAULT_WATCH);
            let _ = writeln!(
                script,
                "# client {}: meshcast-client --pops {} --watch {}",
                client.id,
                crate::mesh::client_pops(topology, client),
                sh_word(&brace_safe(watch))
            );
        }
    }
    script
}

/// Icon positions: hosts on a circle, each switch at the centre of its members.
fn layout(topology: &Topology, switched: &[usize]) -> Vec<(f64, f64)> {
    let count = topology.hosts().len().max(1) as f64;
    let radius = (count * 110.0 / std::f64::consts::TAU).max(180.0);
    let centre = (radius + 120.0, radius + 100.0);
    let mut positions: Vec<(f64, f64)> = (0..topology.hosts().len())
        .map(|i| {
            let angle = std::f64::consts::TAU * i as f64 / count - std::f64::consts::FRAC_PI_2;
            (
                (centre.0 + radius * angle.cos()).round(),
                (centre.1 + radius * angle.sin()).round(),
            )
        })
        .collect();
    for (k, &n) in switched.iter().enumerate() {
        let members: Vec<(f64, f64)> = topology.nets()[n]
            .members
            .iter()
            .filter_map(|m| topology.hosts().iter().position(|h| h.id == m.host))
            .map(|i| positions[i])
            .collect();
        let (sx, sy) = members
            .iter()
            .fold((0.0, 0.0), |(x, y), p| (x + p.0, y + p.1));
        let len = members.len().max(1) as f64;
        let nudge = 25.0 * k as f64;
        positions.push(((sx / len + nudge).round(), (sy / len + nudge).round()));
    }
    positions
}

// ---------------------------------------------------------------------------------------------
// Mininet

/// A Mininet export.
#[derive(Clone, Debug, PartialEq)]
pub struct MininetExport {
    /// The Python 3 script.
    pub script: String,
    /// The topology embedded in it (on a synthesized underlay if needed, and without the
    /// overlay link attributes moved to netem).
    pub topology: Topology,
}

/// Exports `topology` as a Mininet script (see the module documentation).
pub fn to_mininet(topology: &Topology) -> Result<MininetExport, ExportError> {
    let full = with_underlay(topology)?;
    let hosts = full.hosts();
    let nets = full.nets();
    let host_of = |id: &str| {
        full.node(id)
            .and_then(|n| full.host_of(n.addr.ip()))
            .map(|h| h.id.clone())
    };

    // Overlay links alone on a point-to-point net move to that net's netem.
    let mut netem: BTreeMap<usize, LinkAttrs> = BTreeMap::new();
    let mut moved: Vec<usize> = Vec::new();
    for (n, net) in nets.iter().enumerate() {
        let [a, b] = net.members.as_slice() else {
            continue;
        };
        let shared = nets
            .iter()
            .filter(|other| other.addr_of(&a.host).is_some() && other.addr_of(&b.host).is_some())
            .count();
        let on_net: Vec<usize> = (0..full.links().len())
            .filter(|&l| {
                let link = &full.links()[l];
                let (ha, hb) = (host_of(&link.a), host_of(&link.b));
                (ha.as_deref() == Some(&a.host) && hb.as_deref() == Some(&b.host))
                    || (ha.as_deref() == Some(&b.host) && hb.as_deref() == Some(&a.host))
            })
            .collect();
        if let ([only], 1) = (on_net.as_slice(), shared) {
            let attrs = full.links()[*only].attrs;
            if attrs.latency_ms.is_some() || attrs.jitter_ms.is_some() || attrs.loss.is_some() {
                netem.insert(n, attrs);
                moved.push(*only);
            }
        }
    }
    let mut draft = Draft::from_topology(&full);
    for &l in &moved {
        let rate = draft.links[l].attrs.rate_mbit;
        draft.links[l].attrs = LinkAttrs {
            rate_mbit: rate,
            ..LinkAttrs::default()
        };
    }
    draft.header = vec![format!(
        "{}: the topology the meshcast processes of the Mininet script read.",
        full.name()
    )];
    let (loaded, embedded_text) = draft.build(&format!("{} (Mininet copy)", full.name()))?;
    let embedded = loaded.topology;

    // Mininet names: short (interface names are at most 15 bytes) and unique.
    let mut taken: Vec<String> = Vec::new();
    let mut pick = |wanted: &str, fallback: &str| {
        let ok = wanted.len() <= 9
            && wanted
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic())
            && wanted
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        let mut name = if ok {
            wanted.to_owned()
        } else {
            fallback.to_owned()
        };
        let mut n = 2;
        while taken.contains(&name) {
            name = format!("{fallback}x{n}");
            n += 1;
        }
        taken.push(name.clone());
        name
    };
    let mn_host: Vec<String> = hosts
        .iter()
        .enumerate()
        .map(|(i, host)| pick(&host.id, &format!("h{}", i + 1)))
        .collect();
    let switched: Vec<usize> = (0..nets.len()).filter(|&n| is_switched(&nets[n])).collect();
    let mn_switch: Vec<String> = (0..switched.len())
        .map(|k| pick(&format!("sw{}", k + 1), &format!("sw{}", k + 1)))
        .collect();
    let host_index: BTreeMap<&str, usize> = hosts
        .iter()
        .enumerate()
        .map(|(i, host)| (host.id.as_str(), i))
        .collect();
    let order = interface_order(&full);
    let intf = |i: usize, n: usize| {
        let k = order[i].iter().position(|&x| x == n).unwrap_or(0);
        format!("{}-eth{k}", mn_host[i])
    };

    let mut out = String::new();
    let name = full.name();
    let _ = write!(
        out,
        "#!/usr/bin/env python3\n\"\"\"meshcast topology {} for Mininet, written by meshcast-lab export --mininet.\n",
        py_doc(name)
    );
    out.push_str(SCRIPT_DOC);
    out.push_str(SCRIPT_IMPORTS);
    let _ = write!(
        out,
        "\nTOPOLOGY_TOML = '''\\\n{}'''\n",
        py_triple(&embedded_text)
    );

    out.push_str("\n# (Mininet name, meshcast host id, forwards IP)\nHOSTS = [\n");
    for (i, host) in hosts.iter().enumerate() {
        let _ = writeln!(
            out,
            "    ({}, {}, {}),",
            py_str(&mn_host[i]),
            py_str(&host.id),
            if host.router { "True" } else { "False" }
        );
    }
    out.push_str("]\n\n# (Mininet name, datapath id) of the LAN switches\nSWITCHES = [\n");
    for (k, name) in mn_switch.iter().enumerate() {
        let _ = writeln!(
            out,
            "    ({}, {}),",
            py_str(name),
            py_str(&format!("{:016x}", k + 1))
        );
    }
    out.push_str(
        "]\n\n# (node, interface, address or None, node, interface, address or None, TCLink options)\nLINKS = [\n",
    );
    for (n, net) in nets.iter().enumerate() {
        let mut options: Vec<String> = Vec::new();
        if let Some(rate) = net.rate_mbit {
            options.push(format!("\"bw\": {}", py_float(rate)));
        }
        if let Some(attrs) = netem.get(&n) {
            if let Some(latency) = attrs.latency_ms {
                options.push(format!(
                    "\"delay\": {}",
                    py_str(&format!("{}ms", py_float(latency)))
                ));
            }
            if let Some(jitter) = attrs.jitter_ms {
                options.push(format!(
                    "\"jitter\": {}",
                    py_str(&format!("{}ms", py_float(jitter)))
                ));
            }
            if let Some(loss) = attrs.loss {
                options.push(format!("\"loss\": {}", py_float(super::tidy(loss * 100.0))));
            }
        }
        let options = format!("{{{}}}", options.join(", "));
        let cidr = |addr: Ipv4Addr| py_str(&format!("{addr}/{}", net.subnet.prefix()));
        if let Some(k) = switched.iter().position(|&s| s == n) {
            for (e, member) in net.members.iter().enumerate() {
                let Some(&i) = host_index.get(member.host.as_str()) else {
                    continue;
                };
                let _ = writeln!(
                    out,
                    "    ({}, {}, {}, {}, {}, None, {options}),",
                    py_str(&mn_host[i]),
                    py_str(&intf(i, n)),
                    cidr(member.addr),
                    py_str(&mn_switch[k]),
                    py_str(&format!("{}-eth{}", mn_switch[k], e + 1)),
                );
            }
        } else if let [a, b] = net.members.as_slice()
            && let (Some(&i), Some(&j)) = (
                host_index.get(a.host.as_str()),
                host_index.get(b.host.as_str()),
            )
        {
            let _ = writeln!(
                out,
                "    ({}, {}, {}, {}, {}, {}, {options}),",
                py_str(&mn_host[i]),
                py_str(&intf(i, n)),
                cidr(a.addr),
                py_str(&mn_host[j]),
                py_str(&intf(j, n)),
                cidr(b.addr),
            );
        }
    }
    out.push_str("]\n\n# Mininet host -> [(destination, gateway)]: static routes through the routers\nROUTES = {\n");
    for (i, routes) in static_routes(&full).iter().enumerate() {
        if routes.is_empty() {
            continue;
        }
        let list: Vec<String> = routes
            .iter()
            .map(|r| {
                format!(
                    "({}, {})",
                    py_str(&r.dest.to_string()),
                    py_str(&r.via.to_string())
                )
            })
            .collect();
        let _ = writeln!(out, "    {}: [{}],", py_str(&mn_host[i]), list.join(", "));
    }
    out.push_str(
        "}\n\n# Mininet host -> [(process id, argv)]; {topology}, {videos} and {workdir} are filled in\nPROCESSES = {\n",
    );
    let by_host = processes_by_host(&full);
    let var = |name: &str| format!("{{{name}}}");
    for (i, host) in hosts.iter().enumerate() {
        let Some(processes) = by_host.get(&host.id) else {
            continue;
        };
        let entries: Vec<String> = processes
            .iter()
            .map(|p| {
                let argv: Vec<String> =
                    process_argv(p, full.bootstrapper(), &var, Some("{workdir}"))
                        .iter()
                        .map(|word| py_str(word))
                        .collect();
                format!("({}, [{}])", py_str(&p.id), argv.join(", "))
            })
            .collect();
        let _ = writeln!(
            out,
            "    {}: [\n        {},\n    ],",
            py_str(&mn_host[i]),
            entries.join(",\n        ")
        );
    }
    out.push_str("}\n\n# (client id, Mininet host, argv): started headless by --duration runs\nCLIENTS = [\n");
    for client in full.clients() {
        let Some(&i) = full.client_host(client).and_then(|h| host_index.get(h)) else {
            continue;
        };
        let watch = client.watch.as_deref().unwrap_or(super::DEFAULT_WATCH);
        let argv = [
            "meshcast-client".to_owned(),
            "--headless".to_owned(),
            "--pops".to_owned(),
            crate::mesh::client_pops(&full, client),
            "--watch".to_owned(),
            format_escape(watch),
        ];
        let argv: Vec<String> = argv.iter().map(|w| py_str(w)).collect();
        let _ = writeln!(
            out,
            "    ({}, {}, [{}]),",
            py_str(&client.id),
            py_str(&mn_host[i]),
            argv.join(", ")
        );
    }
    out.push_str("]\n");
    out.push_str(SCRIPT_BODY);
    Ok(MininetExport {
        script: out,
        topology: embedded,
    })
}

/// `text` for Python's `str.format`: braces doubled.
fn format_escape(text: &str) -> String {
    text.replace('{', "{{").replace('}', "}}")
}

/// A Python string literal.
fn py_str(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Text inside a `'''…'''` literal.
fn py_triple(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' | '\t' => out.push(c),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

/// Text inside the docstring's first line.
fn py_doc(text: &str) -> String {
    py_str(text).replace("\"\"\"", "\\\"\\\"\\\"")
}

/// A Python float.
fn py_float(value: f64) -> String {
    format!("{value:?}")
}

const SCRIPT_DOC: &str = r#"
Run it as root where Mininet and the meshcast binaries are installed:

    sudo python3 THIS.py                  # the Mininet CLI; `exit` stops everything
    sudo python3 THIS.py --duration 60    # 60 s with headless clients, then stop

Hosts are network namespaces (routers forward IPv4), LANs are bridges, links are TCLinks:
bandwidth from the nets' rate_mbit, and the delay/jitter/loss of an overlay link alone on a
point-to-point net. The other overlay link attributes are emulated by the meshcast processes
(--emulation) from TOPOLOGY_TOML, written to a work directory at start; logs, stats and
recordings go there too, and every process is stopped on exit.
"""
"#;

const SCRIPT_IMPORTS: &str = r#"
import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time

from mininet.cli import CLI
from mininet.link import TCLink
from mininet.log import info, setLogLevel
from mininet.net import Mininet
from mininet.node import Node, OVSBridge
from mininet.topo import Topo
"#;

const SCRIPT_BODY: &str = r#"

class Router(Node):
    """A host that forwards IPv4 between its interfaces."""

    def config(self, **params):
        result = super().config(**params)
        self.cmd("sysctl -q -w net.ipv4.ip_forward=1")
        return result


class MeshcastTopo(Topo):
    """HOSTS, SWITCHES and LINKS."""

    def build(self, *args, **params):
        for name, _host_id, router in HOSTS:
            if router:
                self.addNode(name, cls=Router, ip=None)
            else:
                self.addHost(name, ip=None)
        for name, dpid in SWITCHES:
            self.addSwitch(name, dpid=dpid)
        for a, a_intf, a_ip, b, b_intf, b_ip, options in LINKS:
            self.addLink(
                a,
                b,
                intfName1=a_intf,
                intfName2=b_intf,
                params1={"ip": a_ip} if a_ip else {},
                params2={"ip": b_ip} if b_ip else {},
                **options
            )


def fill(argv, values):
    """argv with {topology}, {videos} and {workdir} replaced."""
    return [word.format(**values) for word in argv]


def start(host, name, argv, bin_dir, workdir):
    """Starts argv in host's namespace, logging to WORKDIR/name.log."""
    if bin_dir:
        argv = [os.path.join(bin_dir, argv[0])] + argv[1:]
    log = open(os.path.join(workdir, name + ".log"), "w")
    info("*** %s: %s\n" % (host.name, " ".join(argv)))
    process = host.popen(argv, stdout=log, stderr=subprocess.STDOUT)
    return name, process, log


def stop(processes):
    """Stops every process: SIGTERM, then SIGKILL after 5 s."""
    for _name, process, _log in reversed(processes):
        if process.poll() is None:
            process.terminate()
    deadline = time.time() + 5
    for _name, process, log in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--duration",
        type=float,
        help="run this many seconds with headless clients, then stop (default: the Mininet CLI)",
    )
    parser.add_argument("--videos", help="videos the servers stream (default: a test pattern)")
    parser.add_argument("--bin-dir", help="directory of the meshcast binaries (default: PATH)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: sudo python3 " + sys.argv[0])
    setLogLevel("info")
    workdir = tempfile.mkdtemp(prefix="meshcast-")
    topology = os.path.join(workdir, "topology.toml")
    with open(topology, "w") as out:
        out.write(TOPOLOGY_TOML)
    videos = os.path.abspath(args.videos or os.path.join(workdir, "videos"))
    os.makedirs(videos, exist_ok=True)
    values = {"topology": topology, "videos": videos, "workdir": workdir}
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    net = Mininet(
        topo=MeshcastTopo(),
        link=TCLink,
        switch=OVSBridge,
        controller=None,
        autoSetMacs=True,
    )
    processes = []
    try:
        net.start()
        for name, _host_id, _router in HOSTS:
            host = net.get(name)
            host.cmd("sysctl -q -w net.ipv4.conf.all.rp_filter=0")
            for destination, gateway in ROUTES.get(name, []):
                host.cmd("ip route replace %s via %s" % (destination, gateway))
        for name, entries in PROCESSES.items():
            for process_id, argv in entries:
                processes.append(
                    start(net.get(name), process_id, fill(argv, values), args.bin_dir, workdir)
                )
        time.sleep(1)
        if args.duration:
            record = str(max(1, int(args.duration) - 5))
            for client_id, name, argv in CLIENTS:
                argv = fill(argv, values) + [
                    "--duration",
                    record,
                    "--record",
                    os.path.join(workdir, client_id + ".ts"),
                    "--stats",
                    os.path.join(workdir, client_id + ".stats.json"),
                ]
                processes.append(start(net.get(name), client_id, argv, args.bin_dir, workdir))
            info("*** running for %s s\n" % args.duration)
            time.sleep(args.duration)
        else:
            for client_id, name, argv in CLIENTS:
                info("*** client %s, from the CLI: %s %s &\n" % (client_id, name, " ".join(fill(argv, values))))
            CLI(net)
    finally:
        stop(processes)
        net.stop()
        info("*** logs, stats and recordings: %s\n" % workdir)


if __name__ == "__main__":
    main()
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn topology(text: &str) -> Topology {
        Topology::parse(text, "t.toml").unwrap().topology
    }

    /// h1 - r1 - r2 - h2, and h3 behind h2 (not a router).
    const CHAIN: &str = r#"
        [[node]]
        id = "boot"
        role = "bootstrapper"
        addr = "10.0.1.2:7100"
        [[node]]
        id = "s1"
        role = "server"
        addr = "10.0.1.2:7000"
        [[node]]
        id = "n1"
        role = "node"
        addr = "10.0.3.2:7000"
        [[node]]
        id = "n2"
        role = "node"
        addr = "10.0.4.2:7000"
        [[link]]
        between = ["s1", "n1"]
        latency_ms = 5.0
        [[link]]
        between = ["n1", "n2"]
        loss = 0.02
        [[host]]
        id = "h1"
        [[host]]
        id = "r1"
        router = true
        [[host]]
        id = "r2"
        router = true
        [[host]]
        id = "h2"
        [[host]]
        id = "h3"
        [[net]]
        subnet = "10.0.1.0/24"
        members = { h1 = "10.0.1.2", r1 = "10.0.1.1" }
        [[net]]
        subnet = "10.0.2.0/24"
        members = { r1 = "10.0.2.1", r2 = "10.0.2.2" }
        [[net]]
        subnet = "10.0.3.0/24"
        members = { r2 = "10.0.3.1", h2 = "10.0.3.2" }
        rate_mbit = 10
        [[net]]
        subnet = "10.0.4.0/24"
        members = { h2 = "10.0.4.1", h3 = "10.0.4.2" }
    "#;

    #[test]
    fn static_routes_go_through_routers_and_fall_back_to_host_routes() {
        let routes = static_routes(&topology(CHAIN));
        let text = |h: usize| -> Vec<String> {
            routes[h]
                .iter()
                .map(|r| format!("{} via {}", r.dest, r.via))
                .collect()
        };
        assert_eq!(
            text(0),
            [
                "10.0.2.0/24 via 10.0.1.1",
                "10.0.3.0/24 via 10.0.1.1",
                "10.0.4.1/32 via 10.0.1.1"
            ],
            "10.0.4.0/24 has no router: only h2's address there is reachable"
        );
        assert_eq!(
            text(1),
            ["10.0.3.0/24 via 10.0.2.2", "10.0.4.1/32 via 10.0.2.2"]
        );
        // h3 reaches h2 (its neighbour, which holds 10.0.3.2) but nothing behind it.
        assert_eq!(text(4), ["10.0.3.2/32 via 10.0.4.1"]);
    }

    #[test]
    fn an_overlay_only_topology_gets_one_host_per_address_on_one_switch() {
        let text = r#"
            links = [["s1", "n1"]]
            [[node]]
            id = "boot"
            role = "bootstrapper"
            addr = "127.0.0.1:7000"
            [[node]]
            id = "s1"
            role = "server"
            addr = "127.0.0.1:7001"
            [[node]]
            id = "n1"
            role = "node"
            addr = "[::1]:7000"
            [[client]]
            id = "c1"
            pops = ["n1"]
            addr = "127.0.0.9:0"
        "#;
        let full = with_underlay(&topology(text)).unwrap();
        let hosts: Vec<&str> = full.hosts().iter().map(|h| h.id.as_str()).collect();
        assert_eq!(hosts, ["boot", "n1"], "boot and s1 share 127.0.0.1");
        assert_eq!(full.nets()[0].subnet.to_string(), "10.0.0.0/24");
        assert_eq!(full.node("s1").unwrap().addr.to_string(), "10.0.0.1:7001");
        assert_eq!(full.node("n1").unwrap().addr.to_string(), "10.0.0.2:7000");
        assert_eq!(full.clients()[0].addr, None);
        assert_eq!(full.client_host(&full.clients()[0]), Some("n1"));
        assert_eq!(full.links(), topology(text).links());
    }

    #[test]
    fn core_export_starts_each_hosts_processes_and_names_the_copy() {
        let core = to_core(&topology(CHAIN), Path::new("/tmp/x y/chain.toml")).unwrap();
        let imn = &core.imn;
        assert!(
            imn.contains("node n1 {\n    type router\n    model host\n"),
            "{imn}"
        );
        assert!(imn.contains("node n2 {\n    type router\n    model router\n"));
        assert!(imn.contains("TOPOLOGY='/tmp/x y/chain.toml'"), "{imn}");
        assert!(imn.contains(
            "meshcast-server --id s1 --bootstrapper 10.0.1.2:7100 --videos \"$VIDEOS\" --stats s1.stats.json --emulation \"$TOPOLOGY\" > s1.log 2>&1 &"
        ));
        assert!(imn.contains("meshcast-bootstrapper --topology \"$TOPOLOGY\" > boot.log 2>&1 &"));
        assert!(imn.contains("ip route replace 10.0.2.0/24 via 10.0.1.1 || true"));
        assert!(
            imn.contains("link l3 {\n    nodes {n3 n4}\n    bandwidth 10000000\n}"),
            "{imn}"
        );
        assert!(
            !imn.contains("lanswitch"),
            "two-member nets are plain links"
        );
        assert!(core.toml.contains(
            "# Topology copy read by the meshcast processes of the CORE scenario /tmp/x y/chain.imn"
        ));
        let error = to_core(&topology(CHAIN), Path::new("/tmp/{x}.toml")).unwrap_err();
        assert!(matches!(error, ExportError::UnsafePath { .. }), "{error}");
    }

    #[test]
    fn mininet_moves_a_lone_overlay_links_impairments_to_netem() {
        // Put s1 and n1 on the two ends of one point-to-point net.
        let text = CHAIN.replace("10.0.3.2:7000", "10.0.1.1:7000");
        let mininet = to_mininet(&topology(&text)).unwrap();
        assert!(
            mininet.script.contains("(\"h1\", \"h1-eth0\", \"10.0.1.2/24\", \"r1\", \"r1-eth0\", \"10.0.1.1/24\", {\"delay\": \"5.0ms\"}),"),
            "{}",
            mininet.script
        );
        let moved = mininet.topology.link_between("s1", "n1").unwrap();
        assert!(moved.attrs.is_empty(), "emulated by netem, not twice");
        let kept = mininet.topology.link_between("n1", "n2").unwrap();
        assert_eq!(
            kept.attrs.loss,
            Some(0.02),
            "spans several nets: stays in user space"
        );
        assert!(mininet.script.contains("(\"r2\", \"r2-eth1\", \"10.0.3.1/24\", \"h2\", \"h2-eth0\", \"10.0.3.2/24\", {\"bw\": 10.0}),"));
    }

    #[test]
    fn python_literals_escape_what_they_must() {
        assert_eq!(py_str("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
        assert_eq!(py_triple("it's \\ ok"), "it\\'s \\\\ ok");
        assert_eq!(format_escape("{x}"), "{{x}}");
        assert_eq!(sh_word("/tmp/a b/it's"), "'/tmp/a b/it'\"'\"'s'");
        assert_eq!(sh_word("10.0.0.1:7000"), "10.0.0.1:7000");
        assert_eq!(brace_safe("a{b}"), "a{b}");
        assert_eq!(brace_safe("a}b{"), "a_b_");
    }
}
