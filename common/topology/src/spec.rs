//! The validated pieces a [`Topology`](crate::Topology) is made of.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

/// What a process does in the mesh.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// The rendezvous process every other process contacts first. Not part
    /// of the overlay graph: it takes no links and cannot be a PoP.
    Bootstrapper,
    /// An origin: injects a stream into the overlay.
    Server,
    /// A relay; may also serve clients as a point of presence (PoP).
    Node,
}

impl Role {
    /// Every role, in the order they are listed in messages.
    pub const ALL: [Role; 3] = [Role::Bootstrapper, Role::Server, Role::Node];

    /// The lowercase name used in topology files.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Bootstrapper => "bootstrapper",
            Role::Server => "server",
            Role::Node => "node",
        }
    }

    /// Whether processes of this role are vertices of the overlay graph
    /// (servers and nodes).
    pub fn is_overlay(self) -> bool {
        !matches!(self, Role::Bootstrapper)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Returned when a string names no [`Role`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownRole(pub String);

impl fmt::Display for UnknownRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown role {:?} (valid roles: bootstrapper, server, node)",
            self.0
        )
    }
}

impl std::error::Error for UnknownRole {}

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

/// One process of the topology (`[[node]]` table).
#[derive(Clone, Debug, PartialEq)]
pub struct NodeSpec {
    /// Unique id, 1 to 32 characters of `[A-Za-z0-9_.-]`.
    pub id: String,
    /// What the process does.
    pub role: Role,
    /// Where the process listens; unique within the topology, port not 0.
    pub addr: SocketAddr,
}

impl NodeSpec {
    /// Whether this process is a vertex of the overlay graph.
    pub fn is_overlay(&self) -> bool {
        self.role.is_overlay()
    }
}

/// Optional per-link properties, used when links are emulated.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct LinkAttrs {
    /// One-way delay in milliseconds, `>= 0`.
    pub latency_ms: Option<f64>,
    /// Delay variation in milliseconds, `>= 0`.
    pub jitter_ms: Option<f64>,
    /// Packet loss probability in `0..=1`.
    pub loss: Option<f64>,
    /// Bandwidth limit in Mbit/s, `> 0`.
    pub rate_mbit: Option<f64>,
}

impl LinkAttrs {
    /// Whether no attribute is set.
    pub fn is_empty(&self) -> bool {
        *self == LinkAttrs::default()
    }
}

/// An undirected overlay link between two servers/nodes.
#[derive(Clone, Debug, PartialEq)]
pub struct LinkSpec {
    /// One end, as written in the file.
    pub a: String,
    /// The other end, as written in the file.
    pub b: String,
    /// Emulation properties.
    pub attrs: LinkAttrs,
}

impl LinkSpec {
    /// Whether the link connects `x` and `y`, in either direction.
    pub fn connects(&self, x: &str, y: &str) -> bool {
        (self.a == x && self.b == y) || (self.a == y && self.b == x)
    }

    /// The end opposite `id`, if `id` is an end of this link.
    pub fn other_end(&self, id: &str) -> Option<&str> {
        if self.a == id {
            Some(&self.b)
        } else if self.b == id {
            Some(&self.a)
        } else {
            None
        }
    }
}

/// A headless viewer that tooling may start (`[[client]]` table).
#[derive(Clone, Debug, PartialEq)]
pub struct ClientSpec {
    /// Unique id; shares the id namespace with nodes.
    pub id: String,
    /// Ids of servers/nodes the client may use as points of presence, in
    /// preference order; never empty.
    pub pops: Vec<String>,
    /// Local address to bind; port 0 means "any".
    pub addr: Option<SocketAddr>,
    /// Channel to watch.
    pub watch: Option<String>,
}
