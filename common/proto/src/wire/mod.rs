//! The meshcast wire format, version 1: every datagram any meshcast process sends.
//!
//! One UDP socket per process carries everything; the header's `kind` byte tells media from
//! control. All integers are big-endian. Decoding never panics: any byte string either decodes
//! to a [`Datagram`] or yields a [`DecodeError`] the caller counts and drops.
//!
//! # Header (6 bytes, every datagram)
//!
//! | offset | size | field | value |
//! |---|---|---|---|
//! | 0 | 2 | magic | `0x4D 0x43` ("MC") |
//! | 2 | 1 | version | `1` |
//! | 3 | 1 | kind | `0x01` media, `0x02` reliable, `0x03` ack, `0x04` datagram |
//! | 4 | 1 | flags | bit 0 `AUTH`: an authentication tag ends the datagram (reserved: v1 rejects it); other bits zero |
//! | 5 | 1 | reserved | zero |
//!
//! Every datagram ends with a 4-byte **CRC32C** (Castagnoli, big-endian) of all the bytes
//! before it. A datagram whose checksum does not match is dropped and counted like a loss
//! (media is then recovered by NACK like any lost packet).
//!
//! # Bodies by kind (between the header and the CRC)
//!
//! | kind | layout after the header |
//! |---|---|
//! | media `0x01` | stream `u32`, incarnation `u32` (of the origin process), seq `u64`, ts_us `u32` (source clock, µs, wrapping), payload `1..=1316` bytes (at most 7 MPEG-TS packets) |
//! | reliable `0x02` | session `u32`, seq `u64`, message |
//! | ack `0x03` | session `u32` (the acked sender's), count `u8` (1..=64), seq `u64` × count |
//! | datagram `0x04` | message (sent once, not acknowledged) |
//!
//! A media datagram is at most 6 + 20 + 1316 + 4 = 1346 bytes of UDP payload: 1374 bytes on
//! the wire with IPv4 and UDP headers, so it never fragments on a 1500-byte MTU. The origin's
//! incarnation tells a restarted server's packets (numbered from 0 again) from old ones.
//!
//! # Messages (a type byte, then the fields)
//!
//! `str8` is a length byte then that many UTF-8 bytes; `addr` is family `u8` (4 or 6), the
//! address bytes, then port `u16`; `channel` is a [`ChannelInfo`]: stream `u32`, name `str8`,
//! codec `str8`, width `u16`, height `u16`, fps_milli `u32`, bitrate_kbps `u32`.
//!
//! | type | message | fields | carried as |
//! |---|---|---|---|
//! | `0x01` | [`Message::Ping`] | t_us `u64` | datagram |
//! | `0x02` | [`Message::Pong`] | t_us `u64` (echo) | datagram |
//! | `0x03` | [`Message::Announce`] | origin `str8`, incarnation `u32`, seq `u32`, part `u8`, parts `u8`, cost_us `u32`, hops `u8`, count `u8`, channel × count | datagram |
//! | `0x04` | [`Message::Join`] | stream `u32` | reliable |
//! | `0x05` | [`Message::Leave`] | stream `u32` | reliable |
//! | `0x06` | [`Message::JoinReject`] | stream `u32`, reason `u8` | reliable |
//! | `0x07` | [`Message::RouteRequest`] | origin `str8`, incarnation `u32`, seq `u32` | datagram |
//! | `0x08` | [`Message::Nack`] | stream `u32`, count `u8` (1..=64), (first `u64`, len `u16`) × count | datagram |
//! | `0x10` | [`Message::Probe`] | nonce `u32`, t_us `u64` | datagram |
//! | `0x11` | [`Message::ProbeReply`] | nonce `u32`, t_us `u64` (echo), channels `u16` | datagram |
//! | `0x12` | [`Message::ListChannels`] | request `u32` | reliable |
//! | `0x13` | [`Message::Channels`] | request `u32`, part `u8`, parts `u8`, count `u8`, channel × count | reliable |
//! | `0x14` | [`Message::Watch`] | request `u32`, name `str8` | reliable |
//! | `0x15` | [`Message::WatchReply`] | request `u32`, status `u8`, stream `u32` | reliable |
//! | `0x16` | [`Message::Unwatch`] | name `str8` | reliable |
//! | `0x20` | [`Message::BootRequest`] | nonce `u32`, id `str8` | datagram |
//! | `0x21` | [`Message::BootReply`] | nonce `u32`, id `str8`, addr `addr`, count `u8`, (id `str8`, addr `addr`) × count | datagram |
//! | `0x22` | [`Message::BootError`] | nonce `u32`, code `u8`, text `str8` | datagram |
//!
//! Golden-byte tests at the bottom of this file pin every layout above.

mod buf;
pub mod spec;

use buf::{Put, Reader};
use std::net::SocketAddr;

/// First two bytes of every meshcast datagram.
pub const MAGIC: [u8; 2] = [0x4D, 0x43];
/// The wire version this code speaks.
pub const VERSION: u8 = 1;
/// Size of the common header.
pub const HEADER_LEN: usize = 6;
/// Bytes of media payload in one datagram: 7 MPEG-TS packets of 188 bytes.
pub const MAX_MEDIA_PAYLOAD: usize = 7 * 188;
/// Media header: common header, stream id, incarnation, sequence number, source timestamp.
pub const MEDIA_HEADER_LEN: usize = HEADER_LEN + 4 + 4 + 8 + 4;
/// The CRC32C trailer of every datagram.
pub const CRC_LEN: usize = 4;
/// The largest media datagram.
pub const MAX_MEDIA_DATAGRAM: usize = MEDIA_HEADER_LEN + MAX_MEDIA_PAYLOAD + CRC_LEN;
/// Most ranges one NACK carries.
pub const MAX_NACK_RANGES: usize = 64;
/// Largest datagram any meshcast process sends: keeps every IPv4 packet under 1500 bytes.
pub const MAX_DATAGRAM: usize = 1400;
/// Header flag: an authentication tag ends the datagram (reserved for the secure overlay).
pub const FLAG_AUTH: u8 = 0x01;
/// Longest node id or channel name the protocol carries.
pub const MAX_NAME_LEN: usize = 64;
/// Most sequence numbers one ack datagram carries.
pub const MAX_ACKS: usize = 64;

const KIND_MEDIA: u8 = 0x01;
const KIND_RELIABLE: u8 = 0x02;
const KIND_ACK: u8 = 0x03;
const KIND_DATAGRAM: u8 = 0x04;

/// Why a datagram could not be decoded. Network input never panics: it becomes one of these,
/// which the receiver counts and drops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Shorter than a header or than a field it announces.
    Truncated,
    /// Not a meshcast datagram.
    BadMagic,
    /// A meshcast datagram of a version this code does not speak.
    UnsupportedVersion(u8),
    /// Header kind byte unknown.
    UnknownKind(u8),
    /// Flags this version does not accept (authentication is not negotiated in v1).
    UnsupportedFlags(u8),
    /// Message type byte unknown.
    UnknownMessage(u8),
    /// A string that is not UTF-8.
    BadString,
    /// An address family other than 4 or 6.
    BadAddressFamily(u8),
    /// A field outside its valid range.
    BadField(&'static str),
    /// Bytes left over after the last field.
    TrailingBytes(usize),
    /// The CRC32C trailer does not match: corrupted in transit.
    BadChecksum,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Truncated => write!(f, "truncated datagram"),
            Self::BadMagic => write!(f, "not a meshcast datagram"),
            Self::UnsupportedVersion(v) => write!(f, "unsupported wire version {v}"),
            Self::UnknownKind(k) => write!(f, "unknown datagram kind {k:#04x}"),
            Self::UnsupportedFlags(x) => write!(f, "unsupported header flags {x:#04x}"),
            Self::UnknownMessage(t) => write!(f, "unknown message type {t:#04x}"),
            Self::BadString => write!(f, "string is not UTF-8"),
            Self::BadAddressFamily(a) => write!(f, "bad address family {a}"),
            Self::BadField(n) => write!(f, "field {n} out of range"),
            Self::TrailingBytes(n) => write!(f, "{n} trailing bytes"),
            Self::BadChecksum => write!(f, "checksum mismatch"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// One channel as the catalogue describes it. The stream id names one source's copy of the
/// channel; the same name offered by two servers has two stream ids.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ChannelInfo {
    /// Stream id: [`stream_id`] of the origin and the name.
    pub stream: u32,
    /// Channel name, at most [`MAX_NAME_LEN`] bytes.
    pub name: String,
    /// Video codec, e.g. "h264".
    pub codec: String,
    /// Video width in pixels (0 if unknown).
    pub width: u16,
    /// Video height in pixels (0 if unknown).
    pub height: u16,
    /// Frames per second × 1000 (0 if unknown).
    pub fps_milli: u32,
    /// Nominal total bitrate in kbit/s.
    pub bitrate_kbps: u32,
}

impl ChannelInfo {
    fn encoded_len(&self) -> usize {
        4 + 1 + self.name.len() + 1 + self.codec.len() + 2 + 2 + 4 + 4
    }

    fn put(&self, out: &mut Vec<u8>) {
        out.put_u32(self.stream);
        out.put_str8(&self.name);
        out.put_str8(&self.codec);
        out.put_u16(self.width);
        out.put_u16(self.height);
        out.put_u32(self.fps_milli);
        out.put_u32(self.bitrate_kbps);
    }

    fn get(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            stream: r.u32()?,
            name: name(r)?,
            codec: r.str8()?,
            width: r.u16()?,
            height: r.u16()?,
            fps_milli: r.u32()?,
            bitrate_kbps: r.u32()?,
        })
    }
}

/// The stream id of channel `name` originated by node `origin`: FNV-1a over both, so every
/// node derives the same id without coordination.
pub fn stream_id(origin: &str, name: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in origin.bytes().chain([0u8]).chain(name.bytes()) {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// Why an upstream refused a join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// The upstream has no route to the stream's source.
    NoRoute,
    /// The joiner is the upstream's own parent: accepting would close a loop.
    Loop,
    /// A reason this version does not know.
    Other(u8),
}

impl RejectReason {
    fn code(self) -> u8 {
        match self {
            Self::NoRoute => 1,
            Self::Loop => 2,
            Self::Other(c) => c,
        }
    }
    fn from_code(c: u8) -> Self {
        match c {
            1 => Self::NoRoute,
            2 => Self::Loop,
            c => Self::Other(c),
        }
    }
}

/// A PoP's answer to a watch request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchStatus {
    /// Media for `stream` is on its way.
    Ok,
    /// No source in the overlay offers a channel of that name.
    NoSuchChannel,
    /// The PoP has not heard a full announcement round yet: ask again shortly.
    NotReady,
    /// The PoP serves as many clients as it allows.
    Busy,
    /// A status this version does not know.
    Other(u8),
}

impl WatchStatus {
    fn code(self) -> u8 {
        match self {
            Self::Ok => 0,
            Self::NoSuchChannel => 1,
            Self::NotReady => 2,
            Self::Busy => 3,
            Self::Other(c) => c,
        }
    }
    fn from_code(c: u8) -> Self {
        match c {
            0 => Self::Ok,
            1 => Self::NoSuchChannel,
            2 => Self::NotReady,
            3 => Self::Busy,
            c => Self::Other(c),
        }
    }
}

/// Why the bootstrapper could not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootErrorCode {
    /// The id is not in the bootstrapper's topology.
    UnknownId,
    /// A code this version does not know.
    Other(u8),
}

impl BootErrorCode {
    fn code(self) -> u8 {
        match self {
            Self::UnknownId => 1,
            Self::Other(c) => c,
        }
    }
    fn from_code(c: u8) -> Self {
        match c {
            1 => Self::UnknownId,
            c => Self::Other(c),
        }
    }
}

/// An overlay neighbour as the bootstrapper hands it out.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Neighbour {
    /// The neighbour's topology id.
    pub id: String,
    /// Where its one UDP socket listens.
    pub addr: SocketAddr,
}

/// Every control message. Which ones travel reliably is fixed per type (see the module table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Link keepalive and RTT probe; `t_us` is the sender's own clock, echoed back.
    Ping { t_us: u64 },
    /// Answer to [`Message::Ping`].
    Pong { t_us: u64 },
    /// One part of an origin's catalogue, flooded once per node per round.
    Announce(Announce),
    /// Add the sender to the downstream set of `stream` (soft state: refreshed periodically).
    Join { stream: u32 },
    /// Remove the sender from the downstream set of `stream`.
    Leave { stream: u32 },
    /// The upstream cannot serve a join.
    JoinReject { stream: u32, reason: RejectReason },
    /// A node that lost every loop-free path to `origin` asks it for a round newer than
    /// `seq`; flooded once per node per (origin, seq).
    RouteRequest {
        origin: String,
        incarnation: u32,
        seq: u32,
    },
    /// Child → parent (or client → PoP): these media packets of `stream` did not arrive;
    /// each range is `(first seq, count)`.
    Nack {
        stream: u32,
        ranges: Vec<(u64, u16)>,
    },
    /// Client → PoP RTT probe.
    Probe { nonce: u32, t_us: u64 },
    /// PoP → client answer to a probe.
    ProbeReply {
        nonce: u32,
        t_us: u64,
        channels: u16,
    },
    /// Client → PoP: send me the channel list.
    ListChannels { request: u32 },
    /// PoP → client: one part of the channel list.
    Channels {
        request: u32,
        part: u8,
        parts: u8,
        channels: Vec<ChannelInfo>,
    },
    /// Client → PoP: start (or keep) sending me this channel (soft state).
    Watch { request: u32, name: String },
    /// PoP → client: the outcome of a watch.
    WatchReply {
        request: u32,
        status: WatchStatus,
        stream: u32,
    },
    /// Client → PoP: stop sending me this channel.
    Unwatch { name: String },
    /// Node/server → bootstrapper: who are my neighbours?
    BootRequest { nonce: u32, id: String },
    /// Bootstrapper → node/server: your address and your neighbours.
    BootReply {
        nonce: u32,
        id: String,
        addr: SocketAddr,
        neighbours: Vec<Neighbour>,
    },
    /// Bootstrapper → node/server: cannot answer.
    BootError {
        nonce: u32,
        code: BootErrorCode,
        text: String,
    },
}

/// One part of a flooded announcement: an origin's channels and the sender's path cost to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announce {
    /// Topology id of the server that originates the channels.
    pub origin: String,
    /// Random per start of the origin process, so a restarted origin's round numbers win.
    pub incarnation: u32,
    /// The origin's round number.
    pub seq: u32,
    /// This part's index, `0..parts`.
    pub part: u8,
    /// How many parts the round's catalogue was split into.
    pub parts: u8,
    /// Path cost from the sender to the origin in microseconds: the sum of `srtt/2` per hop.
    pub cost_us: u32,
    /// Overlay hops from the sender to the origin.
    pub hops: u8,
    /// The channels of this part.
    pub channels: Vec<ChannelInfo>,
}

impl Announce {
    /// Bytes this announcement takes as a datagram.
    pub fn encoded_len(&self) -> usize {
        CRC_LEN
            + HEADER_LEN
            + 1
            + 1
            + self.origin.len()
            + 4
            + 4
            + 1
            + 1
            + 4
            + 1
            + 1
            + self
                .channels
                .iter()
                .map(ChannelInfo::encoded_len)
                .sum::<usize>()
    }
}

/// Splits `channels` into groups that each fit one datagram after `fixed` bytes of other fields.
pub fn split_channels(fixed: usize, channels: &[ChannelInfo]) -> Vec<Vec<ChannelInfo>> {
    let budget = MAX_DATAGRAM - fixed;
    let mut parts: Vec<Vec<ChannelInfo>> = vec![Vec::new()];
    let mut used = 0;
    for c in channels {
        let len = c.encoded_len();
        let last = parts.last_mut().expect("parts is never empty");
        if !last.is_empty() && (used + len > budget || last.len() == usize::from(u8::MAX)) {
            parts.push(Vec::new());
            used = 0;
        }
        parts
            .last_mut()
            .expect("parts is never empty")
            .push(c.clone());
        used += len;
    }
    parts
}

/// Fixed bytes of an announce datagram besides its channels, for [`split_channels`].
pub fn announce_fixed_len(origin: &str) -> usize {
    HEADER_LEN + 1 + 1 + origin.len() + 4 + 4 + 1 + 1 + 4 + 1 + 1 + CRC_LEN
}

/// Fixed bytes of a reliable `Channels` datagram besides its channels.
pub const CHANNELS_FIXED_LEN: usize = HEADER_LEN + 4 + 8 + 1 + 4 + 1 + 1 + 1 + CRC_LEN;

impl Message {
    /// Whether this message type travels on the reliable channel.
    pub fn is_reliable(&self) -> bool {
        matches!(
            self,
            Self::Join { .. }
                | Self::Leave { .. }
                | Self::JoinReject { .. }
                | Self::ListChannels { .. }
                | Self::Channels { .. }
                | Self::Watch { .. }
                | Self::WatchReply { .. }
                | Self::Unwatch { .. }
        )
    }

    /// Short name for logs and counters.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Ping { .. } => "ping",
            Self::Pong { .. } => "pong",
            Self::Announce(_) => "announce",
            Self::Join { .. } => "join",
            Self::Leave { .. } => "leave",
            Self::JoinReject { .. } => "join-reject",
            Self::RouteRequest { .. } => "route-request",
            Self::Nack { .. } => "nack",
            Self::Probe { .. } => "probe",
            Self::ProbeReply { .. } => "probe-reply",
            Self::ListChannels { .. } => "list-channels",
            Self::Channels { .. } => "channels",
            Self::Watch { .. } => "watch",
            Self::WatchReply { .. } => "watch-reply",
            Self::Unwatch { .. } => "unwatch",
            Self::BootRequest { .. } => "boot-request",
            Self::BootReply { .. } => "boot-reply",
            Self::BootError { .. } => "boot-error",
        }
    }

    /// Appends the type byte and fields.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Self::Ping { t_us } => {
                out.put_u8(0x01);
                out.put_u64(*t_us);
            }
            Self::Pong { t_us } => {
                out.put_u8(0x02);
                out.put_u64(*t_us);
            }
            Self::Announce(a) => {
                out.put_u8(0x03);
                out.put_str8(&a.origin);
                out.put_u32(a.incarnation);
                out.put_u32(a.seq);
                out.put_u8(a.part);
                out.put_u8(a.parts);
                out.put_u32(a.cost_us);
                out.put_u8(a.hops);
                put_channels(out, &a.channels);
            }
            Self::Join { stream } => {
                out.put_u8(0x04);
                out.put_u32(*stream);
            }
            Self::Leave { stream } => {
                out.put_u8(0x05);
                out.put_u32(*stream);
            }
            Self::JoinReject { stream, reason } => {
                out.put_u8(0x06);
                out.put_u32(*stream);
                out.put_u8(reason.code());
            }
            Self::RouteRequest {
                origin,
                incarnation,
                seq,
            } => {
                out.put_u8(0x07);
                out.put_str8(origin);
                out.put_u32(*incarnation);
                out.put_u32(*seq);
            }
            Self::Nack { stream, ranges } => {
                out.put_u8(0x08);
                out.put_u32(*stream);
                let n = ranges.len().min(MAX_NACK_RANGES);
                out.put_u8(n as u8);
                for (first, len) in &ranges[..n] {
                    out.put_u64(*first);
                    out.put_u16(*len);
                }
            }
            Self::Probe { nonce, t_us } => {
                out.put_u8(0x10);
                out.put_u32(*nonce);
                out.put_u64(*t_us);
            }
            Self::ProbeReply {
                nonce,
                t_us,
                channels,
            } => {
                out.put_u8(0x11);
                out.put_u32(*nonce);
                out.put_u64(*t_us);
                out.put_u16(*channels);
            }
            Self::ListChannels { request } => {
                out.put_u8(0x12);
                out.put_u32(*request);
            }
            Self::Channels {
                request,
                part,
                parts,
                channels,
            } => {
                out.put_u8(0x13);
                out.put_u32(*request);
                out.put_u8(*part);
                out.put_u8(*parts);
                put_channels(out, channels);
            }
            Self::Watch { request, name } => {
                out.put_u8(0x14);
                out.put_u32(*request);
                out.put_str8(name);
            }
            Self::WatchReply {
                request,
                status,
                stream,
            } => {
                out.put_u8(0x15);
                out.put_u32(*request);
                out.put_u8(status.code());
                out.put_u32(*stream);
            }
            Self::Unwatch { name } => {
                out.put_u8(0x16);
                out.put_str8(name);
            }
            Self::BootRequest { nonce, id } => {
                out.put_u8(0x20);
                out.put_u32(*nonce);
                out.put_str8(id);
            }
            Self::BootReply {
                nonce,
                id,
                addr,
                neighbours,
            } => {
                out.put_u8(0x21);
                out.put_u32(*nonce);
                out.put_str8(id);
                out.put_addr(*addr);
                out.put_u8(neighbours.len().min(255) as u8);
                for n in neighbours.iter().take(255) {
                    out.put_str8(&n.id);
                    out.put_addr(n.addr);
                }
            }
            Self::BootError { nonce, code, text } => {
                out.put_u8(0x22);
                out.put_u32(*nonce);
                out.put_u8(code.code());
                out.put_str8(text);
            }
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let t = r.u8()?;
        let m = match t {
            0x01 => Self::Ping { t_us: r.u64()? },
            0x02 => Self::Pong { t_us: r.u64()? },
            0x03 => {
                let origin = name(r)?;
                let incarnation = r.u32()?;
                let seq = r.u32()?;
                let part = r.u8()?;
                let parts = r.u8()?;
                if parts == 0 || part >= parts {
                    return Err(DecodeError::BadField("announce.part"));
                }
                Self::Announce(Announce {
                    origin,
                    incarnation,
                    seq,
                    part,
                    parts,
                    cost_us: r.u32()?,
                    hops: r.u8()?,
                    channels: get_channels(r)?,
                })
            }
            0x04 => Self::Join { stream: r.u32()? },
            0x05 => Self::Leave { stream: r.u32()? },
            0x06 => Self::JoinReject {
                stream: r.u32()?,
                reason: RejectReason::from_code(r.u8()?),
            },
            0x07 => Self::RouteRequest {
                origin: name(r)?,
                incarnation: r.u32()?,
                seq: r.u32()?,
            },
            0x08 => {
                let stream = r.u32()?;
                let n = r.u8()?;
                if n == 0 || usize::from(n) > MAX_NACK_RANGES {
                    return Err(DecodeError::BadField("nack.count"));
                }
                let mut ranges = Vec::with_capacity(usize::from(n));
                for _ in 0..n {
                    let first = r.u64()?;
                    let len = r.u16()?;
                    if len == 0 {
                        return Err(DecodeError::BadField("nack.len"));
                    }
                    ranges.push((first, len));
                }
                Self::Nack { stream, ranges }
            }
            0x10 => Self::Probe {
                nonce: r.u32()?,
                t_us: r.u64()?,
            },
            0x11 => Self::ProbeReply {
                nonce: r.u32()?,
                t_us: r.u64()?,
                channels: r.u16()?,
            },
            0x12 => Self::ListChannels { request: r.u32()? },
            0x13 => {
                let request = r.u32()?;
                let part = r.u8()?;
                let parts = r.u8()?;
                if parts == 0 || part >= parts {
                    return Err(DecodeError::BadField("channels.part"));
                }
                Self::Channels {
                    request,
                    part,
                    parts,
                    channels: get_channels(r)?,
                }
            }
            0x14 => Self::Watch {
                request: r.u32()?,
                name: name(r)?,
            },
            0x15 => Self::WatchReply {
                request: r.u32()?,
                status: WatchStatus::from_code(r.u8()?),
                stream: r.u32()?,
            },
            0x16 => Self::Unwatch { name: name(r)? },
            0x20 => Self::BootRequest {
                nonce: r.u32()?,
                id: name(r)?,
            },
            0x21 => {
                let nonce = r.u32()?;
                let id = name(r)?;
                let addr = r.addr()?;
                let count = r.u8()?;
                let mut neighbours = Vec::with_capacity(usize::from(count));
                for _ in 0..count {
                    neighbours.push(Neighbour {
                        id: name(r)?,
                        addr: r.addr()?,
                    });
                }
                Self::BootReply {
                    nonce,
                    id,
                    addr,
                    neighbours,
                }
            }
            0x22 => Self::BootError {
                nonce: r.u32()?,
                code: BootErrorCode::from_code(r.u8()?),
                text: r.str8()?,
            },
            other => return Err(DecodeError::UnknownMessage(other)),
        };
        Ok(m)
    }
}

fn name(r: &mut Reader<'_>) -> Result<String, DecodeError> {
    let s = r.str8()?;
    if s.is_empty() || s.len() > MAX_NAME_LEN {
        return Err(DecodeError::BadField("name"));
    }
    Ok(s)
}

fn put_channels(out: &mut Vec<u8>, channels: &[ChannelInfo]) {
    out.put_u8(channels.len().min(255) as u8);
    for c in channels.iter().take(255) {
        c.put(out);
    }
}

fn get_channels(r: &mut Reader<'_>) -> Result<Vec<ChannelInfo>, DecodeError> {
    let count = r.u8()?;
    let mut v = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        v.push(ChannelInfo::get(r)?);
    }
    Ok(v)
}

/// A decoded datagram. Media borrows its payload from the received buffer: the relay's fast
/// path copies nothing it does not forward.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Datagram<'a> {
    /// A chunk of one stream.
    Media {
        stream: u32,
        /// Incarnation of the origin process that numbered this packet.
        incarnation: u32,
        seq: u64,
        /// The origin's clock when it sent the chunk (µs, wrapping): the playout buffer's
        /// reference.
        ts_us: u32,
        payload: &'a [u8],
    },
    /// A control message the receiver must acknowledge and deliver at most once.
    Reliable {
        session: u32,
        seq: u64,
        message: Message,
    },
    /// Acknowledgement of reliable messages of the receiver's `session`.
    Ack { session: u32, seqs: Vec<u64> },
    /// A control message sent once, without acknowledgement.
    Control(Message),
}

fn put_header(out: &mut Vec<u8>, kind: u8) {
    out.extend_from_slice(&MAGIC);
    out.put_u8(VERSION);
    out.put_u8(kind);
    out.put_u8(0);
    out.put_u8(0);
}

impl Datagram<'_> {
    /// Encodes into a fresh buffer.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        self.encode_into(&mut out);
        out
    }

    /// Appends the encoded datagram, CRC included, to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let start = out.len();
        match self {
            Self::Media {
                stream,
                incarnation,
                seq,
                ts_us,
                payload,
            } => {
                encode_media(out, *stream, *incarnation, *seq, *ts_us, payload);
                return;
            }
            Self::Reliable {
                session,
                seq,
                message,
            } => {
                put_header(out, KIND_RELIABLE);
                out.put_u32(*session);
                out.put_u64(*seq);
                message.encode_into(out);
            }
            Self::Ack { session, seqs } => {
                put_header(out, KIND_ACK);
                out.put_u32(*session);
                let n = seqs.len().min(MAX_ACKS);
                out.put_u8(n as u8);
                for s in &seqs[..n] {
                    out.put_u64(*s);
                }
            }
            Self::Control(m) => {
                put_header(out, KIND_DATAGRAM);
                m.encode_into(out);
            }
        }
        put_crc(out, start);
    }

    /// Decodes one datagram, checksum first. Never panics, whatever the bytes.
    pub fn decode(bytes: &[u8]) -> Result<Datagram<'_>, DecodeError> {
        if bytes.len() < HEADER_LEN + CRC_LEN {
            return Err(DecodeError::Truncated);
        }
        if bytes[0..2] != MAGIC {
            return Err(DecodeError::BadMagic);
        }
        let (body, crc) = bytes.split_at(bytes.len() - CRC_LEN);
        if crc32c::crc32c(body).to_be_bytes() != crc {
            return Err(DecodeError::BadChecksum);
        }
        let mut r = Reader::new(body);
        let head = r.take(HEADER_LEN)?;
        if head[0..2] != MAGIC {
            return Err(DecodeError::BadMagic);
        }
        if head[2] != VERSION {
            return Err(DecodeError::UnsupportedVersion(head[2]));
        }
        if head[4] != 0 || head[5] != 0 {
            return Err(DecodeError::UnsupportedFlags(head[4]));
        }
        let d = match head[3] {
            KIND_MEDIA => {
                let stream = r.u32()?;
                let incarnation = r.u32()?;
                let seq = r.u64()?;
                let ts_us = r.u32()?;
                let payload = r.rest();
                if payload.is_empty() || payload.len() > MAX_MEDIA_PAYLOAD {
                    return Err(DecodeError::BadField("media.payload"));
                }
                Datagram::Media {
                    stream,
                    incarnation,
                    seq,
                    ts_us,
                    payload,
                }
            }
            KIND_RELIABLE => {
                let session = r.u32()?;
                let seq = r.u64()?;
                let message = Message::decode(&mut r)?;
                if !message.is_reliable() {
                    return Err(DecodeError::BadField("reliable.message"));
                }
                Datagram::Reliable {
                    session,
                    seq,
                    message,
                }
            }
            KIND_ACK => {
                let session = r.u32()?;
                let n = r.u8()?;
                if n == 0 || usize::from(n) > MAX_ACKS {
                    return Err(DecodeError::BadField("ack.count"));
                }
                let mut seqs = Vec::with_capacity(usize::from(n));
                for _ in 0..n {
                    seqs.push(r.u64()?);
                }
                Datagram::Ack { session, seqs }
            }
            KIND_DATAGRAM => {
                let message = Message::decode(&mut r)?;
                if message.is_reliable() {
                    return Err(DecodeError::BadField("datagram.message"));
                }
                Datagram::Control(message)
            }
            other => return Err(DecodeError::UnknownKind(other)),
        };
        r.finish()?;
        Ok(d)
    }
}

fn put_crc(out: &mut Vec<u8>, start: usize) {
    let crc = crc32c::crc32c(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// Appends a media datagram, CRC included, to `out` without building a [`Datagram`].
pub fn encode_media(
    out: &mut Vec<u8>,
    stream: u32,
    incarnation: u32,
    seq: u64,
    ts_us: u32,
    payload: &[u8],
) {
    let start = out.len();
    put_header(out, KIND_MEDIA);
    out.put_u32(stream);
    out.put_u32(incarnation);
    out.put_u64(seq);
    out.put_u32(ts_us);
    out.extend_from_slice(payload);
    put_crc(out, start);
}

/// The header fields of a media datagram, read without copying its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaHeader {
    /// Stream id.
    pub stream: u32,
    /// Incarnation of the origin process.
    pub incarnation: u32,
    /// Sequence number.
    pub seq: u64,
    /// Source timestamp (µs, wrapping).
    pub ts_us: u32,
}

/// What a received datagram is, at the cost of one checksum: the relay's fast path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peek {
    /// A media datagram with a valid checksum and payload length.
    Media(MediaHeader),
    /// A meshcast datagram whose checksum does not match.
    Corrupt,
    /// Anything else: decode it with [`Datagram::decode`].
    Other,
}

/// Classifies a datagram; media is checked (checksum, length) but not copied.
pub fn peek(bytes: &[u8]) -> Peek {
    if bytes.len() < HEADER_LEN + CRC_LEN || bytes[0..2] != MAGIC || bytes[3] != KIND_MEDIA {
        return Peek::Other;
    }
    let (body, crc) = bytes.split_at(bytes.len() - CRC_LEN);
    if crc32c::crc32c(body).to_be_bytes() != crc {
        return Peek::Corrupt;
    }
    if bytes[2] != VERSION
        || bytes[4] != 0
        || bytes[5] != 0
        || body.len() <= MEDIA_HEADER_LEN
        || body.len() > MEDIA_HEADER_LEN + MAX_MEDIA_PAYLOAD
    {
        return Peek::Other;
    }
    let be32 = |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    let mut s = [0u8; 8];
    s.copy_from_slice(&bytes[14..22]);
    Peek::Media(MediaHeader {
        stream: be32(6),
        incarnation: be32(10),
        seq: u64::from_be_bytes(s),
        ts_us: be32(22),
    })
}

/// The stream id and sequence number of a valid media datagram, else `None`.
pub fn peek_media(bytes: &[u8]) -> Option<(u32, u64)> {
    match peek(bytes) {
        Peek::Media(h) => Some((h.stream, h.seq)),
        _ => None,
    }
}

/// Adds `seq` (ascending order) to the ranges of a [`Message::Nack`]; false when the ranges
/// are full and `seq` was not added.
pub fn add_nack_range(ranges: &mut Vec<(u64, u16)>, seq: u64) -> bool {
    if let Some((first, len)) = ranges.last_mut()
        && *first + u64::from(*len) == seq
        && *len < u16::MAX
    {
        *len += 1;
        return true;
    }
    if ranges.len() == MAX_NACK_RANGES {
        return false;
    }
    ranges.push((seq, 1));
    true
}

/// The TS payload of a media datagram already classified by [`peek`].
pub fn media_payload(bytes: &[u8]) -> &[u8] {
    bytes
        .get(MEDIA_HEADER_LEN..bytes.len().saturating_sub(CRC_LEN))
        .unwrap_or(&[])
}

#[cfg(test)]
mod tests;
