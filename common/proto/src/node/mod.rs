//! The node machine: relay, point of presence and — with local channels — server.
//!
//! # What it does
//!
//! * **Links.** One [`Channel`] per overlay neighbour carries joins and leaves reliably;
//!   pings every `ping_interval` measure RTT and prove liveness. A neighbour silent for
//!   `neighbour_timeout`, or one that leaves a reliable message unacknowledged past the
//!   channel's give-up time, is down: its offers and joins are dropped and the tree repairs.
//! * **Controlled flooding.** An origin announces its catalogue once per round as
//!   `(origin, incarnation, seq, part)`. A node forwards each part once, to every up neighbour
//!   that has not already sent it that part, so a round costs at most one datagram per link
//!   direction.
//! * **Route metric.** An offer's metric is the sender's advertised cost plus our `srtt/2` to
//!   the sender, frozen on arrival; hop count breaks near-ties. No clocks of two machines are
//!   ever compared. A node advertises the metric of the first copy of a round it got, which is
//!   never below its final choice for that round, so parents strictly descend in cost: the
//!   tree has no cycle once a round settles.
//! * **Route table per stream** ([`Route`]): parent chosen among the current round's offers
//!   with hysteresis (switch when better by a margin for `switch_rounds` rounds), activated by
//!   joins along the reverse path, pruned when the last downstream leaves or its join expires.
//! * **Forwarding.** A media datagram is accepted only from the stream's parent and only once
//!   (sequence window), then sent once to each downstream.
//! * **PoP.** Clients probe (RTT), list channels, watch by name (the cheapest source of that
//!   name) and refresh their watch as soft state.

mod route;

pub use route::{Candidate, Epoch, Missing, Route, RouteState, SeqWindow};

use crate::machine::{Machine, Transmit};
use crate::reliable::{Channel, Receive, ReliableConfig};
use crate::rng::Rng;
use crate::wire::{
    self, Announce, CHANNELS_FIXED_LEN, ChannelInfo, Datagram, MAX_MEDIA_PAYLOAD, Message,
    Neighbour, RejectReason, WatchStatus,
};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Tuning of a node. The defaults suit a LAN or an emulated WAN alike.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// This node's topology id; as an origin it names its streams.
    pub id: String,
    /// Seeds session ids, incarnation and timer jitter.
    pub seed: u64,
    /// Round length of this node's own announcements.
    pub announce_interval: Duration,
    /// Ping period per neighbour.
    pub ping_interval: Duration,
    /// A neighbour silent this long is down.
    pub neighbour_timeout: Duration,
    /// An offer not refreshed this long is forgotten.
    pub route_timeout: Duration,
    /// Joins upstream are refreshed this often.
    pub join_refresh: Duration,
    /// A downstream whose join (or client watch) is not refreshed this long is pruned.
    pub downstream_timeout: Duration,
    /// How long a new round waits for the current parent's offer before re-choosing.
    pub settle_delay: Duration,
    /// A rival offer must beat the parent by this fraction of the parent's metric…
    pub switch_margin: f64,
    /// …and by at least this much…
    pub switch_margin_min: Duration,
    /// …for this many consecutive rounds.
    pub switch_rounds: u32,
    /// Cost assumed for a link before its first RTT sample.
    pub default_link_cost: Duration,
    /// Clients served at once.
    pub max_clients: usize,
    /// Reliable channel tuning.
    pub reliable: ReliableConfig,
    /// Housekeeping period: expiry, settling, refreshes, media-gap checks.
    pub tick: Duration,
    /// Media silent from the parent this long (or 4 smoothed inter-arrival times if more)
    /// makes the node probe the parent.
    pub media_gap_min: Duration,
    /// A probed neighbour that stays silent this long (or 3 × its RTT if more) is down.
    pub probe_timeout_min: Duration,
    /// Media is kept this long to answer NACKs from downstream.
    pub retransmit_window: Duration,
    /// Receive every stream from two parents (the best two feasible neighbours) and keep
    /// the first copy of each packet: a parent's failure then costs no packet.
    pub dual_parent: bool,
    /// A missing datagram is asked for during at least this long (or 4 × the parent's RTT if
    /// more), then given up: it could no longer arrive in time to matter. Relays forward at
    /// once, so a repair is useful as long as viewers' playout buffers (120 ms by default)
    /// can still wait for it.
    pub recovery_budget_min: Duration,
}

impl NodeConfig {
    /// Defaults for node `id`.
    pub fn new(id: impl Into<String>, seed: u64) -> Self {
        Self {
            id: id.into(),
            seed,
            announce_interval: Duration::from_secs(1),
            ping_interval: Duration::from_millis(200),
            neighbour_timeout: Duration::from_millis(1_200),
            route_timeout: Duration::from_millis(4_500),
            join_refresh: Duration::from_secs(1),
            downstream_timeout: Duration::from_millis(3_500),
            settle_delay: Duration::from_millis(150),
            switch_margin: 0.10,
            switch_margin_min: Duration::from_micros(500),
            switch_rounds: 2,
            default_link_cost: Duration::from_millis(5),
            max_clients: 512,
            reliable: ReliableConfig::default(),
            tick: Duration::from_millis(25),
            media_gap_min: Duration::from_millis(100),
            probe_timeout_min: Duration::from_millis(40),
            retransmit_window: Duration::from_secs(1),
            dual_parent: false,
            recovery_budget_min: Duration::from_millis(100),
        }
    }
}

/// A sequence jump larger than this is a restarted source or a long outage, not a loss to
/// repair packet by packet.
const MAX_GAP: u64 = 512;
/// Datagrams re-sent in answer to one NACK, at most.
const MAX_RETRANSMIT_PER_NACK: usize = 256;
/// Datagrams kept per stream for retransmission, at most (besides the time window).
const MAX_BUFFERED: usize = 8192;

/// After a switch made while the old parent still works, how long it keeps sending once the
/// new parent's first packet arrived (the overlap that makes the switch lossless).
const DRAIN_OVERLAP: Duration = Duration::from_millis(50);
/// How long a former parent is kept at most when the new one sends nothing.
const DRAIN_MAX: Duration = Duration::from_secs(1);
/// Media from the parent within this long means it still works: switching away from it is
/// made before break.
const WORKING_PARENT: Duration = Duration::from_millis(200);

/// How long a neighbour that refused our join (or chose us as parent) is passed over.
const REJECT_HOLD: Duration = Duration::from_millis(100);
/// A node forwards requests for the same round of an origin at most this often.
const ROUND_REQUEST_REPEAT: Duration = Duration::from_millis(200);
/// Round requests start a new round at most this often.
const ROUND_REQUEST_HOLD: Duration = Duration::from_millis(50);

/// A channel this node originates (the server role).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalChannel {
    /// Channel name (unique per origin).
    pub name: String,
    /// Video codec, e.g. "h264".
    pub codec: String,
    /// Video width.
    pub width: u16,
    /// Video height.
    pub height: u16,
    /// Frames per second × 1000.
    pub fps_milli: u32,
    /// Nominal bitrate in kbit/s.
    pub bitrate_kbps: u32,
}

/// What the application asks of a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeCommand {
    /// The overlay neighbours (from the bootstrapper); replaces any earlier list.
    SetNeighbours(Vec<Neighbour>),
    /// Start originating a channel.
    AddChannel(LocalChannel),
    /// Stop originating a channel.
    RemoveChannel(String),
    /// Send one chunk (at most 7 TS packets) of a local channel down its tree.
    Publish {
        /// The local channel's name.
        channel: String,
        /// MPEG-TS bytes, at most 1316.
        payload: Vec<u8>,
    },
}

/// What a node tells the application (for logs and metrics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeEvent {
    /// A neighbour was heard from (first time or after being down).
    NeighbourUp { id: String },
    /// A neighbour went silent or stopped acknowledging.
    NeighbourDown { id: String, reason: DownReason },
    /// A neighbour restarted (new reliable session).
    NeighbourRestarted { id: String },
    /// A stream's parent changed.
    UpstreamChanged {
        channel: String,
        stream: u32,
        from: Option<String>,
        to: Option<String>,
    },
    /// A client started watching a channel here.
    ClientWatch { client: SocketAddr, channel: String },
    /// A client stopped watching (unwatch or expiry).
    ClientLeft { client: SocketAddr, channel: String },
}

/// Why a neighbour was declared down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownReason {
    /// No datagram for `neighbour_timeout`.
    Silent,
    /// Media stopped and a liveness probe went unanswered.
    ProbeUnanswered,
    /// A reliable message was not acknowledged in time.
    Unacknowledged,
}

/// Traffic counters of one peer (neighbour or client).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Control datagrams sent.
    pub control_tx: u64,
    /// Control bytes sent.
    pub control_tx_bytes: u64,
    /// Control datagrams received.
    pub control_rx: u64,
    /// Control bytes received.
    pub control_rx_bytes: u64,
    /// Media datagrams sent.
    pub media_tx: u64,
    /// Media bytes sent.
    pub media_tx_bytes: u64,
    /// Media datagrams received.
    pub media_rx: u64,
    /// Media bytes received.
    pub media_rx_bytes: u64,
}

/// Drops of network input, by reason: counted, never fatal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Drops {
    /// Datagrams that failed to decode.
    pub malformed: u64,
    /// Media for a stream with no route here.
    pub unknown_stream: u64,
    /// Media from someone other than the stream's parent.
    pub not_from_upstream: u64,
    /// Media already forwarded.
    pub duplicate_media: u64,
    /// Datagrams whose checksum did not match (counted as lost, recovered like a loss).
    pub corrupt: u64,
    /// Announcements of an older round.
    pub stale_announce: u64,
    /// Announcements whose stream id does not match origin and name.
    pub bad_announce: u64,
    /// Control messages from a non-neighbour that only neighbours may send.
    pub not_a_neighbour: u64,
    /// Clients refused because the table was full.
    pub clients_refused: u64,
}

#[derive(Debug)]
struct NeighbourState {
    id: String,
    channel: Channel,
    up: bool,
    last_heard: Option<Instant>,
    /// A liveness probe sent because media stopped, not yet answered.
    probe_sent: Option<Instant>,
    /// When the last such probe went out (probes are spaced, not repeated every tick).
    last_probe: Option<Instant>,
    traffic: Traffic,
}

#[derive(Debug)]
struct ClientState {
    channel: Channel,
    /// channel name → (stream, expiry of the watch)
    watches: BTreeMap<String, (u32, Instant)>,
    last_heard: Instant,
    traffic: Traffic,
}

#[derive(Debug)]
struct OriginState {
    epoch: Epoch,
    /// Incarnations replaced by a newer one: their stragglers are stale.
    retired: VecDeque<u32>,
    /// Parts of the current round already forwarded, with what we sent.
    forwarded: BTreeMap<u8, Announce>,
    /// Per part, the neighbours that sent it to us this round (no point sending it back).
    senders: BTreeMap<u8, BTreeSet<SocketAddr>>,
    /// The newest round a [`Message::RouteRequest`] for this origin was flooded for, and when.
    requested: Option<(u32, Instant)>,
}

/// The relay / PoP / server machine. See the module docs.
#[derive(Debug)]
pub struct Node {
    config: NodeConfig,
    rng: Rng,
    incarnation: u32,
    session: u32,
    start: Option<Instant>,
    ready_at: Option<Instant>,
    neighbours: BTreeMap<SocketAddr, NeighbourState>,
    clients: BTreeMap<SocketAddr, ClientState>,
    routes: BTreeMap<u32, Route>,
    origins: BTreeMap<String, OriginState>,
    local_round: u32,
    /// When our last round started (round requests are answered at most so often).
    last_round_at: Option<Instant>,
    next_announce: Option<Instant>,
    next_ping: Option<Instant>,
    next_tick: Option<Instant>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<NodeEvent>,
    drops: Drops,
    announces_sent: u64,
    media_buf: Vec<u8>,
}

impl Node {
    /// A node with no neighbours yet.
    pub fn new(config: NodeConfig) -> Self {
        let mut rng = Rng::new(config.seed);
        let incarnation = rng.next_u32();
        let session = rng.next_u32();
        Self {
            config,
            rng,
            incarnation,
            session,
            start: None,
            ready_at: None,
            neighbours: BTreeMap::new(),
            clients: BTreeMap::new(),
            routes: BTreeMap::new(),
            origins: BTreeMap::new(),
            local_round: 0,
            last_round_at: None,
            next_announce: None,
            next_ping: None,
            next_tick: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            drops: Drops::default(),
            announces_sent: 0,
            media_buf: Vec::with_capacity(wire::MAX_MEDIA_DATAGRAM),
        }
    }

    /// This node's id.
    pub fn id(&self) -> &str {
        &self.config.id
    }

    /// The route table.
    pub fn routes(&self) -> &BTreeMap<u32, Route> {
        &self.routes
    }

    /// Drops by reason.
    pub fn drops(&self) -> &Drops {
        &self.drops
    }

    /// Announcement datagrams sent (originated and forwarded).
    pub fn announces_sent(&self) -> u64 {
        self.announces_sent
    }

    /// Neighbour id of an address, if it is a neighbour.
    pub fn neighbour_id(&self, addr: SocketAddr) -> Option<&str> {
        self.neighbours.get(&addr).map(|n| n.id.as_str())
    }

    /// A snapshot of everything worth exporting: links, routes, counters.
    pub fn snapshot(&self, now: Instant) -> NodeSnapshot {
        let name_of = |a: &SocketAddr| -> String {
            self.neighbours
                .get(a)
                .map_or_else(|| format!("client:{a}"), |n| n.id.clone())
        };
        NodeSnapshot {
            id: self.config.id.clone(),
            uptime_ms: self
                .start
                .map_or(0, |s| now.saturating_duration_since(s).as_millis() as u64),
            neighbours: self
                .neighbours
                .iter()
                .map(|(addr, n)| LinkSnapshot {
                    id: n.id.clone(),
                    addr: *addr,
                    up: n.up,
                    srtt_us: n.channel.rtt().srtt().map(|d| d.as_micros() as u64),
                    rto_us: n.channel.rtt().rto().as_micros() as u64,
                    traffic: n.traffic.clone(),
                    reliable: n.channel.stats().clone(),
                })
                .collect(),
            clients: self
                .clients
                .iter()
                .map(|(addr, c)| ClientSnapshot {
                    addr: *addr,
                    watching: c.watches.keys().cloned().collect(),
                    traffic: c.traffic.clone(),
                })
                .collect(),
            routes: self
                .routes
                .iter()
                .map(|(stream, r)| RouteSnapshot {
                    stream: *stream,
                    channel: r.info.name.clone(),
                    origin: r.origin.clone(),
                    local: r.local,
                    state: r.state(),
                    upstream: r.upstream.as_ref().map(name_of),
                    secondary: r.secondary.as_ref().map(name_of),
                    cost_us: r.cost().map(|c| c.0),
                    hops: r.cost().map(|c| c.1),
                    downstream: r.downstream.keys().map(name_of).collect(),
                    media_in: r.media_in,
                    media_out: r.media_out.iter().map(|(a, n)| (name_of(a), *n)).collect(),
                    duplicates: r.duplicates,
                    retransmitted: r.retransmitted,
                    nacks_sent: r.nacks_sent,
                    recovered: r.recovered,
                    unrecovered: r.unrecovered,
                })
                .collect(),
            drops: self.drops.clone(),
            announces_sent: self.announces_sent,
        }
    }

    // ----- helpers ------------------------------------------------------------------------

    fn micros(&self, now: Instant) -> u64 {
        self.start
            .map_or(0, |s| now.saturating_duration_since(s).as_micros() as u64)
    }

    fn init(&mut self, now: Instant) {
        if self.start.is_none() {
            self.start = Some(now);
            self.next_ping = Some(now);
            self.next_tick = Some(now + self.config.tick);
        }
    }

    fn link_cost(&self, addr: SocketAddr) -> Duration {
        self.neighbours
            .get(&addr)
            .and_then(|n| n.channel.rtt().srtt())
            .map_or(self.config.default_link_cost, |s| s / 2)
    }

    fn send_control(&mut self, dst: SocketAddr, message: Message) {
        let payload = Datagram::Control(message).encode();
        self.count_tx(dst, payload.len(), false);
        self.transmits.push_back(Transmit { dst, payload });
    }

    /// Queues a reliable message. Nothing is queued for a neighbour that is down: it could
    /// not be delivered, and a neighbour that comes back gets fresh joins and rounds anyway.
    fn send_reliable(&mut self, now: Instant, dst: SocketAddr, message: Message) {
        if let Some(n) = self.neighbours.get_mut(&dst) {
            if n.up {
                n.channel.send(now, message);
            }
        } else if let Some(c) = self.clients.get_mut(&dst) {
            c.channel.send(now, message);
        }
    }

    fn count_tx(&mut self, dst: SocketAddr, len: usize, media: bool) {
        let t = if let Some(n) = self.neighbours.get_mut(&dst) {
            &mut n.traffic
        } else if let Some(c) = self.clients.get_mut(&dst) {
            &mut c.traffic
        } else {
            return;
        };
        if media {
            t.media_tx += 1;
            t.media_tx_bytes += len as u64;
        } else {
            t.control_tx += 1;
            t.control_tx_bytes += len as u64;
        }
    }

    /// Moves every due reliable datagram into the transmit queue, counting it.
    fn flush_channels(&mut self, now: Instant) {
        let mut out = VecDeque::new();
        for n in self.neighbours.values_mut() {
            let before = out.len();
            n.channel.flush(now, &mut out);
            for t in out.range(before..) {
                n.traffic.control_tx += 1;
                n.traffic.control_tx_bytes += t.payload.len() as u64;
            }
        }
        for c in self.clients.values_mut() {
            let before = out.len();
            c.channel.flush(now, &mut out);
            for t in out.range(before..) {
                c.traffic.control_tx += 1;
                c.traffic.control_tx_bytes += t.payload.len() as u64;
            }
        }
        self.transmits.extend(out);
    }

    fn set_neighbours(&mut self, now: Instant, list: Vec<Neighbour>) {
        let wanted: BTreeMap<SocketAddr, String> =
            list.into_iter().map(|n| (n.addr, n.id)).collect();
        let gone: Vec<SocketAddr> = self
            .neighbours
            .keys()
            .filter(|a| !wanted.contains_key(a))
            .copied()
            .collect();
        for a in gone {
            self.neighbour_down(now, a, DownReason::Silent);
            self.neighbours.remove(&a);
        }
        for (addr, id) in wanted {
            let session = self.session;
            let reliable = self.config.reliable.clone();
            self.neighbours
                .entry(addr)
                .or_insert_with(|| NeighbourState {
                    id,
                    channel: Channel::new(addr, session, reliable),
                    up: false,
                    last_heard: None,
                    probe_sent: None,
                    last_probe: None,
                    traffic: Traffic::default(),
                });
        }
        self.next_ping = Some(now);
    }

    fn heard_from_neighbour(&mut self, now: Instant, from: SocketAddr) {
        let Some(n) = self.neighbours.get_mut(&from) else {
            return;
        };
        n.last_heard = Some(now);
        n.probe_sent = None;
        if !n.up {
            n.up = true;
            let id = n.id.clone();
            self.events.push_back(NodeEvent::NeighbourUp { id });
            if self.ready_at.is_none() {
                self.ready_at = Some(now + self.config.announce_interval * 5 / 2);
            }
            // Bring the newcomer up to date at once instead of making it wait for a round.
            let parts: Vec<Announce> = self
                .origins
                .values()
                .flat_map(|o| o.forwarded.values().cloned())
                .collect();
            for a in parts {
                self.send_announce(from, a);
            }
            if !self.local_channels().is_empty() {
                self.originate_round_to(now, &[from], false);
            }
        }
    }

    fn neighbour_down(&mut self, now: Instant, addr: SocketAddr, reason: DownReason) {
        let Some(n) = self.neighbours.get_mut(&addr) else {
            return;
        };
        if !n.up {
            return;
        }
        n.up = false;
        n.channel.abandon();
        let id = n.id.clone();
        self.events
            .push_back(NodeEvent::NeighbourDown { id, reason });
        let streams: Vec<u32> = self.routes.keys().copied().collect();
        for s in streams {
            let Some(r) = self.routes.get_mut(&s) else {
                continue;
            };
            r.candidates.remove(&addr);
            let was_child = r.downstream.remove(&addr).is_some();
            if r.secondary == Some(addr) {
                r.secondary = None;
            }
            if r.draining.is_some_and(|(d, _)| d == addr) {
                r.draining = None;
            }
            if r.upstream == Some(addr) {
                self.reselect(now, s, true);
            } else if self.config.dual_parent {
                self.reselect(now, s, false);
            }
            if was_child {
                self.maybe_deactivate(now, s);
            }
        }
        for o in self.origins.values_mut() {
            for senders in o.senders.values_mut() {
                senders.remove(&addr);
            }
        }
    }

    fn local_channels(&self) -> Vec<ChannelInfo> {
        self.routes
            .values()
            .filter(|r| r.local)
            .map(|r| r.info.clone())
            .collect()
    }

    fn send_announce(&mut self, dst: SocketAddr, a: Announce) {
        self.announces_sent += 1;
        self.send_control(dst, Message::Announce(a));
    }

    /// Starts a new round of our own catalogue (or, with `same_round`, repeats the current one)
    /// towards `targets`.
    fn originate_round_to(&mut self, now: Instant, targets: &[SocketAddr], new_round: bool) {
        if new_round {
            self.local_round = self.local_round.wrapping_add(1);
            self.last_round_at = Some(now);
        }
        let channels = self.local_channels();
        let parts = wire::split_channels(wire::announce_fixed_len(&self.config.id), &channels);
        let count = parts.len().min(255) as u8;
        for (i, p) in parts.into_iter().enumerate().take(255) {
            let a = Announce {
                origin: self.config.id.clone(),
                incarnation: self.incarnation,
                seq: self.local_round,
                part: i as u8,
                parts: count,
                cost_us: 0,
                hops: 0,
                channels: p,
            };
            for &dst in targets {
                self.send_announce(dst, a.clone());
            }
        }
    }

    fn up_neighbours(&self) -> Vec<SocketAddr> {
        self.neighbours
            .iter()
            .filter(|(_, n)| n.up)
            .map(|(a, _)| *a)
            .collect()
    }

    // ----- announcements and parent choice -----------------------------------------------

    fn on_announce(&mut self, now: Instant, from: SocketAddr, a: Announce) {
        if a.origin == self.config.id {
            return;
        }
        let epoch = Epoch {
            incarnation: a.incarnation,
            seq: a.seq,
        };
        let origin = self
            .origins
            .entry(a.origin.clone())
            .or_insert_with(|| OriginState {
                epoch,
                retired: VecDeque::new(),
                forwarded: BTreeMap::new(),
                senders: BTreeMap::new(),
                requested: None,
            });
        let fresh_origin = origin.forwarded.is_empty() && origin.senders.is_empty();
        let new_round = if origin.epoch.incarnation != epoch.incarnation {
            if origin.retired.contains(&epoch.incarnation) {
                self.drops.stale_announce += 1;
                return;
            }
            origin.retired.push_back(origin.epoch.incarnation);
            if origin.retired.len() > 8 {
                origin.retired.pop_front();
            }
            true
        } else if epoch.seq > origin.epoch.seq {
            true
        } else if epoch.seq < origin.epoch.seq {
            self.drops.stale_announce += 1;
            return;
        } else {
            fresh_origin
        };
        if new_round {
            origin.epoch = epoch;
            origin.forwarded.clear();
            origin.senders.clear();
        }
        origin.senders.entry(a.part).or_default().insert(from);
        let first_copy = !origin.forwarded.contains_key(&a.part);

        let link = self.link_cost(from).as_micros() as u64;
        let metric_us = u64::from(a.cost_us) + link;
        let hops = a.hops.saturating_add(1);
        let expires = now + self.config.route_timeout;
        for ch in &a.channels {
            if wire::stream_id(&a.origin, &ch.name) != ch.stream {
                self.drops.bad_announce += 1;
                continue;
            }
            let route = self
                .routes
                .entry(ch.stream)
                .or_insert_with(|| Route::new(ch.clone(), a.origin.clone(), false));
            if route.local || route.origin != a.origin {
                self.drops.bad_announce += 1;
                continue;
            }
            route.info = ch.clone();
            route.candidates.insert(
                from,
                Candidate {
                    epoch,
                    advertised_us: u64::from(a.cost_us),
                    metric_us,
                    hops,
                    expires,
                },
            );
            let newer = route.epoch.is_none_or(|e| e != epoch);
            if newer {
                route.epoch = Some(epoch);
                route.rejected.clear();
                route.settle_at = Some(now + self.config.settle_delay);
            }
            // Re-choose now if the parent's own offer arrived (the usual case) or if there is
            // no parent; otherwise wait for it until settle_at.
            // In dual-parent mode every offer may change the secondary.
            if route.upstream.is_none() || route.upstream == Some(from) || self.config.dual_parent {
                self.reselect(now, ch.stream, false);
            }
        }
        // A neighbour that delivered every part of this round no longer offers the origin's
        // channels the round left out: withdraw them now instead of waiting for expiry.
        let complete = self.origins.get(&a.origin).is_some_and(|o| {
            (0..a.parts).all(|p| o.senders.get(&p).is_some_and(|s| s.contains(&from)))
        });
        if complete {
            self.withdraw_missing(now, from, &a.origin, epoch);
        }
        if first_copy {
            let fwd = Announce {
                cost_us: metric_us.min(u64::from(u32::MAX)) as u32,
                hops,
                ..a
            };
            let skip = self
                .origins
                .get(&fwd.origin)
                .and_then(|o| o.senders.get(&fwd.part))
                .cloned()
                .unwrap_or_default();
            if let Some(o) = self.origins.get_mut(&fwd.origin) {
                o.forwarded.insert(fwd.part, fwd.clone());
            }
            for ch in &fwd.channels {
                if let Some(r) = self.routes.get_mut(&ch.stream)
                    && !r.local
                {
                    r.advertised = Some((epoch, u64::from(fwd.cost_us)));
                }
            }
            for dst in self.up_neighbours() {
                if !skip.contains(&dst) {
                    self.send_announce(dst, fwd.clone());
                }
            }
        }
    }

    /// Drops `from`'s offers of `origin`'s streams older than `epoch`: its complete round
    /// `epoch` did not list them, so the origin stopped offering them.
    fn withdraw_missing(&mut self, now: Instant, from: SocketAddr, origin: &str, epoch: Epoch) {
        let stale: Vec<u32> = self
            .routes
            .iter()
            .filter(|(_, r)| {
                r.origin == origin && r.candidates.get(&from).is_some_and(|c| c.epoch != epoch)
            })
            .map(|(s, _)| *s)
            .collect();
        for s in stale {
            let Some(r) = self.routes.get_mut(&s) else {
                continue;
            };
            r.candidates.remove(&from);
            if r.upstream == Some(from) {
                self.reselect(now, s, true);
            }
        }
    }

    /// Chooses the parent of `stream` among the offers of its newest round.
    /// `forced`: the current parent is gone, choose without hysteresis.
    fn reselect(&mut self, now: Instant, stream: u32, forced: bool) {
        let margin_frac = self.config.switch_margin;
        let margin_min = self.config.switch_margin_min.as_micros() as u64;
        let switch_rounds = self.config.switch_rounds;
        let up: BTreeSet<SocketAddr> = self.up_neighbours().into_iter().collect();
        let Some(route) = self.routes.get_mut(&stream) else {
            return;
        };
        if route.local {
            return;
        }
        route.settle_at = None;
        let Some(epoch) = route.epoch else {
            return;
        };
        let eligible = |(a, c): (&SocketAddr, &Candidate)| {
            c.epoch == epoch
                && c.expires > now
                && up.contains(a)
                && route.rejected.get(a).is_none_or(|until| *until <= now)
                && route::feasible(route.advertised, c)
        };
        // Near-equal metrics (within 100 µs) count as equal so hop count decides.
        let key = |(a, c): (&SocketAddr, &Candidate)| (c.metric_us / 100, c.hops, *a);
        let best = route
            .candidates
            .iter()
            .filter(|x| eligible(*x))
            .min_by_key(|x| key(*x))
            .map(|(a, c)| (*a, c.metric_us));
        let current = route.upstream.and_then(|u| {
            route
                .candidates
                .get_key_value(&u)
                .filter(|x| eligible(*x))
                .map(|(_, c)| c.metric_us)
        });
        // The parent is gone but a secondary is already sending: promote it (no gap).
        let promoted = route
            .secondary
            .filter(|s| current.is_none() && Some(*s) != route.upstream)
            .filter(|s| route.candidates.get_key_value(s).is_some_and(&eligible));
        let choice = match (best, current) {
            _ if promoted.is_some() => promoted,
            (None, _) => None,
            (Some((b, _)), None) => Some(b),
            (Some((b, bm)), Some(cm)) => {
                let cur = route.upstream.unwrap_or(b);
                let margin = ((cm as f64 * margin_frac) as u64).max(margin_min);
                if b == cur || bm + margin > cm {
                    route.better_streak = 0;
                    Some(cur)
                } else if forced {
                    Some(b)
                } else {
                    route.better_streak += 1;
                    if route.better_streak >= switch_rounds {
                        route.better_streak = 0;
                        Some(b)
                    } else {
                        Some(cur)
                    }
                }
            }
        };
        let secondary = if self.config.dual_parent {
            // The second parent is the best other loop-free offer (never one of our children);
            // the current one is kept while it qualifies. Offers that are not feasible lead
            // through nodes farther from the source: taking them would make us their child
            // and deprive them of us as their own second parent.
            let usable = |(a, c): (&SocketAddr, &Candidate)| {
                Some(*a) != choice
                    && c.expires > now
                    && up.contains(a)
                    && route.rejected.get(a).is_none_or(|until| *until <= now)
                    && !route.downstream.contains_key(a)
                    && route::feasible(route.advertised, c)
            };
            route
                .secondary
                .filter(|s| route.candidates.get_key_value(s).is_some_and(&usable))
                .or_else(|| {
                    route
                        .candidates
                        .iter()
                        .filter(|x| usable(*x))
                        .min_by_key(|x| key(*x))
                        .map(|(a, _)| *a)
                })
        } else {
            None
        };
        if choice != route.upstream || secondary != route.secondary {
            self.set_parents(now, stream, choice, secondary);
        }
    }

    /// Floods a request for a newer round of `origin` (or, at the origin, starts one now).
    /// Each node forwards a request once per (origin, seq), so concurrent requesters share it.
    fn on_route_request(
        &mut self,
        now: Instant,
        from: Option<SocketAddr>,
        origin: String,
        incarnation: u32,
        seq: u32,
    ) {
        if origin == self.config.id {
            // Answer with a new round at once, at most every ROUND_REQUEST_HOLD.
            let due = self
                .last_round_at
                .is_none_or(|t| now.saturating_duration_since(t) >= ROUND_REQUEST_HOLD);
            if due {
                self.next_announce = Some(now);
            }
            return;
        }
        let Some(o) = self.origins.get_mut(&origin) else {
            return;
        };
        // Forwarded once per round asked for, and again only after a pause: requests are
        // retried by their sender while it has no parent, and may be lost on the way.
        if o.requested.is_some_and(|(r, at)| {
            r >= seq && now.saturating_duration_since(at) < ROUND_REQUEST_REPEAT
        }) {
            return;
        }
        o.requested = Some((seq, now));
        let m = Message::RouteRequest {
            origin,
            incarnation,
            seq,
        };
        for dst in self.up_neighbours() {
            if Some(dst) != from {
                self.send_control(dst, m.clone());
            }
        }
    }

    /// Sets the parent and the secondary of `stream`, joining the new ones and leaving the
    /// old ones while the stream is active.
    fn set_parents(
        &mut self,
        now: Instant,
        stream: u32,
        new: Option<SocketAddr>,
        secondary: Option<SocketAddr>,
    ) {
        // An active stream left without any loop-free parent: ask its origin for a new round
        // rather than wait up to a whole announce interval for the next one.
        if new.is_none()
            && let Some(r) = self.routes.get(&stream)
            && !r.local
            && r.state() == RouteState::Active
            && let Some(epoch) = r.epoch
        {
            let origin = r.origin.clone();
            self.on_route_request(now, None, origin, epoch.incarnation, epoch.seq);
        }
        let Some(route) = self.routes.get_mut(&stream) else {
            return;
        };
        let old = route.upstream;
        let mut old_set: BTreeSet<SocketAddr> =
            [old, route.secondary].into_iter().flatten().collect();
        let mut new_set: BTreeSet<SocketAddr> = [new, secondary].into_iter().flatten().collect();
        // A former parent still draining is left now, unless it is chosen again.
        if let Some((d, _)) = route.draining.take()
            && !new_set.contains(&d)
        {
            old_set.insert(d);
        }
        // Switching away from a parent that still delivers: keep it until the new one sends.
        let working = route
            .last_media
            .is_some_and(|t| now.saturating_duration_since(t) < WORKING_PARENT);
        if let (Some(o), Some(_)) = (old, new)
            && old != new
            && working
            && !new_set.contains(&o)
            && route.state() == RouteState::Active
        {
            route.draining = Some((o, now + DRAIN_MAX));
            new_set.insert(o);
        }
        route.upstream = new;
        route.secondary = secondary;
        if old != new {
            route.better_streak = 0;
        }
        let active = route.state() == RouteState::Active;
        let channel = route.info.name.clone();
        if active {
            route.last_join = new.map(|_| now);
            for o in old_set.difference(&new_set) {
                self.send_reliable(now, *o, Message::Leave { stream });
            }
            for n in new_set.difference(&old_set) {
                self.send_reliable(now, *n, Message::Join { stream });
            }
        }
        if old == new {
            return;
        }
        let name = |a: Option<SocketAddr>| a.and_then(|a| self.neighbour_id(a).map(str::to_owned));
        let ev = NodeEvent::UpstreamChanged {
            channel,
            stream,
            from: name(old),
            to: name(new),
        };
        self.events.push_back(ev);
    }

    /// Adds `who` downstream of `stream`, joining upstream if the route was inactive.
    fn add_downstream(&mut self, now: Instant, stream: u32, who: SocketAddr) {
        let expiry = now + self.config.downstream_timeout;
        let Some(route) = self.routes.get_mut(&stream) else {
            return;
        };
        let was_inactive = route.state() == RouteState::Inactive;
        route.downstream.insert(who, expiry);
        if was_inactive
            && !route.local
            && let Some(up) = route.upstream
        {
            route.last_join = Some(now);
            let secondary = route.secondary;
            self.send_reliable(now, up, Message::Join { stream });
            if let Some(s) = secondary {
                self.send_reliable(now, s, Message::Join { stream });
            }
        }
    }

    fn maybe_deactivate(&mut self, now: Instant, stream: u32) {
        let Some(route) = self.routes.get_mut(&stream) else {
            return;
        };
        if route.state() == RouteState::Inactive
            && !route.local
            && let Some(up) = route.upstream
            && route.last_join.take().is_some()
        {
            let secondary = route.secondary;
            let draining = route.draining.take().map(|(d, _)| d);
            self.send_reliable(now, up, Message::Leave { stream });
            for s in [secondary, draining].into_iter().flatten() {
                self.send_reliable(now, s, Message::Leave { stream });
            }
        }
    }

    // ----- control messages ---------------------------------------------------------------

    fn on_neighbour_message(&mut self, now: Instant, from: SocketAddr, m: Message) {
        match m {
            Message::Ping { t_us } => self.send_control(from, Message::Pong { t_us }),
            Message::Pong { t_us } => {
                let sent = Duration::from_micros(t_us);
                let since = Duration::from_micros(self.micros(now));
                if let Some(n) = self.neighbours.get_mut(&from)
                    && since >= sent
                {
                    n.channel.rtt_mut().on_sample(since - sent);
                }
            }
            Message::Announce(a) => self.on_announce(now, from, a),
            Message::RouteRequest {
                origin,
                incarnation,
                seq,
            } => self.on_route_request(now, Some(from), origin, incarnation, seq),
            Message::Nack { stream, ranges } => self.on_nack(now, from, stream, &ranges),
            Message::Join { stream } => {
                // A former parent we still drain takes us as its parent: stop draining it now,
                // or the stream would cross the link both ways.
                if let Some(r) = self.routes.get_mut(&stream)
                    && r.draining.is_some_and(|(d, _)| d == from)
                {
                    r.draining = None;
                    self.send_reliable(now, from, Message::Leave { stream });
                }
                // Our own parent now takes us as its parent: it can no longer be ours. Refuse,
                // and choose again without it (it may accept us once it has moved on).
                if let Some(r) = self.routes.get_mut(&stream)
                    && r.secondary == Some(from)
                {
                    // Our secondary takes us as its parent: it stops being our secondary.
                    r.rejected.insert(from, now + REJECT_HOLD);
                    r.secondary = None;
                    self.reselect(now, stream, false);
                }
                let from_parent = self
                    .routes
                    .get(&stream)
                    .is_some_and(|r| r.upstream == Some(from));
                if from_parent {
                    let until = now + REJECT_HOLD;
                    if let Some(r) = self.routes.get_mut(&stream) {
                        r.rejected.insert(from, until);
                    }
                    self.reselect(now, stream, true);
                }
                let ok = self
                    .routes
                    .get(&stream)
                    .is_some_and(|r| r.reachable() && r.upstream != Some(from));
                if ok {
                    self.add_downstream(now, stream, from);
                } else {
                    let reason = if from_parent {
                        RejectReason::Loop
                    } else {
                        RejectReason::NoRoute
                    };
                    self.send_reliable(now, from, Message::JoinReject { stream, reason });
                }
            }
            Message::Leave { stream } => {
                if let Some(r) = self.routes.get_mut(&stream) {
                    r.downstream.remove(&from);
                }
                self.maybe_deactivate(now, stream);
            }
            Message::JoinReject { stream, reason } => {
                // "No route": not worth asking again before its next round (a new round
                // clears the holds). "Loop": it is switching away from us; ask again soon.
                let hold = match reason {
                    RejectReason::Loop => REJECT_HOLD,
                    _ => self.config.route_timeout,
                };
                if let Some(r) = self.routes.get_mut(&stream)
                    && (r.upstream == Some(from) || r.secondary == Some(from))
                {
                    r.rejected.insert(from, now + hold);
                    let was_parent = r.upstream == Some(from);
                    if !was_parent {
                        r.secondary = None;
                    }
                    self.reselect(now, stream, was_parent);
                }
            }
            // Client-side messages from a neighbour are served like a client's.
            other => self.on_client_message(now, from, other),
        }
    }

    fn reachable_channels(&self) -> Vec<ChannelInfo> {
        // One entry per name: the cheapest reachable source.
        let mut best: BTreeMap<&str, (u64, &ChannelInfo)> = BTreeMap::new();
        for r in self.routes.values() {
            if let Some((cost, _)) = r.cost().filter(|_| r.reachable()) {
                let e = best.entry(r.info.name.as_str()).or_insert((cost, &r.info));
                if cost < e.0 {
                    *e = (cost, &r.info);
                }
            }
        }
        best.into_values().map(|(_, i)| i.clone()).collect()
    }

    fn best_stream_for(&self, name: &str) -> Option<u32> {
        self.routes
            .iter()
            .filter(|(_, r)| r.info.name == name && r.reachable())
            .filter_map(|(s, r)| r.cost().map(|c| (c, *s)))
            .min()
            .map(|(_, s)| s)
    }

    fn on_client_message(&mut self, now: Instant, from: SocketAddr, m: Message) {
        match m {
            Message::Probe { nonce, t_us } => {
                let channels = self.reachable_channels().len().min(usize::from(u16::MAX)) as u16;
                self.send_control(
                    from,
                    Message::ProbeReply {
                        nonce,
                        t_us,
                        channels,
                    },
                );
            }
            Message::ListChannels { request } => {
                let list = self.reachable_channels();
                let parts = wire::split_channels(CHANNELS_FIXED_LEN, &list);
                let count = parts.len().min(255) as u8;
                for (i, p) in parts.into_iter().enumerate().take(255) {
                    self.send_reliable(
                        now,
                        from,
                        Message::Channels {
                            request,
                            part: i as u8,
                            parts: count,
                            channels: p,
                        },
                    );
                }
            }
            Message::Watch { request, name } => self.on_watch(now, from, request, name),
            Message::Nack { stream, ranges } => self.on_nack(now, from, stream, &ranges),
            Message::Unwatch { name } => {
                let stream = self
                    .clients
                    .get_mut(&from)
                    .and_then(|c| c.watches.remove(&name))
                    .map(|(s, _)| s);
                if let Some(s) = stream {
                    self.remove_client_watch(now, from, s, name);
                }
            }
            _ => self.drops.not_a_neighbour += 1,
        }
    }

    fn on_watch(&mut self, now: Instant, from: SocketAddr, request: u32, name: String) {
        let existing = self
            .clients
            .get(&from)
            .and_then(|c| c.watches.get(&name))
            .map(|w| w.0)
            .filter(|s| self.routes.get(s).is_some_and(Route::reachable));
        let stream = existing.or_else(|| self.best_stream_for(&name));
        let Some(stream) = stream else {
            let ready = self.ready_at.is_some_and(|r| now >= r)
                || (self.neighbours.is_empty() && self.start.is_some());
            // A client that was already watching this channel is told to wait: its source is
            // gone for now (a server restart, a partition) and may come back.
            let expiry = now + self.config.downstream_timeout;
            let watching = self
                .clients
                .get_mut(&from)
                .and_then(|c| c.watches.get_mut(&name))
                .map(|w| w.1 = expiry)
                .is_some();
            let status = if ready && !watching {
                WatchStatus::NoSuchChannel
            } else {
                WatchStatus::NotReady
            };
            self.send_reliable(
                now,
                from,
                Message::WatchReply {
                    request,
                    status,
                    stream: 0,
                },
            );
            return;
        };
        let expiry = now + self.config.downstream_timeout;
        let previous = self.clients.get_mut(&from).and_then(|c| {
            c.watches
                .insert(name.clone(), (stream, expiry))
                .map(|(s, _)| s)
        });
        if let Some(p) = previous.filter(|p| *p != stream) {
            if let Some(r) = self.routes.get_mut(&p) {
                r.downstream.remove(&from);
            }
            self.maybe_deactivate(now, p);
        }
        if previous.is_none() {
            self.events.push_back(NodeEvent::ClientWatch {
                client: from,
                channel: name,
            });
        }
        self.add_downstream(now, stream, from);
        self.send_reliable(
            now,
            from,
            Message::WatchReply {
                request,
                status: WatchStatus::Ok,
                stream,
            },
        );
    }

    fn remove_client_watch(&mut self, now: Instant, client: SocketAddr, stream: u32, name: String) {
        if let Some(r) = self.routes.get_mut(&stream) {
            r.downstream.remove(&client);
        }
        self.maybe_deactivate(now, stream);
        self.events.push_back(NodeEvent::ClientLeft {
            client,
            channel: name,
        });
    }

    // ----- media --------------------------------------------------------------------------

    fn on_media(&mut self, now: Instant, from: SocketAddr, h: wire::MediaHeader, bytes: &[u8]) {
        let (stream, incarnation, seq) = (h.stream, h.incarnation, h.seq);
        let Some(route) = self.routes.get_mut(&stream) else {
            self.drops.unknown_stream += 1;
            return;
        };
        let draining = route.draining.is_some_and(|(d, _)| d == from);
        if route.local
            || (route.upstream != Some(from) && route.secondary != Some(from) && !draining)
        {
            route.not_from_upstream += 1;
            self.drops.not_from_upstream += 1;
            return;
        }
        if !route.accept_incarnation(incarnation) {
            route.duplicates += 1;
            self.drops.duplicate_media += 1;
            return;
        }
        let highest = route.window.highest();
        if !route.window.insert(seq) {
            route.duplicates += 1;
            self.drops.duplicate_media += 1;
            return;
        }
        route.media_in += 1;
        // The new parent delivers: the old one may go after a short overlap.
        if route.upstream == Some(from)
            && let Some((d, until)) = route.draining
        {
            route.draining = Some((d, until.min(now + DRAIN_OVERLAP)));
        }
        // Media from the parent proves it still has a path: its offer stays valid even if
        // announcements are being lost on this link.
        let keep = now + self.config.route_timeout;
        if let Some(c) = route.candidates.get_mut(&from) {
            c.expires = c.expires.max(keep);
        }
        if route.missing.remove(&seq).is_some() {
            route.recovered += 1;
        } else {
            route.on_media_arrival(now);
        }
        // A jump in sequence numbers: ask upstream for what was skipped, at once.
        let mut gap = false;
        if let Some(h) = highest
            && seq > h + 1
            && seq - h <= MAX_GAP
        {
            for s in h + 1..seq {
                route.missing.entry(s).or_insert(Missing {
                    detected: now,
                    next_nack: now,
                    nacks: 0,
                });
            }
            gap = true;
        }
        route.buffer.insert(seq, (now, bytes.to_vec()));
        self.forward(stream, bytes, Some(from));
        if gap {
            self.send_nacks(now, stream);
        }
    }

    /// Sends one NACK upstream for the missing datagrams of `stream` that are due, and gives
    /// up on those whose recovery budget ran out.
    fn send_nacks(&mut self, now: Instant, stream: u32) {
        let (srtt, budget_min) = (
            self.routes
                .get(&stream)
                .and_then(|r| r.upstream)
                .and_then(|u| self.neighbours.get(&u))
                .and_then(|n| n.channel.rtt().srtt()),
            self.config.recovery_budget_min,
        );
        let budget = srtt.map_or(budget_min, |s| (s * 4).max(budget_min));
        // Ask again after 1.5 RTT (at least 5 ms): the answer is not coming.
        let again = srtt.map_or(Duration::from_millis(10), |s| {
            (s * 3 / 2).max(Duration::from_millis(5))
        });
        let Some(route) = self.routes.get_mut(&stream) else {
            return;
        };
        let before = route.missing.len();
        route
            .missing
            .retain(|_, m| now.saturating_duration_since(m.detected) < budget);
        route.unrecovered += (before - route.missing.len()) as u64;
        let mut ranges: Vec<(u64, u16)> = Vec::new();
        for (seq, m) in route.missing.iter_mut() {
            if m.next_nack > now {
                continue;
            }
            // Rescheduled even when this NACK is full or there is no parent to ask: a due
            // entry left in the past would keep the timer firing.
            m.next_nack = now + again;
            if wire::add_nack_range(&mut ranges, *seq) {
                m.nacks += 1;
            }
        }
        let Some(up) = route.upstream else {
            return;
        };
        if ranges.is_empty() {
            return;
        }
        route.nacks_sent += 1;
        self.send_control(up, Message::Nack { stream, ranges });
    }

    /// Re-sends what a downstream asks for, from the retransmission buffer.
    fn on_nack(&mut self, now: Instant, from: SocketAddr, stream: u32, ranges: &[(u64, u16)]) {
        // A packet forwarded to this child less than a round trip ago is still on its way:
        // sending it again would only make a duplicate.
        let in_flight = self
            .neighbours
            .get(&from)
            .and_then(|n| n.channel.rtt().srtt())
            .unwrap_or(Duration::from_millis(2));
        let Some(route) = self.routes.get_mut(&stream) else {
            return;
        };
        if !route.downstream.contains_key(&from) {
            return;
        }
        let mut out = Vec::new();
        let mut budget = MAX_RETRANSMIT_PER_NACK;
        'ranges: for (first, len) in ranges {
            for seq in *first..first.saturating_add(u64::from(*len)) {
                if budget == 0 {
                    break 'ranges;
                }
                budget -= 1;
                if let Some((at, bytes)) = route.buffer.get(&seq)
                    && now.saturating_duration_since(*at) >= in_flight
                {
                    out.push(bytes.clone());
                }
            }
        }
        route.retransmitted += out.len() as u64;
        *route.media_out.entry(from).or_default() += out.len() as u64;
        for payload in out {
            self.count_tx(from, payload.len(), true);
            self.transmits.push_back(Transmit { dst: from, payload });
        }
    }

    /// When the next former parent is to be left.
    fn next_drain(&self) -> Option<Instant> {
        self.routes
            .values()
            .filter_map(|r| r.draining.map(|(_, until)| until))
            .min()
    }

    /// When the next NACK of any stream is due.
    fn next_nack(&self) -> Option<Instant> {
        self.routes
            .values()
            .filter_map(|r| r.missing.values().map(|m| m.next_nack).min())
            .min()
    }

    fn forward(&mut self, stream: u32, bytes: &[u8], except: Option<SocketAddr>) {
        let Some(route) = self.routes.get_mut(&stream) else {
            return;
        };
        let targets: Vec<SocketAddr> = route
            .downstream
            .keys()
            .filter(|d| Some(**d) != except)
            .copied()
            .collect();
        for dst in targets {
            *route.media_out.entry(dst).or_default() += 1;
            let t = if let Some(n) = self.neighbours.get_mut(&dst) {
                Some(&mut n.traffic)
            } else {
                self.clients.get_mut(&dst).map(|c| &mut c.traffic)
            };
            if let Some(t) = t {
                t.media_tx += 1;
                t.media_tx_bytes += bytes.len() as u64;
            }
            self.transmits.push_back(Transmit {
                dst,
                payload: bytes.to_vec(),
            });
        }
    }

    /// Sends a local channel's bytes down its tree in chunks of at most 7 TS packets. Every
    /// chunk takes a sequence number even with nobody downstream, so gaps measure real loss.
    fn publish(&mut self, now: Instant, channel: &str, payload: &[u8]) {
        let stream = wire::stream_id(&self.config.id, channel);
        // The source clock of the playout buffers downstream: µs since this node started.
        let ts_us = self.micros(now) as u32;
        for chunk in payload.chunks(MAX_MEDIA_PAYLOAD) {
            let Some(route) = self.routes.get_mut(&stream).filter(|r| r.local) else {
                return;
            };
            let seq = route.next_seq;
            route.next_seq += 1;
            route.media_in += 1;
            let mut buf = std::mem::take(&mut self.media_buf);
            buf.clear();
            wire::encode_media(&mut buf, stream, self.incarnation, seq, ts_us, chunk);
            route.buffer.insert(seq, (now, buf.clone()));
            self.forward(stream, &buf, None);
            self.media_buf = buf;
        }
    }

    // ----- housekeeping -------------------------------------------------------------------

    fn housekeeping(&mut self, now: Instant) {
        // Pings (to every neighbour, even down ones: that is how a restarted one is found).
        if self.next_ping.is_some_and(|t| now >= t) {
            let t_us = self.micros(now);
            let all: Vec<SocketAddr> = self.neighbours.keys().copied().collect();
            for a in all {
                self.send_control(a, Message::Ping { t_us });
            }
            self.next_ping = Some(now + self.config.ping_interval);
        }
        // Media stopped on an active route: probe the parent at once rather than wait for
        // its silence to reach neighbour_timeout.
        self.probe_silent_parents(now);
        // Liveness.
        let mut down = Vec::new();
        for n in self.neighbours.values_mut().filter(|n| !n.up) {
            n.channel.abandon();
        }
        for c in self.clients.values_mut() {
            // A client that stopped acknowledging is gone: stop retransmitting to it.
            if c.channel.is_unreachable(now) {
                c.channel.abandon();
            }
        }
        for (a, n) in &self.neighbours {
            if !n.up {
                continue;
            }
            let probe_timeout = n
                .channel
                .rtt()
                .srtt()
                .map_or(self.config.probe_timeout_min, |s| {
                    (s * 3).max(self.config.probe_timeout_min)
                });
            if n.probe_sent
                .is_some_and(|p| now.saturating_duration_since(p) >= probe_timeout)
            {
                down.push((*a, DownReason::ProbeUnanswered));
            } else if n.channel.is_unreachable(now) {
                down.push((*a, DownReason::Unacknowledged));
            } else if n
                .last_heard
                .is_some_and(|h| now.saturating_duration_since(h) >= self.config.neighbour_timeout)
            {
                down.push((*a, DownReason::Silent));
            }
        }
        for (a, why) in down {
            self.neighbour_down(now, a, why);
        }
        // Our own rounds.
        if self.next_announce.is_some_and(|t| now >= t) {
            let targets = self.up_neighbours();
            self.originate_round_to(now, &targets, true);
            let jitter = self
                .rng
                .below(self.config.announce_interval.as_micros() as u64 / 10 + 1);
            self.next_announce =
                Some(now + self.config.announce_interval + Duration::from_micros(jitter));
        }
        // Routes: expiry of offers and downstreams, settling, join refresh.
        let streams: Vec<u32> = self.routes.keys().copied().collect();
        for s in streams {
            let Some(r) = self.routes.get_mut(&s) else {
                continue;
            };
            let upstream_expired = r
                .upstream
                .and_then(|u| r.candidates.get(&u))
                .is_some_and(|c| c.expires <= now);
            r.candidates.retain(|_, c| c.expires > now);
            let expired: Vec<SocketAddr> = r
                .downstream
                .iter()
                .filter(|(_, e)| **e <= now)
                .map(|(a, _)| *a)
                .collect();
            for a in &expired {
                r.downstream.remove(a);
            }
            let settle = r.settle_at.is_some_and(|t| now >= t);
            let orphan = r.upstream.is_none()
                && !r.local
                && r.state() == RouteState::Active
                && r.epoch.is_some();
            if upstream_expired || settle || (r.upstream.is_none() && !r.candidates.is_empty()) {
                self.reselect(now, s, upstream_expired);
            }
            if !expired.is_empty() {
                self.maybe_deactivate(now, s);
            }
            // Still no parent: ask the origin for a new round again (the last ask may be lost).
            if orphan
                && let Some(r) = self.routes.get(&s)
                && r.upstream.is_none()
                && let Some(e) = r.epoch
            {
                let origin = r.origin.clone();
                self.on_route_request(now, None, origin, e.incarnation, e.seq);
            }
            let Some(r) = self.routes.get_mut(&s) else {
                continue;
            };
            if r.state() == RouteState::Active
                && !r.local
                && let Some(up) = r.upstream
                && r.last_join
                    .is_none_or(|j| now.saturating_duration_since(j) >= self.config.join_refresh)
            {
                r.last_join = Some(now);
                let secondary = r.secondary;
                self.send_reliable(now, up, Message::Join { stream: s });
                if let Some(sec) = secondary {
                    self.send_reliable(now, sec, Message::Join { stream: s });
                }
            }
        }
        // Retransmission buffers keep `retransmit_window` of media; expired gaps are dropped.
        let window = self.config.retransmit_window;
        let streams: Vec<u32> = self.routes.keys().copied().collect();
        for s in &streams {
            if let Some(r) = self.routes.get_mut(s) {
                while let Some((_, (t, _))) = r.buffer.first_key_value() {
                    if now.saturating_duration_since(*t) > window || r.buffer.len() > MAX_BUFFERED {
                        r.buffer.pop_first();
                    } else {
                        break;
                    }
                }
            }
            if self.routes.get(s).is_some_and(|r| !r.missing.is_empty()) {
                self.send_nacks(now, *s);
            }
        }
        // Forget streams nobody offers, nobody uses, and we do not originate.
        self.routes
            .retain(|_, r| r.local || !r.candidates.is_empty() || !r.downstream.is_empty());
        // Client watches expire unless refreshed; idle clients are forgotten.
        let mut left = Vec::new();
        for (addr, c) in &mut self.clients {
            let gone: Vec<String> = c
                .watches
                .iter()
                .filter(|(_, (_, e))| *e <= now)
                .map(|(n, _)| n.clone())
                .collect();
            for name in gone {
                if let Some((s, _)) = c.watches.remove(&name) {
                    left.push((*addr, s, name));
                }
            }
        }
        for (addr, s, name) in left {
            self.remove_client_watch(now, addr, s, name);
        }
        let idle = self.config.downstream_timeout * 4;
        self.clients.retain(|_, c| {
            !c.watches.is_empty()
                || c.channel.outstanding() > 0
                || now.saturating_duration_since(c.last_heard) < idle
        });
        self.next_tick = Some(now + self.config.tick);
    }

    /// Probes the parent of every active route whose media has stopped for longer than the
    /// gap threshold. Two pings go out, so one lost ping does not condemn a live parent.
    fn probe_silent_parents(&mut self, now: Instant) {
        let min_gap = self.config.media_gap_min;
        let respace = |gap: Duration| gap.max(Duration::from_millis(200));
        let suspects: BTreeSet<SocketAddr> = self
            .routes
            .values()
            .filter(|r| !r.local && r.state() == RouteState::Active)
            .filter_map(|r| {
                let up = r.upstream?;
                let last = r.last_media?;
                let gap = Duration::from_micros(r.interarrival_us * 4)
                    .clamp(min_gap, Duration::from_secs(1));
                (now.saturating_duration_since(last) > gap).then_some((up, gap))
            })
            .filter(|(up, gap)| {
                self.neighbours.get(up).is_some_and(|n| {
                    n.up && n.probe_sent.is_none()
                        && n.last_probe
                            .is_none_or(|p| now.saturating_duration_since(p) > respace(*gap))
                })
            })
            .map(|(up, _)| up)
            .collect();
        let t_us = self.micros(now);
        for up in suspects {
            if let Some(n) = self.neighbours.get_mut(&up) {
                n.probe_sent = Some(now);
                n.last_probe = Some(now);
            }
            self.send_control(up, Message::Ping { t_us });
            self.send_control(up, Message::Ping { t_us });
        }
    }

    fn client_state(&mut self, now: Instant, from: SocketAddr) -> Option<&mut ClientState> {
        if !self.clients.contains_key(&from) {
            if self.clients.len() >= self.config.max_clients {
                self.drops.clients_refused += 1;
                return None;
            }
            let session = self.session;
            self.clients.insert(
                from,
                ClientState {
                    channel: Channel::new(from, session, self.config.reliable.clone()),
                    watches: BTreeMap::new(),
                    last_heard: now,
                    traffic: Traffic::default(),
                },
            );
        }
        let c = self.clients.get_mut(&from)?;
        c.last_heard = now;
        Some(c)
    }
}

impl Machine for Node {
    type Command = NodeCommand;
    type Event = NodeEvent;

    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        self.init(now);
        let is_neighbour = self.neighbours.contains_key(&from);
        let header = match wire::peek(bytes) {
            wire::Peek::Media(h) => Some(h),
            wire::Peek::Corrupt => {
                // Counted as lost: the gap it leaves is recovered by NACK like any other.
                self.drops.corrupt += 1;
                return;
            }
            wire::Peek::Other => None,
        };
        if let Some(h) = header {
            if let Some(n) = self.neighbours.get_mut(&from) {
                n.traffic.media_rx += 1;
                n.traffic.media_rx_bytes += bytes.len() as u64;
            }
            if is_neighbour {
                self.heard_from_neighbour(now, from);
            }
            self.on_media(now, from, h, bytes);
            self.flush_channels(now);
            return;
        }
        let datagram = match Datagram::decode(bytes) {
            Ok(d) => d,
            Err(wire::DecodeError::BadChecksum) => {
                self.drops.corrupt += 1;
                return;
            }
            Err(_) => {
                self.drops.malformed += 1;
                return;
            }
        };
        if is_neighbour {
            if let Some(n) = self.neighbours.get_mut(&from) {
                n.traffic.control_rx += 1;
                n.traffic.control_rx_bytes += bytes.len() as u64;
            }
            self.heard_from_neighbour(now, from);
            match datagram {
                Datagram::Control(m) => self.on_neighbour_message(now, from, m),
                Datagram::Reliable {
                    session,
                    seq,
                    message,
                } => {
                    let Some(n) = self.neighbours.get_mut(&from) else {
                        return;
                    };
                    if let Receive::Deliver { peer_restarted } = n.channel.on_reliable(session, seq)
                    {
                        if peer_restarted {
                            let id = n.id.clone();
                            self.on_neighbour_restart(now, from, id);
                        }
                        self.on_neighbour_message(now, from, message);
                    }
                }
                Datagram::Ack { session, seqs } => {
                    if let Some(n) = self.neighbours.get_mut(&from) {
                        n.channel.on_ack(now, session, &seqs);
                    }
                }
                Datagram::Media { .. } => {}
            }
        } else {
            match datagram {
                Datagram::Control(m @ (Message::Probe { .. } | Message::Nack { .. })) => {
                    if let Some(c) = self.clients.get_mut(&from) {
                        c.last_heard = now;
                    }
                    self.on_client_message(now, from, m);
                }
                Datagram::Control(_) => self.drops.not_a_neighbour += 1,
                Datagram::Reliable {
                    session,
                    seq,
                    message,
                } => {
                    let Some(c) = self.client_state(now, from) else {
                        return;
                    };
                    c.traffic.control_rx += 1;
                    c.traffic.control_rx_bytes += bytes.len() as u64;
                    if matches!(c.channel.on_reliable(session, seq), Receive::Deliver { .. }) {
                        self.on_client_message(now, from, message);
                    }
                }
                Datagram::Ack { session, seqs } => {
                    if let Some(c) = self.clients.get_mut(&from) {
                        c.last_heard = now;
                        c.channel.on_ack(now, session, &seqs);
                    }
                }
                Datagram::Media { .. } => {}
            }
        }
        self.flush_channels(now);
    }

    fn handle_command(&mut self, now: Instant, command: NodeCommand) {
        self.init(now);
        match command {
            NodeCommand::SetNeighbours(list) => self.set_neighbours(now, list),
            NodeCommand::AddChannel(c) => {
                let stream = wire::stream_id(&self.config.id, &c.name);
                let info = ChannelInfo {
                    stream,
                    name: c.name,
                    codec: c.codec,
                    width: c.width,
                    height: c.height,
                    fps_milli: c.fps_milli,
                    bitrate_kbps: c.bitrate_kbps,
                };
                let id = self.config.id.clone();
                let route = self
                    .routes
                    .entry(stream)
                    .or_insert_with(|| Route::new(info.clone(), id, true));
                route.local = true;
                route.info = info;
                route.candidates.clear();
                route.upstream = None;
                // Announce the change right away rather than at the next round.
                self.next_announce = Some(now);
                self.ready_at.get_or_insert(now);
            }
            NodeCommand::RemoveChannel(name) => {
                let stream = wire::stream_id(&self.config.id, &name);
                self.routes.remove(&stream);
                self.next_announce = Some(now);
            }
            NodeCommand::Publish { channel, payload } => self.publish(now, &channel, &payload),
        }
        self.flush_channels(now);
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.init(now);
        if self.next_drain().is_some_and(|t| now >= t) {
            let due: Vec<(u32, SocketAddr)> = self
                .routes
                .iter_mut()
                .filter_map(|(s, r)| match r.draining {
                    Some((d, until)) if until <= now => {
                        r.draining = None;
                        Some((*s, d))
                    }
                    _ => None,
                })
                .collect();
            for (stream, d) in due {
                self.send_reliable(now, d, Message::Leave { stream });
            }
        }
        if self.next_nack().is_some_and(|t| now >= t) {
            let due: Vec<u32> = self
                .routes
                .iter()
                .filter(|(_, r)| r.missing.values().any(|m| m.next_nack <= now))
                .map(|(s, _)| *s)
                .collect();
            for s in due {
                self.send_nacks(now, s);
            }
        }
        // A reliable message reaching its give-up time is a liveness event too: handle it
        // when it is due, not at the next tick (the timer would otherwise stay due).
        let gave_up = self
            .neighbours
            .values()
            .map(|n| &n.channel)
            .chain(self.clients.values().map(|c| &c.channel))
            .filter_map(|c| c.give_up_at())
            .any(|t| t <= now);
        let due_tick = gave_up
            || self.next_tick.is_some_and(|t| now >= t)
            || self.next_ping.is_some_and(|t| now >= t)
            || self.next_announce.is_some_and(|t| now >= t);
        if due_tick {
            self.housekeeping(now);
        }
        self.flush_channels(now);
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    fn poll_event(&mut self) -> Option<NodeEvent> {
        self.events.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let channels = self
            .neighbours
            .values()
            .map(|n| &n.channel)
            .chain(self.clients.values().map(|c| &c.channel))
            .flat_map(|c| [c.next_timeout(), c.give_up_at()])
            .flatten();
        [
            self.next_tick,
            self.next_ping,
            self.next_announce,
            self.next_nack(),
            self.next_drain(),
        ]
        .into_iter()
        .flatten()
        .chain(channels)
        .min()
    }
}

impl Node {
    fn on_neighbour_restart(&mut self, now: Instant, from: SocketAddr, id: String) {
        self.events.push_back(NodeEvent::NeighbourRestarted { id });
        // It lost every join we sent it: resend them now instead of at the next refresh.
        let streams: Vec<u32> = self
            .routes
            .iter()
            .filter(|(_, r)| r.upstream == Some(from) && r.state() == RouteState::Active)
            .map(|(s, _)| *s)
            .collect();
        for s in streams {
            if let Some(r) = self.routes.get_mut(&s) {
                r.last_join = Some(now);
            }
            self.send_reliable(now, from, Message::Join { stream: s });
        }
    }
}

/// A node's state for export (stats files, the lab, tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSnapshot {
    /// Node id.
    pub id: String,
    /// Time since the node started.
    pub uptime_ms: u64,
    /// Overlay links.
    pub neighbours: Vec<LinkSnapshot>,
    /// Clients served.
    pub clients: Vec<ClientSnapshot>,
    /// The route table.
    pub routes: Vec<RouteSnapshot>,
    /// Input dropped, by reason.
    pub drops: Drops,
    /// Announcement datagrams sent.
    pub announces_sent: u64,
}

/// One overlay link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkSnapshot {
    /// Neighbour id.
    pub id: String,
    /// Neighbour address.
    pub addr: SocketAddr,
    /// Heard from recently.
    pub up: bool,
    /// Smoothed RTT.
    pub srtt_us: Option<u64>,
    /// Current retransmission timeout.
    pub rto_us: u64,
    /// Traffic counters.
    pub traffic: Traffic,
    /// Reliable channel counters.
    pub reliable: crate::reliable::ChannelStats,
}

/// One client at this PoP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSnapshot {
    /// Client address.
    pub addr: SocketAddr,
    /// Channels it watches here.
    pub watching: Vec<String>,
    /// Traffic counters.
    pub traffic: Traffic,
}

/// One route table entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSnapshot {
    /// Stream id.
    pub stream: u32,
    /// Channel name.
    pub channel: String,
    /// Origin server id.
    pub origin: String,
    /// Originated here.
    pub local: bool,
    /// Active or inactive.
    pub state: RouteState,
    /// Parent id.
    pub upstream: Option<String>,
    /// Second parent id (dual-parent mode).
    pub secondary: Option<String>,
    /// Path cost to the origin.
    pub cost_us: Option<u64>,
    /// Hops to the origin.
    pub hops: Option<u8>,
    /// Children (neighbour ids) and clients (`client:ADDR`).
    pub downstream: Vec<String>,
    /// Media datagrams accepted.
    pub media_in: u64,
    /// Media datagrams sent per downstream.
    pub media_out: Vec<(String, u64)>,
    /// Duplicates dropped.
    pub duplicates: u64,
    /// Datagrams re-sent in answer to NACKs.
    pub retransmitted: u64,
    /// NACKs sent upstream.
    pub nacks_sent: u64,
    /// Missing datagrams that arrived after a NACK.
    pub recovered: u64,
    /// Missing datagrams given up on.
    pub unrecovered: u64,
}

#[cfg(test)]
mod tests;
