//! meshcast's deterministic network simulator.
//!
//! The real role machines of `common/proto` run on a virtual network: every datagram is
//! delayed, jittered or lost by its link's model, every timer fires on a virtual clock, and
//! all randomness comes from one seed. The same seed replays a run exactly, so a failing
//! scenario prints `SIM_SEED=…` and the command that reproduces it.
//!
//! # Layout
//!
//! - [`Sim`]: hosts (nodes, clients), links, the event queue, faults.
//! - links: one [`meshcast_proto::link::Link`] per directed pair of hosts, so a seed means the
//!   same impairments here and in the io layer's emulator ([`LinkParams`]: latency, jitter,
//!   loss, bursts, reordering, rate, up/down; [`LinkModel`] is its old name).
//! - [`Counters`]: what crossed each link (media copies per stream, control datagrams).
//! - [`seed`]: seed selection from `SIM_SEED` and the replay hint on failure.
//! - [`check`]: invariants over a running overlay (acyclic trees, link stress).

pub mod check;
pub mod seed;

use meshcast_proto::client::{Client, ClientCommand, ClientConfig, ClientEvent};
use meshcast_proto::link::{DropReason, Link, Verdict};
use meshcast_proto::node::{Node, NodeCommand, NodeConfig};
use meshcast_proto::rng::Rng;
use meshcast_proto::wire::{self, Datagram, Message, Neighbour};
use meshcast_proto::{Machine, Transmit};
use meshcast_topology::Topology;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub use meshcast_proto::link::LinkParams;

/// The impairments of one direction of a link: the shared [`LinkParams`] under the
/// simulator's original name. Note that its default is the perfect link (no delay); the
/// simulator's own default for links nobody configured is [`DEFAULT_LATENCY`].
pub type LinkModel = LinkParams;

/// Latency of links the topology gives none, and of host pairs with no explicit link, until
/// [`Sim::set_default_link`] says otherwise: a LAN hop.
pub const DEFAULT_LATENCY: Duration = Duration::from_micros(200);

fn lan() -> LinkParams {
    LinkParams {
        latency: DEFAULT_LATENCY,
        ..LinkParams::default()
    }
}

/// A host's machine.
#[derive(Debug)]
pub enum HostMachine {
    /// A relay / PoP / server.
    Node(Box<Node>),
    /// A viewer.
    Client(Box<Client>),
}

#[derive(Debug)]
struct Host {
    name: String,
    addr: SocketAddr,
    machine: HostMachine,
    alive: bool,
    /// How to rebuild it after a crash.
    node_config: Option<NodeConfig>,
    neighbours: Vec<Neighbour>,
    local_channels: Vec<meshcast_proto::node::LocalChannel>,
    client_events: Vec<(Instant, ClientEvent)>,
    node_events: Vec<(Instant, meshcast_proto::node::NodeEvent)>,
    media_events: u64,
}

/// A synthetic live channel published at a fixed datagram rate.
#[derive(Debug, Clone)]
struct Source {
    host: usize,
    channel: String,
    interval: Duration,
    next: Instant,
    /// Per-PID continuity counter of the synthetic TS.
    cc: u8,
    /// Datagrams published so far.
    sent: u64,
    /// Datagrams per second (and per GOP).
    pps: u32,
}

/// What crossed the links.
#[derive(Debug, Default, Clone)]
pub struct Counters {
    /// Media datagrams per (from, to, stream).
    pub media: BTreeMap<(SocketAddr, SocketAddr, u32), u64>,
    /// Media datagrams that crossed the same directed link with the same (stream, seq) again.
    pub media_repeats: u64,
    /// Control datagrams per (from, to).
    pub control: BTreeMap<(SocketAddr, SocketAddr), u64>,
    /// Announce datagrams sent in total.
    pub announces: u64,
    /// Datagrams dropped by link models.
    pub lost: u64,
    /// Datagrams delivered with a flipped bit.
    pub corrupted: u64,
    /// The same drops, by reason.
    pub lost_by_reason: BTreeMap<DropReason, u64>,
    seen: BTreeSet<(SocketAddr, SocketAddr, u32, u64)>,
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Delivery {
    at: Instant,
    order: u64,
    from: SocketAddr,
    to: SocketAddr,
    bytes: Vec<u8>,
}

/// The simulator. See the crate docs.
#[derive(Debug)]
pub struct Sim {
    seed: u64,
    start: Instant,
    now: Instant,
    rng: Rng,
    hosts: Vec<Host>,
    by_addr: BTreeMap<SocketAddr, usize>,
    by_name: BTreeMap<String, usize>,
    /// Directed links set explicitly (topology, [`Sim::set_link`], faults).
    links: BTreeMap<(SocketAddr, SocketAddr), Link>,
    /// Directed pairs with no explicit link (client ↔ PoP), created on first use with
    /// `default_link` and kept so their state (FIFO order, rate queue) carries over.
    default_links: BTreeMap<(SocketAddr, SocketAddr), Link>,
    default_link: LinkParams,
    queue: BinaryHeap<Reverse<Delivery>>,
    order: u64,
    sources: Vec<Source>,
    /// Traffic counters, readable by tests.
    pub counters: Counters,
    /// Fraction of datagrams delivered with a flipped bit.
    corruption: f64,
    restarts: u64,
}

impl Sim {
    /// An empty network whose every random choice follows from `seed`.
    pub fn new(seed: u64) -> Self {
        #[allow(clippy::disallowed_methods)]
        let start = Instant::now();
        Self {
            seed,
            start,
            now: start,
            rng: Rng::new(seed),
            hosts: Vec::new(),
            by_addr: BTreeMap::new(),
            by_name: BTreeMap::new(),
            links: BTreeMap::new(),
            default_links: BTreeMap::new(),
            default_link: lan(),
            queue: BinaryHeap::new(),
            order: 0,
            sources: Vec::new(),
            counters: Counters::default(),
            corruption: 0.0,
            restarts: 0,
        }
    }

    /// The seed of this run.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Virtual time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// The virtual clock.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Builds every server and node of a topology, with links as the file describes them
    /// (`latency_ms`, `jitter_ms`, `loss`, `rate_mbit`; no `latency_ms` is
    /// [`DEFAULT_LATENCY`]), and neighbours set directly (no bootstrapper).
    pub fn from_topology(t: &Topology, seed: u64, tune: impl Fn(&mut NodeConfig)) -> Self {
        let mut sim = Self::new(seed);
        for n in t.overlay_nodes() {
            let mut cfg = NodeConfig::new(n.id.clone(), 0);
            tune(&mut cfg);
            let neighbours = t
                .neighbours(&n.id)
                .into_iter()
                .map(|m| Neighbour {
                    id: m.id.clone(),
                    addr: m.addr,
                })
                .collect();
            sim.add_node(cfg, n.addr, neighbours);
        }
        for l in t.links() {
            let (Some(a), Some(b)) = (t.node(&l.a), t.node(&l.b)) else {
                continue;
            };
            let attrs = &l.attrs;
            let mut params = LinkParams::from_attrs(
                attrs.latency_ms,
                attrs.jitter_ms,
                attrs.loss,
                attrs.rate_mbit,
            );
            if attrs.latency_ms.is_none() {
                params.latency = DEFAULT_LATENCY;
            }
            sim.set_link(a.addr, b.addr, params);
        }
        sim
    }

    /// Adds a node (its seed is derived from the simulation seed).
    pub fn add_node(
        &mut self,
        mut config: NodeConfig,
        addr: SocketAddr,
        neighbours: Vec<Neighbour>,
    ) {
        config.seed = self.rng.next_u64();
        let name = config.id.clone();
        let mut node = Node::new(config.clone());
        node.handle_command(self.now, NodeCommand::SetNeighbours(neighbours.clone()));
        let idx = self.hosts.len();
        self.hosts.push(Host {
            name: name.clone(),
            addr,
            machine: HostMachine::Node(Box::new(node)),
            alive: true,
            node_config: Some(config),
            neighbours,
            local_channels: Vec::new(),
            client_events: Vec::new(),
            node_events: Vec::new(),
            media_events: 0,
        });
        self.by_addr.insert(addr, idx);
        self.by_name.insert(name, idx);
        self.flush(idx);
    }

    /// Adds a viewer named `name` at `addr` that will probe `pops`.
    pub fn add_client(&mut self, name: &str, addr: SocketAddr, pops: Vec<SocketAddr>) {
        let mut cfg = ClientConfig::new(pops, self.rng.next_u64());
        cfg.seed = self.rng.next_u64();
        let idx = self.hosts.len();
        self.hosts.push(Host {
            name: name.to_owned(),
            addr,
            machine: HostMachine::Client(Box::new(Client::new(cfg))),
            alive: true,
            node_config: None,
            neighbours: Vec::new(),
            local_channels: Vec::new(),
            client_events: Vec::new(),
            node_events: Vec::new(),
            media_events: 0,
        });
        self.by_addr.insert(addr, idx);
        self.by_name.insert(name.to_owned(), idx);
    }

    /// Rebuilds a client that has not started yet with `dual_pop` set: it watches at its two
    /// best PoPs at once.
    pub fn set_client_dual(&mut self, name: &str, dual: bool) {
        let i = self.idx(name);
        if let HostMachine::Client(c) = &mut self.hosts[i].machine {
            let mut cfg = c.config().clone();
            cfg.dual_pop = dual;
            **c = Client::new(cfg);
        }
    }

    /// Sets both directions of the link between `a` and `b`. The links keep their state
    /// (datagrams in flight stay in flight, in order).
    pub fn set_link(&mut self, a: SocketAddr, b: SocketAddr, model: LinkModel) {
        for key in [(a, b), (b, a)] {
            self.links
                .entry(key)
                .and_modify(|l| l.set_params(model))
                .or_insert_with(|| Link::new(model));
        }
    }

    /// Sets both directions of the link between the hosts named `a` and `b`.
    pub fn set_link_params(&mut self, a: &str, b: &str, params: LinkParams) {
        let (a, b) = (self.addr(a), self.addr(b));
        self.set_link(a, b, params);
    }

    /// The parameters of the link from host `a` to host `b`.
    pub fn link_params(&self, a: &str, b: &str) -> LinkParams {
        let key = (self.addr(a), self.addr(b));
        self.links
            .get(&key)
            .map_or(self.default_link, |l| *l.params())
    }

    /// Model for pairs with no explicit link (client ↔ PoP), now and from now on.
    pub fn set_default_link(&mut self, model: LinkModel) {
        self.default_link = model;
        for l in self.default_links.values_mut() {
            l.set_params(model);
        }
    }

    /// Address of a host.
    pub fn addr(&self, name: &str) -> SocketAddr {
        self.hosts[self.idx(name)].addr
    }

    fn idx(&self, name: &str) -> usize {
        *self
            .by_name
            .get(name)
            .unwrap_or_else(|| panic!("no host named {name:?}"))
    }

    /// The node named `name`.
    pub fn node(&self, name: &str) -> &Node {
        match &self.hosts[self.idx(name)].machine {
            HostMachine::Node(n) => n,
            HostMachine::Client(_) => panic!("{name} is a client"),
        }
    }

    /// The client named `name`.
    pub fn client(&self, name: &str) -> &Client {
        match &self.hosts[self.idx(name)].machine {
            HostMachine::Client(c) => c,
            HostMachine::Node(_) => panic!("{name} is a node"),
        }
    }

    /// Names of every live node.
    pub fn node_names(&self) -> Vec<String> {
        self.hosts
            .iter()
            .filter(|h| h.alive && matches!(h.machine, HostMachine::Node(_)))
            .map(|h| h.name.clone())
            .collect()
    }

    /// Non-media events a client reported, with their time.
    pub fn client_events(&self, name: &str) -> &[(Instant, ClientEvent)] {
        &self.hosts[self.idx(name)].client_events
    }

    /// Events a node reported (neighbours up/down, parent changes, clients), with their time.
    pub fn node_events(&self, name: &str) -> &[(Instant, meshcast_proto::node::NodeEvent)] {
        &self.hosts[self.idx(name)].node_events
    }

    /// Virtual time since the start of `t`.
    pub fn since_start(&self, t: Instant) -> Duration {
        t - self.start
    }

    /// Media events a client reported.
    pub fn client_media(&self, name: &str) -> u64 {
        self.hosts[self.idx(name)].media_events
    }

    /// Sends a command to a node.
    pub fn node_command(&mut self, name: &str, c: NodeCommand) {
        let i = self.idx(name);
        if let NodeCommand::AddChannel(ch) = &c {
            self.hosts[i].local_channels.push(ch.clone());
        }
        if let HostMachine::Node(n) = &mut self.hosts[i].machine {
            n.handle_command(self.now, c);
        }
        self.flush(i);
    }

    /// Sends a command to a client.
    pub fn client_command(&mut self, name: &str, c: ClientCommand) {
        let i = self.idx(name);
        if let HostMachine::Client(cl) = &mut self.hosts[i].machine {
            cl.handle_command(self.now, c);
        }
        self.flush(i);
    }

    /// Makes node `name` originate `channel` and publish synthetic TS at `pps` datagrams/s.
    pub fn add_source(&mut self, name: &str, channel: &str, pps: u32) {
        self.node_command(
            name,
            NodeCommand::AddChannel(meshcast_proto::node::LocalChannel {
                name: channel.to_owned(),
                codec: "h264".into(),
                width: 1280,
                height: 720,
                fps_milli: 30_000,
                bitrate_kbps: pps * 1316 * 8 / 1000,
            }),
        );
        let host = self.idx(name);
        self.sources.push(Source {
            host,
            channel: channel.to_owned(),
            interval: Duration::from_secs(1) / pps.max(1),
            next: self.now,
            cc: 0,
            sent: 0,
            pps: pps.max(1),
        });
    }

    // ----- faults ---------------------------------------------------------------------------

    /// Crashes a host: it stops receiving, sending and firing timers; its state is lost.
    pub fn crash(&mut self, name: &str) {
        let i = self.idx(name);
        self.hosts[i].alive = false;
    }

    /// Restarts a crashed node with the same id and a fresh state (new sessions, new
    /// incarnation), as a process restart would.
    pub fn restart(&mut self, name: &str) {
        let i = self.idx(name);
        let Some(mut cfg) = self.hosts[i].node_config.clone() else {
            return;
        };
        self.restarts += 1;
        cfg.seed = self.rng.next_u64();
        let mut node = Node::new(cfg);
        node.handle_command(
            self.now,
            NodeCommand::SetNeighbours(self.hosts[i].neighbours.clone()),
        );
        for ch in self.hosts[i].local_channels.clone() {
            node.handle_command(self.now, NodeCommand::AddChannel(ch));
        }
        self.hosts[i].machine = HostMachine::Node(Box::new(node));
        self.hosts[i].alive = true;
        self.flush(i);
    }

    /// Takes the link between two hosts down (both directions).
    pub fn partition(&mut self, a: &str, b: &str) {
        self.set_up(a, b, false);
    }

    /// Brings it back.
    pub fn heal(&mut self, a: &str, b: &str) {
        self.set_up(a, b, true);
    }

    fn set_up(&mut self, a: &str, b: &str, up: bool) {
        self.modify_link(a, b, |p| p.up = up);
    }

    /// Sets the one-way latency of the link between `a` and `b` (both directions), keeping its
    /// other impairments.
    pub fn set_latency(&mut self, a: &str, b: &str, latency: Duration) {
        self.modify_link(a, b, |p| p.latency = latency);
    }

    /// Changes both directions of the link between two hosts, starting from their current
    /// parameters (the default link's if it was never set).
    fn modify_link(&mut self, a: &str, b: &str, change: impl Fn(&mut LinkParams)) {
        let (a, b) = (self.addr(a), self.addr(b));
        for key in [(a, b), (b, a)] {
            let link = match self.links.entry(key) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(e) => {
                    // Taking over a default pair keeps its in-flight order.
                    let link = self
                        .default_links
                        .remove(&key)
                        .unwrap_or_else(|| Link::new(self.default_link));
                    e.insert(link)
                }
            };
            let mut params = *link.params();
            change(&mut params);
            link.set_params(params);
        }
    }

    /// Flips one bit in this fraction of all datagrams (every link, both directions).
    pub fn set_corruption(&mut self, fraction: f64) {
        self.corruption = fraction;
    }

    /// Sets the independent random loss of every explicit link (those of the topology,
    /// [`Sim::set_link`] and faults; not the default client links).
    pub fn set_loss_everywhere(&mut self, loss: f64) {
        for l in self.links.values_mut() {
            let mut params = *l.params();
            params.loss = loss;
            l.set_params(params);
        }
    }

    // ----- running ----------------------------------------------------------------------------

    /// Runs the network for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        while self.step(end) {}
        self.now = end;
    }

    /// Runs until `cond` holds (checked after every event) or `limit` of virtual time passes.
    /// Returns whether the condition was met.
    pub fn run_until(&mut self, limit: Duration, mut cond: impl FnMut(&Sim) -> bool) -> bool {
        let end = self.now + limit;
        loop {
            if cond(self) {
                return true;
            }
            if !self.step(end) {
                self.now = end;
                return cond(self);
            }
        }
    }

    /// Processes the next event due at or before `end`; false when there is none.
    fn step(&mut self, end: Instant) -> bool {
        let next_delivery = self.queue.peek().map(|d| d.0.at);
        let next_timer = self
            .hosts
            .iter()
            .enumerate()
            .filter(|(_, h)| h.alive)
            .filter_map(|(i, h)| machine_timeout(&h.machine).map(|t| (t, i)))
            .min();
        let next_source = self
            .sources
            .iter()
            .enumerate()
            .filter(|(_, s)| self.hosts[s.host].alive)
            .map(|(i, s)| (s.next, i))
            .min();
        let t = [
            next_delivery,
            next_timer.map(|x| x.0),
            next_source.map(|x| x.0),
        ]
        .into_iter()
        .flatten()
        .min();
        let Some(t) = t.filter(|t| *t <= end) else {
            return false;
        };
        self.now = self.now.max(t);
        if next_delivery == Some(t) {
            let Some(Reverse(d)) = self.queue.pop() else {
                return true;
            };
            if let Some(&i) = self.by_addr.get(&d.to)
                && self.hosts[i].alive
            {
                let now = self.now;
                match &mut self.hosts[i].machine {
                    HostMachine::Node(n) => n.handle_datagram(now, d.from, &d.bytes),
                    HostMachine::Client(c) => c.handle_datagram(now, d.from, &d.bytes),
                }
                self.flush(i);
            }
        } else if let Some((tt, i)) = next_timer
            && tt == t
        {
            let now = self.now;
            match &mut self.hosts[i].machine {
                HostMachine::Node(n) => n.handle_timeout(now),
                HostMachine::Client(c) => c.handle_timeout(now),
            }
            // A timer that stays due after it fired would spin a real process's driver loop.
            if let Some(t) = machine_timeout(&self.hosts[i].machine)
                && t <= now
            {
                panic!(
                    "{}: poll_timeout() is still {:?} after handle_timeout at {:?}: a stuck timer (seed {})",
                    self.hosts[i].name,
                    t - self.start,
                    now - self.start,
                    self.seed
                );
            }
            self.flush(i);
        } else if let Some((_, si)) = next_source {
            self.publish(si);
        }
        true
    }

    fn publish(&mut self, si: usize) {
        let s = &mut self.sources[si];
        s.next += s.interval;
        // One keyframe per second of stream, like a 1 s GOP: the first packet of that datagram
        // starts a video PES with the random-access indicator, as FFmpeg's muxer writes it.
        let keyframe = s.sent.is_multiple_of(u64::from(s.pps));
        s.sent += 1;
        let mut payload = Vec::with_capacity(wire::MAX_MEDIA_PAYLOAD);
        for i in 0..7 {
            let mut p = [0xFFu8; 188];
            p[0] = 0x47;
            p[1] = 0x01;
            p[2] = 0x00;
            p[3] = 0x10 | (s.cc & 0x0F);
            if keyframe && i == 0 {
                p[1] |= 0x40; // payload unit start
                p[3] |= 0x20; // adaptation field present
                p[4] = 1;
                p[5] = 0x40; // random access indicator
                p[6..10].copy_from_slice(&[0, 0, 1, 0xE0]); // video PES start code
            }
            s.cc = s.cc.wrapping_add(1);
            payload.extend_from_slice(&p);
        }
        let (host, channel) = (s.host, s.channel.clone());
        if let HostMachine::Node(n) = &mut self.hosts[host].machine {
            n.handle_command(self.now, NodeCommand::Publish { channel, payload });
        }
        self.flush(host);
    }

    /// Drains a host's transmits onto the links and its events into the log.
    fn flush(&mut self, i: usize) {
        let now = self.now;
        let from = self.hosts[i].addr;
        let mut out: Vec<Transmit> = Vec::new();
        let host = &mut self.hosts[i];
        match &mut host.machine {
            HostMachine::Node(n) => {
                while let Some(t) = n.poll_transmit() {
                    out.push(t);
                }
                while let Some(e) = n.poll_event() {
                    host.node_events.push((now, e));
                }
            }
            HostMachine::Client(c) => {
                while let Some(t) = c.poll_transmit() {
                    out.push(t);
                }
                while let Some(e) = c.poll_event() {
                    if matches!(e, ClientEvent::Media { .. }) {
                        host.media_events += 1;
                    } else {
                        host.client_events.push((now, e));
                    }
                }
            }
        }
        for t in out {
            self.send(from, t);
        }
    }

    fn send(&mut self, from: SocketAddr, t: Transmit) {
        let key = (from, t.dst);
        let link = match self.links.get_mut(&key) {
            Some(l) => l,
            None => {
                let default = self.default_link;
                self.default_links
                    .entry(key)
                    .or_insert_with(|| Link::new(default))
            }
        };
        if let Some((stream, seq)) = wire::peek_media(&t.payload) {
            *self
                .counters
                .media
                .entry((from, t.dst, stream))
                .or_default() += 1;
            if !self.counters.seen.insert((from, t.dst, stream, seq)) {
                self.counters.media_repeats += 1;
            }
        } else {
            *self.counters.control.entry((from, t.dst)).or_default() += 1;
            if matches!(
                Datagram::decode(&t.payload),
                Ok(Datagram::Control(Message::Announce(_)))
            ) {
                self.counters.announces += 1;
            }
        }
        let mut t = t;
        if self.corruption > 0.0 && self.rng.chance(self.corruption) && t.payload.len() > 6 {
            // One flipped bit past the header: only the checksum can tell.
            let i = 6 + self.rng.below(t.payload.len() as u64 - 6) as usize;
            t.payload[i] ^= 1 << self.rng.below(8);
            self.counters.corrupted += 1;
        }
        let at = match link.admit(self.now, t.payload.len(), &mut self.rng) {
            Verdict::Deliver(at) => at,
            Verdict::Drop(reason) => {
                self.counters.lost += 1;
                *self.counters.lost_by_reason.entry(reason).or_default() += 1;
                return;
            }
        };
        self.order += 1;
        self.queue.push(Reverse(Delivery {
            at,
            order: self.order,
            from,
            to: t.dst,
            bytes: t.payload,
        }));
    }
}

fn machine_timeout(m: &HostMachine) -> Option<Instant> {
    match m {
        HostMachine::Node(n) => n.poll_timeout(),
        HostMachine::Client(c) => c.poll_timeout(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two relays joined by one link, run until their control channel has measured it.
    fn pair(seed: u64, link: LinkParams) -> Sim {
        let (a, b): (SocketAddr, SocketAddr) = (
            "127.0.1.1:7000".parse().unwrap(),
            "127.0.1.2:7000".parse().unwrap(),
        );
        let mut sim = Sim::new(seed);
        sim.add_node(
            NodeConfig::new("a", 0),
            a,
            vec![Neighbour {
                id: "b".into(),
                addr: b,
            }],
        );
        sim.add_node(
            NodeConfig::new("b", 0),
            b,
            vec![Neighbour {
                id: "a".into(),
                addr: a,
            }],
        );
        sim.set_link(a, b, link);
        sim
    }

    fn srtt(sim: &Sim, name: &str) -> Duration {
        let us = sim.node(name).snapshot(sim.now()).neighbours[0]
            .srtt_us
            .expect("measured");
        Duration::from_micros(us)
    }

    #[test]
    fn set_latency_changes_the_rtt_the_nodes_measure() {
        let mut sim = pair(1, LinkParams::default());
        sim.set_latency("a", "b", Duration::from_millis(10));
        sim.run_for(Duration::from_secs(3));
        let rtt = srtt(&sim, "a");
        assert!(
            rtt >= Duration::from_millis(20) && rtt < Duration::from_millis(22),
            "{rtt:?}"
        );
        sim.set_latency("a", "b", Duration::from_millis(40));
        assert_eq!(sim.link_params("b", "a").latency, Duration::from_millis(40));
        sim.run_for(Duration::from_secs(10));
        let rtt = srtt(&sim, "b");
        assert!(rtt >= Duration::from_millis(78), "{rtt:?}");
    }

    #[test]
    fn link_faults_are_counted_by_reason() {
        let mut sim = pair(2, LinkParams::default());
        sim.set_loss_everywhere(0.3);
        sim.run_for(Duration::from_secs(2));
        let random = sim.counters.lost_by_reason[&DropReason::Random];
        assert!(random > 0);
        sim.set_link_params(
            "a",
            "b",
            LinkParams {
                up: false,
                ..LinkParams::default()
            },
        );
        sim.run_for(Duration::from_secs(1));
        let down = sim.counters.lost_by_reason[&DropReason::Down];
        assert!(down > 0);
        assert_eq!(sim.counters.lost, random + down);
        sim.heal("a", "b");
        assert!(sim.link_params("a", "b").up);
    }

    #[test]
    fn the_same_seed_replays_the_same_impairments() {
        let link = LinkParams {
            latency: Duration::from_millis(5),
            jitter: Duration::from_millis(3),
            loss: 0.1,
            burst: Some(meshcast_proto::link::GilbertElliott::from_loss_and_burst(
                0.05, 3.0,
            )),
            reorder: 0.05,
            rate_bps: Some(1_000_000),
            up: true,
        };
        let run = |seed| {
            let mut sim = pair(seed, link);
            sim.run_for(Duration::from_secs(5));
            (sim.counters.lost_by_reason.clone(), srtt(&sim, "a"))
        };
        assert_eq!(run(3), run(3));
        assert_ne!(run(3), run(4));
    }
}
