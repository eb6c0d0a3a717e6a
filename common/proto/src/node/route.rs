//! The route table entry of one stream and the media sequence window.

use crate::wire::ChannelInfo;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Instant;

/// An origin's round identity: a restarted origin gets a new incarnation, whose rounds win.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Epoch {
    /// Random per start of the origin process.
    pub incarnation: u32,
    /// Round number within the incarnation.
    pub seq: u32,
}

/// One neighbour's offer of a path to the stream's origin, frozen when it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The round it belongs to.
    pub epoch: Epoch,
    /// The cost the neighbour advertised (its own distance to the origin).
    pub advertised_us: u64,
    /// Path cost through this neighbour: its advertised cost plus our `srtt/2` to it at arrival.
    pub metric_us: u64,
    /// Hops to the origin through this neighbour.
    pub hops: u8,
    /// When it is forgotten unless a newer round refreshes it.
    pub expires: Instant,
}

/// Whether `c` cannot lead back through a node that advertised `advertised`: it belongs to
/// another round, or its sender advertised less in the same round.
pub fn feasible(advertised: Option<(Epoch, u64)>, c: &Candidate) -> bool {
    match advertised {
        None => true,
        Some((epoch, cost)) => c.epoch != epoch || c.advertised_us < cost,
    }
}

/// Whether a stream flows through this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RouteState {
    /// Known from announcements; nobody downstream asked for it.
    Inactive,
    /// At least one downstream (child node or client) receives it.
    Active,
}

/// The route table entry of one stream: `{stream, source, cost, upstream, downstream, state}`.
#[derive(Debug)]
pub struct Route {
    /// Channel description from the origin's announcement.
    pub info: ChannelInfo,
    /// Topology id of the origin server.
    pub origin: String,
    /// Originated by this node (a server's own channel).
    pub local: bool,
    /// Offers per neighbour.
    pub candidates: BTreeMap<SocketAddr, Candidate>,
    /// Newest round seen for this stream.
    pub epoch: Option<Epoch>,
    /// The chosen parent (none for local streams or when unreachable).
    pub upstream: Option<SocketAddr>,
    /// In dual-parent mode, a second feasible neighbour that also sends the stream; the
    /// first copy of each packet wins, and it takes over at once if the parent fails.
    pub secondary: Option<SocketAddr>,
    /// A former parent that still sends after a switch made while it was working (make
    /// before break), and when we leave it at the latest: its copies fill the moment before
    /// the new parent's first packets, duplicates are dropped by the window.
    pub draining: Option<(SocketAddr, Instant)>,
    /// Children and clients, with the instant their join expires.
    pub downstream: BTreeMap<SocketAddr, Instant>,
    /// Neighbours that refused our join (or chose us as their parent), until when.
    pub rejected: BTreeMap<SocketAddr, Instant>,
    /// When to re-choose the parent if the current one has not offered this round yet.
    pub settle_at: Option<Instant>,
    /// Consecutive rounds in which another neighbour beat the parent by the switch margin.
    pub better_streak: u32,
    /// When the last join went upstream.
    pub last_join: Option<Instant>,
    /// The cost we advertised downstream for a round: offers through neighbours that
    /// advertised less are feasible (they cannot lead back through us).
    pub advertised: Option<(Epoch, u64)>,
    /// When media last arrived from upstream (or was published).
    pub last_media: Option<Instant>,
    /// Smoothed gap between media arrivals, in microseconds.
    pub interarrival_us: u64,
    /// Media sequence numbers seen: duplicates are dropped, each packet forwarded once.
    pub window: SeqWindow,
    /// Next sequence number of a local stream.
    pub next_seq: u64,
    /// Media datagrams accepted from upstream (or published locally).
    pub media_in: u64,
    /// Media datagrams sent, per downstream.
    pub media_out: BTreeMap<SocketAddr, u64>,
    /// Media datagrams dropped as duplicates.
    pub duplicates: u64,
    /// Media datagrams dropped because they did not come from the chosen upstream.
    pub not_from_upstream: u64,
    /// Recent media datagrams by sequence number, kept to answer NACKs from downstream.
    pub buffer: BTreeMap<u64, (Instant, Vec<u8>)>,
    /// Sequence numbers found missing, being asked for from upstream.
    pub missing: BTreeMap<u64, Missing>,
    /// Datagrams re-sent to downstream in answer to NACKs.
    pub retransmitted: u64,
    /// NACK datagrams sent upstream.
    pub nacks_sent: u64,
    /// Missing datagrams that arrived after a NACK.
    pub recovered: u64,
    /// Missing datagrams given up on when their recovery budget ran out.
    pub unrecovered: u64,
    /// Origin incarnation of the media being forwarded; a new one restarts the numbering.
    pub media_incarnation: Option<u32>,
    /// Incarnations replaced by a newer one: their stragglers are dropped.
    pub retired_incarnations: Vec<u32>,
}

/// A media datagram found missing, and the state of asking for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Missing {
    /// When the gap was seen.
    pub detected: Instant,
    /// When to ask (again).
    pub next_nack: Instant,
    /// How often it was asked for.
    pub nacks: u32,
}

impl Route {
    pub(crate) fn new(info: ChannelInfo, origin: String, local: bool) -> Self {
        Self {
            info,
            origin,
            local,
            candidates: BTreeMap::new(),
            epoch: None,
            upstream: None,
            secondary: None,
            draining: None,
            downstream: BTreeMap::new(),
            rejected: BTreeMap::new(),
            settle_at: None,
            better_streak: 0,
            last_join: None,
            advertised: None,
            last_media: None,
            interarrival_us: 0,
            window: SeqWindow::default(),
            next_seq: 0,
            media_in: 0,
            media_out: BTreeMap::new(),
            duplicates: 0,
            not_from_upstream: 0,
            buffer: BTreeMap::new(),
            missing: BTreeMap::new(),
            retransmitted: 0,
            nacks_sent: 0,
            recovered: 0,
            unrecovered: 0,
            media_incarnation: None,
            retired_incarnations: Vec::new(),
        }
    }

    /// Active when anyone downstream receives it.
    pub fn state(&self) -> RouteState {
        if self.downstream.is_empty() {
            RouteState::Inactive
        } else {
            RouteState::Active
        }
    }

    /// The metric of the chosen upstream's current offer (0 for a local stream).
    pub fn cost(&self) -> Option<(u64, u8)> {
        if self.local {
            return Some((0, 0));
        }
        let c = self.candidates.get(&self.upstream?)?;
        Some((c.metric_us, c.hops))
    }

    /// Records a media arrival, keeping a smoothed inter-arrival time.
    pub fn on_media_arrival(&mut self, now: Instant) {
        if let Some(last) = self.last_media {
            let gap = now.saturating_duration_since(last).as_micros() as u64;
            self.interarrival_us = if self.interarrival_us == 0 {
                gap
            } else {
                (self.interarrival_us * 15 + gap) / 16
            };
        }
        self.last_media = Some(now);
    }

    /// Takes note of the origin incarnation of an arriving media datagram. A new incarnation
    /// (a restarted server numbering from 0 again) resets the sequence window and recovery
    /// state; one already replaced is refused (false).
    pub fn accept_incarnation(&mut self, incarnation: u32) -> bool {
        match self.media_incarnation {
            Some(i) if i == incarnation => true,
            _ if self.retired_incarnations.contains(&incarnation) => false,
            current => {
                if let Some(old) = current {
                    self.retired_incarnations.push(old);
                    if self.retired_incarnations.len() > 8 {
                        self.retired_incarnations.remove(0);
                    }
                }
                self.media_incarnation = Some(incarnation);
                self.window = SeqWindow::default();
                self.buffer.clear();
                self.missing.clear();
                true
            }
        }
    }

    /// Whether `c` cannot lead back through this node: it belongs to a newer round than the
    /// one we advertised, or its sender advertised less than we did in the same round.
    pub fn feasible(&self, c: &Candidate) -> bool {
        feasible(self.advertised, c)
    }

    /// Whether media can flow: originated here or a parent is chosen.
    pub fn reachable(&self) -> bool {
        self.local || self.upstream.is_some()
    }
}

/// Which media sequence numbers arrived, over a sliding window of [`SeqWindow::SPAN`].
///
/// A sequence number far behind the newest one means the source restarted and numbering began
/// again: the window resets instead of dropping the new source's packets for ever.
#[derive(Debug, Clone)]
pub struct SeqWindow {
    highest: Option<u64>,
    bits: [u64; Self::WORDS],
}

impl Default for SeqWindow {
    fn default() -> Self {
        Self {
            highest: None,
            bits: [0; Self::WORDS],
        }
    }
}

impl SeqWindow {
    const WORDS: usize = 64;
    /// Sequence numbers remembered behind the newest.
    pub const SPAN: u64 = (Self::WORDS * 64) as u64;
    /// A packet this far behind the newest is taken as a restarted source.
    pub const RESTART_GAP: u64 = 4 * Self::SPAN;

    fn bit(seq: u64) -> (usize, u64) {
        let i = (seq % Self::SPAN) as usize;
        (i / 64, 1u64 << (i % 64))
    }

    /// Records `seq`; false if it is a duplicate or too old to tell.
    pub fn insert(&mut self, seq: u64) -> bool {
        let Some(high) = self.highest else {
            self.reset_at(seq);
            return true;
        };
        if seq > high {
            let advance = seq - high;
            if advance >= Self::SPAN {
                self.bits = [0; Self::WORDS];
            } else {
                for s in high + 1..=seq {
                    let (w, b) = Self::bit(s);
                    self.bits[w] &= !b;
                }
            }
            let (w, b) = Self::bit(seq);
            self.bits[w] |= b;
            self.highest = Some(seq);
            return true;
        }
        let behind = high - seq;
        if behind >= Self::RESTART_GAP {
            self.reset_at(seq);
            return true;
        }
        if behind >= Self::SPAN {
            return false;
        }
        let (w, b) = Self::bit(seq);
        if self.bits[w] & b != 0 {
            return false;
        }
        self.bits[w] |= b;
        true
    }

    fn reset_at(&mut self, seq: u64) {
        self.bits = [0; Self::WORDS];
        let (w, b) = Self::bit(seq);
        self.bits[w] |= b;
        self.highest = Some(seq);
    }

    /// Newest sequence number seen.
    pub fn highest(&self) -> Option<u64> {
        self.highest
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn first_packet_after_a_gap_is_kept_and_duplicates_dropped() {
        let mut w = SeqWindow::default();
        assert!(w.insert(10));
        assert!(w.insert(12));
        assert!(w.insert(11));
        assert!(!w.insert(12));
        assert!(!w.insert(10));
        assert!(w.insert(13));
    }

    #[test]
    fn a_restarted_source_is_accepted() {
        let mut w = SeqWindow::default();
        assert!(w.insert(1_000_000));
        assert!(w.insert(0));
        assert!(w.insert(1));
        assert!(!w.insert(0));
    }

    proptest! {
        #[test]
        fn matches_a_set_oracle_within_the_span(seqs in prop::collection::vec(0u64..3000, 1..400)) {
            let mut w = SeqWindow::default();
            let mut seen = std::collections::BTreeSet::new();
            for s in seqs {
                let high = seen.iter().next_back().copied();
                let too_old = high.is_some_and(|h: u64| h >= s + SeqWindow::SPAN);
                let expected = !too_old && !seen.contains(&s);
                prop_assert_eq!(w.insert(s), expected, "seq {}", s);
                seen.insert(s);
            }
        }
    }
}
