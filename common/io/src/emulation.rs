//! User-space link emulation: delay, jitter, loss, bursts, reordering and rate limits applied
//! to the datagrams a process sends, because this kernel has no netem.
//!
//! An [`Emulator`] holds one [`Link`] (the impairment model shared with the simulator) per
//! emulated destination and a delay queue ordered by delivery time. The driver hands it every
//! datagram the machine wants sent ([`Emulator::submit`]); datagrams to destinations without a
//! link come straight back for sending at once, the others are dropped or queued until due
//! ([`Emulator::poll_ready`], [`Emulator::next_deadline`]). Emulating each direction at its
//! sender means a link of 10 ms emulated by both ends has 10 ms each way.
//!
//! The emulator is sans-IO like the machines: the caller passes the time in, and its
//! randomness comes from a seed.

use meshcast_proto::Transmit;
use meshcast_proto::link::{DropReason, Link, LinkParams, Verdict};
use meshcast_proto::rng::Rng;
use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap};
use std::net::SocketAddr;
use std::time::Instant;

/// Counters of an emulator, in total or for one destination.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EmulationStats {
    /// Datagrams submitted toward an emulated destination.
    pub offered: u64,
    /// Of those, datagrams held in the delay queue before sending.
    pub delayed: u64,
    /// Dropped because the link was down.
    pub dropped_down: u64,
    /// Dropped by independent random loss.
    pub dropped_random: u64,
    /// Dropped by burst (Gilbert–Elliott) loss.
    pub dropped_burst: u64,
    /// Dropped because the rate limiter's queue was full.
    pub dropped_queue: u64,
    /// Datagrams in the delay queue now.
    pub in_flight: u64,
}

impl EmulationStats {
    /// Datagrams dropped for any reason.
    pub fn dropped(&self) -> u64 {
        self.dropped_down + self.dropped_random + self.dropped_burst + self.dropped_queue
    }

    /// Datagrams dropped for `reason`.
    pub fn dropped_by(&self, reason: DropReason) -> u64 {
        match reason {
            DropReason::Down => self.dropped_down,
            DropReason::Random => self.dropped_random,
            DropReason::Burst => self.dropped_burst,
            DropReason::Queue => self.dropped_queue,
        }
    }

    fn count_drop(&mut self, reason: DropReason) {
        *match reason {
            DropReason::Down => &mut self.dropped_down,
            DropReason::Random => &mut self.dropped_random,
            DropReason::Burst => &mut self.dropped_burst,
            DropReason::Queue => &mut self.dropped_queue,
        } += 1;
    }
}

/// A datagram waiting for its delivery time; ties go in submission order.
#[derive(Debug)]
struct Queued {
    at: Instant,
    order: u64,
    transmit: Transmit,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Queued {}

impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Queued {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.order).cmp(&(other.at, other.order))
    }
}

/// Emulated links toward some destinations of one socket, and the datagrams in flight on
/// them. See the module docs.
///
/// # Calling contract
///
/// Pass every outgoing datagram through [`Emulator::submit`] and send what it returns at once;
/// after every wake-up send whatever [`Emulator::poll_ready`] yields; wake up at
/// [`Emulator::next_deadline`] at the latest. Time must never go backwards.
#[derive(Debug)]
pub struct Emulator {
    links: BTreeMap<SocketAddr, Link>,
    /// Per destination; kept after [`Emulator::clear`] so counters never go back.
    stats: BTreeMap<SocketAddr, EmulationStats>,
    total: EmulationStats,
    rng: Rng,
    queue: BinaryHeap<Reverse<Queued>>,
    order: u64,
}

impl Emulator {
    /// An emulator with no emulated destination, whose random choices follow from `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            links: BTreeMap::new(),
            stats: BTreeMap::new(),
            total: EmulationStats::default(),
            rng: Rng::new(seed),
            queue: BinaryHeap::new(),
            order: 0,
        }
    }

    /// Emulates `params` on datagrams to `dst` from now on. Changing an existing link keeps
    /// its state: datagrams in flight keep their times, and later ones still follow them.
    pub fn set(&mut self, dst: SocketAddr, params: LinkParams) {
        self.links
            .entry(dst)
            .and_modify(|l| l.set_params(params))
            .or_insert_with(|| Link::new(params));
        self.stats.entry(dst).or_default();
    }

    /// Stops emulating toward `dst`: later datagrams go out at once. Those already in flight
    /// are still delivered at their time.
    pub fn clear(&mut self, dst: SocketAddr) {
        self.links.remove(&dst);
    }

    /// The parameters emulated toward `dst`, if any.
    pub fn params(&self, dst: SocketAddr) -> Option<&LinkParams> {
        self.links.get(&dst).map(Link::params)
    }

    /// Every emulated destination with its parameters, in address order.
    pub fn links(&self) -> impl Iterator<Item = (SocketAddr, &LinkParams)> {
        self.links.iter().map(|(a, l)| (*a, l.params()))
    }

    /// Whether the emulator has anything to do: a destination to emulate or a datagram in
    /// flight. An idle emulator passes everything through unchanged.
    pub fn is_active(&self) -> bool {
        !self.links.is_empty() || !self.queue.is_empty()
    }

    /// Takes a datagram the machine wants sent at `now`. Returns it when it must go out at
    /// once (no emulation toward its destination, or due now with nothing queued ahead of it);
    /// otherwise queues it for [`Emulator::poll_ready`] or drops it, and returns `None`.
    pub fn submit(&mut self, now: Instant, transmit: Transmit) -> Option<Transmit> {
        let Some(link) = self.links.get_mut(&transmit.dst) else {
            return Some(transmit);
        };
        let stats = self.stats.entry(transmit.dst).or_default();
        stats.offered += 1;
        self.total.offered += 1;
        match link.admit(now, transmit.payload.len(), &mut self.rng) {
            Verdict::Drop(reason) => {
                stats.count_drop(reason);
                self.total.count_drop(reason);
                None
            }
            // Due now: send at once, unless due datagrams still wait in the queue (they go
            // first, in order).
            Verdict::Deliver(at) if at <= now && self.queue.peek().is_none_or(|q| q.0.at > now) => {
                Some(transmit)
            }
            Verdict::Deliver(at) => {
                stats.delayed += 1;
                stats.in_flight += 1;
                self.total.delayed += 1;
                self.total.in_flight += 1;
                self.order += 1;
                self.queue.push(Reverse(Queued {
                    at,
                    order: self.order,
                    transmit,
                }));
                None
            }
        }
    }

    /// The next queued datagram due at or before `now`, in delivery order.
    pub fn poll_ready(&mut self, now: Instant) -> Option<Transmit> {
        if self.queue.peek()?.0.at > now {
            return None;
        }
        let Reverse(q) = self.queue.pop()?;
        if let Some(s) = self.stats.get_mut(&q.transmit.dst) {
            s.in_flight = s.in_flight.saturating_sub(1);
        }
        self.total.in_flight = self.total.in_flight.saturating_sub(1);
        Some(q.transmit)
    }

    /// When the next queued datagram is due, if any is queued.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.queue.peek().map(|q| q.0.at)
    }

    /// Counters over every destination.
    pub fn stats(&self) -> EmulationStats {
        self.total
    }

    /// Counters of one destination (zero if it was never emulated).
    pub fn stats_for(&self, dst: SocketAddr) -> EmulationStats {
        self.stats.get(&dst).copied().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const MS: Duration = Duration::from_millis(1);

    fn addr(last: u8) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, last], 7000))
    }

    fn tx(dst: SocketAddr, n: u8) -> Transmit {
        Transmit {
            dst,
            payload: vec![n; 100],
        }
    }

    /// Runs the emulator's clock from `t0` in 1 ms steps up to `until`, returning what came
    /// out and when.
    fn drain(em: &mut Emulator, t0: Instant, until: Duration) -> Vec<(Duration, Transmit)> {
        let mut out = Vec::new();
        let mut t = t0;
        while t <= t0 + until {
            while let Some(x) = em.poll_ready(t) {
                out.push((t - t0, x));
            }
            t += MS;
        }
        out
    }

    #[test]
    fn destinations_without_a_link_pass_straight_through() {
        let mut em = Emulator::new(1);
        let now = Instant::now();
        assert!(!em.is_active());
        assert_eq!(em.submit(now, tx(addr(2), 1)), Some(tx(addr(2), 1)));
        em.set(
            addr(3),
            LinkParams {
                latency: 5 * MS,
                ..LinkParams::default()
            },
        );
        assert!(em.is_active());
        assert_eq!(em.submit(now, tx(addr(2), 2)), Some(tx(addr(2), 2)));
        assert_eq!(em.stats(), EmulationStats::default());
    }

    #[test]
    fn delayed_datagrams_come_out_at_their_time_in_order() {
        let mut em = Emulator::new(2);
        let t0 = Instant::now();
        em.set(
            addr(2),
            LinkParams {
                latency: 10 * MS,
                ..LinkParams::default()
            },
        );
        for n in 0..5u8 {
            assert_eq!(em.submit(t0 + MS * u32::from(n), tx(addr(2), n)), None);
        }
        assert_eq!(em.next_deadline(), Some(t0 + 10 * MS));
        assert_eq!(em.stats().in_flight, 5);
        assert_eq!(em.poll_ready(t0 + 9 * MS), None);
        let out = drain(&mut em, t0, 20 * MS);
        let got: Vec<(Duration, u8)> = out.iter().map(|(t, x)| (*t, x.payload[0])).collect();
        assert_eq!(
            got,
            (0..5u8)
                .map(|n| (MS * (10 + u32::from(n)), n))
                .collect::<Vec<_>>()
        );
        let s = em.stats();
        assert_eq!((s.offered, s.delayed, s.in_flight), (5, 5, 0));
        assert_eq!(em.stats_for(addr(2)), s);
        assert_eq!(em.next_deadline(), None);
    }

    #[test]
    fn losses_are_counted_by_reason_per_destination() {
        let mut em = Emulator::new(3);
        let now = Instant::now();
        em.set(
            addr(2),
            LinkParams {
                up: false,
                ..LinkParams::default()
            },
        );
        em.set(
            addr(3),
            LinkParams {
                loss: 0.5,
                ..LinkParams::default()
            },
        );
        let mut passed = 0;
        for n in 0..100 {
            assert_eq!(em.submit(now, tx(addr(2), n)), None);
            passed += usize::from(em.submit(now, tx(addr(3), n)).is_some());
        }
        assert_eq!(em.stats_for(addr(2)).dropped_down, 100);
        let s3 = em.stats_for(addr(3));
        assert_eq!(s3.dropped_random as usize + passed, 100);
        assert!((30..70).contains(&passed), "{passed}");
        // Loss only: what survives goes out at once, nothing is queued.
        assert_eq!(s3.delayed, 0);
        let total = em.stats();
        assert_eq!(total.dropped(), 100 + s3.dropped_random);
        assert_eq!(total.dropped_by(DropReason::Down), 100);
        assert_eq!(total.offered, 200);
    }

    #[test]
    fn an_immediate_datagram_does_not_overtake_due_ones_still_queued() {
        let mut em = Emulator::new(4);
        let t0 = Instant::now();
        em.set(
            addr(2),
            LinkParams {
                latency: 5 * MS,
                ..LinkParams::default()
            },
        );
        assert_eq!(em.submit(t0, tx(addr(2), 1)), None);
        // The latency drops to zero; the first datagram is due but nobody polled yet.
        em.set(addr(2), LinkParams::default());
        assert_eq!(em.submit(t0 + 6 * MS, tx(addr(2), 2)), None);
        assert_eq!(em.poll_ready(t0 + 6 * MS).map(|x| x.payload[0]), Some(1));
        assert_eq!(em.poll_ready(t0 + 6 * MS).map(|x| x.payload[0]), Some(2));
        // With the queue empty, a due datagram goes out at once again.
        assert!(em.submit(t0 + 7 * MS, tx(addr(2), 3)).is_some());
    }

    #[test]
    fn clearing_a_destination_keeps_what_is_in_flight_and_its_counters() {
        let mut em = Emulator::new(5);
        let t0 = Instant::now();
        em.set(
            addr(2),
            LinkParams {
                latency: 5 * MS,
                ..LinkParams::default()
            },
        );
        assert_eq!(em.submit(t0, tx(addr(2), 1)), None);
        em.clear(addr(2));
        assert!(em.params(addr(2)).is_none());
        assert!(em.is_active(), "a datagram is still in flight");
        assert_eq!(em.submit(t0 + MS, tx(addr(2), 2)), Some(tx(addr(2), 2)));
        assert_eq!(drain(&mut em, t0, 10 * MS).len(), 1);
        assert!(!em.is_active());
        assert_eq!(em.stats_for(addr(2)).offered, 1);
    }
}
