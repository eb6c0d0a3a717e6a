//! The viewer's playout buffer: reorders media by sequence number and releases each packet
//! at its source timestamp plus a fixed latency (timestamp-based playout, as SRT does), so
//! retransmitted packets can still take their place, and a packet that cannot arrive in time
//! is skipped rather than played late.
//!
//! The source clock is mapped to the local clock by the smallest `arrival − timestamp` seen:
//! the fastest packet defines the path delay, and every packet is due `latency` after that.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// What happened to the packets that went through the buffer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlayoutStats {
    /// Packets released in order.
    pub released: u64,
    /// Sequence numbers skipped because they had not arrived by their play time.
    pub lost: u64,
    /// Packets that arrived after their place was already played (or skipped).
    pub late: u64,
    /// Packets received twice.
    pub duplicates: u64,
}

/// The playout buffer of one watched stream.
#[derive(Debug)]
pub struct Playout {
    latency: Duration,
    /// Local instant corresponding to source timestamp `base.1`, on the fastest path seen.
    base: Option<(Instant, u32)>,
    next_seq: Option<u64>,
    pending: BTreeMap<u64, (u32, Vec<u8>)>,
    stats: PlayoutStats,
}

/// Sequence numbers further ahead than this restart the buffer (a restarted source).
const RESTART_GAP: u64 = 4096;

impl Playout {
    /// A buffer that delays every packet by `latency` after its fastest-path arrival time.
    pub fn new(latency: Duration) -> Self {
        Self {
            latency,
            base: None,
            next_seq: None,
            pending: BTreeMap::new(),
            stats: PlayoutStats::default(),
        }
    }

    /// The configured latency.
    pub fn latency(&self) -> Duration {
        self.latency
    }

    /// Counters so far.
    pub fn stats(&self) -> &PlayoutStats {
        &self.stats
    }

    /// Microseconds from `from` to `to` on the wrapping source clock.
    fn ts_delta(from: u32, to: u32) -> i64 {
        i64::from(to.wrapping_sub(from) as i32)
    }

    /// When a packet with source timestamp `ts` is due.
    pub fn play_time(&self, ts: u32) -> Option<Instant> {
        let (local, base_ts) = self.base?;
        let d = Self::ts_delta(base_ts, ts);
        let at = if d >= 0 {
            local + Duration::from_micros(d as u64)
        } else {
            local.checked_sub(Duration::from_micros(d.unsigned_abs()))?
        };
        Some(at + self.latency)
    }

    /// Takes a packet in. Returns false if it is a duplicate or arrived too late to play.
    pub fn push(&mut self, now: Instant, seq: u64, ts: u32, payload: Vec<u8>) -> bool {
        match self.base {
            None => self.base = Some((now, ts)),
            Some((local, base_ts)) => {
                // The local instant this packet's timestamp maps to on this arrival.
                let d = Self::ts_delta(base_ts, ts);
                let implied = if d >= 0 {
                    now.checked_sub(Duration::from_micros(d as u64))
                } else {
                    Some(now + Duration::from_micros(d.unsigned_abs()))
                };
                if let Some(i) = implied
                    && i < local
                {
                    self.base = Some((i, base_ts));
                }
            }
        }
        match self.next_seq {
            None => self.next_seq = Some(seq),
            Some(next) if seq < next => {
                if next - seq > RESTART_GAP {
                    self.restart(now, seq, ts);
                } else {
                    self.stats.late += 1;
                    return false;
                }
            }
            Some(next) if seq - next > RESTART_GAP => self.restart(now, seq, ts),
            Some(_) => {}
        }
        if self.pending.contains_key(&seq) {
            self.stats.duplicates += 1;
            return false;
        }
        self.pending.insert(seq, (ts, payload));
        true
    }

    fn restart(&mut self, now: Instant, seq: u64, ts: u32) {
        self.pending.clear();
        self.base = Some((now, ts));
        self.next_seq = Some(seq);
    }

    /// The next packet due at `now`, in sequence order. Missing packets are waited for until
    /// a later packet is due; then they are skipped and counted lost.
    pub fn pop_ready(&mut self, now: Instant) -> Option<(u64, Vec<u8>)> {
        let next = self.next_seq?;
        let (&seq, &(ts, _)) = self.pending.first_key_value()?;
        if self.play_time(ts).is_none_or(|t| t > now) {
            return None;
        }
        if seq > next {
            self.stats.lost += seq - next;
        }
        let (_, payload) = self.pending.remove(&seq)?.to_owned();
        self.next_seq = Some(seq + 1);
        self.stats.released += 1;
        Some((seq, payload))
    }

    /// When the next packet is due, if one is waiting.
    pub fn next_deadline(&self) -> Option<Instant> {
        let (_, (ts, _)) = self.pending.first_key_value()?;
        self.play_time(*ts)
    }

    /// The sequence number the buffer waits for next.
    pub fn next_seq(&self) -> Option<u64> {
        self.next_seq
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    fn drain(p: &mut Playout, now: Instant) -> Vec<u64> {
        std::iter::from_fn(|| p.pop_ready(now).map(|(s, _)| s)).collect()
    }

    #[test]
    fn packets_are_held_for_the_latency_then_released_in_order() {
        let t0 = crate::test_epoch();
        let mut p = Playout::new(MS(100));
        p.push(t0, 10, 0, vec![1]);
        p.push(t0 + MS(12), 12, 10_000, vec![3]);
        p.push(t0 + MS(13), 11, 5_000, vec![2]);
        assert!(drain(&mut p, t0 + MS(99)).is_empty());
        assert_eq!(drain(&mut p, t0 + MS(100)), vec![10]);
        assert_eq!(drain(&mut p, t0 + MS(110)), vec![11, 12]);
        assert_eq!(p.stats().lost, 0);
    }

    #[test]
    fn a_retransmission_in_time_takes_its_place_and_a_late_one_is_dropped() {
        let t0 = crate::test_epoch();
        let mut p = Playout::new(MS(50));
        p.push(t0, 0, 0, vec![]);
        p.push(t0 + MS(10), 2, 10_000, vec![]);
        // 1 is retransmitted and arrives 40 ms later: still before its play time (t0+55)
        assert!(p.push(t0 + MS(40), 1, 5_000, vec![]));
        assert_eq!(drain(&mut p, t0 + MS(60)), vec![0, 1, 2]);
        // 3 never comes; 4 is due at t0+70: 3 is skipped and counted lost
        p.push(t0 + MS(20), 4, 20_000, vec![]);
        assert_eq!(drain(&mut p, t0 + MS(70)), vec![4]);
        assert_eq!(p.stats().lost, 1);
        assert!(
            !p.push(t0 + MS(80), 3, 15_000, vec![]),
            "too late: dropped, not played"
        );
        assert_eq!(p.stats().late, 1);
    }

    #[test]
    fn the_fastest_path_defines_the_delay() {
        let t0 = crate::test_epoch();
        let mut p = Playout::new(MS(10));
        p.push(t0 + MS(30), 0, 0, vec![]); // first packet was slow
        p.push(t0 + MS(35), 1, 20_000, vec![]); // this one maps the base back to t0+15
        assert_eq!(p.play_time(0), Some(t0 + MS(25)));
    }

    #[test]
    fn a_restarted_source_starts_a_new_sequence() {
        let t0 = crate::test_epoch();
        let mut p = Playout::new(MS(0));
        p.push(t0, 100_000, 0, vec![]);
        assert_eq!(drain(&mut p, t0), vec![100_000]);
        assert!(p.push(t0 + MS(1), 0, 7, vec![]));
        assert_eq!(drain(&mut p, t0 + MS(1)), vec![0]);
    }

    proptest! {
        #[test]
        fn releases_are_strictly_increasing_and_every_packet_is_accounted_for(
            order in Just((0u64..200).collect::<Vec<_>>()).prop_shuffle(),
            drops in prop::collection::btree_set(0u64..200, 0..20),
        ) {
            let t0 = crate::test_epoch();
            let mut p = Playout::new(MS(20));
            let mut released = Vec::new();
            for (i, seq) in order.iter().enumerate() {
                if drops.contains(seq) { continue; }
                let now = t0 + Duration::from_micros(i as u64 * 500);
                p.push(now, *seq, (*seq * 1000) as u32, vec![]);
                released.extend(drain(&mut p, now));
            }
            released.extend(drain(&mut p, t0 + Duration::from_secs(10)));
            prop_assert!(released.windows(2).all(|w| w[0] < w[1]));
            let s = p.stats();
            let received = 200 - drops.len() as u64;
            prop_assert_eq!(s.released + s.late + s.duplicates, received);
        }
    }
}
