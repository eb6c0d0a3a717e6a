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
//! - [`LinkModel`]: latency, jitter, loss and up/down of one direction of a link.
//! - [`Counters`]: what crossed each link (media copies per stream, control datagrams).
//! - [`seed`]: seed selection from `SIM_SEED` and the replay hint on failure.
//! - [`check`]: invariants over a running overlay (acyclic trees, link stress).

pub mod check;
pub mod seed;

use meshcast_proto::client::{Client, ClientCommand, ClientConfig, ClientEvent};
use meshcast_proto::node::{Node, NodeCommand, NodeConfig};
use meshcast_proto::rng::Rng;
use meshcast_proto::wire::{self, Datagram, Message, Neighbour};
use meshcast_proto::{Machine, Transmit};
use meshcast_topology::Topology;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// One direction of a link.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkModel {
    /// One-way delay.
    pub latency: Duration,
    /// Extra delay, uniform in `[0, jitter]`.
    pub jitter: Duration,
    /// Probability that a datagram is lost.
    pub loss: f64,
    /// A link that is down loses everything (partitions).
    pub up: bool,
}

impl Default for LinkModel {
    fn default() -> Self {
        Self {
            latency: Duration::from_micros(200),
            jitter: Duration::ZERO,
            loss: 0.0,
            up: true,
        }
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
    links: BTreeMap<(SocketAddr, SocketAddr), LinkModel>,
    default_link: LinkModel,
    queue: BinaryHeap<Reverse<Delivery>>,
    order: u64,
    sources: Vec<Source>,
    /// Traffic counters, readable by tests.
    pub counters: Counters,
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
            default_link: LinkModel::default(),
            queue: BinaryHeap::new(),
            order: 0,
            sources: Vec::new(),
            counters: Counters::default(),
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
    /// (`latency_ms`, `jitter_ms`, `loss`), and neighbours set directly (no bootstrapper).
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
            let model = LinkModel {
                latency: l
                    .attrs
                    .latency_ms
                    .map_or(LinkModel::default().latency, |ms| {
                        Duration::from_secs_f64(ms / 1e3)
                    }),
                jitter: l
                    .attrs
                    .jitter_ms
                    .map_or(Duration::ZERO, |ms| Duration::from_secs_f64(ms / 1e3)),
                loss: l.attrs.loss.unwrap_or(0.0),
                up: true,
            };
            sim.set_link(a.addr, b.addr, model);
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

    /// Sets both directions of the link between `a` and `b`.
    pub fn set_link(&mut self, a: SocketAddr, b: SocketAddr, model: LinkModel) {
        self.links.insert((a, b), model);
        self.links.insert((b, a), model);
    }

    /// Model for pairs with no explicit link (client ↔ PoP).
    pub fn set_default_link(&mut self, model: LinkModel) {
        self.default_link = model;
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
        let (a, b) = (self.addr(a), self.addr(b));
        for key in [(a, b), (b, a)] {
            let m = self.links.entry(key).or_insert(self.default_link);
            m.up = up;
        }
    }

    /// Sets the loss of every link.
    pub fn set_loss_everywhere(&mut self, loss: f64) {
        for m in self.links.values_mut() {
            m.loss = loss;
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
        let model = self
            .links
            .get(&(from, t.dst))
            .copied()
            .unwrap_or(self.default_link);
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
        if !model.up || (model.loss > 0.0 && self.rng.chance(model.loss)) {
            self.counters.lost += 1;
            return;
        }
        let jitter = if model.jitter.is_zero() {
            Duration::ZERO
        } else {
            Duration::from_nanos(self.rng.below(model.jitter.as_nanos() as u64 + 1))
        };
        self.order += 1;
        self.queue.push(Reverse(Delivery {
            at: self.now + model.latency + jitter,
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
