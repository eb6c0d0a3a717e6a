//! The reliable control channel to one peer: sequence numbers, acks, retransmission with an
//! RTO from the measured RTT and exponential backoff, duplicate suppression, and a bounded time
//! after which the peer is declared unreachable.
//!
//! Delivery is exactly-once-or-never per message and unordered: every control message meshcast
//! sends is idempotent soft state, so head-of-line blocking would only add delay.
//!
//! Each side picks a random `session` when the channel is created. A datagram from the peer
//! with a new session means the peer restarted: its receive window starts afresh and the owner
//! is told, so it can resend state the peer lost.

use crate::machine::Transmit;
use crate::rtt::{MAX_RTO, RttEstimator};
use crate::wire::{Datagram, MAX_ACKS, Message};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Tuning of a reliable channel.
#[derive(Debug, Clone)]
pub struct ReliableConfig {
    /// A message unacknowledged this long after its first transmission makes the peer
    /// unreachable.
    pub give_up_after: Duration,
    /// Messages in flight at once; more wait in a queue.
    pub max_in_flight: usize,
    /// Messages waiting beyond the window; past this the oldest is dropped and counted.
    pub max_queued: usize,
}

impl Default for ReliableConfig {
    fn default() -> Self {
        Self {
            give_up_after: Duration::from_secs(3),
            max_in_flight: 128,
            max_queued: 1024,
        }
    }
}

/// Counters of one channel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelStats {
    /// Distinct messages handed to [`Channel::send`].
    pub sent: u64,
    /// Retransmissions.
    pub retransmitted: u64,
    /// Messages acknowledged by the peer.
    pub acked: u64,
    /// Messages from the peer delivered to the owner.
    pub delivered: u64,
    /// Messages from the peer dropped as duplicates.
    pub duplicates: u64,
    /// Messages dropped because the send queue overflowed.
    pub queue_drops: u64,
    /// Times the peer was seen restarting.
    pub peer_restarts: u64,
}

#[derive(Debug)]
struct Pending {
    message: Message,
    first_sent: Option<Instant>,
    retries: u32,
    due: Instant,
}

/// What the owner should do with an arriving reliable message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receive {
    /// Deliver it; `peer_restarted` is set on the first message of a new peer session.
    Deliver { peer_restarted: bool },
    /// Seen before: drop it (it was acknowledged again).
    Duplicate,
}

/// Receive window: which sequence numbers of the peer's current session arrived.
#[derive(Debug, Default)]
struct DedupWindow {
    /// Every sequence number below this arrived or is too old to matter.
    floor: u64,
    above: BTreeSet<u64>,
}

const DEDUP_SPAN: usize = 4096;

impl DedupWindow {
    /// Records `seq`; false if it was seen already (or fell out of the window).
    fn insert(&mut self, seq: u64) -> bool {
        if seq < self.floor || !self.above.insert(seq) {
            return false;
        }
        while self.above.remove(&self.floor) {
            self.floor += 1;
        }
        while self.above.len() > DEDUP_SPAN {
            if let Some(first) = self.above.pop_first() {
                self.floor = first + 1;
            }
            while self.above.remove(&self.floor) {
                self.floor += 1;
            }
        }
        true
    }
}

/// The reliable channel to one peer. See the module docs.
#[derive(Debug)]
pub struct Channel {
    peer: SocketAddr,
    config: ReliableConfig,
    session: u32,
    next_seq: u64,
    in_flight: BTreeMap<u64, Pending>,
    queue: VecDeque<Message>,
    peer_session: Option<u32>,
    window: DedupWindow,
    acks_due: Vec<u64>,
    rtt: RttEstimator,
    stats: ChannelStats,
}

impl Channel {
    /// A channel to `peer` whose own session id is `session` (random per process start).
    pub fn new(peer: SocketAddr, session: u32, config: ReliableConfig) -> Self {
        Self {
            peer,
            config,
            session,
            next_seq: 0,
            in_flight: BTreeMap::new(),
            queue: VecDeque::new(),
            peer_session: None,
            window: DedupWindow::default(),
            acks_due: Vec::new(),
            rtt: RttEstimator::new(),
            stats: ChannelStats::default(),
        }
    }

    /// The peer's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// RTT estimate of this peer, fed by acks and by the owner's probes.
    pub fn rtt(&self) -> &RttEstimator {
        &self.rtt
    }

    /// Mutable RTT estimate, for the owner's own probe samples (pings).
    pub fn rtt_mut(&mut self) -> &mut RttEstimator {
        &mut self.rtt
    }

    /// Counters.
    pub fn stats(&self) -> &ChannelStats {
        &self.stats
    }

    /// Messages sent but not yet acknowledged, plus those queued.
    pub fn outstanding(&self) -> usize {
        self.in_flight.len() + self.queue.len()
    }

    /// Queues `message` for reliable delivery; it goes out on the next [`Channel::flush`].
    pub fn send(&mut self, now: Instant, message: Message) {
        self.stats.sent += 1;
        if self.in_flight.len() < self.config.max_in_flight {
            self.push_in_flight(now, message);
        } else {
            if self.queue.len() >= self.config.max_queued {
                self.queue.pop_front();
                self.stats.queue_drops += 1;
            }
            self.queue.push_back(message);
        }
    }

    fn push_in_flight(&mut self, now: Instant, message: Message) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.in_flight.insert(
            seq,
            Pending {
                message,
                first_sent: None,
                retries: 0,
                due: now,
            },
        );
    }

    /// A reliable message from the peer arrived. The ack is queued either way.
    pub fn on_reliable(&mut self, session: u32, seq: u64) -> Receive {
        let mut restarted = false;
        if self.peer_session != Some(session) {
            restarted = self.peer_session.is_some();
            if restarted {
                self.stats.peer_restarts += 1;
            }
            self.peer_session = Some(session);
            self.window = DedupWindow::default();
            self.acks_due.clear();
        }
        if !self.acks_due.contains(&seq) {
            self.acks_due.push(seq);
        }
        if self.window.insert(seq) {
            self.stats.delivered += 1;
            Receive::Deliver {
                peer_restarted: restarted,
            }
        } else {
            self.stats.duplicates += 1;
            Receive::Duplicate
        }
    }

    /// An ack from the peer arrived. Acks for another session (sent before we restarted) are
    /// ignored. Only first transmissions yield RTT samples (Karn's rule).
    pub fn on_ack(&mut self, now: Instant, session: u32, seqs: &[u64]) {
        if session != self.session {
            return;
        }
        for seq in seqs {
            if let Some(p) = self.in_flight.remove(seq) {
                self.stats.acked += 1;
                if p.retries == 0
                    && let Some(sent) = p.first_sent
                {
                    self.rtt.on_sample(now.saturating_duration_since(sent));
                }
            }
        }
        while self.in_flight.len() < self.config.max_in_flight {
            match self.queue.pop_front() {
                Some(m) => self.push_in_flight(now, m),
                None => break,
            }
        }
    }

    /// Writes every datagram that is due now (acks first, then first transmissions and
    /// retransmissions) to `out`.
    pub fn flush(&mut self, now: Instant, out: &mut VecDeque<Transmit>) {
        if let Some(peer_session) = self.peer_session {
            for chunk in self.acks_due.chunks(MAX_ACKS) {
                out.push_back(Transmit {
                    dst: self.peer,
                    payload: Datagram::Ack {
                        session: peer_session,
                        seqs: chunk.to_vec(),
                    }
                    .encode(),
                });
            }
        }
        self.acks_due.clear();
        let rto = self.rtt.rto();
        for (seq, p) in self.in_flight.iter_mut() {
            if p.due > now {
                continue;
            }
            if p.first_sent.is_none() {
                p.first_sent = Some(now);
            } else {
                p.retries += 1;
                self.stats.retransmitted += 1;
            }
            let backoff = rto.saturating_mul(1u32 << p.retries.min(16)).min(MAX_RTO);
            p.due = now + backoff;
            out.push_back(Transmit {
                dst: self.peer,
                payload: Datagram::Reliable {
                    session: self.session,
                    seq: *seq,
                    message: p.message.clone(),
                }
                .encode(),
            });
        }
    }

    /// When [`Channel::flush`] has something to retransmit next.
    pub fn next_timeout(&self) -> Option<Instant> {
        self.in_flight.values().map(|p| p.due).min()
    }

    /// Whether a message has been unacknowledged for longer than the give-up time.
    pub fn is_unreachable(&self, now: Instant) -> bool {
        self.in_flight.values().any(|p| {
            p.first_sent
                .is_some_and(|s| now.saturating_duration_since(s) >= self.config.give_up_after)
        })
    }

    /// When the oldest in-flight message reaches the give-up time.
    pub fn give_up_at(&self) -> Option<Instant> {
        self.in_flight
            .values()
            .filter_map(|p| p.first_sent)
            .min()
            .map(|s| s + self.config.give_up_after)
    }

    /// Drops everything in flight and queued (the peer is gone); counters and RTT stay.
    pub fn abandon(&mut self) {
        self.in_flight.clear();
        self.queue.clear();
    }
}

#[cfg(test)]
mod tests;
