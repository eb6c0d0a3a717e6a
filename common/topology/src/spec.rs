//! The validated pieces a [`Topology`](crate::Topology) is made of.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
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
    /// The underlay host the client runs in, when written; see
    /// [`Topology::client_host`](crate::Topology::client_host) for the default.
    pub host: Option<String>,
}

/// One network namespace of the underlay (`[[host]]` table), such as a CORE node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostSpec {
    /// Unique among hosts (hosts have their own id namespace, so a host may
    /// share its id with the process it runs), 1 to 32 characters of
    /// `[A-Za-z0-9_.-]`.
    pub id: String,
    /// Whether the host forwards IP between its interfaces; processes on
    /// other hosts can only reach each other through routers.
    pub router: bool,
}

/// A host's address on one net.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetMember {
    /// The host id.
    pub host: String,
    /// Its address, inside the net's subnet.
    pub addr: Ipv4Addr,
}

/// One IP subnet of the underlay (`[[net]]` table): a point-to-point link
/// with two members, or a LAN (a hub or switch) with three or more.
#[derive(Clone, Debug, PartialEq)]
pub struct NetSpec {
    /// The subnet every member address lies in.
    pub subnet: Ipv4Subnet,
    /// The hosts on this net, in file order, each at most once.
    pub members: Vec<NetMember>,
    /// Bandwidth limit in Mbit/s applied to each member interface, `> 0`.
    pub rate_mbit: Option<f64>,
}

impl NetSpec {
    /// Whether this net joins three or more hosts (a hub or switch).
    pub fn is_lan(&self) -> bool {
        self.members.len() >= 3
    }

    /// The address of `host` on this net.
    pub fn addr_of(&self, host: &str) -> Option<Ipv4Addr> {
        self.members
            .iter()
            .find(|member| member.host == host)
            .map(|member| member.addr)
    }
}

/// An IPv4 subnet such as `10.0.3.0/24`: a network address without host
/// bits and a prefix length of at most 32.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Subnet {
    network: Ipv4Addr,
    prefix: u8,
}

/// Why a text or an address/prefix pair is no [`Ipv4Subnet`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SubnetError {
    /// Not of the form `A.B.C.D/P`.
    #[error("expected an IPv4 subnet such as 10.0.3.0/24")]
    Syntax,
    /// An IPv6 subnet.
    #[error("IPv6 subnets are not supported: the underlay is IPv4 only for now")]
    Ipv6,
    /// The prefix length is above 32.
    #[error("prefix length {0} is out of range: expected 0 to 32")]
    Prefix(u32),
    /// The address has bits set beyond the prefix.
    #[error("{given} has host bits set; the subnet is written {network}")]
    HostBits {
        /// As written.
        given: String,
        /// The subnet it lies in.
        network: Ipv4Subnet,
    },
}

impl Ipv4Subnet {
    /// The subnet of prefix length `prefix` that contains `addr`.
    pub fn containing(addr: Ipv4Addr, prefix: u8) -> Result<Ipv4Subnet, SubnetError> {
        if prefix > 32 {
            return Err(SubnetError::Prefix(u32::from(prefix)));
        }
        Ok(Ipv4Subnet {
            network: Ipv4Addr::from(u32::from(addr) & mask(prefix)),
            prefix,
        })
    }

    /// `network/prefix`, refused when `network` has host bits set.
    pub fn new(network: Ipv4Addr, prefix: u8) -> Result<Ipv4Subnet, SubnetError> {
        let subnet = Ipv4Subnet::containing(network, prefix)?;
        if subnet.network == network {
            Ok(subnet)
        } else {
            Err(SubnetError::HostBits {
                given: format!("{network}/{prefix}"),
                network: subnet,
            })
        }
    }

    /// The network address.
    pub fn network(&self) -> Ipv4Addr {
        self.network
    }

    /// The prefix length, 0 to 32.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The broadcast address (the last address of the subnet).
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) | !mask(self.prefix))
    }

    /// Whether `addr` lies in the subnet.
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        u32::from(addr) & mask(self.prefix) == u32::from(self.network)
    }

    /// Whether `addr` may be given to an interface: inside the subnet and,
    /// up to /30, neither the network nor the broadcast address (a /31
    /// point-to-point subnet has no such addresses; a /32 has no room).
    pub fn is_host_addr(&self, addr: Ipv4Addr) -> bool {
        self.contains(addr)
            && match self.prefix {
                32 => false,
                31 => true,
                _ => addr != self.network && addr != self.broadcast(),
            }
    }

    /// Whether the two subnets share any address.
    pub fn overlaps(&self, other: &Ipv4Subnet) -> bool {
        self.contains(other.network) || other.contains(self.network)
    }

    /// The `index`-th usable host address (0 is the first after the network
    /// address), if the subnet has that many.
    pub fn host(&self, index: u32) -> Option<Ipv4Addr> {
        let first = match self.prefix {
            32 => return None,
            31 => u32::from(self.network),
            _ => u32::from(self.network).checked_add(1)?,
        };
        let addr = Ipv4Addr::from(first.checked_add(index)?);
        self.is_host_addr(addr).then_some(addr)
    }
}

/// The netmask of a prefix length `0..=32` as an integer.
fn mask(prefix: u8) -> u32 {
    match prefix {
        0 => 0,
        p => u32::MAX << (32 - u32::from(p.min(32))),
    }
}

impl fmt::Display for Ipv4Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl FromStr for Ipv4Subnet {
    type Err = SubnetError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = text.split_once('/').ok_or(SubnetError::Syntax)?;
        if addr.parse::<std::net::Ipv6Addr>().is_ok() {
            return Err(SubnetError::Ipv6);
        }
        let addr: Ipv4Addr = addr.parse().map_err(|_| SubnetError::Syntax)?;
        if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SubnetError::Syntax);
        }
        let prefix: u32 = prefix.parse().map_err(|_| SubnetError::Syntax)?;
        let prefix = u8::try_from(prefix)
            .ok()
            .filter(|p| *p <= 32)
            .ok_or(SubnetError::Prefix(prefix))?;
        Ipv4Subnet::new(addr, prefix)
    }
}
