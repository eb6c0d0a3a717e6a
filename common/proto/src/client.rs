//! The viewer machine: probes every PoP, picks the one with the lowest RTT (with hysteresis),
//! lists channels, watches channels by name and records what arrives.
//!
//! A watch is soft state at the PoP: the client refreshes it every `watch_refresh`, so a PoP
//! that restarts or a lost message heals by itself, and a client that vanishes is pruned. When
//! the chosen PoP stops answering probes for `pop_timeout`, or another one is better by the
//! switch margin for `switch_rounds` probe rounds, every watch moves: unwatch at the old PoP,
//! watch at the new one.

use crate::machine::{Machine, Transmit};
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
        }
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

    fn send_watch(&mut self, now: Instant, name: &str) {
        let Some(i) = self.selected else {
            return;
        };
        let pop = self.pops[i].addr;
        let request = self.rng.next_u32();
        let Some(w) = self.watches.get_mut(name) else {
            return;
        };
        w.request = request;
        w.pop = Some(pop);
        w.last_sent = Some(now);
        self.pops[i].channel.send(
            now,
            Message::Watch {
                request,
                name: name.to_owned(),
            },
        );
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
                let name = name.clone();
                match status {
                    WatchStatus::Ok => {
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
                        self.watches.remove(&name);
                        self.events
                            .push_back(ClientEvent::NoSuchChannel { channel: name });
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
        if let Some((stream, seq)) = wire::peek_media(bytes) {
            let payload = &bytes[wire::MEDIA_HEADER_LEN..];
            if let Some((name, w)) = self
                .watches
                .iter_mut()
                .find(|(_, w)| w.stream == Some(stream))
            {
                w.stats.on_media(now, seq, payload);
                if let Some(last) = w.last_media {
                    let gap = now.saturating_duration_since(last).as_micros() as u64;
                    w.interarrival_us = if w.interarrival_us == 0 {
                        gap
                    } else {
                        (w.interarrival_us * 15 + gap) / 16
                    };
                }
                w.last_media = Some(now);
                let admitted = w.gate.admit(payload);
                if !admitted.is_empty() {
                    self.events.push_back(ClientEvent::Media {
                        channel: name.clone(),
                        seq,
                        payload: admitted.to_vec(),
                    });
                }
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
                    if let Some(p) = w
                        .pop
                        .and_then(|a| self.pops.iter_mut().find(|p| p.addr == a))
                    {
                        p.channel.send(now, Message::Unwatch { name: name.clone() });
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
        let first_choice = match (self.selected, self.start) {
            (None, Some(s)) => Some(s + self.config.first_choice_wait),
            _ => None,
        };
        let channels = self
            .pops
            .iter()
            .filter_map(|p| p.channel.next_timeout())
            .min();
        // While watching, check for media gaps every 25 ms.
        let gap_check = (!self.watches.is_empty())
            .then(|| self.last_check.map(|t| t + Duration::from_millis(25)))
            .flatten();
        [self.next_probe, refresh, first_choice, channels, gap_check]
            .into_iter()
            .flatten()
            .min()
    }
}
