//! meshcast topology files: parse, validate, and report problems by file,
//! line and field.
//!
//! A topology file describes an overlay: the processes (a bootstrapper,
//! servers and relay nodes), the overlay links between servers and nodes,
//! and optionally headless clients. It is read by the bootstrapper, by the
//! lab that starts the processes, and by the simulator tests.
//!
//! # File format
//!
//! ```toml
//! # optional; defaults to the file stem
//! name = "demo"
//!
//! [[node]]
//! id = "boot"               # unique, 1..=32 chars of [A-Za-z0-9_.-]
//! role = "bootstrapper"     # "bootstrapper" | "server" | "node"
//! addr = "127.0.0.1:7000"   # IP:PORT, unique, port not 0
//!
//! [[node]]
//! id = "s1"
//! role = "server"
//! addr = "127.0.0.2:7000"
//!
//! [[node]]
//! id = "n1"
//! role = "node"
//! addr = "127.0.0.3:7000"
//!
//! [[link]]
//! between = ["s1", "n1"]    # two distinct server/node ids
//! latency_ms = 5.0          # optional, >= 0
//! jitter_ms = 1.0           # optional, >= 0
//! loss = 0.01               # optional, probability in 0..=1
//! rate_mbit = 20.0          # optional, > 0
//!
//! [[client]]                # optional headless viewer
//! id = "c1"                 # shares the id namespace with nodes
//! pops = ["n1"]             # servers/nodes it may attach to, not empty
//! addr = "127.0.0.9:0"      # optional, port 0 allowed
//! watch = "test"            # optional channel name
//! host = "h9"               # optional, needs an underlay (see below)
//! ```
//!
//! Links may also be written compactly, without attributes, and mixed with
//! `[[link]]` tables: `links = [["s1", "n1"], ["n1", "n2"]]`. Like `name`,
//! this top-level key must come before the first `[[...]]` header.
//!
//! Rules: exactly one bootstrapper, which is not part of the overlay graph
//! (it takes no links and cannot be a PoP); at least one server or node; no
//! self-links or duplicate links (`a-b` and `b-a` are the same link); no
//! two processes on the same IP:PORT; no unknown fields.
//!
//! Every problem is reported, not only the first, as a [`Diagnostic`]
//! pointing at the offending value:
//!
//! ```text
//! topologies/x.toml:14:10: link.between: unknown node id "n9" (known ids: boot, n1, n2, s1)
//! ```
//!
//! A disconnected overlay, a server or node without links, or a topology
//! without any server are accepted with a [`TopologyWarning`].
//!
//! # Underlay
//!
//! Optionally, a topology also describes the IP network the processes run
//! on, one network namespace per host (`meshcast-lab up --netns`):
//!
//! ```toml
//! [[host]]                  # one network namespace (a CORE node)
//! id = "r3"                 # unique among hosts; may equal a process id
//! router = true             # forwards IP between its interfaces; default false
//!
//! [[net]]                   # one IPv4 subnet: 2 members (a point-to-point
//! subnet = "10.0.3.0/24"    # link) or more (a LAN on a hub or switch)
//! members = { n1 = "10.0.3.20", r3 = "10.0.3.1" }   # host id -> its address
//! rate_mbit = 100           # optional bandwidth limit on each member interface
//! ```
//!
//! Rules: host ids valid and unique; members are declared hosts, at most
//! once per net; member addresses inside the subnet, not its network or
//! broadcast address, unique across the underlay; subnets do not overlap;
//! IPv4 only for now. With an underlay, the IP of every process's `addr`
//! must be an address of a host: that host runs the process (several
//! processes may share a host on different ports). A client runs in its
//! `host`, or by default in the host of its first PoP; `host` without an
//! underlay is an error. A disconnected underlay is a warning.
//!
//! # Example
//!
//! ```
//! use meshcast_topology::Topology;
//!
//! let text = r#"
//! links = [["s1", "n1"]]
//!
//! [[node]]
//! id = "boot"
//! role = "bootstrapper"
//! addr = "127.0.0.1:7000"
//!
//! [[node]]
//! id = "s1"
//! role = "server"
//! addr = "127.0.0.2:7000"
//!
//! [[node]]
//! id = "n1"
//! role = "node"
//! addr = "127.0.0.3:7000"
//! "#;
//! let loaded = Topology::parse(text, "tiny.toml")?;
//! assert!(loaded.warnings.is_empty());
//! let topology = loaded.topology;
//! assert_eq!(topology.name(), "tiny");
//! assert_eq!(topology.bootstrapper().id, "boot");
//! assert_eq!(topology.neighbours("n1")[0].id, "s1");
//! # Ok::<(), meshcast_topology::TopologyError>(())
//! ```
//!
//! # Layout
//!
//! - `lib.rs`: [`Topology`] and its queries, [`Loaded`].
//! - `spec.rs`: the validated parts: [`NodeSpec`], [`Role`], [`LinkSpec`],
//!   [`LinkAttrs`], [`ClientSpec`], and the underlay's [`HostSpec`],
//!   [`NetSpec`], [`NetMember`], [`Ipv4Subnet`].
//! - `parse.rs`: walks the spanned TOML tree, validates, collects
//!   diagnostics and warnings.
//! - `error.rs`: [`Diagnostic`], [`TopologyError`], [`TopologyWarning`].
//! - `graph.rs`: connected components of the overlay graph and of the
//!   underlay.
//! - `edit.rs`: link attribute and address changes for running experiments.
//! - `write.rs`: the canonical TOML writer behind [`Topology::to_toml`].
//! - `tests.rs`: unit tests, including one that loads every file in the
//!   repository's `topologies/` directory.

mod edit;
mod error;
mod graph;
mod parse;
mod spec;
mod write;

#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::path::Path;

pub use error::{Diagnostic, TopologyError, TopologyWarning};
pub use parse::MAX_ID_LEN;
pub use spec::{
    ClientSpec, HostSpec, Ipv4Subnet, LinkAttrs, LinkSpec, NetMember, NetSpec, NodeSpec, Role,
    SubnetError, UnknownRole,
};

/// Whether `id` is a valid node or client id: 1 to [`MAX_ID_LEN`]
/// characters of `[A-Za-z0-9_.-]`.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty() && id.chars().count() <= MAX_ID_LEN && id.chars().all(parse::is_id_char)
}

/// A validated overlay description.
///
/// Guarantees: exactly one bootstrapper; unique ids across nodes and
/// clients; unique addresses; every link joins two distinct servers/nodes
/// and appears once; every client PoP is a server or node. With an
/// underlay: every process address is an address of exactly one host, and
/// every client host is a declared host.
#[derive(Clone, Debug, PartialEq)]
pub struct Topology {
    name: String,
    nodes: Vec<NodeSpec>,
    links: Vec<LinkSpec>,
    clients: Vec<ClientSpec>,
    /// The underlay's hosts; empty when the file has no underlay.
    hosts: Vec<HostSpec>,
    nets: Vec<NetSpec>,
    /// Index of the bootstrapper in `nodes`.
    bootstrapper: usize,
}

/// A successfully parsed topology and what looked suspicious in it.
#[derive(Clone, Debug, PartialEq)]
pub struct Loaded {
    /// The topology.
    pub topology: Topology,
    /// Problems that do not prevent using it, such as a disconnected graph.
    pub warnings: Vec<TopologyWarning>,
}

impl Topology {
    /// Reads and parses the topology file at `path`; messages name the file
    /// as `path` is written.
    pub fn load(path: &Path) -> Result<Loaded, TopologyError> {
        let text = std::fs::read_to_string(path).map_err(|source| TopologyError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses topology text; `origin` is the file name used in messages,
    /// and its stem is the default [`name`](Self::name).
    pub fn parse(text: &str, origin: &str) -> Result<Loaded, TopologyError> {
        parse::parse(text, origin)
    }

    /// The `name` field, or the stem of the file name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Every process in file order, bootstrapper included.
    pub fn nodes(&self) -> &[NodeSpec] {
        &self.nodes
    }

    /// The process with this id.
    pub fn node(&self, id: &str) -> Option<&NodeSpec> {
        self.nodes.iter().find(|node| node.id == id)
    }

    /// The one bootstrapper.
    pub fn bootstrapper(&self) -> &NodeSpec {
        &self.nodes[self.bootstrapper]
    }

    /// The servers, in file order.
    pub fn servers(&self) -> impl Iterator<Item = &NodeSpec> {
        self.nodes.iter().filter(|node| node.role == Role::Server)
    }

    /// Servers and nodes (the overlay graph's vertices), in file order.
    pub fn overlay_nodes(&self) -> impl Iterator<Item = &NodeSpec> {
        self.nodes.iter().filter(|node| node.is_overlay())
    }

    /// Every overlay link in file order (`[[link]]` tables and compact
    /// `links` pairs merged by position).
    pub fn links(&self) -> &[LinkSpec] {
        &self.links
    }

    /// The overlay neighbours of `id`, sorted by id, without duplicates;
    /// empty for the bootstrapper and for unknown ids.
    pub fn neighbours(&self, id: &str) -> Vec<&NodeSpec> {
        let mut neighbours: Vec<&NodeSpec> = self
            .links
            .iter()
            .filter_map(|link| link.other_end(id))
            .filter_map(|other| self.node(other))
            .collect();
        neighbours.sort_by(|x, y| x.id.cmp(&y.id));
        neighbours.dedup_by(|x, y| x.id == y.id);
        neighbours
    }

    /// The link joining `a` and `b`, in either direction.
    pub fn link_between(&self, a: &str, b: &str) -> Option<&LinkSpec> {
        self.links.iter().find(|link| link.connects(a, b))
    }

    /// The clients, in file order.
    pub fn clients(&self) -> &[ClientSpec] {
        &self.clients
    }

    /// The client with this id.
    pub fn client(&self, id: &str) -> Option<&ClientSpec> {
        self.clients.iter().find(|client| client.id == id)
    }

    /// Connected components of the overlay graph: ids sorted within each
    /// component, components ordered by their smallest id.
    pub fn components(&self) -> Vec<Vec<&str>> {
        graph::components(&self.nodes, &self.links)
    }

    /// Whether every server and node can reach every other over links.
    pub fn is_connected(&self) -> bool {
        self.components().len() <= 1
    }

    /// The underlay's hosts in file order; empty without an underlay.
    pub fn hosts(&self) -> &[HostSpec] {
        &self.hosts
    }

    /// The host with this id.
    pub fn host(&self, id: &str) -> Option<&HostSpec> {
        self.hosts.iter().find(|host| host.id == id)
    }

    /// The underlay's nets in file order.
    pub fn nets(&self) -> &[NetSpec] {
        &self.nets
    }

    /// Whether the file describes an underlay (`[[host]]` sections).
    pub fn has_underlay(&self) -> bool {
        !self.hosts.is_empty()
    }

    /// The host that has `ip` as one of its addresses.
    pub fn host_of(&self, ip: IpAddr) -> Option<&HostSpec> {
        let IpAddr::V4(ip) = ip else {
            return None;
        };
        let member = self
            .nets
            .iter()
            .flat_map(|net| &net.members)
            .find(|member| member.addr == ip)?;
        self.host(&member.host)
    }

    /// The addresses of host `id`, in net order.
    pub fn host_addrs(&self, id: &str) -> Vec<std::net::Ipv4Addr> {
        self.nets.iter().filter_map(|net| net.addr_of(id)).collect()
    }

    /// The host a client runs in: its `host`, else the host of its first
    /// PoP; `None` without an underlay.
    pub fn client_host<'a>(&'a self, client: &'a ClientSpec) -> Option<&'a str> {
        if !self.has_underlay() {
            return None;
        }
        if let Some(host) = &client.host {
            return Some(host);
        }
        let pop = self.node(client.pops.first()?)?;
        self.host_of(pop.addr.ip()).map(|host| host.id.as_str())
    }

    /// Connected components of the underlay (hosts joined by nets): ids
    /// sorted within each component, components ordered by their smallest
    /// id; empty without an underlay.
    pub fn underlay_components(&self) -> Vec<Vec<&str>> {
        graph::underlay_components(&self.hosts, &self.nets)
    }

    /// The canonical `[[node]]`/`[[link]]`/`[[client]]`/`[[host]]`/`[[net]]`
    /// text; parsing it gives back an equal topology.
    pub fn to_toml(&self) -> String {
        write::to_toml(self)
    }
}
