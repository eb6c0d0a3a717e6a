//! The viewer machine: probes every PoP, picks the one with the lowest RTT (with hysteresis),
//! lists channels, watches channels by name and records what arrives.
//!
//! A watch is soft state at the PoP: the client refreshes it every `watch_refresh`, so a PoP
//! that restarts or a lost message heals by itself, and a client that vanishes is pruned. When
//! the chosen PoP stops answering probes for `pop_timeout`, or another one is better by the
//! switch margin for `switch_rounds` probe rounds, every watch moves: unwatch at the old PoP,
//! watch at the new one.

use crate::machine::{Machine, Transmit};
use crate::playout::Playout;
use crate::reliable::{Channel, Receive, ReliableConfig};
use crate::rng::Rng;
use crate::rtt::RttEstimator;
use crate::stats::{ViewerReport, ViewerStats};
use crate::ts::KeyframeGate;
use crate::wire::{self, ChannelInfo, Datagram, Message, WatchStatus};
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Tuning of a client.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Candidate PoPs.
    pub pops: Vec<SocketAddr>,
    /// Seeds nonces and the reliable session id.
    pub seed: u64,
    /// Probe period per PoP.
    pub probe_interval: Duration,
    /// A PoP silent this long is dead.
    pub pop_timeout: Duration,
    /// How long to wait for every PoP's first answer before choosing among those that did.
    pub first_choice_wait: Duration,
    /// Watches are refreshed this often.
    pub watch_refresh: Duration,
    /// A rival PoP must be better by this fraction of the current RTT…
    pub switch_margin: f64,
    /// …and by at least this much…
    pub switch_margin_min: Duration,
    /// …for this many consecutive probe rounds.
    pub switch_rounds: u32,
    /// A gap in media longer than this is a stall.
    pub stall_threshold: Duration,
    /// Reliable channel tuning.
    pub reliable: ReliableConfig,
    /// Media silent this long (or 4 smoothed inter-arrival times if more) makes the client
    /// probe its PoP at once.
    pub media_gap_min: Duration,
    /// A PoP that leaves such a probe unanswered this long (or 3 × its RTT) is dead.
    pub probe_timeout_min: Duration,
    /// Playout buffer latency: how long after its fastest-path arrival time a packet is
    /// played. Missing packets are asked for again (NACK) until then; later ones are skipped.
    pub playout_latency: Duration,
    /// Watch at the two best PoPs at once and keep the first copy of each packet: the
    /// failure of one PoP (or of its path) then costs no packet.
    pub dual_pop: bool,
    /// Hold media back until the first video keyframe, so recordings and players start
    /// decodable. Off only for streams that are not audio/video (benchmarks).
    pub start_at_keyframe: bool,
}

impl ClientConfig {
    /// Defaults for these PoPs.
    pub fn new(pops: Vec<SocketAddr>, seed: u64) -> Self {
        Self {
            pops,
            seed,
            probe_interval: Duration::from_millis(250),
            pop_timeout: Duration::from_millis(1_500),
            first_choice_wait: Duration::from_millis(400),
            watch_refresh: Duration::from_secs(1),
            switch_margin: 0.25,
            switch_margin_min: Duration::from_millis(2),
            switch_rounds: 4,
            stall_threshold: Duration::from_millis(200),
            reliable: ReliableConfig::default(),
            start_at_keyframe: true,
            media_gap_min: Duration::from_millis(150),
            probe_timeout_min: Duration::from_millis(50),
            playout_latency: Duration::from_millis(120),
            dual_pop: false,
        }
    }
}

/// What the application asks of the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientCommand {
    /// Start watching a channel by name.
    Watch(String),
    /// Stop watching it.
    Stop(String),
    /// Ask the current PoP for the channel list again.
    RefreshChannels,
}

/// What the client reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// A PoP was chosen (first choice or a switch).
    PopSelected {
        pop: SocketAddr,
        previous: Option<SocketAddr>,
    },
    /// The chosen PoP stopped answering.
    PopLost { pop: SocketAddr },
    /// The channel list of the current PoP.
    Channels(Vec<ChannelInfo>),
    /// A watch was accepted: media for `stream` is coming.
    Watching {
        channel: String,
        stream: u32,
        pop: SocketAddr,
    },
    /// No source offers that channel.
    NoSuchChannel { channel: String },
    /// TS packets of a watched channel, from its first keyframe on (see
    /// [`ClientConfig::start_at_keyframe`]); statistics count everything that arrived.
    Media {
        channel: String,
        seq: u64,
        payload: Vec<u8>,
    },
}

#[derive(Debug)]
struct Pop {
    addr: SocketAddr,
    rtt: RttEstimator,
    last_reply: Option<Instant>,
    channels: u16,
    channel: Channel,
    /// A probe sent because media stopped, not yet answered.
    suspect_since: Option<Instant>,
    /// When the last such probe went out.
    last_gap_probe: Option<Instant>,
}

impl Pop {
    /// Answering: a reply within `timeout`, and no media-gap probe unanswered for longer
    /// than `probe_timeout` (3 × RTT, at least the configured minimum).
    fn alive(&self, now: Instant, timeout: Duration, probe_min: Duration) -> bool {
        let probe_timeout = self
            .rtt
            .srtt()
            .map_or(probe_min, |s| (s * 3).max(probe_min));
        self.last_reply
            .is_some_and(|t| now.saturating_duration_since(t) < timeout)
            && self
                .suspect_since
                .is_none_or(|s| now.saturating_duration_since(s) < probe_timeout)
    }
}

#[derive(Debug)]
struct Watch {
    request: u32,
    stream: Option<u32>,
    pop: Option<SocketAddr>,
    last_sent: Option<Instant>,
    stats: ViewerStats,
    gate: KeyframeGate,
    last_media: Option<Instant>,
    interarrival_us: u64,
    playout: Playout,
    /// Sequence numbers found missing: seq → (detected, next NACK).
    missing: BTreeMap<u64, (Instant, Instant)>,
    highest: Option<u64>,
    recovered: u64,
    nacks_sent: u64,
    /// Since when the PoP has answered "no such channel" (the answer is only believed after
    /// [`NO_SUCH_CHANNEL_CONFIRM`]: a PoP on a lossy path may not have heard of it yet).
    no_such_since: Option<Instant>,
    /// In dual mode, the second PoP also watched.
    backup: Option<SocketAddr>,
    /// Origin incarnation of the media being played, and the ones it replaced.
    incarnation: Option<u32>,
    retired: Vec<u32>,
}

/// How long a PoP must keep answering "no such channel" before the client believes it.
pub const NO_SUCH_CHANNEL_CONFIRM: Duration = Duration::from_millis(1_500);
/// How soon the client asks again after a "no such channel".
const NO_SUCH_CHANNEL_RETRY: Duration = Duration::from_millis(300);

impl Watch {
    /// A new origin incarnation (a restarted server numbering from 0 again) starts a new
    /// stream: playout, recovery state and keyframe gate begin afresh. Stragglers of a
    /// replaced incarnation are refused (false).
    fn accept_incarnation(&mut self, incarnation: u32, latency: Duration, gate: bool) -> bool {
        match self.incarnation {
            Some(i) if i == incarnation => true,
            _ if self.retired.contains(&incarnation) => false,
            current => {
                if let Some(old) = current {
                    self.retired.push(old);
                    self.stats.on_source_restart();
                    self.playout = Playout::new(latency);
                    self.missing.clear();
                    self.highest = None;
                    self.gate = if gate {
                        KeyframeGate::new()
                    } else {
                        KeyframeGate::opened()
                    };
                }
                self.incarnation = Some(incarnation);
                true
            }
        }
    }

    /// Hands released packets to the statistics and, through the keyframe gate, to the
    /// application, in sequence order.
    fn release(&mut self, now: Instant, name: &str, events: &mut VecDeque<ClientEvent>) {
        while let Some((seq, payload)) = self.playout.pop_ready(now) {
            self.stats.on_media(now, seq, &payload);
            let admitted = self.gate.admit(&payload);
            if !admitted.is_empty() {
                events.push_back(ClientEvent::Media {
                    channel: name.to_owned(),
                    seq,
                    payload: admitted.to_vec(),
                });
            }
        }
        // Nothing before the next packet to play can still be used.
        if let Some(next) = self.playout.next_seq() {
            self.missing.retain(|s, _| *s >= next);
        }
    }
}

/// A PoP as the GUI shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct PopView {
    /// Address.
    pub addr: SocketAddr,
    /// Smoothed RTT.
    pub srtt: Option<Duration>,
    /// Answering probes.
    pub alive: bool,
    /// Channels it offers.
    pub channels: u16,
    /// The one in use.
    pub selected: bool,
}

/// The viewer machine. See the module docs.
#[derive(Debug)]
pub struct Client {
    config: ClientConfig,
    rng: Rng,
    start: Option<Instant>,
    pops: Vec<Pop>,
    selected: Option<usize>,
    better_streak: u32,
    watches: BTreeMap<String, Watch>,
    /// Reports of stopped watches, until the channel is watched again.
    stopped: BTreeMap<String, ViewerReport>,
    catalogue: Vec<ChannelInfo>,
    pending_parts: BTreeMap<u32, BTreeMap<u8, Vec<ChannelInfo>>>,
    list_request: u32,
    next_probe: Option<Instant>,
    /// Last time timers ran (the media-gap check runs every 25 ms while watching).
    last_check: Option<Instant>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<ClientEvent>,
    malformed: u64,
    foreign: u64,
    corrupt: u64,
}

impl Client {
    /// A client that will probe `config.pops`.
    pub fn new(config: ClientConfig) -> Self {
        let mut rng = Rng::new(config.seed);
        let session = rng.next_u32();
        let pops = config
            .pops
            .iter()
            .map(|a| Pop {
                addr: *a,
                rtt: RttEstimator::new(),
                last_reply: None,
                channels: 0,
                channel: Channel::new(*a, session, config.reliable.clone()),
                suspect_since: None,
                last_gap_probe: None,
            })
            .collect();
        Self {
            config,
            rng,
            start: None,
            pops,
            selected: None,
            better_streak: 0,
            watches: BTreeMap::new(),
            stopped: BTreeMap::new(),
            catalogue: Vec::new(),
            pending_parts: BTreeMap::new(),
            list_request: 0,
            next_probe: None,
            last_check: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            malformed: 0,
            foreign: 0,
            corrupt: 0,
        }
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// The PoP in use.
    pub fn selected_pop(&self) -> Option<SocketAddr> {
        self.selected.map(|i| self.pops[i].addr)
    }

    /// Every PoP with its RTT and state.
    pub fn pops(&self, now: Instant) -> Vec<PopView> {
        self.pops
            .iter()
            .enumerate()
            .map(|(i, p)| PopView {
                addr: p.addr,
                srtt: p.rtt.srtt(),
                alive: p.alive(now, self.config.pop_timeout, self.config.probe_timeout_min),
                channels: p.channels,
                selected: self.selected == Some(i),
            })
            .collect()
    }

    /// The last channel list received.
    pub fn catalogue(&self) -> &[ChannelInfo] {
        &self.catalogue
    }

    /// Channels being watched.
    pub fn watching(&self) -> impl Iterator<Item = &str> {
        self.watches.keys().map(String::as_str)
    }

    /// The KPI report of a watch (also after [`ClientCommand::Stop`] until it is replaced).
    pub fn report(&self, channel: &str) -> Option<ViewerReport> {
        self.watches
            .get(channel)
            .map(|w| {
                let mut r = w.stats.report();
                r.pop = w.pop.map(|p| p.to_string());
                let p = w.playout.stats();
                r.playout_latency_ms = w.playout.latency().as_secs_f64() * 1e3;
                r.lost_packets = p.lost;
                r.late_packets = p.late;
                r.recovered_packets = w.recovered;
                r.nacks_sent = w.nacks_sent;
                r.corrupt_packets = self.corrupt;
                r.continuity_index = (p.released + p.lost > 0)
                    .then(|| p.released as f64 / (p.released + p.lost) as f64);
                r
            })
            .or_else(|| self.stopped.get(channel).cloned())
    }

    /// Ends the measurement of a watch at `now` (trailing stall accounting).
    pub fn finish(&mut self, now: Instant, channel: &str) {
        if let Some(w) = self.watches.get_mut(channel) {
            w.stats.finish(now);
        }
    }

    /// Datagrams dropped as malformed, and datagrams from addresses that are not our PoPs.
    pub fn drops(&self) -> (u64, u64) {
        (self.malformed, self.foreign)
    }

    fn micros(&self, now: Instant) -> u64 {
        self.start
            .map_or(0, |s| now.saturating_duration_since(s).as_micros() as u64)
    }

    fn init(&mut self, now: Instant) {
        if self.start.is_none() {
            self.start = Some(now);
            self.next_probe = Some(now);
        }
    }

    /// The PoP that carries a second copy in dual mode: the best live PoP besides the one
    /// in use.
    fn backup_pop(&self, now: Instant) -> Option<usize> {
        if !self.config.dual_pop {
            return None;
        }
        let (timeout, probe_min) = (self.config.pop_timeout, self.config.probe_timeout_min);
        self.pops
            .iter()
            .enumerate()
            .filter(|(i, p)| Some(*i) != self.selected && p.alive(now, timeout, probe_min))
            .min_by_key(|(i, p)| (p.rtt.srtt(), *i))
            .map(|(i, _)| i)
    }

    fn send_watch(&mut self, now: Instant, name: &str) {
        let Some(i) = self.selected else {
            return;
        };
        let pop = self.pops[i].addr;
        let backup = self.backup_pop(now);
        let request = self.rng.next_u32();
        let Some(w) = self.watches.get_mut(name) else {
            return;
        };
        w.request = request;
        w.pop = Some(pop);
        w.last_sent = Some(now);
        let old_backup = std::mem::replace(&mut w.backup, backup.map(|b| self.pops[b].addr));
        let watch = Message::Watch {
            request,
            name: name.to_owned(),
        };
        self.pops[i].channel.send(now, watch.clone());
        if let Some(b) = backup {
            self.pops[b].channel.send(now, watch);
        }
        // A backup that is no longer one (nor the PoP in use) stops sending.
        if let Some(old) = old_backup
            && Some(old) != w.backup
            && old != pop
            && let Some(p) = self.pops.iter_mut().find(|p| p.addr == old)
        {
            p.channel.send(
                now,
                Message::Unwatch {
                    name: name.to_owned(),
                },
            );
        }
    }

    fn list_channels(&mut self, now: Instant) {
        let Some(i) = self.selected else {
            return;
        };
        self.list_request = self.rng.next_u32();
        self.pending_parts.clear();
        let request = self.list_request;
        self.pops[i]
            .channel
            .send(now, Message::ListChannels { request });
    }

    /// Plays what is due and asks the PoP again for what is still missing (every 1.5 RTT,
    /// at least 5 ms, until its play time has passed).
    fn playout_and_nacks(&mut self, now: Instant) {
        let again = self
            .selected
            .and_then(|i| self.pops[i].rtt.srtt())
            .map_or(Duration::from_millis(10), |s| {
                (s * 3 / 2).max(Duration::from_millis(5))
            });
        let latency = self.config.playout_latency;
        let pop = self.selected.map(|i| self.pops[i].addr);
        for (name, w) in self.watches.iter_mut() {
            w.release(now, name, &mut self.events);
            w.missing
                .retain(|_, (detected, _)| now.saturating_duration_since(*detected) < latency);
            let mut ranges: Vec<(u64, u16)> = Vec::new();
            for (seq, (_, next)) in w.missing.iter_mut() {
                if *next > now {
                    continue;
                }
                // Due entries are rescheduled even when this NACK has no room for them (or
                // there is no PoP yet): a timer left in the past would fire without end.
                *next = now + again;
                let _ = wire::add_nack_range(&mut ranges, *seq);
            }
            let (Some(stream), Some(pop)) = (w.stream, pop) else {
                continue;
            };
            if !ranges.is_empty() {
                w.nacks_sent += 1;
                self.transmits.push_back(Transmit {
                    dst: pop,
                    payload: Datagram::Control(Message::Nack { stream, ranges }).encode(),
                });
            }
        }
    }

    /// Probes the PoP at once when a watched channel's media stops for longer than the gap
    /// threshold, so a dead PoP is noticed in a few RTTs rather than after `pop_timeout`.
    fn probe_on_media_gap(&mut self, now: Instant) {
        let Some(i) = self.selected else {
            return;
        };
        let min_gap = self.config.media_gap_min;
        let gap = self
            .watches
            .values()
            .filter(|w| w.stream.is_some())
            .filter_map(|w| {
                let threshold = Duration::from_micros(w.interarrival_us * 4)
                    .clamp(min_gap, Duration::from_secs(1));
                w.last_media
                    .filter(|l| now.saturating_duration_since(*l) > threshold)
                    .map(|_| threshold)
            })
            .min();
        let Some(gap) = gap else {
            return;
        };
        let t_us = self.micros(now);
        let nonce = self.rng.next_u32();
        let pop = &mut self.pops[i];
        let spaced = pop
            .last_gap_probe
            .is_none_or(|p| now.saturating_duration_since(p) > gap.max(Duration::from_millis(200)));
        if pop.suspect_since.is_none() && spaced {
            pop.suspect_since = Some(now);
            pop.last_gap_probe = Some(now);
            let probe = Datagram::Control(Message::Probe { nonce, t_us }).encode();
            // Twice: one lost probe must not condemn a live PoP.
            self.transmits.push_back(Transmit {
                dst: pop.addr,
                payload: probe.clone(),
            });
            self.transmits.push_back(Transmit {
                dst: pop.addr,
                payload: probe,
            });
        }
    }

    fn choose(&mut self, now: Instant) {
        let timeout = self.config.pop_timeout;
        let probe_min = self.config.probe_timeout_min;
        let best = self
            .pops
            .iter()
            .enumerate()
            .filter(|(_, p)| p.alive(now, timeout, probe_min) && p.rtt.srtt().is_some())
            .min_by_key(|(i, p)| (p.rtt.srtt(), *i))
            .map(|(i, p)| (i, p.rtt.srtt().unwrap_or_default()));
        let Some((best, best_rtt)) = best else {
            return;
        };
        let target = match self.selected {
            None => {
                let all_answered = self.pops.iter().all(|p| p.last_reply.is_some());
                let waited = self.start.is_some_and(|s| {
                    now.saturating_duration_since(s) >= self.config.first_choice_wait
                });
                if !(all_answered || waited) {
                    return;
                }
                Some(best)
            }
            Some(cur) if !self.pops[cur].alive(now, timeout, probe_min) => {
                self.events.push_back(ClientEvent::PopLost {
                    pop: self.pops[cur].addr,
                });
                Some(best)
            }
            Some(cur) if cur == best => {
                self.better_streak = 0;
                None
            }
            Some(cur) => {
                let cur_rtt = self.pops[cur].rtt.srtt().unwrap_or_default();
                let margin = cur_rtt
                    .mul_f64(self.config.switch_margin)
                    .max(self.config.switch_margin_min);
                if best_rtt + margin < cur_rtt {
                    self.better_streak += 1;
                } else {
                    self.better_streak = 0;
                }
                (self.better_streak >= self.config.switch_rounds).then_some(best)
            }
        };
        if let Some(t) = target {
            self.switch_to(now, t);
        }
    }

    fn switch_to(&mut self, now: Instant, to: usize) {
        let previous = self.selected.map(|i| self.pops[i].addr);
        self.selected = Some(to);
        self.better_streak = 0;
        let names: Vec<String> = self.watches.keys().cloned().collect();
        if let Some(prev) = previous
            && let Some(old) = self.pops.iter_mut().find(|p| p.addr == prev)
        {
            old.channel.abandon();
            for n in &names {
                old.channel.send(now, Message::Unwatch { name: n.clone() });
            }
        }
        self.events.push_back(ClientEvent::PopSelected {
            pop: self.pops[to].addr,
            previous,
        });
        for n in &names {
            self.send_watch(now, n);
        }
        self.list_channels(now);
    }

    fn flush(&mut self, now: Instant) {
        for p in &mut self.pops {
            p.channel.flush(now, &mut self.transmits);
            // A PoP that stopped acknowledging gets no more retransmissions until it answers.
            if p.channel.is_unreachable(now) {
                p.channel.abandon();
            }
        }
    }

    fn on_message(&mut self, now: Instant, pop: usize, m: Message) {
        match m {
            Message::ProbeReply { t_us, channels, .. } => {
                let sent = Duration::from_micros(t_us);
                let since = Duration::from_micros(self.micros(now));
                let suspect_us = self.pops[pop].suspect_since.map(|s| self.micros(s));
                let p = &mut self.pops[pop];
                if since >= sent {
                    p.rtt.on_sample(since - sent);
                }
                p.last_reply = Some(now);
                // An answer to a probe sent since the suspicion clears it.
                if suspect_us.is_some_and(|s| t_us >= s) {
                    p.suspect_since = None;
                }
                p.channels = channels;
                if self.selected.is_none() {
                    self.choose(now);
                }
            }
            Message::Channels {
                request,
                part,
                parts,
                channels,
            } if request == self.list_request && Some(pop) == self.selected => {
                let got = self.pending_parts.entry(request).or_default();
                got.insert(part, channels);
                if got.len() == usize::from(parts) {
                    let mut all: Vec<ChannelInfo> = self
                        .pending_parts
                        .remove(&request)
                        .unwrap_or_default()
                        .into_values()
                        .flatten()
                        .collect();
                    all.sort_by(|a, b| a.name.cmp(&b.name));
                    self.catalogue = all.clone();
                    self.events.push_back(ClientEvent::Channels(all));
                }
            }
            Message::WatchReply {
                request,
                status,
                stream,
            } => {
                let addr = self.pops[pop].addr;
                let Some((name, w)) = self.watches.iter_mut().find(|(_, w)| w.request == request)
                else {
                    return;
                };
                // The backup PoP's answers do not steer the watch: only its media is used, and
                // only when it is the same stream.
                if w.pop != Some(addr) {
                    return;
                }
                let name = name.clone();
                match status {
                    WatchStatus::Ok => {
                        w.no_such_since = None;
                        let new = w.stream != Some(stream);
                        w.stream = Some(stream);
                        if new {
                            self.events.push_back(ClientEvent::Watching {
                                channel: name,
                                stream,
                                pop: addr,
                            });
                        }
                    }
                    WatchStatus::NoSuchChannel => {
                        let since = *w.no_such_since.get_or_insert(now);
                        if now.saturating_duration_since(since) >= NO_SUCH_CHANNEL_CONFIRM {
                            self.watches.remove(&name);
                            self.events
                                .push_back(ClientEvent::NoSuchChannel { channel: name });
                        } else {
                            // Ask again soon rather than at the next refresh.
                            let refresh = self.config.watch_refresh;
                            w.last_sent = Some(
                                (now + NO_SUCH_CHANNEL_RETRY)
                                    .checked_sub(refresh)
                                    .unwrap_or(now),
                            );
                        }
                    }
                    // Not ready, busy or unknown: the refresh timer asks again.
                    _ => {}
                }
            }
            _ => {}
        }
    }
}

impl Machine for Client {
    type Command = ClientCommand;
    type Event = ClientEvent;

    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        self.init(now);
        let Some(pop) = self.pops.iter().position(|p| p.addr == from) else {
            self.foreign += 1;
            return;
        };
        let header = match wire::peek(bytes) {
            wire::Peek::Media(h) => Some(h),
            wire::Peek::Corrupt => {
                self.corrupt += 1;
                return;
            }
            wire::Peek::Other => None,
        };
        if let Some(wire::MediaHeader {
            stream,
            incarnation,
            seq,
            ts_us,
        }) = header
        {
            let payload = wire::media_payload(bytes);
            let addr = self.pops[pop].addr;
            if let Some((name, w)) = self
                .watches
                .iter_mut()
                .find(|(_, w)| w.stream == Some(stream))
            {
                w.stats.on_arrival(now);
                let (latency, gate) = (self.config.playout_latency, self.config.start_at_keyframe);
                if !w.accept_incarnation(incarnation, latency, gate) {
                    return;
                }
                if w.missing.remove(&seq).is_some() {
                    w.recovered += 1;
                }
                // A jump in sequence numbers: ask the PoP for what was skipped, at once.
                if let Some(h) = w.highest
                    && seq > h + 1
                    && seq - h <= 512
                {
                    let ranges = vec![(h + 1, (seq - h - 1) as u16)];
                    for s in h + 1..seq {
                        w.missing.insert(s, (now, now + Duration::from_millis(10)));
                    }
                    w.nacks_sent += 1;
                    self.transmits.push_back(Transmit {
                        dst: addr,
                        payload: Datagram::Control(Message::Nack { stream, ranges }).encode(),
                    });
                }
                w.highest = Some(w.highest.map_or(seq, |h| h.max(seq)));
                w.playout.push(now, seq, ts_us, payload.to_vec());
                w.release(now, name, &mut self.events);
                if let Some(last) = w.last_media {
                    let gap = now.saturating_duration_since(last).as_micros() as u64;
                    w.interarrival_us = if w.interarrival_us == 0 {
                        gap
                    } else {
                        (w.interarrival_us * 15 + gap) / 16
                    };
                }
                w.last_media = Some(now);
            }
            return;
        }
        match Datagram::decode(bytes) {
            Ok(Datagram::Control(m)) => self.on_message(now, pop, m),
            Ok(Datagram::Reliable {
                session,
                seq,
                message,
            }) => {
                if let Receive::Deliver { .. } = self.pops[pop].channel.on_reliable(session, seq) {
                    self.on_message(now, pop, message);
                }
            }
            Ok(Datagram::Ack { session, seqs }) => {
                self.pops[pop].channel.on_ack(now, session, &seqs);
            }
            Ok(Datagram::Media { .. }) => {}
            Err(_) => self.malformed += 1,
        }
        self.flush(now);
    }

    fn handle_command(&mut self, now: Instant, command: ClientCommand) {
        self.init(now);
        match command {
            ClientCommand::Watch(name) => {
                self.stopped.remove(&name);
                let mut stats = ViewerStats::new(self.config.stall_threshold);
                stats.on_watch_requested(now);
                self.watches.insert(
                    name.clone(),
                    Watch {
                        request: 0,
                        stream: None,
                        pop: None,
                        last_sent: None,
                        stats,
                        last_media: None,
                        interarrival_us: 0,
                        playout: Playout::new(self.config.playout_latency),
                        missing: BTreeMap::new(),
                        highest: None,
                        recovered: 0,
                        nacks_sent: 0,
                        no_such_since: None,
                        backup: None,
                        incarnation: None,
                        retired: Vec::new(),
                        gate: if self.config.start_at_keyframe {
                            KeyframeGate::new()
                        } else {
                            KeyframeGate::opened()
                        },
                    },
                );
                self.send_watch(now, &name);
            }
            ClientCommand::Stop(name) => {
                if let Some(w) = self.watches.get_mut(&name) {
                    w.stats.finish(now);
                    w.stream = None;
                    for a in [w.pop, w.backup].into_iter().flatten() {
                        if let Some(p) = self.pops.iter_mut().find(|p| p.addr == a) {
                            p.channel.send(now, Message::Unwatch { name: name.clone() });
                        }
                    }
                }
                if let Some(report) = self.report(&name) {
                    self.stopped.insert(name.clone(), report);
                }
                self.watches.remove(&name);
            }
            ClientCommand::RefreshChannels => self.list_channels(now),
        }
        self.flush(now);
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.init(now);
        self.last_check = Some(now);
        self.playout_and_nacks(now);
        if self.next_probe.is_some_and(|t| now >= t) {
            let t_us = self.micros(now);
            for i in 0..self.pops.len() {
                let nonce = self.rng.next_u32();
                let dst = self.pops[i].addr;
                self.transmits.push_back(Transmit {
                    dst,
                    payload: Datagram::Control(Message::Probe { nonce, t_us }).encode(),
                });
            }
            self.next_probe = Some(now + self.config.probe_interval);
            self.choose(now);
        }
        self.probe_on_media_gap(now);
        // Every check, not only every probe round: a condemned PoP is left at once.
        self.choose(now);
        let refresh = self.config.watch_refresh;
        let due: Vec<String> = self
            .watches
            .iter()
            .filter(|(_, w)| {
                w.last_sent
                    .is_none_or(|t| now.saturating_duration_since(t) >= refresh)
            })
            .map(|(n, _)| n.clone())
            .collect();
        for n in due {
            self.send_watch(now, &n);
        }
        self.flush(now);
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let refresh = self
            .watches
            .values()
            .filter_map(|w| w.last_sent.map(|t| t + self.config.watch_refresh))
            .min();
        // Wake once when the first-choice wait ends (afterwards, probe rounds drive the
        // choice): a deadline left in the past would make the driver spin.
        let first_choice = match (self.selected, self.start, self.last_check) {
            (None, Some(s), Some(checked)) if checked < s + self.config.first_choice_wait => {
                Some(s + self.config.first_choice_wait)
            }
            _ => None,
        };
        let channels = self
            .pops
            .iter()
            .filter_map(|p| p.channel.next_timeout())
            .min();
        let playout = self
            .watches
            .values()
            .flat_map(|w| {
                [
                    w.playout.next_deadline(),
                    w.missing.values().map(|m| m.1).min(),
                ]
            })
            .flatten()
            .min();
        // While watching, check for media gaps every 25 ms.
        let gap_check = (!self.watches.is_empty())
            .then(|| self.last_check.map(|t| t + Duration::from_millis(25)))
            .flatten();
        [
            self.next_probe,
            refresh,
            first_choice,
            channels,
            gap_check,
            playout,
        ]
        .into_iter()
        .flatten()
        .min()
    }
}
