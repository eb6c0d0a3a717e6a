//! The viewer's KPI recorder.
//!
//! # What
//!
//! [`ViewerStats`] is fed by the client with every media datagram it receives
//! (arrival time, datagram sequence number, payload) and turns that into a
//! [`ViewerReport`]: startup time, time to the first keyframe, continuity
//! errors, datagram sequence gaps, duplicates, reordering, stalls, volume and
//! bitrate. [`ViewerReport::to_json`] renders it as a pretty JSON object
//! (hand-written: this crate has no serde dependency).
//!
//! # Why
//!
//! These numbers are the quality verdict of a lab run, so they are measured
//! where the viewer sees the stream, on the bytes as they arrive. In
//! particular the TS continuity check ([`crate::ts::ContinuityChecker`]) is
//! the loss oracle: a recording made with `ffmpeg -c copy` rewrites the
//! continuity counters, so losses can no longer be detected from the file.
//!
//! # Purity
//!
//! Like the rest of the crate this module is sans-IO: it never reads the
//! clock. Every time is passed in as an [`Instant`]; reported times are
//! milliseconds since the watch request ([`ViewerStats::on_watch_requested`]),
//! or since the first media datagram if no request time was given.
//!
//! # Definitions
//!
//! * `media_packets` and `bytes` count every datagram received, duplicates
//!   included (what the network delivered).
//! * A datagram whose sequence number was already received is a duplicate:
//!   counted in `duplicate_packets`, but not fed to the continuity checker a
//!   second time and not taken as an arrival for stall detection (it carries
//!   nothing new for the player).
//! * `reordered` counts new sequence numbers lower than the highest one
//!   already received.
//! * `seq_gaps` is the number of distinct sequence numbers between the lowest
//!   and the highest received that were never received (a late arrival fills
//!   its gap).
//! * A stall is a gap longer than the threshold (strictly) between two
//!   consecutive new media arrivals; it starts at the earlier arrival. On
//!   [`ViewerStats::finish`] a gap from the last arrival to the end longer
//!   than the threshold is a trailing stall; with no media at all the whole
//!   session, from the request to the end, is one trailing stall.
//! * A media gap is the same measurement with a fixed, lower threshold,
//!   [`GAP_THRESHOLD`] (100 ms): the lab reads them to time repairs that
//!   stay under the stall threshold. At most [`MAX_GAPS`] are kept.
//! * `duration_ms` runs from the request to [`ViewerStats::finish`] (or to
//!   the last arrival before `finish`), and `bitrate_kbps` is
//!   `bytes * 8 / duration_ms` (bits per millisecond = kbit/s).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use crate::ts::{ContinuityChecker, ContinuitySummary};

/// Gaps between new media arrivals longer than this are listed in
/// [`ViewerReport::gaps`], whatever the stall threshold.
pub const GAP_THRESHOLD: Duration = Duration::from_millis(100);

/// Most media gaps a report lists (the first ones); a session that never
/// plays would otherwise grow the list without bound.
pub const MAX_GAPS: usize = 1000;

/// One playback stall: no new media for longer than the threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stall {
    /// Milliseconds since the watch request at which the gap started (the
    /// last arrival before it, or the request itself when no media came).
    pub start_ms: u64,
    /// Length of the gap in milliseconds.
    pub duration_ms: u64,
    /// The gap was still open when the session finished.
    pub trailing: bool,
}

/// The final numbers of one viewing session.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ViewerReport {
    /// Watch request → first media datagram.
    pub startup_ms: Option<f64>,
    /// Watch request → first datagram holding a random access point.
    pub first_keyframe_ms: Option<f64>,
    /// Media datagrams received (duplicates included).
    pub media_packets: u64,
    /// TS packets checked (duplicates excluded).
    pub ts_packets: u64,
    /// TS continuity errors.
    pub continuity_errors: u64,
    /// Datagram sequence numbers never received between the lowest and the
    /// highest received.
    pub seq_gaps: u64,
    /// Datagrams whose sequence number had already been received.
    pub duplicate_packets: u64,
    /// Datagrams that arrived after a higher sequence number.
    pub reordered: u64,
    /// Stalls in order of occurrence.
    pub stalls: Vec<Stall>,
    /// Media gaps longer than [`GAP_THRESHOLD`] in order of occurrence (the
    /// first [`MAX_GAPS`]): the short interruptions a repair leaves.
    pub gaps: Vec<Stall>,
    /// Media payload bytes received (duplicates included).
    pub bytes: u64,
    /// Watch request → finish.
    pub duration_ms: f64,
    /// `bytes * 8 / duration_ms`, 0 when the duration is 0.
    pub bitrate_kbps: f64,
    /// Latency of the playout buffer the packets went through, set by the caller.
    pub playout_latency_ms: f64,
    /// Datagrams skipped by the playout buffer: not there by their play time.
    pub lost_packets: u64,
    /// Datagrams that arrived after their play time (dropped, not played late).
    pub late_packets: u64,
    /// Datagrams found missing that arrived after a NACK.
    pub recovered_packets: u64,
    /// NACK datagrams sent to the PoP.
    pub nacks_sent: u64,
    /// Datagrams dropped because their checksum did not match.
    pub corrupt_packets: u64,
    /// Datagrams played on time / datagrams the source sent over the watch
    /// (`played / (played + lost)`), set by the caller.
    pub continuity_index: Option<f64>,
    /// Point of presence the viewer was attached to, set by the caller.
    pub pop: Option<String>,
}

/// Set of received sequence numbers kept as disjoint inclusive ranges
/// (`start -> end`); its size grows with the number of gaps, not with the
/// number of datagrams.
#[derive(Debug, Clone, Default)]
struct SeqSet {
    ranges: BTreeMap<u64, u64>,
    count: u64,
    highest: Option<u64>,
}

impl SeqSet {
    fn contains(&self, x: u64) -> bool {
        self.ranges
            .range(..=x)
            .next_back()
            .is_some_and(|(_, &end)| x <= end)
    }

    /// Inserts `x`; false if it was already present.
    fn insert(&mut self, x: u64) -> bool {
        if self.contains(x) {
            return false;
        }
        let left = x.checked_sub(1).and_then(|prev| {
            self.ranges
                .range(..=prev)
                .next_back()
                .filter(|&(_, &end)| end == prev)
                .map(|(&start, _)| start)
        });
        let right = x
            .checked_add(1)
            .and_then(|next| self.ranges.get(&next).map(|&end| (next, end)));
        match (left, right) {
            (Some(start), Some((next, end))) => {
                self.ranges.remove(&next);
                self.ranges.insert(start, end);
            }
            (Some(start), None) => {
                self.ranges.insert(start, x);
            }
            (None, Some((next, end))) => {
                self.ranges.remove(&next);
                self.ranges.insert(x, end);
            }
            (None, None) => {
                self.ranges.insert(x, x);
            }
        }
        self.count = self.count.saturating_add(1);
        self.highest = Some(self.highest.map_or(x, |h| h.max(x)));
        true
    }

    fn gaps(&self) -> u64 {
        match (self.ranges.first_key_value(), self.highest) {
            (Some((&lowest, _)), Some(highest)) => {
                (highest - lowest).saturating_sub(self.count.saturating_sub(1))
            }
            _ => 0,
        }
    }
}

/// Records what a viewer receives and computes its KPIs (see the module
/// docs for the exact definitions).
#[derive(Debug, Clone)]
pub struct ViewerStats {
    stall_threshold: Duration,
    watch_at: Option<Instant>,
    first_media_at: Option<Instant>,
    /// First datagram that reached the client (before any playout delay).
    first_arrival_at: Option<Instant>,
    first_keyframe_at: Option<Instant>,
    last_arrival: Option<Instant>,
    finished_at: Option<Instant>,
    media_packets: u64,
    bytes: u64,
    duplicate_packets: u64,
    reordered: u64,
    received: SeqSet,
    checker: ContinuityChecker,
    stalls: Vec<Stall>,
    gaps: Vec<Stall>,
}

fn ms_f64(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn ms_u64(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl ViewerStats {
    /// A recorder; a gap between media arrivals longer than
    /// `stall_threshold` (typically 200 ms) is a stall.
    pub fn new(stall_threshold: Duration) -> Self {
        Self {
            stall_threshold,
            watch_at: None,
            first_media_at: None,
            first_arrival_at: None,
            first_keyframe_at: None,
            last_arrival: None,
            finished_at: None,
            media_packets: 0,
            bytes: 0,
            duplicate_packets: 0,
            reordered: 0,
            received: SeqSet::default(),
            checker: ContinuityChecker::new(),
            stalls: Vec::new(),
            gaps: Vec::new(),
        }
    }

    /// The stall threshold given to [`new`](Self::new).
    pub fn stall_threshold(&self) -> Duration {
        self.stall_threshold
    }

    /// Sets the reference time: the moment the watch request was sent. A
    /// later call replaces it.
    pub fn on_watch_requested(&mut self, at: Instant) {
        self.watch_at = Some(at);
    }

    /// The reference all reported times are relative to.
    fn reference(&self) -> Option<Instant> {
        self.watch_at.or(self.first_media_at)
    }

    /// Milliseconds from the reference to `at` (0 if `at` is earlier or no
    /// reference is known).
    fn rel_ms(&self, at: Instant) -> u64 {
        self.reference()
            .map_or(0, |r| ms_u64(at.saturating_duration_since(r)))
    }

    /// The source restarted and numbers its datagrams from 0 again: forget the old sequence
    /// numbers (so new ones are not taken for duplicates), keep every counter and the stall
    /// timeline. The TS continuity counters restart too; the checker reports that once.
    pub fn on_source_restart(&mut self) {
        self.received = SeqSet::default();
    }

    /// A datagram reached the client (it may be played later, after the playout delay):
    /// startup time is measured to the first arrival.
    pub fn on_arrival(&mut self, at: Instant) {
        if self.first_arrival_at.is_none() {
            self.first_arrival_at = Some(at);
        }
    }

    /// Records one media datagram as it is delivered (played): its time, its sequence
    /// number and its payload (whole TS packets). Ignored after [`finish`](Self::finish).
    pub fn on_media(&mut self, at: Instant, seq: u64, payload: &[u8]) {
        if self.finished_at.is_some() {
            return;
        }
        self.media_packets = self.media_packets.saturating_add(1);
        self.bytes = self.bytes.saturating_add(payload.len() as u64);
        if self.first_media_at.is_none() {
            self.first_media_at = Some(at);
        }

        let highest_before = self.received.highest;
        if !self.received.insert(seq) {
            self.duplicate_packets = self.duplicate_packets.saturating_add(1);
            return;
        }
        if highest_before.is_some_and(|h| seq < h) {
            self.reordered = self.reordered.saturating_add(1);
        }

        let info = self.checker.push_chunk(payload);
        if info.random_access && self.first_keyframe_at.is_none() {
            self.first_keyframe_at = Some(at);
        }

        match self.last_arrival {
            Some(last) => {
                let gap = at.saturating_duration_since(last);
                self.record_gap(last, gap, false);
                self.last_arrival = Some(last.max(at));
            }
            None => self.last_arrival = Some(at),
        }
    }

    /// Lists a gap of `gap` after the arrival at `last` as a stall and as a
    /// media gap when it is long enough to be either.
    fn record_gap(&mut self, last: Instant, gap: Duration, trailing: bool) {
        let entry = Stall {
            start_ms: self.rel_ms(last),
            duration_ms: ms_u64(gap),
            trailing,
        };
        if gap > self.stall_threshold {
            self.stalls.push(entry);
        }
        if gap > GAP_THRESHOLD && self.gaps.len() < MAX_GAPS {
            self.gaps.push(entry);
        }
    }

    /// Ends the session at `at`: records a trailing stall if the last new
    /// media arrived more than the threshold before `at` (or if no media came
    /// at all). Only the first call has an effect; later media is ignored.
    pub fn finish(&mut self, at: Instant) {
        if self.finished_at.is_some() {
            return;
        }
        self.finished_at = Some(at);
        match self.last_arrival {
            Some(last) => {
                let gap = at.saturating_duration_since(last);
                self.record_gap(last, gap, true);
            }
            None => {
                let duration = self
                    .watch_at
                    .map_or(Duration::ZERO, |w| at.saturating_duration_since(w));
                self.stalls.push(Stall {
                    start_ms: 0,
                    duration_ms: ms_u64(duration),
                    trailing: true,
                });
            }
        }
    }

    /// Whether [`finish`](Self::finish) was called.
    pub fn is_finished(&self) -> bool {
        self.finished_at.is_some()
    }

    /// All counters of the TS continuity checker.
    pub fn continuity(&self) -> ContinuitySummary {
        self.checker.summary()
    }

    /// The KPIs so far (`pop` is left `None` for the caller to set).
    pub fn report(&self) -> ViewerReport {
        let reference = self.reference();
        let since_request = |t: Option<Instant>| -> Option<f64> {
            Some(ms_f64(t?.saturating_duration_since(self.watch_at?)))
        };
        let end = self.finished_at.or(self.last_arrival);
        let duration_ms = match (reference, end) {
            (Some(r), Some(e)) => ms_f64(e.saturating_duration_since(r)),
            _ => 0.0,
        };
        let bitrate_kbps = if duration_ms > 0.0 {
            self.bytes as f64 * 8.0 / duration_ms
        } else {
            0.0
        };
        let cc = self.checker.summary();
        ViewerReport {
            startup_ms: since_request(self.first_arrival_at.or(self.first_media_at)),
            first_keyframe_ms: since_request(self.first_keyframe_at),
            media_packets: self.media_packets,
            ts_packets: cc.packets,
            continuity_errors: cc.errors,
            seq_gaps: self.received.gaps(),
            duplicate_packets: self.duplicate_packets,
            reordered: self.reordered,
            stalls: self.stalls.clone(),
            gaps: self.gaps.clone(),
            bytes: self.bytes,
            duration_ms,
            bitrate_kbps,
            ..ViewerReport::default()
        }
    }
}

/// Appends a JSON number, or `null` when it is not finite.
fn push_f64(out: &mut String, v: f64) {
    if v.is_finite() {
        // `{:?}` keeps a decimal point or exponent ("100.0", "1e21"): valid JSON.
        let _ = write!(out, "{v:?}");
    } else {
        out.push_str("null");
    }
}

fn push_opt_f64(out: &mut String, v: Option<f64>) {
    match v {
        Some(v) => push_f64(out, v),
        None => out.push_str("null"),
    }
}

/// Appends `s` as a JSON string literal.
fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0C}' => out.push_str("\\f"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends a list of stalls (or gaps) as a JSON array.
fn push_stalls(out: &mut String, list: &[Stall]) {
    if list.is_empty() {
        out.push_str("[]");
        return;
    }
    out.push('[');
    for (i, s) in list.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(
            out,
            "\n    {{\n      \"start_ms\": {},\n      \"duration_ms\": {},\
             \n      \"trailing\": {}\n    }}",
            s.start_ms, s.duration_ms, s.trailing
        );
    }
    out.push_str("\n  ]");
}

impl ViewerReport {
    /// Pretty JSON object (two-space indent) with exactly the field names of
    /// the struct, `null` for `None` and for non-finite numbers.
    pub fn to_json(&self) -> String {
        let mut o = String::with_capacity(512);
        o.push_str("{\n  \"startup_ms\": ");
        push_opt_f64(&mut o, self.startup_ms);
        o.push_str(",\n  \"first_keyframe_ms\": ");
        push_opt_f64(&mut o, self.first_keyframe_ms);
        let _ = write!(
            o,
            ",\n  \"media_packets\": {},\n  \"ts_packets\": {},\n  \"continuity_errors\": {},\
             \n  \"seq_gaps\": {},\n  \"duplicate_packets\": {},\n  \"reordered\": {},\
             \n  \"stalls\": ",
            self.media_packets,
            self.ts_packets,
            self.continuity_errors,
            self.seq_gaps,
            self.duplicate_packets,
            self.reordered,
        );
        push_stalls(&mut o, &self.stalls);
        o.push_str(",\n  \"gaps\": ");
        push_stalls(&mut o, &self.gaps);
        let _ = write!(o, ",\n  \"bytes\": {},\n  \"duration_ms\": ", self.bytes);
        push_f64(&mut o, self.duration_ms);
        o.push_str(",\n  \"bitrate_kbps\": ");
        push_f64(&mut o, self.bitrate_kbps);
        o.push_str(",\n  \"playout_latency_ms\": ");
        push_f64(&mut o, self.playout_latency_ms);
        let _ = write!(
            o,
            ",\n  \"lost_packets\": {},\n  \"late_packets\": {},\n  \"recovered_packets\": {},\
             \n  \"nacks_sent\": {},\n  \"corrupt_packets\": {},\n  \"continuity_index\": ",
            self.lost_packets,
            self.late_packets,
            self.recovered_packets,
            self.nacks_sent,
            self.corrupt_packets,
        );
        push_opt_f64(&mut o, self.continuity_index);
        o.push_str(",\n  \"pop\": ");
        match &self.pop {
            Some(p) => push_json_str(&mut o, p),
            None => o.push_str("null"),
        }
        o.push_str("\n}");
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ts::TS_PACKET_LEN;
    use proptest::prelude::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    /// A base instant for the tests. Only offsets from it matter; the
    /// library code itself never reads the clock.
    fn t0() -> Instant {
        crate::test_epoch()
    }

    fn ts(pid: u16, cc: u8, rai: bool) -> [u8; TS_PACKET_LEN] {
        let mut p = [0xFFu8; TS_PACKET_LEN];
        p[0] = 0x47;
        p[1] = (pid >> 8) as u8 & 0x1F;
        p[2] = pid as u8;
        if rai {
            p[3] = 0x30 | (cc & 0x0F);
            p[4] = 7;
            p[5] = 0x40;
        } else {
            p[3] = 0x10 | (cc & 0x0F);
        }
        p
    }

    /// A datagram of 7 TS packets on PID 0x100 whose counters start at
    /// `7 * seq`, i.e. the natural payload of datagram `seq`.
    fn dgram(seq: u64, rai: bool) -> Vec<u8> {
        (0..7u64)
            .flat_map(|i| ts(0x100, ((seq * 7 + i) % 16) as u8, rai && i == 0))
            .collect()
    }

    #[test]
    fn startup_and_first_keyframe() {
        let t = t0();
        let mut v = ViewerStats::new(MS(200));
        v.on_watch_requested(t);
        assert_eq!(v.report().startup_ms, None);
        v.on_media(t + MS(150), 0, &dgram(0, false));
        v.on_media(t + MS(160), 1, &dgram(1, false));
        v.on_media(t + MS(170), 2, &dgram(2, true));
        v.on_media(t + MS(180), 3, &dgram(3, true));
        v.finish(t + MS(250));
        let r = v.report();
        assert_eq!(r.startup_ms, Some(150.0));
        assert_eq!(r.first_keyframe_ms, Some(170.0));
        assert_eq!(r.media_packets, 4);
        assert_eq!(r.ts_packets, 28);
        assert_eq!(r.continuity_errors, 0);
        assert_eq!(r.bytes, 4 * 7 * 188);
        assert_eq!(r.duration_ms, 250.0);
        assert_eq!(r.bitrate_kbps, (4 * 7 * 188 * 8) as f64 / 250.0);
        assert!(r.stalls.is_empty());
        assert_eq!(v.continuity().random_access_points, 2);
    }

    #[test]
    fn no_watch_request_means_no_startup() {
        let t = t0();
        let mut v = ViewerStats::new(MS(200));
        v.on_media(t, 0, &dgram(0, true));
        v.on_media(t + MS(500), 1, &dgram(1, false));
        v.finish(t + MS(600));
        let r = v.report();
        assert_eq!(r.startup_ms, None);
        assert_eq!(r.first_keyframe_ms, None);
        // Times fall back to being relative to the first media datagram.
        assert_eq!(
            r.stalls,
            vec![Stall {
                start_ms: 0,
                duration_ms: 500,
                trailing: false
            }]
        );
        assert_eq!(r.duration_ms, 600.0);
    }

    #[test]
    fn stall_detection_exact() {
        let t = t0();
        let mut v = ViewerStats::new(MS(200));
        v.on_watch_requested(t);
        let arrivals = [100u64, 120, 500, 600, 800, 1100, 1150];
        for (seq, &a) in arrivals.iter().enumerate() {
            v.on_media(t + MS(a), seq as u64, &dgram(seq as u64, false));
        }
        v.finish(t + MS(1300));
        let r = v.report();
        assert_eq!(
            r.stalls,
            vec![
                Stall {
                    start_ms: 120,
                    duration_ms: 380,
                    trailing: false
                },
                // 600 -> 800 is exactly the threshold: not a stall.
                Stall {
                    start_ms: 800,
                    duration_ms: 300,
                    trailing: false
                },
            ]
        );
        // Gaps are listed from 100 ms whatever the stall threshold: 500 -> 600
        // is exactly 100 ms (not listed), 600 -> 800 is a gap but no stall.
        let gap = |start_ms, duration_ms| Stall {
            start_ms,
            duration_ms,
            trailing: false,
        };
        let trailing = Stall {
            trailing: true,
            ..gap(1150, 150)
        };
        assert_eq!(
            r.gaps,
            vec![gap(120, 380), gap(600, 200), gap(800, 300), trailing]
        );
        assert_eq!(r.continuity_errors, 0);
        assert_eq!(r.seq_gaps, 0);
    }

    #[test]
    fn gap_list_is_bounded() {
        let t = t0();
        let mut v = ViewerStats::new(MS(200));
        v.on_watch_requested(t);
        for seq in 0..(MAX_GAPS as u64 + 10) {
            v.on_media(t + MS(seq * 150), seq, &dgram(seq, false));
        }
        let r = v.report();
        assert_eq!(r.gaps.len(), MAX_GAPS);
        assert!(r.stalls.is_empty());
    }

    #[test]
    fn trailing_stall() {
        let t = t0();
        let mut v = ViewerStats::new(MS(200));
        v.on_watch_requested(t);
        v.on_media(t + MS(100), 0, &dgram(0, false));
        v.on_media(t + MS(150), 1, &dgram(1, false));
        v.finish(t + MS(1150));
        let r = v.report();
        assert_eq!(
            r.stalls,
            vec![Stall {
                start_ms: 150,
                duration_ms: 1000,
                trailing: true
            }]
        );
        // A second finish and later media change nothing.
        v.on_media(t + MS(1200), 2, &dgram(2, false));
        v.finish(t + MS(5000));
        assert_eq!(v.report(), r);
        assert!(v.is_finished());

        // Finishing within the threshold: no trailing stall.
        let mut v = ViewerStats::new(MS(200));
        v.on_watch_requested(t);
        v.on_media(t + MS(100), 0, &dgram(0, false));
        v.finish(t + MS(300));
        assert!(v.report().stalls.is_empty());
    }

    #[test]
    fn no_media_is_one_stall() {
        let t = t0();
        let mut v = ViewerStats::new(MS(200));
        v.on_watch_requested(t);
        v.finish(t + MS(3000));
        let r = v.report();
        assert_eq!(
            r.stalls,
            vec![Stall {
                start_ms: 0,
                duration_ms: 3000,
                trailing: true
            }]
        );
        assert_eq!(r.startup_ms, None);
        assert_eq!(r.duration_ms, 3000.0);
        assert_eq!(r.bitrate_kbps, 0.0);
        assert_eq!(r.media_packets, 0);
    }

    #[test]
    fn duplicates_not_double_fed() {
        let t = t0();
        let mut v = ViewerStats::new(MS(200));
        v.on_watch_requested(t);
        v.on_media(t + MS(10), 0, &dgram(0, false));
        v.on_media(t + MS(20), 1, &dgram(1, false));
        // Datagram 1 again, twice: fed to the checker it would show up as
        // continuity errors (7 packets jump back).
        v.on_media(t + MS(25), 1, &dgram(1, false));
        v.on_media(t + MS(26), 1, &dgram(1, false));
        v.on_media(t + MS(30), 2, &dgram(2, false));
        let r = v.report();
        assert_eq!(r.duplicate_packets, 2);
        assert_eq!(r.media_packets, 5);
        assert_eq!(r.ts_packets, 21);
        assert_eq!(r.continuity_errors, 0);
        assert_eq!(r.bytes, 5 * 7 * 188);
        assert_eq!(r.seq_gaps, 0);
        assert_eq!(r.reordered, 0);
    }

    #[test]
    fn duplicates_do_not_end_a_stall() {
        let t = t0();
        let mut v = ViewerStats::new(MS(200));
        v.on_watch_requested(t);
        v.on_media(t, 0, &dgram(0, false));
        v.on_media(t + MS(150), 0, &dgram(0, false));
        v.on_media(t + MS(300), 1, &dgram(1, false));
        assert_eq!(
            v.report().stalls,
            vec![Stall {
                start_ms: 0,
                duration_ms: 300,
                trailing: false
            }]
        );
    }

    #[test]
    fn seq_gap_counting() {
        let t = t0();
        let mut v = ViewerStats::new(MS(200));
        v.on_watch_requested(t);
        for (i, seq) in [10u64, 11, 14, 15, 20].into_iter().enumerate() {
            v.on_media(t + MS(i as u64), seq, &dgram(seq, false));
        }
        let r = v.report();
        // Missing: 12, 13, 16, 17, 18, 19.
        assert_eq!(r.seq_gaps, 6);
        // Two datagram losses on one PID: two continuity errors.
        assert_eq!(r.continuity_errors, 2);
        // 12, 13 lost: 14 TS packets; 16..=19 lost: 28 = 12 mod 16.
        assert_eq!(v.continuity().missing_packets_estimate, 14 + 12);
        // A late arrival fills its gap.
        v.on_media(t + MS(10), 12, &dgram(12, false));
        assert_eq!(v.report().seq_gaps, 5);
        assert_eq!(v.report().reordered, 1);
    }

    #[test]
    fn reorder_counting() {
        let t = t0();
        let mut v = ViewerStats::new(MS(200));
        v.on_watch_requested(t);
        for (i, seq) in [0u64, 2, 1, 3, 6, 4, 5, 7, 5].into_iter().enumerate() {
            v.on_media(t + MS(i as u64), seq, &[]);
        }
        let r = v.report();
        assert_eq!(r.reordered, 3); // 1, 4, 5
        assert_eq!(r.duplicate_packets, 1); // the second 5
        assert_eq!(r.seq_gaps, 0);
        assert_eq!(r.media_packets, 9);
    }

    #[test]
    fn seq_set_edges() {
        let mut s = SeqSet::default();
        assert_eq!(s.gaps(), 0);
        assert!(s.insert(u64::MAX));
        assert!(s.insert(0));
        assert_eq!(s.gaps(), u64::MAX - 1);
        assert!(s.insert(u64::MAX - 1));
        assert!(s.insert(1));
        assert!(!s.insert(1));
        assert_eq!(s.gaps(), u64::MAX - 3);
        assert_eq!(s.ranges.len(), 2);
    }

    // ---- JSON -----------------------------------------------------------

    #[test]
    fn json_exact() {
        let r = ViewerReport {
            startup_ms: Some(150.5),
            first_keyframe_ms: None,
            media_packets: 4,
            ts_packets: 28,
            continuity_errors: 1,
            seq_gaps: 2,
            duplicate_packets: 3,
            reordered: 5,
            stalls: vec![
                Stall {
                    start_ms: 120,
                    duration_ms: 380,
                    trailing: false,
                },
                Stall {
                    start_ms: 900,
                    duration_ms: 1000,
                    trailing: true,
                },
            ],
            gaps: vec![Stall {
                start_ms: 40,
                duration_ms: 150,
                trailing: false,
            }],
            bytes: 5264,
            duration_ms: 250.0,
            bitrate_kbps: f64::NAN,
            pop: Some("pop-\"a\"\\b\n\u{1}é".to_string()),
            ..ViewerReport::default()
        };
        let expected = r#"{
  "startup_ms": 150.5,
  "first_keyframe_ms": null,
  "media_packets": 4,
  "ts_packets": 28,
  "continuity_errors": 1,
  "seq_gaps": 2,
  "duplicate_packets": 3,
  "reordered": 5,
  "stalls": [
    {
      "start_ms": 120,
      "duration_ms": 380,
      "trailing": false
    },
    {
      "start_ms": 900,
      "duration_ms": 1000,
      "trailing": true
    }
  ],
  "gaps": [
    {
      "start_ms": 40,
      "duration_ms": 150,
      "trailing": false
    }
  ],
  "bytes": 5264,
  "duration_ms": 250.0,
  "bitrate_kbps": null,
  "playout_latency_ms": 0.0,
  "lost_packets": 0,
  "late_packets": 0,
  "recovered_packets": 0,
  "nacks_sent": 0,
  "corrupt_packets": 0,
  "continuity_index": null,
  "pop": "pop-\"a\"\\b\n\u0001é"
}"#;
        assert_eq!(r.to_json(), expected);

        let empty = ViewerReport::default().to_json();
        assert!(empty.contains("\"stalls\": [],"));
        assert!(empty.ends_with("\"pop\": null\n}"));
        parse_json(&empty).unwrap();
    }

    /// Minimal JSON value and parser, enough to check the output is valid.
    #[derive(Debug, Clone, PartialEq)]
    enum J {
        Null,
        Bool(bool),
        Num(f64),
        Str(String),
        Arr(Vec<J>),
        Obj(Vec<(String, J)>),
    }

    impl J {
        fn get(&self, k: &str) -> Option<&J> {
            match self {
                J::Obj(v) => v.iter().find(|(n, _)| n == k).map(|(_, v)| v),
                _ => None,
            }
        }
    }

    fn parse_json(s: &str) -> Result<J, String> {
        let b = s.as_bytes();
        let mut i = 0;
        let v = value(b, &mut i)?;
        ws(b, &mut i);
        if i != b.len() {
            return Err(format!("trailing data at {i}"));
        }
        Ok(v)
    }

    fn ws(b: &[u8], i: &mut usize) {
        while *i < b.len() && matches!(b[*i], b' ' | b'\n' | b'\r' | b'\t') {
            *i += 1;
        }
    }

    fn lit(b: &[u8], i: &mut usize, l: &str) -> Result<(), String> {
        if b[*i..].starts_with(l.as_bytes()) {
            *i += l.len();
            Ok(())
        } else {
            Err(format!("expected {l} at {i}"))
        }
    }

    fn value(b: &[u8], i: &mut usize) -> Result<J, String> {
        ws(b, i);
        match b.get(*i) {
            Some(b'n') => lit(b, i, "null").map(|_| J::Null),
            Some(b't') => lit(b, i, "true").map(|_| J::Bool(true)),
            Some(b'f') => lit(b, i, "false").map(|_| J::Bool(false)),
            Some(b'"') => string(b, i).map(J::Str),
            Some(b'[') => {
                *i += 1;
                let mut v = Vec::new();
                ws(b, i);
                if b.get(*i) == Some(&b']') {
                    *i += 1;
                    return Ok(J::Arr(v));
                }
                loop {
                    v.push(value(b, i)?);
                    ws(b, i);
                    match b.get(*i) {
                        Some(b',') => *i += 1,
                        Some(b']') => {
                            *i += 1;
                            return Ok(J::Arr(v));
                        }
                        _ => return Err(format!("bad array at {i}")),
                    }
                }
            }
            Some(b'{') => {
                *i += 1;
                let mut v = Vec::new();
                ws(b, i);
                if b.get(*i) == Some(&b'}') {
                    *i += 1;
                    return Ok(J::Obj(v));
                }
                loop {
                    ws(b, i);
                    let k = string(b, i)?;
                    ws(b, i);
                    lit(b, i, ":")?;
                    let x = value(b, i)?;
                    if v.iter().any(|(n, _)| *n == k) {
                        return Err(format!("duplicate key {k}"));
                    }
                    v.push((k, x));
                    ws(b, i);
                    match b.get(*i) {
                        Some(b',') => *i += 1,
                        Some(b'}') => {
                            *i += 1;
                            return Ok(J::Obj(v));
                        }
                        _ => return Err(format!("bad object at {i}")),
                    }
                }
            }
            Some(_) => number(b, i),
            None => Err("unexpected end".into()),
        }
    }

    fn number(b: &[u8], i: &mut usize) -> Result<J, String> {
        let start = *i;
        if b.get(*i) == Some(&b'-') {
            *i += 1;
        }
        let digits = |i: &mut usize| {
            let s = *i;
            while *i < b.len() && b[*i].is_ascii_digit() {
                *i += 1;
            }
            *i - s
        };
        let int_start = *i;
        let n = digits(i);
        if n == 0 || (n > 1 && b[int_start] == b'0') {
            return Err(format!("bad number at {start}"));
        }
        if b.get(*i) == Some(&b'.') {
            *i += 1;
            if digits(i) == 0 {
                return Err(format!("bad fraction at {start}"));
            }
        }
        if matches!(b.get(*i), Some(b'e' | b'E')) {
            *i += 1;
            if matches!(b.get(*i), Some(b'+' | b'-')) {
                *i += 1;
            }
            if digits(i) == 0 {
                return Err(format!("bad exponent at {start}"));
            }
        }
        let text = std::str::from_utf8(&b[start..*i]).map_err(|e| e.to_string())?;
        text.parse().map(J::Num).map_err(|e| format!("{e}"))
    }

    fn string(b: &[u8], i: &mut usize) -> Result<String, String> {
        lit(b, i, "\"")?;
        let mut out: Vec<u8> = Vec::new();
        loop {
            match b.get(*i) {
                None => return Err("unterminated string".into()),
                Some(b'"') => {
                    *i += 1;
                    return String::from_utf8(out).map_err(|e| e.to_string());
                }
                Some(&c) if c < 0x20 => return Err(format!("raw control char at {i}")),
                Some(b'\\') => {
                    *i += 1;
                    let e = *b.get(*i).ok_or("bad escape")?;
                    *i += 1;
                    let ch = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'u' => {
                            let hex = b.get(*i..*i + 4).ok_or("short \\u")?;
                            *i += 4;
                            let code = u32::from_str_radix(
                                std::str::from_utf8(hex).map_err(|e| e.to_string())?,
                                16,
                            )
                            .map_err(|e| e.to_string())?;
                            char::from_u32(code).ok_or("surrogate in \\u")?
                        }
                        _ => return Err(format!("bad escape at {i}")),
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
                Some(&c) => {
                    out.push(c);
                    *i += 1;
                }
            }
        }
    }

    #[test]
    fn a_restarted_source_is_not_taken_for_duplicates() {
        let t = t0();
        let mut v = ViewerStats::new(MS(200));
        v.on_watch_requested(t);
        for i in 0..10u64 {
            v.on_media(t + MS(10 * i), i, &dgram(i, i == 0));
        }
        v.on_source_restart();
        for i in 0..10u64 {
            v.on_media(t + MS(100 + 10 * i), i, &dgram(i, i == 0));
        }
        let r = v.report();
        assert_eq!(r.duplicate_packets, 0);
        assert_eq!(r.media_packets, 20);
        assert!(r.stalls.is_empty(), "{:?}", r.stalls);
    }

    #[test]
    fn json_parses_back() {
        let t = t0();
        let mut v = ViewerStats::new(MS(200));
        v.on_watch_requested(t);
        v.on_media(t + MS(120), 0, &dgram(0, true));
        v.on_media(t + MS(700), 1, &dgram(1, false));
        v.finish(t + MS(1000));
        let mut r = v.report();
        r.pop = Some("eu-west\t\"1\"".into());
        let j = parse_json(&r.to_json()).unwrap();
        let keys: Vec<&str> = match &j {
            J::Obj(v) => v.iter().map(|(k, _)| k.as_str()).collect(),
            _ => panic!("not an object"),
        };
        assert_eq!(
            keys,
            [
                "startup_ms",
                "first_keyframe_ms",
                "media_packets",
                "ts_packets",
                "continuity_errors",
                "seq_gaps",
                "duplicate_packets",
                "reordered",
                "stalls",
                "gaps",
                "bytes",
                "duration_ms",
                "bitrate_kbps",
                "playout_latency_ms",
                "lost_packets",
                "late_packets",
                "recovered_packets",
                "nacks_sent",
                "corrupt_packets",
                "continuity_index",
                "pop"
            ]
        );
        assert_eq!(j.get("startup_ms"), Some(&J::Num(120.0)));
        assert_eq!(j.get("first_keyframe_ms"), Some(&J::Num(120.0)));
        assert_eq!(j.get("pop"), Some(&J::Str("eu-west\t\"1\"".into())));
        assert_eq!(
            j.get("stalls"),
            Some(&J::Arr(vec![
                J::Obj(vec![
                    ("start_ms".into(), J::Num(120.0)),
                    ("duration_ms".into(), J::Num(580.0)),
                    ("trailing".into(), J::Bool(false)),
                ]),
                J::Obj(vec![
                    ("start_ms".into(), J::Num(700.0)),
                    ("duration_ms".into(), J::Num(300.0)),
                    ("trailing".into(), J::Bool(true)),
                ]),
            ]))
        );
        assert_eq!(j.get("bitrate_kbps"), Some(&J::Num(r.bitrate_kbps)));
    }

    proptest! {
        #[test]
        fn json_round_trips(
            pop in proptest::option::of(any::<String>()),
            startup in proptest::option::of(any::<f64>()),
            duration in any::<f64>(),
            counts in any::<[u64; 7]>(),
            stalls in proptest::collection::vec(any::<(u64, u64, bool)>(), 0..4),
        ) {
            let r = ViewerReport {
                startup_ms: startup,
                first_keyframe_ms: None,
                media_packets: counts[0],
                ts_packets: counts[1],
                continuity_errors: counts[2],
                seq_gaps: counts[3],
                duplicate_packets: counts[4],
                reordered: counts[5],
                stalls: stalls.iter().map(|&(s, d, t)| Stall {
                    start_ms: s, duration_ms: d, trailing: t }).collect(),
                bytes: counts[6],
                duration_ms: duration,
                bitrate_kbps: 1.5,
                pop: pop.clone(),
                ..ViewerReport::default()
            };
            let j = parse_json(&r.to_json()).map_err(TestCaseError::fail)?;
            prop_assert_eq!(j.get("pop"), Some(&pop.map_or(J::Null, J::Str)));
            let want = match startup {
                Some(x) if x.is_finite() => J::Num(x),
                _ => J::Null,
            };
            prop_assert_eq!(j.get("startup_ms"), Some(&want));
            let want = if duration.is_finite() { J::Num(duration) } else { J::Null };
            prop_assert_eq!(j.get("duration_ms"), Some(&want));
            match j.get("stalls") {
                Some(J::Arr(v)) => prop_assert_eq!(v.len(), stalls.len()),
                other => prop_assert!(false, "stalls: {:?}", other),
            }
        }

        /// Sequence accounting against a plain BTreeSet oracle.
        #[test]
        fn seq_accounting_matches_oracle(seqs in proptest::collection::vec(0u64..200, 0..300)) {
            let t = t0();
            let mut v = ViewerStats::new(MS(200));
            v.on_watch_requested(t);
            for (i, &s) in seqs.iter().enumerate() {
                v.on_media(t + MS(i as u64), s, &[]);
            }
            let mut seen = std::collections::BTreeSet::new();
            let (mut dups, mut reord) = (0u64, 0u64);
            for &s in &seqs {
                let highest = seen.iter().next_back().copied();
                if !seen.insert(s) {
                    dups += 1;
                } else if highest.is_some_and(|h| s < h) {
                    reord += 1;
                }
            }
            let gaps = match (seen.first(), seen.last()) {
                (Some(&lo), Some(&hi)) => (lo..=hi).filter(|x| !seen.contains(x)).count() as u64,
                _ => 0,
            };
            let r = v.report();
            prop_assert_eq!(r.duplicate_packets, dups);
            prop_assert_eq!(r.reordered, reord);
            prop_assert_eq!(r.seq_gaps, gaps);
            prop_assert_eq!(r.media_packets, seqs.len() as u64);
        }

        /// Arbitrary payloads and times never panic.
        #[test]
        fn arbitrary_input_never_panics(
            events in proptest::collection::vec(
                (0u64..5000, any::<u64>(), proptest::collection::vec(any::<u8>(), 0..600)), 0..30),
            end in 0u64..10_000,
        ) {
            let t = t0();
            let mut v = ViewerStats::new(MS(200));
            v.on_watch_requested(t + MS(100));
            for (at, seq, payload) in &events {
                v.on_media(t + MS(*at), *seq, payload);
            }
            v.finish(t + MS(end));
            let r = v.report();
            prop_assert!(r.ts_packets <= r.bytes / 188);
            parse_json(&r.to_json()).map_err(TestCaseError::fail)?;
        }
    }
}
