//! MPEG-TS packet view and an exact per-PID continuity checker.
//!
//! # What
//!
//! * [`TsPacket`] is a zero-copy, bounds-safe view of one 188-byte transport
//!   stream packet (ISO/IEC 13818-1 §2.4.3.2) exposing the header fields the
//!   mesh cares about: PID, payload-unit-start, transport-error, continuity
//!   counter, adaptation-field control and the two adaptation-field flags
//!   `discontinuity_indicator` and `random_access_indicator`.
//! * [`ContinuityChecker`] consumes media datagram payloads (any number of
//!   whole TS packets) and applies the continuity-counter rules of
//!   ISO/IEC 13818-1 §2.4.3.3 exactly, per PID.
//!
//! # Why
//!
//! The continuity check is the lab's *loss oracle*: it is computed on the
//! bytes exactly as they arrive at the viewer, before anything else touches
//! them. Recording the stream afterwards with `ffmpeg -c copy` (or any remuxer)
//! rewrites the continuity counters, so losses would be invisible in the
//! recorded file; the live check here is the only place where a dropped TS
//! packet is still observable. Datagram sequence gaps (see `stats`) tell how
//! many *datagrams* were lost; this checker tells whether the elementary
//! streams the player decodes were actually damaged.
//!
//! # Rules applied (per PID)
//!
//! * The null PID `0x1FFF` is ignored (counted in `packets`, nothing else).
//! * Packets with `transport_error_indicator` set are counted in `packets` and
//!   `transport_errors` but are otherwise ignored: their header (PID, CC) is
//!   not trustworthy.
//! * Packets without payload (adaptation field control `0b10` or the reserved
//!   `0b00`) do not take part in the check and do not update the state.
//!   If such a packet carries `discontinuity_indicator`, the next payload
//!   packet of that PID is accepted with any counter.
//! * For packets with payload the expected counter is `(last + 1) mod 16`.
//! * Repeating the previous counter is a legal duplicate (counted in
//!   `duplicates`), but only once in a row; a second (third, …) consecutive
//!   repeat is an error each time (adding nothing to
//!   `missing_packets_estimate`, since a repeat is not a gap).
//! * A payload packet with `discontinuity_indicator` set is accepted with any
//!   counter (counted in `signalled_discontinuities`).
//! * Any other counter is one error, however many packets are missing, and
//!   `(cc - expected) mod 16` is added to `missing_packets_estimate`. A loss
//!   of exactly a multiple of 16 packets is undetectable by design, and a
//!   loss of `16k + 15` packets looks like a duplicate.
//! * The first payload packet of a PID only establishes the counter.
//!
//! Everything here is pure and total: arbitrary input bytes never panic.

use std::collections::BTreeMap;

/// Length of one transport stream packet in bytes.
pub const TS_PACKET_LEN: usize = 188;
/// The sync byte every transport stream packet starts with.
pub const TS_SYNC: u8 = 0x47;
/// The null (stuffing) PID, ignored by the continuity check.
pub const NULL_PID: u16 = 0x1FFF;

/// A view of one 188-byte MPEG-TS packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TsPacket<'a> {
    bytes: &'a [u8; TS_PACKET_LEN],
}

impl<'a> TsPacket<'a> {
    /// Views `bytes` as a TS packet: `bytes` must be exactly 188 bytes long
    /// and start with the sync byte `0x47`.
    pub fn parse(bytes: &'a [u8]) -> Option<Self> {
        let bytes: &'a [u8; TS_PACKET_LEN] = bytes.try_into().ok()?;
        if bytes[0] != TS_SYNC {
            return None;
        }
        Some(Self { bytes })
    }

    /// The whole 188 bytes of the packet.
    pub fn as_bytes(&self) -> &'a [u8; TS_PACKET_LEN] {
        self.bytes
    }

    /// `transport_error_indicator`.
    pub fn transport_error(&self) -> bool {
        self.bytes[1] & 0x80 != 0
    }

    /// `payload_unit_start_indicator`.
    pub fn payload_unit_start(&self) -> bool {
        self.bytes[1] & 0x40 != 0
    }

    /// The 13-bit packet identifier.
    pub fn pid(&self) -> u16 {
        (u16::from(self.bytes[1] & 0x1F) << 8) | u16::from(self.bytes[2])
    }

    /// `adaptation_field_control` (2 bits): `0b01` payload only, `0b10`
    /// adaptation field only, `0b11` both, `0b00` reserved.
    pub fn adaptation_field_control(&self) -> u8 {
        (self.bytes[3] >> 4) & 0x03
    }

    /// The 4-bit `continuity_counter`.
    pub fn continuity_counter(&self) -> u8 {
        self.bytes[3] & 0x0F
    }

    /// Whether the packet carries a payload (adaptation field control `0b01`
    /// or `0b11`).
    pub fn has_payload(&self) -> bool {
        self.adaptation_field_control() & 0x01 != 0
    }

    /// Whether an adaptation field is present (control `0b10` or `0b11`).
    pub fn has_adaptation_field(&self) -> bool {
        self.adaptation_field_control() & 0x02 != 0
    }

    /// `adaptation_field_length` if an adaptation field is present.
    pub fn adaptation_field_length(&self) -> Option<u8> {
        self.has_adaptation_field().then_some(self.bytes[4])
    }

    /// The adaptation field flags byte, if the field is present and non-empty.
    fn adaptation_flags(&self) -> Option<u8> {
        match self.adaptation_field_length() {
            Some(len) if len > 0 => Some(self.bytes[5]),
            _ => None,
        }
    }

    /// `discontinuity_indicator` (adaptation field present, length > 0, flag
    /// bit `0x80`).
    pub fn discontinuity_indicator(&self) -> bool {
        self.adaptation_flags().is_some_and(|f| f & 0x80 != 0)
    }

    /// `random_access_indicator` (adaptation field present, length > 0, flag
    /// bit `0x40`): the packet starts a point where decoding can begin
    /// (typically a keyframe).
    pub fn random_access_indicator(&self) -> bool {
        self.adaptation_flags().is_some_and(|f| f & 0x40 != 0)
    }

    /// The payload bytes (empty if the packet has no payload or if the
    /// adaptation field length is inconsistent and covers the whole packet).
    pub fn payload(&self) -> &'a [u8] {
        if !self.has_payload() {
            return &[];
        }
        let start = match self.adaptation_field_length() {
            Some(len) => 5 + usize::from(len),
            None => 4,
        };
        self.bytes.get(start..).unwrap_or(&[])
    }
}

/// Snapshot of every counter of a [`ContinuityChecker`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContinuitySummary {
    /// TS packets seen (every 188-byte slot with a sync byte, null and
    /// transport-error packets included).
    pub packets: u64,
    /// Continuity violations (a gap of any size counts once).
    pub errors: u64,
    /// Legal duplicates (a single repeat of the previous counter).
    pub duplicates: u64,
    /// Sum over all errors of `(cc - expected) mod 16`.
    pub missing_packets_estimate: u64,
    /// Bytes that could not be interpreted as TS packets.
    pub misaligned_bytes: u64,
    /// Distinct PIDs seen (null PID and transport-error packets excluded).
    pub pids: u64,
    /// Packets with `random_access_indicator` set (null PID excluded).
    pub random_access_points: u64,
    /// Packets whose `discontinuity_indicator` was set (null PID excluded).
    pub signalled_discontinuities: u64,
    /// Packets with `transport_error_indicator` set (skipped by the check).
    pub transport_errors: u64,
}

/// What one [`ContinuityChecker::push_chunk`] call saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChunkInfo {
    /// TS packets in the chunk (same definition as
    /// [`ContinuitySummary::packets`]).
    pub packets: u32,
    /// Continuity errors found in the chunk.
    pub errors: u32,
    /// Whether any packet of the chunk had `random_access_indicator` set.
    pub random_access: bool,
}

/// Per-PID continuity state.
#[derive(Debug, Clone, Copy, Default)]
struct PidState {
    /// Counter of the last accepted payload packet; `None` until the first
    /// payload packet or after a signalled discontinuity on a packet without
    /// payload (the next counter is then accepted as is).
    last_cc: Option<u8>,
    /// The previous payload packet was already a repeat of its predecessor.
    repeated: bool,
}

/// Exact per-PID continuity-counter checker (ISO/IEC 13818-1 §2.4.3.3).
///
/// Feed it media datagram payloads with [`push_chunk`](Self::push_chunk).
#[derive(Debug, Clone, Default)]
pub struct ContinuityChecker {
    pids: BTreeMap<u16, PidState>,
    summary: ContinuitySummary,
}

impl ContinuityChecker {
    /// A checker that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks a chunk of bytes holding whole TS packets (normally one media
    /// datagram payload, `188 * n` bytes).
    ///
    /// The chunk is cut into 188-byte slots from its start; a slot that does
    /// not begin with the sync byte counts 188 misaligned bytes and is
    /// skipped, and a trailing partial slot counts its length. No resync is
    /// attempted inside a chunk.
    pub fn push_chunk(&mut self, bytes: &[u8]) -> ChunkInfo {
        let mut packets: u64 = 0;
        let errors_before = self.summary.errors;
        let mut random_access = false;
        for slot in bytes.chunks(TS_PACKET_LEN) {
            match TsPacket::parse(slot) {
                Some(pkt) => {
                    packets += 1;
                    random_access |= self.push_packet(&pkt);
                }
                None => {
                    self.summary.misaligned_bytes = self
                        .summary
                        .misaligned_bytes
                        .saturating_add(slot.len() as u64);
                }
            }
        }
        let errors = self.summary.errors.saturating_sub(errors_before);
        ChunkInfo {
            packets: u32::try_from(packets).unwrap_or(u32::MAX),
            errors: u32::try_from(errors).unwrap_or(u32::MAX),
            random_access,
        }
    }

    /// Checks one packet; returns whether it carried a random access point.
    fn push_packet(&mut self, pkt: &TsPacket<'_>) -> bool {
        let s = &mut self.summary;
        s.packets = s.packets.saturating_add(1);
        if pkt.transport_error() {
            s.transport_errors = s.transport_errors.saturating_add(1);
            return false;
        }
        let pid = pkt.pid();
        if pid == NULL_PID {
            return false;
        }
        let rai = pkt.random_access_indicator();
        if rai {
            s.random_access_points = s.random_access_points.saturating_add(1);
        }
        let disc = pkt.discontinuity_indicator();
        if disc {
            s.signalled_discontinuities = s.signalled_discontinuities.saturating_add(1);
        }
        if !self.pids.contains_key(&pid) {
            s.pids = s.pids.saturating_add(1);
        }
        let state = self.pids.entry(pid).or_default();

        if !pkt.has_payload() {
            // Counter not incremented and not checked; a signalled
            // discontinuity here makes the next payload counter free.
            if disc {
                *state = PidState::default();
            }
            return rai;
        }

        let cc = pkt.continuity_counter();
        match state.last_cc {
            Some(last) if !disc => {
                let expected = (last + 1) & 0x0F;
                if cc == expected {
                    state.repeated = false;
                } else if cc == last {
                    if state.repeated {
                        s.errors = s.errors.saturating_add(1);
                    } else {
                        s.duplicates = s.duplicates.saturating_add(1);
                        state.repeated = true;
                    }
                } else {
                    s.errors = s.errors.saturating_add(1);
                    let missing = cc.wrapping_sub(expected) & 0x0F;
                    s.missing_packets_estimate = s
                        .missing_packets_estimate
                        .saturating_add(u64::from(missing));
                    state.repeated = false;
                }
            }
            // First payload packet of the PID, or signalled discontinuity.
            _ => state.repeated = false,
        }
        state.last_cc = Some(cc);
        rai
    }

    /// A snapshot of all counters.
    pub fn summary(&self) -> ContinuitySummary {
        self.summary.clone()
    }

    /// TS packets seen.
    pub fn packets(&self) -> u64 {
        self.summary.packets
    }

    /// Continuity violations.
    pub fn errors(&self) -> u64 {
        self.summary.errors
    }

    /// Legal duplicates.
    pub fn duplicates(&self) -> u64 {
        self.summary.duplicates
    }

    /// Estimated number of TS packets lost.
    pub fn missing_packets_estimate(&self) -> u64 {
        self.summary.missing_packets_estimate
    }

    /// Bytes that were not TS packets.
    pub fn misaligned_bytes(&self) -> u64 {
        self.summary.misaligned_bytes
    }

    /// Number of distinct PIDs seen (null PID excluded).
    pub fn pids(&self) -> usize {
        self.pids.len()
    }

    /// Packets with the random access indicator set.
    pub fn random_access_points(&self) -> u64 {
        self.summary.random_access_points
    }

    /// Packets with the discontinuity indicator set.
    pub fn signalled_discontinuities(&self) -> u64 {
        self.summary.signalled_discontinuities
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const AFC_PAYLOAD: u8 = 0b01;
    const AFC_ADAPT: u8 = 0b10;
    const AFC_BOTH: u8 = 0b11;

    /// Builds one TS packet. `flags` is the adaptation field flags byte; it
    /// is written only when an adaptation field is present (`afc & 0b10`).
    fn pkt_full(pid: u16, cc: u8, afc: u8, flags: u8, tei: bool) -> [u8; TS_PACKET_LEN] {
        let mut p = [0xFFu8; TS_PACKET_LEN];
        p[0] = TS_SYNC;
        p[1] = ((pid >> 8) as u8 & 0x1F) | if tei { 0x80 } else { 0 };
        p[2] = pid as u8;
        p[3] = ((afc & 0x03) << 4) | (cc & 0x0F);
        if afc & 0b10 != 0 {
            // Adaptation field: length, flags, then stuffing. For afc 0b10
            // it fills the whole packet (183 bytes after the length byte).
            p[4] = if afc == AFC_ADAPT { 183 } else { 7 };
            p[5] = flags;
        }
        p
    }

    fn pkt(pid: u16, cc: u8) -> [u8; TS_PACKET_LEN] {
        pkt_full(pid, cc, AFC_PAYLOAD, 0, false)
    }

    fn chunk(pkts: &[[u8; TS_PACKET_LEN]]) -> Vec<u8> {
        pkts.iter().flatten().copied().collect()
    }

    fn run(pkts: &[[u8; TS_PACKET_LEN]]) -> ContinuitySummary {
        let mut c = ContinuityChecker::new();
        for p in pkts {
            c.push_chunk(p);
        }
        c.summary()
    }

    #[test]
    fn packet_accessors() {
        let p = pkt_full(0x1ABC & 0x1FFF, 9, AFC_BOTH, 0xC0, false);
        let v = TsPacket::parse(&p).unwrap();
        assert_eq!(v.pid(), 0x1ABC & 0x1FFF);
        assert_eq!(v.continuity_counter(), 9);
        assert_eq!(v.adaptation_field_control(), 3);
        assert!(v.has_payload());
        assert!(v.discontinuity_indicator());
        assert!(v.random_access_indicator());
        assert!(!v.transport_error());
        assert!(!v.payload_unit_start());
        assert_eq!(v.payload().len(), 188 - 4 - 1 - 7);

        let mut q = pkt(0x100, 0);
        q[1] |= 0x40;
        let v = TsPacket::parse(&q).unwrap();
        assert!(v.payload_unit_start());
        assert!(!v.discontinuity_indicator());
        assert!(!v.random_access_indicator());
        assert_eq!(v.payload().len(), 184);

        // Adaptation field of length 0: no flags even if byte 5 has bits.
        let mut z = pkt_full(0x100, 0, AFC_BOTH, 0xC0, false);
        z[4] = 0;
        let v = TsPacket::parse(&z).unwrap();
        assert!(!v.discontinuity_indicator());
        assert!(!v.random_access_indicator());

        // Bogus adaptation field length larger than the packet.
        let mut b = pkt_full(0x100, 0, AFC_BOTH, 0, false);
        b[4] = 255;
        assert_eq!(TsPacket::parse(&b).unwrap().payload(), &[] as &[u8]);

        let p = pkt_full(0x100, 0, AFC_ADAPT, 0x40, true);
        let v = TsPacket::parse(&p).unwrap();
        assert!(!v.has_payload());
        assert!(v.transport_error());
        assert!(v.random_access_indicator());

        assert!(TsPacket::parse(&p[..187]).is_none());
        assert!(TsPacket::parse(&[0u8; 188]).is_none());
        assert!(TsPacket::parse(&chunk(&[p, p])).is_none());
    }

    #[test]
    fn clean_sequence_has_no_errors() {
        let pkts: Vec<_> = (0..100u8).map(|i| pkt(0x100, i % 16)).collect();
        let mut c = ContinuityChecker::new();
        let info = c.push_chunk(&chunk(&pkts));
        assert_eq!(
            info,
            ChunkInfo {
                packets: 100,
                errors: 0,
                random_access: false
            }
        );
        let s = c.summary();
        assert_eq!(s.packets, 100);
        assert_eq!(s.errors, 0);
        assert_eq!(s.pids, 1);
        assert_eq!(c.pids(), 1);
    }

    #[test]
    fn one_dropped_packet_is_one_error() {
        let s = run(&[pkt(0x100, 0), pkt(0x100, 1), pkt(0x100, 3), pkt(0x100, 4)]);
        assert_eq!(s.errors, 1);
        assert_eq!(s.missing_packets_estimate, 1);
    }

    #[test]
    fn dropped_datagram_across_two_pids() {
        // A stream interleaving video (0x100) and audio (0x101), sent as
        // datagrams of 7 TS packets; the second datagram is lost.
        let mut cc = [0u8; 2];
        let mut all = Vec::new();
        for i in 0..28 {
            let which = if i % 3 == 2 { 1 } else { 0 };
            all.push(pkt(0x100 + which as u16, cc[which]));
            cc[which] = (cc[which] + 1) % 16;
        }
        let datagrams: Vec<Vec<u8>> = all.chunks(7).map(chunk).collect();
        let mut c = ContinuityChecker::new();
        let mut infos = Vec::new();
        for (i, d) in datagrams.iter().enumerate() {
            if i != 1 {
                infos.push(c.push_chunk(d));
            }
        }
        let s = c.summary();
        assert_eq!(s.errors, 2);
        assert_eq!(s.missing_packets_estimate, 7);
        assert_eq!(s.packets, 21);
        assert_eq!(infos[1].errors, 2);
        assert_eq!(infos[0].errors + infos[2].errors, 0);
    }

    #[test]
    fn duplicate_allowed_once() {
        let s = run(&[pkt(0x100, 0), pkt(0x100, 1), pkt(0x100, 1), pkt(0x100, 2)]);
        assert_eq!(s.errors, 0);
        assert_eq!(s.duplicates, 1);
        // Two separate single duplicates are both fine.
        let s = run(&[pkt(0x100, 0), pkt(0x100, 0), pkt(0x100, 1), pkt(0x100, 1)]);
        assert_eq!((s.errors, s.duplicates), (0, 2));
    }

    #[test]
    fn double_duplicate_is_an_error() {
        let s = run(&[
            pkt(0x100, 0),
            pkt(0x100, 1),
            pkt(0x100, 1),
            pkt(0x100, 1),
            pkt(0x100, 2),
        ]);
        assert_eq!(s.errors, 1);
        assert_eq!(s.duplicates, 1);
        assert_eq!(s.missing_packets_estimate, 0);
        let s = run(&[pkt(0x100, 5), pkt(0x100, 5), pkt(0x100, 5), pkt(0x100, 5)]);
        assert_eq!((s.errors, s.duplicates), (2, 1));
    }

    #[test]
    fn null_packets_ignored() {
        let s = run(&[
            pkt(0x100, 0),
            pkt(NULL_PID, 7),
            pkt(NULL_PID, 7),
            pkt(NULL_PID, 3),
            pkt(0x100, 1),
        ]);
        assert_eq!(s.errors, 0);
        assert_eq!(s.duplicates, 0);
        assert_eq!(s.packets, 5);
        assert_eq!(s.pids, 1);
    }

    #[test]
    fn adaptation_only_packets_do_not_advance() {
        let s = run(&[
            pkt(0x100, 0),
            pkt_full(0x100, 0, AFC_ADAPT, 0, false),
            pkt_full(0x100, 0, AFC_ADAPT, 0, false),
            pkt(0x100, 1),
            // Reserved afc 0b00 carries no payload either.
            pkt_full(0x100, 9, 0b00, 0, false),
            pkt_full(0x100, 2, AFC_BOTH, 0, false),
        ]);
        assert_eq!(s.errors, 0);
        assert_eq!(s.duplicates, 0);
        assert_eq!(s.packets, 6);
    }

    #[test]
    fn discontinuity_flag_accepted() {
        let s = run(&[
            pkt(0x100, 0),
            pkt(0x100, 1),
            pkt_full(0x100, 9, AFC_BOTH, 0x80, false),
            pkt(0x100, 10),
        ]);
        assert_eq!(s.errors, 0);
        assert_eq!(s.signalled_discontinuities, 1);

        // Signalled on an adaptation-only packet: next counter is free.
        let s = run(&[
            pkt(0x100, 0),
            pkt_full(0x100, 0, AFC_ADAPT, 0x80, false),
            pkt(0x100, 12),
            pkt(0x100, 13),
        ]);
        assert_eq!(s.errors, 0);
        assert_eq!(s.signalled_discontinuities, 1);
    }

    #[test]
    fn wraparound_is_fine() {
        let s = run(&[pkt(0x100, 14), pkt(0x100, 15), pkt(0x100, 0), pkt(0x100, 1)]);
        assert_eq!(s.errors, 0);
        // Gap across the wrap: 15 -> 2 misses 0 and 1.
        let s = run(&[pkt(0x100, 15), pkt(0x100, 2)]);
        assert_eq!((s.errors, s.missing_packets_estimate), (1, 2));
    }

    #[test]
    fn transport_error_packets_skipped() {
        let s = run(&[
            pkt(0x100, 0),
            pkt_full(0x100, 7, AFC_PAYLOAD, 0, true),
            pkt(0x100, 1),
        ]);
        assert_eq!(s.errors, 0);
        assert_eq!(s.transport_errors, 1);
        assert_eq!(s.packets, 3);
    }

    #[test]
    fn random_access_points_reported() {
        let mut c = ContinuityChecker::new();
        let i = c.push_chunk(&chunk(&[pkt(0x100, 0), pkt(0x101, 0)]));
        assert!(!i.random_access);
        let i = c.push_chunk(&chunk(&[
            pkt(0x100, 1),
            pkt_full(0x100, 2, AFC_BOTH, 0x40, false),
        ]));
        assert!(i.random_access);
        // Null packets with RAI are ignored.
        let i = c.push_chunk(&pkt_full(NULL_PID, 0, AFC_BOTH, 0x40, false));
        assert!(!i.random_access);
        assert_eq!(c.random_access_points(), 1);
        assert_eq!(c.pids(), 2);
    }

    #[test]
    fn misaligned_bytes_counted() {
        let mut c = ContinuityChecker::new();
        let mut bytes = chunk(&[pkt(0x100, 0), [0u8; 188], pkt(0x100, 1)]);
        bytes.extend_from_slice(&[0x47, 1, 2]);
        let info = c.push_chunk(&bytes);
        assert_eq!(info.packets, 2);
        let s = c.summary();
        assert_eq!(s.misaligned_bytes, 188 + 3);
        assert_eq!(s.errors, 0);
        c.push_chunk(&[]);
        assert_eq!(c.summary(), s);
    }

    // ---- property tests -------------------------------------------------

    proptest! {
        #[test]
        fn garbage_never_panics(chunks in proptest::collection::vec(
            proptest::collection::vec(any::<u8>(), 0..1500), 0..8))
        {
            let mut c = ContinuityChecker::new();
            let mut total = 0usize;
            for ch in &chunks {
                let info = c.push_chunk(ch);
                prop_assert!(info.packets as usize <= ch.len() / TS_PACKET_LEN);
                total += ch.len();
            }
            let s = c.summary();
            prop_assert!(s.packets as usize <= total / TS_PACKET_LEN);
            prop_assert_eq!(s.packets as usize * TS_PACKET_LEN + s.misaligned_bytes as usize, total);
        }

        #[test]
        fn synced_garbage_never_panics(pkts in proptest::collection::vec(
            proptest::collection::vec(any::<u8>(), TS_PACKET_LEN), 0..40))
        {
            let mut c = ContinuityChecker::new();
            let mut bytes = Vec::new();
            for mut p in pkts {
                p[0] = TS_SYNC;
                let v = TsPacket::parse(&p).unwrap();
                let _ = (v.pid(), v.payload(), v.discontinuity_indicator(),
                         v.random_access_indicator(), v.payload_unit_start());
                prop_assert!(v.payload().len() <= 184);
                bytes.extend_from_slice(&p);
            }
            let info = c.push_chunk(&bytes);
            prop_assert_eq!(info.packets as usize, bytes.len() / TS_PACKET_LEN);
            prop_assert!(c.errors() <= c.packets());
        }
    }

    /// One generated packet of the model stream.
    #[derive(Debug, Clone, Copy)]
    struct Gen {
        pid: u16,
        cc: u8,
        payload: bool,
        disc: bool,
        tei: bool,
    }

    #[derive(Debug, Clone, Copy)]
    enum Kind {
        Normal,
        AdaptOnly,
        Dup,
        Disc(u8),
        Null,
        Tei(u8),
    }

    fn kind() -> impl Strategy<Value = Kind> {
        prop_oneof![
            20 => Just(Kind::Normal),
            2 => Just(Kind::AdaptOnly),
            2 => Just(Kind::Dup),
            1 => (0u8..16).prop_map(Kind::Disc),
            1 => Just(Kind::Null),
            1 => (0u8..16).prop_map(Kind::Tei),
        ]
    }

    /// Builds a stream from (pid index, kind, kept) events, then drops the
    /// packets that are not kept.
    fn build(events: &[(usize, Kind, bool)]) -> Vec<Gen> {
        let pids = [0x100u16, 0x101, 0x1FF0];
        let mut next = [0u8; 3];
        let mut out = Vec::new();
        for &(i, k, keep) in events {
            let pid = pids[i];
            let last = next[i].wrapping_sub(1) & 0x0F;
            let g = match k {
                Kind::Normal => {
                    let g = Gen {
                        pid,
                        cc: next[i],
                        payload: true,
                        disc: false,
                        tei: false,
                    };
                    next[i] = (next[i] + 1) & 0x0F;
                    g
                }
                Kind::AdaptOnly => Gen {
                    pid,
                    cc: last,
                    payload: false,
                    disc: false,
                    tei: false,
                },
                Kind::Dup => Gen {
                    pid,
                    cc: last,
                    payload: true,
                    disc: false,
                    tei: false,
                },
                Kind::Disc(c) => {
                    next[i] = (c + 1) & 0x0F;
                    Gen {
                        pid,
                        cc: c,
                        payload: true,
                        disc: true,
                        tei: false,
                    }
                }
                Kind::Null => Gen {
                    pid: NULL_PID,
                    cc: 0,
                    payload: true,
                    disc: false,
                    tei: false,
                },
                Kind::Tei(c) => Gen {
                    pid,
                    cc: c,
                    payload: true,
                    disc: false,
                    tei: true,
                },
            };
            if keep {
                out.push(g);
            }
        }
        out
    }

    fn encode(g: &Gen) -> [u8; TS_PACKET_LEN] {
        let afc = match (g.payload, g.disc) {
            (true, false) => AFC_PAYLOAD,
            (true, true) => AFC_BOTH,
            (false, _) => AFC_ADAPT,
        };
        pkt_full(g.pid, g.cc, afc, if g.disc { 0x80 } else { 0 }, g.tei)
    }

    /// Straightforward reimplementation: per PID, the list of (cc, disc) of
    /// the payload packets in order, then one pass over each list.
    fn oracle(stream: &[Gen]) -> (u64, u64, u64) {
        let mut per_pid: Vec<(u16, Vec<(u8, bool)>)> = Vec::new();
        for g in stream {
            if g.pid == NULL_PID || g.tei || !g.payload {
                continue;
            }
            match per_pid.iter_mut().find(|(p, _)| *p == g.pid) {
                Some((_, v)) => v.push((g.cc, g.disc)),
                None => per_pid.push((g.pid, vec![(g.cc, g.disc)])),
            }
        }
        let (mut errors, mut dups, mut missing) = (0u64, 0u64, 0u64);
        for (_, seq) in &per_pid {
            let mut repeats_in_a_row = 0;
            for w in 1..seq.len() {
                let (prev, _) = seq[w - 1];
                let (cc, disc) = seq[w];
                if disc || cc == (prev + 1) % 16 {
                    repeats_in_a_row = 0;
                } else if cc == prev {
                    repeats_in_a_row += 1;
                    if repeats_in_a_row == 1 {
                        dups += 1;
                    } else {
                        errors += 1;
                    }
                } else {
                    errors += 1;
                    missing += ((cc + 16 - (prev + 1) % 16) % 16) as u64;
                    repeats_in_a_row = 0;
                }
            }
        }
        (errors, dups, missing)
    }

    proptest! {
        #[test]
        fn matches_oracle(
            events in proptest::collection::vec(
                (0usize..3, kind(), proptest::bool::weighted(0.9)), 0..400),
            split in proptest::collection::vec(1usize..8, 1..20),
        ) {
            let stream = build(&events);
            let bytes: Vec<[u8; TS_PACKET_LEN]> = stream.iter().map(encode).collect();
            let mut c = ContinuityChecker::new();
            // Feed in datagrams of varying sizes.
            let mut rest = &bytes[..];
            let mut i = 0;
            let mut chunk_errors = 0u64;
            while !rest.is_empty() {
                let n = split[i % split.len()].min(rest.len());
                let (head, tail) = rest.split_at(n);
                let info = c.push_chunk(&chunk(head));
                prop_assert_eq!(info.packets as usize, n);
                chunk_errors += u64::from(info.errors);
                rest = tail;
                i += 1;
            }
            let s = c.summary();
            let (errors, dups, missing) = oracle(&stream);
            prop_assert_eq!(s.errors, errors);
            prop_assert_eq!(chunk_errors, errors);
            prop_assert_eq!(s.duplicates, dups);
            prop_assert_eq!(s.missing_packets_estimate, missing);
            prop_assert_eq!(s.packets as usize, stream.len());
            prop_assert_eq!(s.misaligned_bytes, 0);
        }

        /// Ground truth: with drop runs shorter than 15 packets and no
        /// duplicates/discontinuities, every run of lost payload packets
        /// between two received ones is exactly one error and the estimate is
        /// exact.
        #[test]
        fn drop_runs_are_exact(
            runs in proptest::collection::vec(
                proptest::collection::vec(0usize..15, 1..40), 1..4),
            order_seed in any::<u64>(),
        ) {
            // Per PID: packet indices kept; gap g means g packets dropped
            // before the kept one (the first kept packet sets the counter).
            let mut per_pid: Vec<Vec<Gen>> = Vec::new();
            let (mut expect_errors, mut expect_missing) = (0u64, 0u64);
            for (p, gaps) in runs.iter().enumerate() {
                let mut idx = 0usize;
                let mut v = Vec::new();
                for (j, &g) in gaps.iter().enumerate() {
                    idx += g;
                    if j > 0 && g > 0 {
                        expect_errors += 1;
                        expect_missing += g as u64;
                    }
                    v.push(Gen { pid: 0x200 + p as u16, cc: (idx % 16) as u8,
                                 payload: true, disc: false, tei: false });
                    idx += 1;
                }
                per_pid.push(v);
            }
            // Interleave the PIDs pseudo-randomly, keeping per-PID order.
            let mut stream = Vec::new();
            let mut pos = vec![0usize; per_pid.len()];
            let mut x = order_seed | 1;
            loop {
                let live: Vec<usize> = (0..per_pid.len())
                    .filter(|&k| pos[k] < per_pid[k].len()).collect();
                if live.is_empty() { break; }
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                let k = live[(x % live.len() as u64) as usize];
                stream.push(per_pid[k][pos[k]]);
                pos[k] += 1;
            }
            let s = run(&stream.iter().map(encode).collect::<Vec<_>>());
            prop_assert_eq!(s.errors, expect_errors);
            prop_assert_eq!(s.missing_packets_estimate, expect_missing);
            prop_assert_eq!(s.duplicates, 0);
        }
    }
}

/// Whether `p` starts a video access unit that a decoder can start from: the adaptation field's
/// random-access indicator is set and the payload begins a PES packet of a video stream
/// (stream id `0xE0..=0xEF`). FFmpeg's MPEG-TS muxer marks H.264 keyframes this way.
pub fn is_video_random_access(p: &TsPacket<'_>) -> bool {
    let payload = p.payload();
    p.random_access_indicator()
        && p.payload_unit_start()
        && payload.len() >= 4
        && payload[..3] == [0, 0, 1]
        && payload[3] & 0xF0 == 0xE0
}

/// Holds back a live stream until its first video random-access point, so that what a viewer
/// records or plays starts with a decodable keyframe instead of the middle of a GOP.
#[derive(Debug, Clone, Default)]
pub struct KeyframeGate {
    open: bool,
}

impl KeyframeGate {
    /// A closed gate.
    pub fn new() -> Self {
        Self::default()
    }

    /// A gate that lets everything through (for streams that are not audio/video TS).
    pub fn opened() -> Self {
        Self { open: true }
    }

    /// Whether the first keyframe has passed.
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// The part of `chunk` (whole TS packets) to pass on: nothing before the first video
    /// random-access packet, everything from it on.
    pub fn admit<'a>(&mut self, chunk: &'a [u8]) -> &'a [u8] {
        if self.open {
            return chunk;
        }
        for (i, slot) in chunk.chunks(TS_PACKET_LEN).enumerate() {
            if TsPacket::parse(slot).is_some_and(|p| is_video_random_access(&p)) {
                self.open = true;
                return &chunk[i * TS_PACKET_LEN..];
            }
        }
        &[]
    }
}

#[cfg(test)]
mod gate_tests {
    use super::*;

    fn packet(rap: bool, video_pes: bool) -> [u8; TS_PACKET_LEN] {
        let mut p = [0xFFu8; TS_PACKET_LEN];
        p[0] = TS_SYNC;
        p[1] = 0x41; // PUSI, PID 0x100
        p[2] = 0x00;
        p[3] = 0x30; // adaptation field + payload
        p[4] = 1; // adaptation field length
        p[5] = if rap { 0x40 } else { 0x00 };
        p[6..10].copy_from_slice(&[0, 0, 1, if video_pes { 0xE0 } else { 0xC0 }]);
        p
    }

    #[test]
    fn the_gate_opens_at_the_first_video_keyframe_and_stays_open() {
        let mut g = KeyframeGate::new();
        let not_yet = [packet(false, true), packet(true, false)].concat();
        assert!(
            g.admit(&not_yet).is_empty(),
            "no keyframe, no audio RAP counts"
        );
        let chunk = [packet(false, true), packet(true, true), packet(false, true)].concat();
        assert_eq!(g.admit(&chunk), &chunk[TS_PACKET_LEN..]);
        assert!(g.is_open());
        assert_eq!(g.admit(&not_yet), &not_yet[..]);
    }

    #[test]
    fn garbage_never_opens_the_gate_nor_panics() {
        let mut g = KeyframeGate::new();
        assert!(g.admit(&[0x47; 100]).is_empty());
        assert!(g.admit(&[]).is_empty());
        assert!(!g.is_open());
    }
}
