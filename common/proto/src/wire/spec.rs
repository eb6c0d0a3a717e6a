//! The wire specification as data: every datagram kind, message and record of the codec with its
//! fields in wire order, and [`markdown`] to render it as the protocol document of the lab report.
//!
//! The tables are not a second source of truth: this module's tests encode a sample of every
//! datagram and message with the real encoder and read each documented field back at its
//! documented offset and width, compare the documented kind and type bytes with the ones the
//! decoder knows, and check the documented string lengths, list counts and code values against
//! what the decoder accepts. A codec change that is not written down here fails them.
//!
//! # Layout
//!
//! - [`FieldSpec`], [`FieldType`], [`RecordSpec`], [`MessageSpec`]: the description types.
//! - [`header`], [`datagrams`], [`messages`], [`records`]: the static tables, in codec order.
//! - [`markdown`]: the whole specification as Markdown (deterministic).
//! - `tests`: the checks that pin the tables to the codec.

use super::{
    CRC_LEN, FLAG_AUTH, HEADER_LEN, KIND_ACK, KIND_DATAGRAM, KIND_MEDIA, KIND_RELIABLE, MAGIC,
    MAX_ACKS, MAX_DATAGRAM, MAX_MEDIA_DATAGRAM, MAX_MEDIA_PAYLOAD, MAX_NACK_RANGES, MAX_NAME_LEN,
    MEDIA_HEADER_LEN, VERSION, stream_id,
};
use crate::ts::TS_PACKET_LEN;

/// How one field is encoded. Integers are unsigned and big-endian.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// One byte.
    U8,
    /// Two bytes, big-endian.
    U16,
    /// Four bytes, big-endian.
    U32,
    /// Eight bytes, big-endian.
    U64,
    /// Exactly this many raw bytes.
    Bytes(usize),
    /// The IP address bytes of an address record: 4 or 16 by its family byte.
    IpBytes,
    /// One length byte, then that many bytes of UTF-8; the decoder accepts lengths `min..=max`.
    Str8 { min: usize, max: usize },
    /// One byte counting the records of the list that follows it; valid counts `min..=max`.
    Count { min: usize, max: usize },
    /// A record inline.
    Record(&'static RecordSpec),
    /// As many records back to back as the [`FieldType::Count`] field just before it says.
    List(&'static RecordSpec),
    /// Raw bytes up to the trailer, `1..=max` of them.
    Payload { max: usize },
    /// One message: its type byte, then its fields.
    Message,
}

impl FieldType {
    /// The encoded size when it does not depend on the value.
    fn fixed_size(self) -> Option<usize> {
        match self {
            Self::U8 | Self::Count { .. } => Some(1),
            Self::U16 => Some(2),
            Self::U32 => Some(4),
            Self::U64 => Some(8),
            Self::Bytes(n) => Some(n),
            Self::Record(r) => r.fixed_size(),
            Self::IpBytes
            | Self::Str8 { .. }
            | Self::List(_)
            | Self::Payload { .. }
            | Self::Message => None,
        }
    }

    fn label(self) -> String {
        match self {
            Self::U8 | Self::Count { .. } => "u8".into(),
            Self::U16 => "u16 BE".into(),
            Self::U32 => "u32 BE".into(),
            Self::U64 => "u64 BE".into(),
            Self::Bytes(_) | Self::IpBytes | Self::Payload { .. } => "bytes".into(),
            Self::Str8 { .. } => "string (u8 len + UTF-8)".into(),
            Self::Record(r) => format!("{} record", r.name),
            Self::List(r) => format!("list of {}", r.name),
            Self::Message => "message".into(),
        }
    }
}

/// One field of a datagram, message or record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldSpec {
    /// The field's name, as the codec's struct field is called.
    pub name: &'static str,
    /// How it is encoded.
    pub ty: FieldType,
    /// What it means to the receiver, one line.
    pub meaning: &'static str,
    /// The codes this version defines for an enumerated field (`(value, meaning)`); empty for
    /// fields that carry a plain number.
    pub values: &'static [(u64, &'static str)],
}

/// A group of fields that appears inline or in lists (a channel, an address, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordSpec {
    /// The record's name, as tables refer to it.
    pub name: &'static str,
    /// What it describes.
    pub purpose: &'static str,
    /// Its fields in wire order.
    pub fields: &'static [FieldSpec],
}

impl RecordSpec {
    fn fixed_size(&self) -> Option<usize> {
        self.fields.iter().map(|f| f.ty.fixed_size()).sum()
    }

    /// The IPv4 and IPv6 sizes of a record whose only variable part is an address's IP bytes.
    fn sizes_by_family(&self) -> Option<(usize, usize)> {
        self.fields
            .iter()
            .try_fold((0, 0), |(v4, v6), f| match f.ty {
                FieldType::IpBytes => Some((v4 + 4, v6 + 16)),
                ty => ty.fixed_size().map(|n| (v4 + n, v6 + n)),
            })
    }
}

/// One datagram kind (the header's kind byte) or one message (a type byte inside a reliable or
/// unacknowledged datagram).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageSpec {
    /// The name, as the codec's enum variant is called.
    pub name: &'static str,
    /// The header kind byte of the datagram that carries it.
    pub kind: u8,
    /// The message type byte; `None` for a datagram kind itself.
    pub type_byte: Option<u8>,
    /// Who sends it to whom.
    pub direction: &'static str,
    /// Why, one line.
    pub purpose: &'static str,
    /// Its fields in wire order: after the header for a datagram kind, after the type byte for
    /// a message.
    pub fields: &'static [FieldSpec],
}

const fn field(name: &'static str, ty: FieldType, meaning: &'static str) -> FieldSpec {
    FieldSpec {
        name,
        ty,
        meaning,
        values: &[],
    }
}

const fn coded(
    name: &'static str,
    meaning: &'static str,
    values: &'static [(u64, &'static str)],
) -> FieldSpec {
    FieldSpec {
        name,
        ty: FieldType::U8,
        meaning,
        values,
    }
}

/// A node id, origin id or channel name: the decoder holds them to `1..=MAX_NAME_LEN` bytes.
const NAME: FieldType = FieldType::Str8 {
    min: 1,
    max: MAX_NAME_LEN,
};
/// Any other string: whatever one length byte can say.
const TEXT: FieldType = FieldType::Str8 { min: 0, max: 255 };
/// A catalogue count: the encoder caps lists at what one byte can say.
const CATALOGUE_COUNT: FieldType = FieldType::Count { min: 0, max: 255 };

/// 32-bit FNV-1a parameters of [`stream_id`], as the text states them.
const FNV_OFFSET_BASIS: u32 = 0x811c_9dc5;
const FNV_PRIME: u32 = 0x0100_0193;

static HEADER: RecordSpec = RecordSpec {
    name: "Header",
    purpose: "The first bytes of every datagram.",
    fields: &[
        FieldSpec {
            name: "magic",
            ty: FieldType::Bytes(2),
            meaning: "marks a meshcast datagram",
            values: &[(u16::from_be_bytes(MAGIC) as u64, "\"MC\"")],
        },
        FieldSpec {
            name: "version",
            ty: FieldType::U8,
            meaning: "wire version; receivers drop every other version",
            values: &[(VERSION as u64, "this specification")],
        },
        FieldSpec {
            name: "kind",
            ty: FieldType::U8,
            meaning: "selects the body layout",
            values: &[
                (KIND_MEDIA as u64, "media"),
                (KIND_RELIABLE as u64, "reliable"),
                (KIND_ACK as u64, "ack"),
                (KIND_DATAGRAM as u64, "datagram"),
            ],
        },
        FieldSpec {
            name: "flags",
            ty: FieldType::U8,
            meaning: "senders write 0; receivers drop any other value",
            values: &[
                (0, "none (the only value version 1 accepts)"),
                (
                    FLAG_AUTH as u64,
                    "AUTH: an authentication tag ends the datagram (reserved, not negotiated in version 1)",
                ),
            ],
        },
        FieldSpec {
            name: "reserved",
            ty: FieldType::U8,
            meaning: "senders write 0; receivers drop any other value",
            values: &[(0, "required")],
        },
    ],
};

static CHANNEL: RecordSpec = RecordSpec {
    name: "Channel",
    purpose: "One channel of a catalogue (Announce, Channels).",
    fields: &[
        field(
            "stream",
            FieldType::U32,
            "stream id: FNV-1a of origin and name (see Stream ids); one source's copy of the channel",
        ),
        field("name", NAME, "channel name, what viewers ask for in Watch"),
        field("codec", TEXT, "video codec, e.g. \"h264\""),
        field(
            "width",
            FieldType::U16,
            "video width in pixels, 0 if unknown",
        ),
        field(
            "height",
            FieldType::U16,
            "video height in pixels, 0 if unknown",
        ),
        field(
            "fps_milli",
            FieldType::U32,
            "frames per second × 1000, 0 if unknown",
        ),
        field(
            "bitrate_kbps",
            FieldType::U32,
            "nominal total bitrate in kbit/s",
        ),
    ],
};

static ADDRESS: RecordSpec = RecordSpec {
    name: "Address",
    purpose: "A UDP socket address.",
    fields: &[
        FieldSpec {
            name: "family",
            ty: FieldType::U8,
            meaning: "address family; receivers drop any other value",
            values: &[
                (4, "IPv4: 4 address bytes follow"),
                (6, "IPv6: 16 address bytes follow"),
            ],
        },
        field(
            "ip",
            FieldType::IpBytes,
            "the IP address in network order: 4 bytes for family 4, 16 for family 6",
        ),
        field("port", FieldType::U16, "UDP port"),
    ],
};

static NACK_RANGE: RecordSpec = RecordSpec {
    name: "NackRange",
    purpose: "A run of consecutive missing media sequence numbers.",
    fields: &[
        field("first", FieldType::U64, "first missing sequence number"),
        field(
            "len",
            FieldType::U16,
            "how many consecutive sequence numbers from first are missing; 0 is invalid",
        ),
    ],
};

static NEIGHBOUR: RecordSpec = RecordSpec {
    name: "Neighbour",
    purpose: "An overlay neighbour as the bootstrapper hands it out.",
    fields: &[
        field("id", NAME, "the neighbour's topology id"),
        field(
            "addr",
            FieldType::Record(&ADDRESS),
            "where the neighbour's one UDP socket listens",
        ),
    ],
};

static ACKED_SEQ: RecordSpec = RecordSpec {
    name: "AckedSeq",
    purpose: "One acknowledged reliable message.",
    fields: &[field(
        "seq",
        FieldType::U64,
        "the seq of a Reliable datagram that arrived",
    )],
};

static RECORDS: [&RecordSpec; 6] = [
    &HEADER,
    &CHANNEL,
    &ADDRESS,
    &NACK_RANGE,
    &NEIGHBOUR,
    &ACKED_SEQ,
];

static DATAGRAMS: [MessageSpec; 4] = [
    MessageSpec {
        name: "Media",
        kind: KIND_MEDIA,
        type_byte: None,
        direction: "origin → children → … → client",
        purpose: "A chunk of one stream, forwarded once per downstream and kept 1 s for retransmission.",
        fields: &[
            field("stream", FieldType::U32, "stream id (see Stream ids)"),
            field(
                "incarnation",
                FieldType::U32,
                "random per start of the origin process: tells a restarted origin's packets (numbered from 0 again) from old ones",
            ),
            field(
                "seq",
                FieldType::U64,
                "packet number within the stream and incarnation, +1 per datagram; gaps trigger a Nack",
            ),
            field(
                "ts_us",
                FieldType::U32,
                "the origin's clock when it sent the chunk, µs, wrapping: the playout buffer's reference",
            ),
            field(
                "payload",
                FieldType::Payload {
                    max: MAX_MEDIA_PAYLOAD,
                },
                "MPEG-TS packets (servers send whole 188-byte packets), everything up to the trailer",
            ),
        ],
    },
    MessageSpec {
        name: "Reliable",
        kind: KIND_RELIABLE,
        type_byte: None,
        direction: "any → peer",
        purpose: "Carries one message of a reliable type; the receiver answers with an Ack (see Reliable delivery).",
        fields: &[
            field(
                "session",
                FieldType::U32,
                "the sender's session: random per start of the sender's channel; a new value means the sender restarted",
            ),
            field(
                "seq",
                FieldType::U64,
                "message number within the session, from 0, +1 per new message; a retransmission repeats it",
            ),
            field(
                "message",
                FieldType::Message,
                "type byte, then that message's fields; only types marked reliable",
            ),
        ],
    },
    MessageSpec {
        name: "Ack",
        kind: KIND_ACK,
        type_byte: None,
        direction: "receiver → sender of Reliable datagrams",
        purpose: "Acknowledges reliable messages; sent again for a duplicate, since the first ack may be lost.",
        fields: &[
            field(
                "session",
                FieldType::U32,
                "the session of the acknowledged Reliable datagrams, i.e. the Ack receiver's own; an Ack naming an older session is ignored",
            ),
            field(
                "count",
                FieldType::Count {
                    min: 1,
                    max: MAX_ACKS,
                },
                "number of AckedSeq records that follow",
            ),
            field(
                "seqs",
                FieldType::List(&ACKED_SEQ),
                "the acknowledged seq values",
            ),
        ],
    },
    MessageSpec {
        name: "Datagram",
        kind: KIND_DATAGRAM,
        type_byte: None,
        direction: "any → any",
        purpose: "Carries one message sent once, never acknowledged: keepalives, floods, NACKs, probes, bootstrap.",
        fields: &[field(
            "message",
            FieldType::Message,
            "type byte, then that message's fields; only types marked datagram",
        )],
    },
];

static MESSAGES: [MessageSpec; 18] = [
    MessageSpec {
        name: "Ping",
        kind: KIND_DATAGRAM,
        type_byte: Some(0x01),
        direction: "node → neighbour",
        purpose: "Link keepalive and RTT sample, every 200 ms per neighbour.",
        fields: &[field(
            "t_us",
            FieldType::U64,
            "the sender's own clock, µs; echoed in the Pong",
        )],
    },
    MessageSpec {
        name: "Pong",
        kind: KIND_DATAGRAM,
        type_byte: Some(0x02),
        direction: "neighbour → node",
        purpose: "Answer to a Ping.",
        fields: &[field(
            "t_us",
            FieldType::U64,
            "the Ping's t_us, unchanged: the pinger's RTT is its clock now minus this",
        )],
    },
    MessageSpec {
        name: "Announce",
        kind: KIND_DATAGRAM,
        type_byte: Some(0x03),
        direction: "origin → every node (flooded)",
        purpose: "One part of an origin's catalogue and the sender's path cost to it; each node forwards each part once per round.",
        fields: &[
            field(
                "origin",
                NAME,
                "topology id of the server that originates the channels",
            ),
            field(
                "incarnation",
                FieldType::U32,
                "random per start of the origin process, so a restarted origin's rounds win",
            ),
            field("seq", FieldType::U32, "the origin's round number"),
            field(
                "part",
                FieldType::U8,
                "this part's index; must be below parts",
            ),
            field(
                "parts",
                FieldType::U8,
                "how many parts the round's catalogue is split into; at least 1",
            ),
            field(
                "cost_us",
                FieldType::U32,
                "path cost from the sender to the origin in µs: the sum of srtt/2 per hop",
            ),
            field(
                "hops",
                FieldType::U8,
                "overlay hops from the sender to the origin",
            ),
            field(
                "count",
                CATALOGUE_COUNT,
                "number of Channel records that follow",
            ),
            field(
                "channels",
                FieldType::List(&CHANNEL),
                "the channels of this part",
            ),
        ],
    },
    MessageSpec {
        name: "Join",
        kind: KIND_RELIABLE,
        type_byte: Some(0x04),
        direction: "child → parent",
        purpose: "Add the sender to the downstream set of a stream; soft state, refreshed every second.",
        fields: &[field("stream", FieldType::U32, "the stream id to receive")],
    },
    MessageSpec {
        name: "Leave",
        kind: KIND_RELIABLE,
        type_byte: Some(0x05),
        direction: "child → parent",
        purpose: "Remove the sender from the downstream set of a stream at once.",
        fields: &[field("stream", FieldType::U32, "the stream id to stop")],
    },
    MessageSpec {
        name: "JoinReject",
        kind: KIND_RELIABLE,
        type_byte: Some(0x06),
        direction: "parent → child",
        purpose: "The upstream cannot serve a Join.",
        fields: &[
            field("stream", FieldType::U32, "the refused stream id"),
            coded(
                "reason",
                "why; other codes are accepted and reported as unknown",
                &[
                    (
                        1,
                        "no route: the upstream has no route to the stream's source",
                    ),
                    (
                        2,
                        "loop: the joiner is the upstream's own parent, accepting would close a loop",
                    ),
                ],
            ),
        ],
    },
    MessageSpec {
        name: "RouteRequest",
        kind: KIND_DATAGRAM,
        type_byte: Some(0x07),
        direction: "node → every node (flooded)",
        purpose: "A node that lost every loop-free path to an origin asks it for a new round; flooded once per node per (origin, seq).",
        fields: &[
            field(
                "origin",
                NAME,
                "topology id of the origin asked for a new round",
            ),
            field(
                "incarnation",
                FieldType::U32,
                "the origin incarnation the requester knows",
            ),
            field(
                "seq",
                FieldType::U32,
                "the requester's newest round: the origin answers with a newer one",
            ),
        ],
    },
    MessageSpec {
        name: "Nack",
        kind: KIND_DATAGRAM,
        type_byte: Some(0x08),
        direction: "child → parent, client → PoP",
        purpose: "These media packets of a stream did not arrive: re-send them from the retransmission buffer.",
        fields: &[
            field("stream", FieldType::U32, "the stream id"),
            field(
                "count",
                FieldType::Count {
                    min: 1,
                    max: MAX_NACK_RANGES,
                },
                "number of NackRange records that follow",
            ),
            field(
                "ranges",
                FieldType::List(&NACK_RANGE),
                "the missing sequence numbers, in ascending order",
            ),
        ],
    },
    MessageSpec {
        name: "Probe",
        kind: KIND_DATAGRAM,
        type_byte: Some(0x10),
        direction: "client → PoP",
        purpose: "RTT probe: a client watches through the PoP with the lowest RTT and probes it to notice its failure.",
        fields: &[
            field("nonce", FieldType::U32, "chosen by the client, echoed"),
            field("t_us", FieldType::U64, "the client's clock, µs, echoed"),
        ],
    },
    MessageSpec {
        name: "ProbeReply",
        kind: KIND_DATAGRAM,
        type_byte: Some(0x11),
        direction: "PoP → client",
        purpose: "Answer to a Probe.",
        fields: &[
            field("nonce", FieldType::U32, "the Probe's nonce"),
            field("t_us", FieldType::U64, "the Probe's t_us, unchanged"),
            field(
                "channels",
                FieldType::U16,
                "how many channels the PoP can reach now (saturating)",
            ),
        ],
    },
    MessageSpec {
        name: "ListChannels",
        kind: KIND_RELIABLE,
        type_byte: Some(0x12),
        direction: "client → PoP",
        purpose: "Send me the channel list.",
        fields: &[field(
            "request",
            FieldType::U32,
            "request id, echoed in every Channels part of the answer",
        )],
    },
    MessageSpec {
        name: "Channels",
        kind: KIND_RELIABLE,
        type_byte: Some(0x13),
        direction: "PoP → client",
        purpose: "One part of the channel list the PoP can reach.",
        fields: &[
            field("request", FieldType::U32, "the ListChannels request id"),
            field(
                "part",
                FieldType::U8,
                "this part's index; must be below parts",
            ),
            field(
                "parts",
                FieldType::U8,
                "how many parts the list is split into; at least 1",
            ),
            field(
                "count",
                CATALOGUE_COUNT,
                "number of Channel records that follow",
            ),
            field(
                "channels",
                FieldType::List(&CHANNEL),
                "the channels of this part",
            ),
        ],
    },
    MessageSpec {
        name: "Watch",
        kind: KIND_RELIABLE,
        type_byte: Some(0x14),
        direction: "client → PoP",
        purpose: "Start (or keep) sending me this channel; soft state, refreshed every second.",
        fields: &[
            field(
                "request",
                FieldType::U32,
                "request id, echoed in the WatchReply",
            ),
            field("name", NAME, "the channel name"),
        ],
    },
    MessageSpec {
        name: "WatchReply",
        kind: KIND_RELIABLE,
        type_byte: Some(0x15),
        direction: "PoP → client",
        purpose: "The outcome of a Watch.",
        fields: &[
            field("request", FieldType::U32, "the Watch's request id"),
            coded(
                "status",
                "outcome; other codes are accepted and reported as unknown",
                &[
                    (0, "ok: media for stream is on its way"),
                    (
                        1,
                        "no such channel: no source in the overlay offers that name",
                    ),
                    (
                        2,
                        "not ready: the PoP has not heard a full announcement round yet, ask again shortly",
                    ),
                    (3, "busy: the PoP serves as many clients as it allows"),
                ],
            ),
            field(
                "stream",
                FieldType::U32,
                "the stream id whose media the client will receive (when status is ok)",
            ),
        ],
    },
    MessageSpec {
        name: "Unwatch",
        kind: KIND_RELIABLE,
        type_byte: Some(0x16),
        direction: "client → PoP",
        purpose: "Stop sending me this channel.",
        fields: &[field("name", NAME, "the channel name")],
    },
    MessageSpec {
        name: "BootRequest",
        kind: KIND_DATAGRAM,
        type_byte: Some(0x20),
        direction: "node or server → bootstrapper",
        purpose: "Who am I and who are my neighbours? Retried with backoff until answered.",
        fields: &[
            field("nonce", FieldType::U32, "random, echoed in the answer"),
            field("id", NAME, "the asker's topology id"),
        ],
    },
    MessageSpec {
        name: "BootReply",
        kind: KIND_DATAGRAM,
        type_byte: Some(0x21),
        direction: "bootstrapper → node or server",
        purpose: "Your address and your overlay neighbours.",
        fields: &[
            field("nonce", FieldType::U32, "the BootRequest's nonce"),
            field("id", NAME, "the asker's topology id, echoed"),
            field(
                "addr",
                FieldType::Record(&ADDRESS),
                "where the asker binds its one UDP socket",
            ),
            field(
                "count",
                CATALOGUE_COUNT,
                "number of Neighbour records that follow",
            ),
            field(
                "neighbours",
                FieldType::List(&NEIGHBOUR),
                "the asker's overlay neighbours",
            ),
        ],
    },
    MessageSpec {
        name: "BootError",
        kind: KIND_DATAGRAM,
        type_byte: Some(0x22),
        direction: "bootstrapper → node or server",
        purpose: "The bootstrapper cannot answer a BootRequest.",
        fields: &[
            field("nonce", FieldType::U32, "the BootRequest's nonce"),
            coded(
                "code",
                "why; other codes are accepted and reported as unknown",
                &[(
                    1,
                    "unknown id: the id is not in the bootstrapper's topology",
                )],
            ),
            field("text", TEXT, "human-readable explanation"),
        ],
    },
];

/// The common header's fields.
pub fn header() -> &'static RecordSpec {
    &HEADER
}

/// Every datagram kind, by kind byte.
pub fn datagrams() -> &'static [MessageSpec] {
    &DATAGRAMS
}

/// Every message, by type byte.
pub fn messages() -> &'static [MessageSpec] {
    &MESSAGES
}

/// Every record (the header first), in the order the document lists them.
pub fn records() -> &'static [&'static RecordSpec] {
    &RECORDS
}

static HEADER_FIELD: FieldSpec = field("header", FieldType::Record(&HEADER), "see Header");
static TYPE_FIELD: FieldSpec = field("type", FieldType::U8, "message type");
static CRC_FIELD: FieldSpec = field(
    "crc",
    FieldType::U32,
    "CRC32C of every byte before it (see Overview)",
);

/// Every field of a whole datagram carrying `m`, header and trailer included: the rows of its
/// table, and what the tests walk over the encoded bytes.
fn datagram_fields(m: &MessageSpec) -> Vec<FieldSpec> {
    let mut out = vec![HEADER_FIELD];
    if m.type_byte.is_some() {
        if let Some(envelope) = DATAGRAMS.iter().find(|d| d.kind == m.kind) {
            out.extend(
                envelope
                    .fields
                    .iter()
                    .take_while(|f| f.ty != FieldType::Message),
            );
        }
        out.push(TYPE_FIELD);
    }
    out.extend(m.fields);
    out.push(CRC_FIELD);
    out
}

/// Where a field starts: a fixed offset, or `k` bytes after the end of the nearest
/// variable-length field before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Offset {
    At(usize),
    AfterVariable(usize),
}

impl std::fmt::Display for Offset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::At(n) => write!(f, "{n}"),
            Self::AfterVariable(k) => write!(f, "…+{k}"),
        }
    }
}

fn offsets(fields: &[FieldSpec]) -> Vec<Offset> {
    let mut here = Offset::At(0);
    fields
        .iter()
        .map(|f| {
            let this = here;
            here = match (f.ty.fixed_size(), here) {
                (Some(n), Offset::At(o)) => Offset::At(o + n),
                (Some(n), Offset::AfterVariable(o)) => Offset::AfterVariable(o + n),
                (None, _) => Offset::AfterVariable(0),
            };
            this
        })
        .collect()
}

fn kind_name(kind: u8) -> &'static str {
    DATAGRAMS
        .iter()
        .find(|d| d.kind == kind)
        .map_or("unknown", |d| d.name)
}

fn size_cell(fields: &[FieldSpec], i: usize) -> String {
    let f = &fields[i];
    match f.ty {
        FieldType::Str8 { .. } => "1+len".into(),
        FieldType::IpBytes => "4 or 16".into(),
        FieldType::Payload { max } => format!("1..={max}"),
        FieldType::Message => "variable".into(),
        FieldType::List(r) => {
            let count = i
                .checked_sub(1)
                .and_then(|p| fields.get(p))
                .map_or("count", |p| p.name);
            match r.fixed_size() {
                Some(n) => format!("{count} × {n}"),
                None => format!("{count} × variable"),
            }
        }
        FieldType::Record(r) => match (r.fixed_size(), r.sizes_by_family()) {
            (Some(n), _) => n.to_string(),
            (None, Some((v4, v6))) => format!("{v4} or {v6}"),
            (None, None) => "variable".into(),
        },
        ty => match ty.fixed_size() {
            Some(n) => n.to_string(),
            None => "variable".into(),
        },
    }
}

/// The meaning cell: the field's meaning and whatever the decoder holds it to.
fn meaning_cell(f: &FieldSpec) -> String {
    let mut s = f.meaning.to_string();
    match f.ty {
        FieldType::Str8 { min, max } => s.push_str(&format!(". Length {min}..={max} bytes")),
        FieldType::Count { min, max } => s.push_str(&format!(". Valid {min}..={max}")),
        FieldType::Payload { max } => s.push_str(&format!(". 1..={max} bytes")),
        FieldType::Record(r) | FieldType::List(r) if r.name != HEADER.name => {
            s.push_str(&format!(". See {}", r.name));
        }
        _ => {}
    }
    if !f.values.is_empty() {
        let width = 2 * f.ty.fixed_size().unwrap_or(1);
        let values: Vec<String> = f
            .values
            .iter()
            .map(|(v, m)| format!("`0x{v:0width$X}` {m}"))
            .collect();
        s.push_str(". Values: ");
        s.push_str(&values.join("; "));
    }
    s
}

fn table(out: &mut String, fields: &[FieldSpec], meanings: &[String]) {
    out.push_str("| offset | size | field | type | meaning |\n|---:|---:|---|---|---|\n");
    for (i, (f, o)) in fields.iter().zip(offsets(fields)).enumerate() {
        let meaning = meanings.get(i).cloned().unwrap_or_default();
        out.push_str(&format!(
            "| {o} | {} | {} | {} | {meaning} |\n",
            size_cell(fields, i),
            f.name,
            f.ty.label(),
        ));
    }
    out.push('\n');
}

fn datagram_table(out: &mut String, m: &MessageSpec) {
    let fields = datagram_fields(m);
    let meanings: Vec<String> = fields
        .iter()
        .map(|f| {
            if *f == HEADER_FIELD {
                format!(
                    "kind `0x{:02X}` ({}); see Header",
                    m.kind,
                    kind_name(m.kind)
                )
            } else if *f == TYPE_FIELD {
                format!("`0x{:02X}` ({})", m.type_byte.unwrap_or(0), m.name)
            } else {
                meaning_cell(f)
            }
        })
        .collect();
    table(out, &fields, &meanings);
}

fn record_table(out: &mut String, r: &RecordSpec) {
    let meanings: Vec<String> = r.fields.iter().map(meaning_cell).collect();
    table(out, r.fields, &meanings);
}

fn intro(out: &mut String) {
    let check = crc32c::crc32c(b"123456789");
    out.push_str(&format!("# meshcast wire protocol, version {VERSION}\n\n"));
    out.push_str(
        "Generated by `meshcast_proto::wire::spec::markdown()`. Every table below is checked \
         against the codec (`common/proto/src/wire`) by the tests of `wire/spec.rs`: a sample of \
         each datagram and message is encoded by the real encoder and every field is read back \
         at the offset and width written here, so this document and the bytes meshcast sends \
         cannot drift apart.\n\n",
    );
    out.push_str("## Overview\n\n");
    out.push_str(&format!(
        "Every meshcast process (node, server, client, bootstrapper) sends and receives on one \
         UDP socket, and one UDP payload is one datagram. All integers are unsigned and \
         big-endian (network byte order). A datagram is a {HEADER_LEN}-byte header, a body \
         whose layout the header's kind byte selects, and a {CRC_LEN}-byte trailer: the CRC32C \
         (Castagnoli: reflected polynomial 0x82F63B78, initial value and final XOR 0xFFFFFFFF; \
         the check value of \"123456789\" is 0x{check:08X}) of every byte before it, written \
         big-endian.\n\n"
    ));
    out.push_str(&format!(
        "Sizes: no datagram is larger than {MAX_DATAGRAM} bytes of UDP payload (catalogues are \
         split into parts to fit). A media datagram is at most {MAX_MEDIA_DATAGRAM} bytes: a \
         {MEDIA_HEADER_LEN}-byte media header (the {HEADER_LEN}-byte header included), up to \
         {MAX_MEDIA_PAYLOAD} bytes of payload ({} MPEG-TS packets of {TS_PACKET_LEN} bytes) and \
         the {CRC_LEN}-byte trailer; with IPv4 and UDP headers that is {} bytes, so it never \
         fragments on a 1500-byte MTU. Node ids, origin ids and channel names are \
         1..={MAX_NAME_LEN} bytes of UTF-8.\n\n",
        MAX_MEDIA_PAYLOAD / TS_PACKET_LEN,
        MAX_MEDIA_DATAGRAM + 28,
    ));
    out.push_str(
        "Notation. *offset* counts bytes from the start of the datagram (in a record table: \
         from the start of the record). After a variable-length field, an offset is written \
         `…+k`: k bytes after the end of the nearest variable-length field above it. A \
         *string (u8 len + UTF-8)* is one length byte n, then n bytes of UTF-8 (size `1+len`). \
         A *list of R* is as many R records back to back as the count field just before it \
         says. A *record* is a group of fields defined under Records and used inline. *Values* \
         lists the codes this version defines for a field.\n\n",
    );
    out.push_str(&format!(
        "Receiving. A receiver checks the trailer first; a datagram whose CRC32C does not \
         match is dropped and counted like a loss (media is then recovered by Nack like any \
         lost packet). It also drops, without answering: a wrong magic, a version other than \
         {VERSION}, non-zero flags or reserved bytes, an unknown kind or message type, a field \
         cut short, bytes left over after the last field, a string that is not UTF-8 or outside \
         its length range, a count outside its valid range, a part not below parts, a NackRange \
         of length 0, and a message in the wrong kind of datagram (a reliable type in a \
         Datagram datagram or the other way round). Every message type has exactly one \
         carrier, given in its table.\n\n",
    ));
}

fn summary(out: &mut String) {
    out.push_str("## Kind and type bytes\n\n");
    out.push_str(
        "| kind | type | name | carried in | direction | purpose |\n|---|---|---|---|---|---|\n",
    );
    for d in &DATAGRAMS {
        out.push_str(&format!(
            "| `0x{:02X}` | | {} | (itself) | {} | {} |\n",
            d.kind, d.name, d.direction, d.purpose
        ));
    }
    for m in &MESSAGES {
        out.push_str(&format!(
            "| `0x{:02X}` | `0x{:02X}` | {} | {} | {} | {} |\n",
            m.kind,
            m.type_byte.unwrap_or(0),
            m.name,
            kind_name(m.kind),
            m.direction,
            m.purpose
        ));
    }
    out.push('\n');
}

fn reliable_delivery(out: &mut String) {
    out.push_str("## Reliable delivery\n\n");
    out.push_str(&format!(
        "Messages whose table shows kind `0x{KIND_RELIABLE:02X}` travel in Reliable datagrams \
         and are acknowledged; the others travel in Datagram datagrams (kind \
         `0x{KIND_DATAGRAM:02X}`) and are sent once. Each end of a reliable channel picks a \
         random session when the channel starts and numbers its messages seq = 0, 1, 2, … \
         within it. A message not yet acknowledged is sent again with the same session and \
         seq (the timeout comes from the measured RTT and doubles on every retry) until an Ack \
         names it or the peer is declared unreachable. The receiver answers every Reliable \
         datagram, duplicates included, with an Ack carrying the sender's session and up to \
         {MAX_ACKS} seqs, and delivers each (session, seq) at most once, in arrival order: \
         control messages are idempotent soft state, so there is no head-of-line blocking. A \
         Reliable datagram with a session the receiver has not seen from that peer means the \
         peer restarted: its receive window starts afresh and the receiver re-sends the state \
         that peer lost (its joins, its watches).\n\n"
    ));
}

fn stream_ids(out: &mut String) {
    out.push_str("## Stream ids\n\n");
    out.push_str(&format!(
        "A stream id names one origin's copy of one channel, and every node derives it without \
         coordination: 32-bit FNV-1a (offset basis 0x{FNV_OFFSET_BASIS:08X}, prime \
         0x{FNV_PRIME:08X}: for each byte, XOR it in, then multiply modulo 2^32) over the \
         origin id's bytes, one zero byte, and the channel name's bytes. Example: origin \
         `server-1`, channel `news` → `0x{:08X}`.\n\n",
        stream_id("server-1", "news")
    ));
}

/// The whole specification as Markdown: overview, kind and type summary, header, one table per
/// datagram kind and per message (whole datagram, header to trailer), records, stream ids.
/// Deterministic: the same codec always renders the same text.
pub fn markdown() -> String {
    let mut out = String::new();
    intro(&mut out);
    summary(&mut out);
    out.push_str(&format!("## Header\n\n{}\n\n", HEADER.purpose));
    record_table(&mut out, &HEADER);
    out.push_str("## Datagram kinds\n\n");
    for d in &DATAGRAMS {
        out.push_str(&format!(
            "### {} (kind `0x{:02X}`)\n\n{}: {}\n\n",
            d.name, d.kind, d.direction, d.purpose
        ));
        datagram_table(&mut out, d);
    }
    reliable_delivery(&mut out);
    out.push_str(
        "## Messages\n\nEach table is the whole datagram that carries the message, header to \
         trailer.\n\n",
    );
    for m in &MESSAGES {
        let carried = if m.kind == KIND_RELIABLE {
            "acknowledged"
        } else {
            "sent once, not acknowledged"
        };
        out.push_str(&format!(
            "### {} (type `0x{:02X}`)\n\n{}: {} Carried in a {} datagram (kind `0x{:02X}`), {carried}.\n\n",
            m.name,
            m.type_byte.unwrap_or(0),
            m.direction,
            m.purpose,
            kind_name(m.kind),
            m.kind,
        ));
        datagram_table(&mut out, m);
    }
    out.push_str("## Records\n\n");
    for r in RECORDS.iter().filter(|r| r.name != HEADER.name) {
        out.push_str(&format!("### {}\n\n{}\n\n", r.name, r.purpose));
        record_table(&mut out, r);
    }
    stream_ids(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::buf::Reader;
    use crate::wire::{
        Announce, BootErrorCode, ChannelInfo, Datagram, DecodeError, Message, Neighbour,
        RejectReason, WatchStatus,
    };
    use std::collections::BTreeSet;
    use std::net::{IpAddr, SocketAddr};

    /// A value the sample put into a field, as the walker expects to read it back.
    #[derive(Debug, Clone)]
    enum V {
        Int(u64),
        Str(String),
        Raw(Vec<u8>),
        Rec(Values),
        List(Vec<Values>),
    }

    type Values = Vec<(&'static str, V)>;

    fn int(x: impl Into<u64>) -> V {
        V::Int(x.into())
    }

    fn text(s: &str) -> V {
        V::Str(s.to_owned())
    }

    fn count(n: usize) -> V {
        V::Int(n as u64)
    }

    fn channel_values(c: &ChannelInfo) -> Values {
        vec![
            ("stream", int(c.stream)),
            ("name", text(&c.name)),
            ("codec", text(&c.codec)),
            ("width", int(c.width)),
            ("height", int(c.height)),
            ("fps_milli", int(c.fps_milli)),
            ("bitrate_kbps", int(c.bitrate_kbps)),
        ]
    }

    fn address_values(a: &SocketAddr) -> Values {
        let (family, ip) = match a.ip() {
            IpAddr::V4(ip) => (4u8, ip.octets().to_vec()),
            IpAddr::V6(ip) => (6u8, ip.octets().to_vec()),
        };
        vec![
            ("family", int(family)),
            ("ip", V::Raw(ip)),
            ("port", int(a.port())),
        ]
    }

    fn channels_list(cs: &[ChannelInfo]) -> V {
        V::List(cs.iter().map(channel_values).collect())
    }

    /// The documented fields of a message, read off the value itself. The match has no
    /// wildcard: a message added to the codec does not compile here until it is documented.
    fn message_values(m: &Message) -> Values {
        match m {
            Message::Ping { t_us } | Message::Pong { t_us } => vec![("t_us", int(*t_us))],
            Message::Announce(a) => vec![
                ("origin", text(&a.origin)),
                ("incarnation", int(a.incarnation)),
                ("seq", int(a.seq)),
                ("part", int(a.part)),
                ("parts", int(a.parts)),
                ("cost_us", int(a.cost_us)),
                ("hops", int(a.hops)),
                ("count", count(a.channels.len())),
                ("channels", channels_list(&a.channels)),
            ],
            Message::Join { stream } | Message::Leave { stream } => {
                vec![("stream", int(*stream))]
            }
            Message::JoinReject { stream, reason } => {
                vec![("stream", int(*stream)), ("reason", int(reason.code()))]
            }
            Message::RouteRequest {
                origin,
                incarnation,
                seq,
            } => vec![
                ("origin", text(origin)),
                ("incarnation", int(*incarnation)),
                ("seq", int(*seq)),
            ],
            Message::Nack { stream, ranges } => vec![
                ("stream", int(*stream)),
                ("count", count(ranges.len())),
                (
                    "ranges",
                    V::List(
                        ranges
                            .iter()
                            .map(|(first, len)| vec![("first", int(*first)), ("len", int(*len))])
                            .collect(),
                    ),
                ),
            ],
            Message::Probe { nonce, t_us } => vec![("nonce", int(*nonce)), ("t_us", int(*t_us))],
            Message::ProbeReply {
                nonce,
                t_us,
                channels,
            } => vec![
                ("nonce", int(*nonce)),
                ("t_us", int(*t_us)),
                ("channels", int(*channels)),
            ],
            Message::ListChannels { request } => vec![("request", int(*request))],
            Message::Channels {
                request,
                part,
                parts,
                channels,
            } => vec![
                ("request", int(*request)),
                ("part", int(*part)),
                ("parts", int(*parts)),
                ("count", count(channels.len())),
                ("channels", channels_list(channels)),
            ],
            Message::Watch { request, name } => {
                vec![("request", int(*request)), ("name", text(name))]
            }
            Message::WatchReply {
                request,
                status,
                stream,
            } => vec![
                ("request", int(*request)),
                ("status", int(status.code())),
                ("stream", int(*stream)),
            ],
            Message::Unwatch { name } => vec![("name", text(name))],
            Message::BootRequest { nonce, id } => vec![("nonce", int(*nonce)), ("id", text(id))],
            Message::BootReply {
                nonce,
                id,
                addr,
                neighbours,
            } => vec![
                ("nonce", int(*nonce)),
                ("id", text(id)),
                ("addr", V::Rec(address_values(addr))),
                ("count", count(neighbours.len())),
                (
                    "neighbours",
                    V::List(
                        neighbours
                            .iter()
                            .map(|n| {
                                vec![
                                    ("id", text(&n.id)),
                                    ("addr", V::Rec(address_values(&n.addr))),
                                ]
                            })
                            .collect(),
                    ),
                ),
            ],
            Message::BootError {
                nonce,
                code,
                text: t,
            } => vec![
                ("nonce", int(*nonce)),
                ("code", int(code.code())),
                ("text", text(t)),
            ],
        }
    }

    /// The datagram kind a codec value is; no wildcard, for the same reason as above.
    fn datagram_name(d: &Datagram<'_>) -> &'static str {
        match d {
            Datagram::Media { .. } => "Media",
            Datagram::Reliable { .. } => "Reliable",
            Datagram::Ack { .. } => "Ack",
            Datagram::Control(_) => "Datagram",
        }
    }

    fn header_values(kind: u8) -> Values {
        vec![
            ("magic", V::Raw(MAGIC.to_vec())),
            ("version", int(VERSION)),
            ("kind", int(kind)),
            ("flags", int(0u8)),
            ("reserved", int(0u8)),
        ]
    }

    fn encoded(m: &Message) -> Vec<u8> {
        let mut out = Vec::new();
        m.encode_into(&mut out);
        out
    }

    /// What every field of `d` should read as, header to trailer, when `d` is documented by
    /// `spec`: the kind and type bytes are the documented ones, everything else is the sample's.
    fn whole_values(spec: &MessageSpec, d: &Datagram<'_>, crc: u32) -> Values {
        let mut v = vec![("header", V::Rec(header_values(spec.kind)))];
        let message = |v: &mut Values, m: &Message| match spec.type_byte {
            Some(t) => {
                v.push(("type", int(t)));
                v.extend(message_values(m));
            }
            None => v.push(("message", V::Raw(encoded(m)))),
        };
        match d {
            Datagram::Media {
                stream,
                incarnation,
                seq,
                ts_us,
                payload,
            } => v.extend([
                ("stream", int(*stream)),
                ("incarnation", int(*incarnation)),
                ("seq", int(*seq)),
                ("ts_us", int(*ts_us)),
                ("payload", V::Raw(payload.to_vec())),
            ]),
            Datagram::Reliable {
                session,
                seq,
                message: m,
            } => {
                v.push(("session", int(*session)));
                v.push(("seq", int(*seq)));
                message(&mut v, m);
            }
            Datagram::Ack { session, seqs } => v.extend([
                ("session", int(*session)),
                ("count", count(seqs.len())),
                (
                    "seqs",
                    V::List(seqs.iter().map(|s| vec![("seq", int(*s))]).collect()),
                ),
            ]),
            Datagram::Control(m) => message(&mut v, m),
        }
        v.push(("crc", int(crc)));
        v
    }

    /// Where a list sits, for the count tests.
    #[derive(Debug, Clone, Copy)]
    struct ListAt {
        count_at: usize,
        min: usize,
        max: usize,
        first_item: (usize, usize),
    }

    /// One documented field as found in the encoded bytes.
    #[derive(Debug)]
    struct Found {
        path: String,
        ty: FieldType,
        at: usize,
        len: usize,
        list: Option<ListAt>,
    }

    fn be(bytes: &[u8]) -> u64 {
        bytes.iter().fold(0, |acc, b| (acc << 8) | u64::from(*b))
    }

    /// Reads documented fields out of encoded bytes, checking each offset, width and value.
    struct Walker<'a> {
        bytes: &'a [u8],
        pos: usize,
        found: Vec<Found>,
    }

    impl<'a> Walker<'a> {
        fn take(&mut self, path: &str, n: usize) -> &'a [u8] {
            let bytes: &'a [u8] = self.bytes;
            let out = bytes.get(self.pos..self.pos + n).unwrap_or_else(|| {
                panic!(
                    "{path}: {n} bytes at offset {} run past the {}-byte datagram",
                    self.pos,
                    bytes.len()
                )
            });
            self.pos += n;
            out
        }

        fn fields(&mut self, ctx: &str, specs: &[FieldSpec], values: Values) {
            let documented: Vec<&str> = specs.iter().map(|f| f.name).collect();
            let sampled: Vec<&str> = values.iter().map(|(n, _)| *n).collect();
            assert_eq!(
                documented, sampled,
                "{ctx}: documented fields vs the codec's"
            );
            let base = self.pos;
            let mut variable_end = base;
            let mut last_count: Option<(usize, u64, usize, usize)> = None;
            for ((f, (_, v)), offset) in specs.iter().zip(values).zip(offsets(specs)) {
                let path = format!("{ctx}.{}", f.name);
                let expected = match offset {
                    Offset::At(n) => base + n,
                    Offset::AfterVariable(k) => variable_end + k,
                };
                assert_eq!(
                    self.pos - base,
                    expected - base,
                    "{path} is documented at offset {offset} of its table"
                );
                let at = self.pos;
                let mut list = None;
                match (f.ty, v) {
                    (
                        FieldType::U8
                        | FieldType::U16
                        | FieldType::U32
                        | FieldType::U64
                        | FieldType::Count { .. },
                        V::Int(x),
                    ) => {
                        let w = f.ty.fixed_size().expect("integers have a size");
                        assert!(
                            w == 8 || x >> (8 * w) == 0,
                            "{path}: {x:#x} exceeds {w} bytes"
                        );
                        let got = be(self.take(&path, w));
                        assert_eq!(got, x, "{path}: the {w}-byte value at offset {at}");
                        if let FieldType::Count { min, max } = f.ty {
                            last_count = Some((at, x, min, max));
                        }
                        check_documented_value(f, x, &path);
                    }
                    (FieldType::Bytes(n), V::Raw(b)) => {
                        assert_eq!(b.len(), n, "{path}: sample width");
                        assert_eq!(self.take(&path, n), &b[..], "{path} at offset {at}");
                        check_documented_value(f, be(&b), &path);
                    }
                    (FieldType::IpBytes, V::Raw(b)) => {
                        assert!(b.len() == 4 || b.len() == 16, "{path}: sample width");
                        assert_eq!(self.take(&path, b.len()), &b[..], "{path} at offset {at}");
                    }
                    (FieldType::Str8 { min, max }, V::Str(s)) => {
                        assert!((min..=max).contains(&s.len()), "{path}: sample length");
                        let len = self.take(&path, 1)[0];
                        assert_eq!(usize::from(len), s.len(), "{path}: length byte at {at}");
                        assert_eq!(self.take(&path, s.len()), s.as_bytes(), "{path}: text");
                    }
                    (FieldType::Payload { max }, V::Raw(b)) => {
                        assert!(!b.is_empty() && b.len() <= max, "{path}: sample length");
                        assert_eq!(self.take(&path, b.len()), &b[..], "{path} at offset {at}");
                    }
                    (FieldType::Message, V::Raw(b)) => {
                        assert_eq!(self.take(&path, b.len()), &b[..], "{path} at offset {at}");
                    }
                    (FieldType::Record(r), V::Rec(inner)) => self.fields(&path, r.fields, inner),
                    (FieldType::List(r), V::List(items)) => {
                        let (count_at, n, min, max) = last_count
                            .take()
                            .unwrap_or_else(|| panic!("{path}: no count field before the list"));
                        assert_eq!(count_at + 1, at, "{path}: the count is the byte before it");
                        assert_eq!(n, items.len() as u64, "{path}: count vs items");
                        let mut first_item = None;
                        for (i, item) in items.into_iter().enumerate() {
                            let start = self.pos;
                            self.fields(&format!("{path}[{i}]"), r.fields, item);
                            first_item.get_or_insert((start, self.pos - start));
                        }
                        list = first_item.map(|first_item| ListAt {
                            count_at,
                            min,
                            max,
                            first_item,
                        });
                    }
                    (ty, v) => panic!("{path}: sample {v:?} does not fit documented {ty:?}"),
                }
                if f.ty.fixed_size().is_none() {
                    variable_end = self.pos;
                }
                self.found.push(Found {
                    path,
                    ty: f.ty,
                    at,
                    len: self.pos - at,
                    list,
                });
            }
        }
    }

    fn check_documented_value(f: &FieldSpec, x: u64, path: &str) {
        if !f.values.is_empty() {
            assert!(
                f.values.iter().any(|(v, _)| *v == x),
                "{path}: {x:#x} is not a documented value"
            );
        }
    }

    /// Encodes `d`, checks it decodes back, and walks `spec`'s documented fields over the bytes.
    fn walk(spec: &MessageSpec, d: &Datagram<'_>) -> (Vec<u8>, Vec<Found>) {
        let bytes = d.encode();
        assert_eq!(
            Datagram::decode(&bytes).as_ref(),
            Ok(d),
            "{}: the sample decodes back",
            spec.name
        );
        let crc = crc32c::crc32c(&bytes[..bytes.len() - CRC_LEN]);
        let mut w = Walker {
            bytes: &bytes,
            pos: 0,
            found: Vec::new(),
        };
        w.fields(
            spec.name,
            &datagram_fields(spec),
            whole_values(spec, d, crc),
        );
        assert_eq!(w.pos, bytes.len(), "{}: bytes past the trailer", spec.name);
        let found = w.found;
        (bytes, found)
    }

    const SESSION: u32 = 0x5152_5354;
    const RELIABLE_SEQ: u64 = 0x6162_6364_6566_6768;
    static PAYLOAD: [u8; 5] = [0x47, 0x1f, 0xff, 0x10, 0x99];

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("test address")
    }

    fn sample_channels() -> Vec<ChannelInfo> {
        vec![
            ChannelInfo {
                stream: 0x1122_3344,
                name: "news".into(),
                codec: "h264".into(),
                width: 0x0500,
                height: 0x02d0,
                fps_milli: 0x0000_7531,
                bitrate_kbps: 0x0a0b_0c0d,
            },
            ChannelInfo {
                stream: 0x5566_7788,
                name: "sport-hd".into(),
                codec: "".into(),
                width: 0x0780,
                height: 0x0438,
                fps_milli: 0x0000_ea60,
                bitrate_kbps: 0x0102_0304,
            },
        ]
    }

    /// One sample per message, every field distinct so a misplaced field cannot read right.
    fn sample_messages() -> Vec<Message> {
        vec![
            Message::Ping {
                t_us: 0x1112_1314_1516_1718,
            },
            Message::Pong {
                t_us: 0x2122_2324_2526_2728,
            },
            Message::Announce(Announce {
                origin: "server-1".into(),
                incarnation: 0xa0a1_a2a3,
                seq: 0xb0b1_b2b3,
                part: 1,
                parts: 3,
                cost_us: 0xc0c1_c2c3,
                hops: 7,
                channels: sample_channels(),
            }),
            Message::Join {
                stream: 0xd0d1_d2d3,
            },
            Message::Leave {
                stream: 0xe0e1_e2e3,
            },
            Message::JoinReject {
                stream: 0xf0f1_f2f3,
                reason: RejectReason::Loop,
            },
            Message::RouteRequest {
                origin: "server-2".into(),
                incarnation: 0x3132_3334,
                seq: 0x4142_4344,
            },
            Message::Nack {
                stream: 0x7172_7374,
                ranges: vec![(0x0102_0304_0506_0708, 0x0a0b), (0x1112_1314_1516_1718, 3)],
            },
            Message::Probe {
                nonce: 0x8182_8384,
                t_us: 0x9192_9394_9596_9798,
            },
            Message::ProbeReply {
                nonce: 0xa1a2_a3a4,
                t_us: 0xb1b2_b3b4_b5b6_b7b8,
                channels: 0xc1c2,
            },
            Message::ListChannels {
                request: 0xd1d2_d3d4,
            },
            Message::Channels {
                request: 0xe1e2_e3e4,
                part: 2,
                parts: 5,
                channels: sample_channels(),
            },
            Message::Watch {
                request: 0xf1f2_f3f4,
                name: "news".into(),
            },
            Message::WatchReply {
                request: 0x1a1b_1c1d,
                status: WatchStatus::NotReady,
                stream: 0x2a2b_2c2d,
            },
            Message::Unwatch {
                name: "sport-hd".into(),
            },
            Message::BootRequest {
                nonce: 0x3a3b_3c3d,
                id: "relay-7".into(),
            },
            Message::BootReply {
                nonce: 0x4a4b_4c4d,
                id: "relay-7".into(),
                addr: addr("10.1.2.3:7001"),
                neighbours: vec![
                    Neighbour {
                        id: "relay-8".into(),
                        addr: addr("10.1.2.4:7002"),
                    },
                    Neighbour {
                        id: "pop-1".into(),
                        addr: addr("[fd00::1:2]:7003"),
                    },
                ],
            },
            Message::BootError {
                nonce: 0x5a5b_5c5d,
                code: BootErrorCode::UnknownId,
                text: "relay-9 is not in the topology".into(),
            },
        ]
    }

    fn sample_datagrams() -> Vec<Datagram<'static>> {
        vec![
            Datagram::Media {
                stream: 0xa1b2_c3d4,
                incarnation: 0x0e0f_1011,
                seq: 0x0102_0304_0506_0708,
                ts_us: 0x5a6b_7c8d,
                payload: &PAYLOAD,
            },
            Datagram::Reliable {
                session: SESSION,
                seq: RELIABLE_SEQ,
                message: Message::Join {
                    stream: 0x7172_7374,
                },
            },
            Datagram::Ack {
                session: 0x3132_3334,
                seqs: vec![0x0101_0202_0303_0404, 0x0505_0606_0707_0808, 9],
            },
            Datagram::Control(Message::Ping {
                t_us: 0x1112_1314_1516_1718,
            }),
        ]
    }

    fn squash(name: &str) -> String {
        name.chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .map(|c| c.to_ascii_lowercase())
            .collect()
    }

    fn spec_of_message(m: &Message) -> &'static MessageSpec {
        messages()
            .iter()
            .find(|s| squash(s.name) == squash(m.name()))
            .unwrap_or_else(|| panic!("message {} is not documented", m.name()))
    }

    fn spec_of_datagram(d: &Datagram<'_>) -> &'static MessageSpec {
        let name = datagram_name(d);
        datagrams()
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("datagram kind {name} is not documented"))
    }

    /// The datagram that carries `m` as its spec says.
    fn carrier(spec: &MessageSpec, m: Message) -> Datagram<'static> {
        if spec.kind == KIND_RELIABLE {
            Datagram::Reliable {
                session: SESSION,
                seq: RELIABLE_SEQ,
                message: m,
            }
        } else {
            Datagram::Control(m)
        }
    }

    /// Every sample, encoded, with its spec and its found fields.
    fn all_walks() -> Vec<(&'static MessageSpec, Vec<u8>, Vec<Found>)> {
        let mut out = Vec::new();
        for m in sample_messages() {
            let spec = spec_of_message(&m);
            let (bytes, found) = walk(spec, &carrier(spec, m));
            out.push((spec, bytes, found));
        }
        for d in sample_datagrams() {
            let spec = spec_of_datagram(&d);
            let (bytes, found) = walk(spec, &d);
            out.push((spec, bytes, found));
        }
        out
    }

    /// `bytes` with `[at, at + len)` of its body replaced by `with`, and a fresh trailer.
    fn splice(bytes: &[u8], at: usize, len: usize, with: &[u8]) -> Vec<u8> {
        let body = &bytes[..bytes.len() - CRC_LEN];
        let mut out = body[..at].to_vec();
        out.extend_from_slice(with);
        out.extend_from_slice(&body[at + len..]);
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    #[test]
    fn every_message_field_is_at_its_documented_offset_with_its_documented_width() {
        let mut sampled = BTreeSet::new();
        for m in sample_messages() {
            let spec = spec_of_message(&m);
            sampled.insert(spec.name);
            walk(spec, &carrier(spec, m));
        }
        let documented: BTreeSet<&str> = messages().iter().map(|m| m.name).collect();
        assert_eq!(sampled, documented, "every documented message has a sample");
    }

    #[test]
    fn every_datagram_kind_field_is_at_its_documented_offset_with_its_documented_width() {
        let mut sampled = BTreeSet::new();
        for d in sample_datagrams() {
            let spec = spec_of_datagram(&d);
            sampled.insert(spec.name);
            walk(spec, &d);
        }
        let documented: BTreeSet<&str> = datagrams().iter().map(|d| d.name).collect();
        assert_eq!(sampled, documented, "every documented kind has a sample");
        // The largest media datagram too: its payload bound is the documented one.
        let big = vec![0x47; MAX_MEDIA_PAYLOAD];
        let d = Datagram::Media {
            stream: 1,
            incarnation: 2,
            seq: 3,
            ts_us: 4,
            payload: &big,
        };
        let (bytes, _) = walk(spec_of_datagram(&d), &d);
        assert_eq!(bytes.len(), MAX_MEDIA_DATAGRAM);
    }

    #[test]
    fn the_documented_kind_and_type_bytes_are_exactly_the_ones_the_decoder_knows() {
        let decodes_kind = |kind: u8| {
            let mut b = MAGIC.to_vec();
            b.extend([VERSION, kind, 0, 0]);
            let crc = crc32c::crc32c(&b);
            b.extend(crc.to_be_bytes());
            Datagram::decode(&b) != Err(DecodeError::UnknownKind(kind))
        };
        let known: BTreeSet<u8> = (0..=255u8).filter(|k| decodes_kind(*k)).collect();
        let documented: BTreeSet<u8> = datagrams().iter().map(|d| d.kind).collect();
        assert_eq!(known, documented, "kinds the decoder knows vs documented");
        let header_kinds: BTreeSet<u8> =
            HEADER.fields[2].values.iter().map(|v| v.0 as u8).collect();
        assert_eq!(HEADER.fields[2].name, "kind");
        assert_eq!(
            header_kinds, documented,
            "the header's kind values list every kind"
        );
        for (v, name) in HEADER.fields[2].values {
            assert_eq!(squash(name), squash(kind_name(*v as u8)));
        }

        let decodes_type = |t: u8| {
            let mut b = MAGIC.to_vec();
            b.extend([VERSION, KIND_DATAGRAM, 0, 0, t]);
            let crc = crc32c::crc32c(&b);
            b.extend(crc.to_be_bytes());
            Datagram::decode(&b) != Err(DecodeError::UnknownMessage(t))
        };
        let known: BTreeSet<u8> = (0..=255u8).filter(|t| decodes_type(*t)).collect();
        let documented: BTreeSet<u8> = messages().iter().filter_map(|m| m.type_byte).collect();
        assert_eq!(
            known, documented,
            "message types the decoder knows vs documented"
        );
        assert_eq!(documented.len(), messages().len(), "type bytes are unique");
        assert!(datagrams().iter().all(|d| d.type_byte.is_none()));
    }

    #[test]
    fn each_message_is_documented_in_the_only_carrier_the_decoder_accepts() {
        for m in sample_messages() {
            let spec = spec_of_message(&m);
            let expected = if m.is_reliable() {
                KIND_RELIABLE
            } else {
                KIND_DATAGRAM
            };
            assert_eq!(spec.kind, expected, "{} carrier", spec.name);
            let wrong = if m.is_reliable() {
                Datagram::Control(m)
            } else {
                Datagram::Reliable {
                    session: 1,
                    seq: 2,
                    message: m,
                }
            };
            assert!(
                Datagram::decode(&wrong.encode()).is_err(),
                "{} decoded in the wrong carrier",
                spec.name
            );
        }
    }

    #[test]
    fn documented_string_lengths_are_the_ones_the_decoder_enforces() {
        let mut checked = 0;
        for (spec, bytes, found) in all_walks() {
            for f in &found {
                let FieldType::Str8 { min, max } = f.ty else {
                    continue;
                };
                let mut lens = vec![0, min, max];
                if min > 0 {
                    lens.push(min - 1);
                }
                if max < 255 {
                    lens.push(max + 1);
                }
                for n in lens {
                    let mut with = vec![n as u8];
                    with.extend(std::iter::repeat_n(b'x', n));
                    let ok = Datagram::decode(&splice(&bytes, f.at, f.len, &with)).is_ok();
                    assert_eq!(
                        ok,
                        (min..=max).contains(&n),
                        "{} ({}): a {n}-byte string",
                        f.path,
                        spec.name
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > 40, "only {checked} string cases");
    }

    #[test]
    fn documented_list_counts_are_the_ones_the_decoder_enforces() {
        let mut lists = 0;
        for (spec, bytes, found) in all_walks() {
            for f in &found {
                let FieldType::List(_) = f.ty else {
                    continue;
                };
                let l = f
                    .list
                    .unwrap_or_else(|| panic!("{}: the sample list is empty", f.path));
                lists += 1;
                let item = &bytes[l.first_item.0..l.first_item.0 + l.first_item.1];
                let mut ns = vec![0, 1, l.max];
                if l.max < 255 {
                    ns.push(l.max + 1);
                }
                for n in ns {
                    let mut with = vec![n as u8];
                    with.extend_from_slice(&bytes[l.count_at + 1..f.at]);
                    for _ in 0..n {
                        with.extend_from_slice(item);
                    }
                    let changed = splice(&bytes, l.count_at, f.at + f.len - l.count_at, &with);
                    assert_eq!(
                        Datagram::decode(&changed).is_ok(),
                        (l.min..=l.max).contains(&n),
                        "{} ({}): {n} items",
                        f.path,
                        spec.name
                    );
                }
            }
        }
        assert_eq!(lists, 5, "announce, nack, channels, boot reply, ack");
    }

    fn documented_values(fields: &[FieldSpec], name: &str) -> BTreeSet<u64> {
        let f = fields
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("no field {name}"));
        f.values.iter().map(|(v, _)| *v).collect()
    }

    fn message_spec(name: &str) -> &'static MessageSpec {
        messages()
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("no message {name}"))
    }

    #[test]
    fn documented_codes_are_the_ones_the_codec_names() {
        let all = || 0..=255u8;
        let reasons: BTreeSet<u64> = all()
            .filter(|c| !matches!(RejectReason::from_code(*c), RejectReason::Other(_)))
            .map(u64::from)
            .collect();
        assert_eq!(
            reasons,
            documented_values(message_spec("JoinReject").fields, "reason")
        );
        let statuses: BTreeSet<u64> = all()
            .filter(|c| !matches!(WatchStatus::from_code(*c), WatchStatus::Other(_)))
            .map(u64::from)
            .collect();
        assert_eq!(
            statuses,
            documented_values(message_spec("WatchReply").fields, "status")
        );
        let boot: BTreeSet<u64> = all()
            .filter(|c| !matches!(BootErrorCode::from_code(*c), BootErrorCode::Other(_)))
            .map(u64::from)
            .collect();
        assert_eq!(
            boot,
            documented_values(message_spec("BootError").fields, "code")
        );
        for c in all() {
            assert_eq!(RejectReason::from_code(c).code(), c);
            assert_eq!(WatchStatus::from_code(c).code(), c);
            assert_eq!(BootErrorCode::from_code(c).code(), c);
        }
        let families: BTreeSet<u64> = all()
            .filter(|c| {
                let mut b = vec![*c];
                b.extend([0u8; 18]);
                Reader::new(&b).addr().is_ok()
            })
            .map(u64::from)
            .collect();
        assert_eq!(families, documented_values(ADDRESS.fields, "family"));

        // Header bytes: the decoder accepts exactly the documented version, and zero flags and
        // reserved bytes, of which the documented values name only zero as accepted.
        let ping = Datagram::Control(Message::Ping { t_us: 1 }).encode();
        let accepted = |at: usize| -> BTreeSet<u64> {
            all()
                .filter(|v| Datagram::decode(&splice(&ping, at, 1, &[*v])).is_ok())
                .map(u64::from)
                .collect()
        };
        assert_eq!(accepted(2), documented_values(HEADER.fields, "version"));
        assert_eq!(accepted(4), BTreeSet::from([0]));
        assert!(documented_values(HEADER.fields, "flags").contains(&0));
        assert!(documented_values(HEADER.fields, "flags").contains(&u64::from(FLAG_AUTH)));
        assert_eq!(accepted(5), documented_values(HEADER.fields, "reserved"));
        assert_eq!(
            Datagram::decode(&splice(&ping, 1, 1, b"D")),
            Err(DecodeError::BadMagic)
        );
    }

    #[test]
    fn the_sizes_in_the_text_come_from_the_codec_constants() {
        assert_eq!(HEADER.fixed_size(), Some(HEADER_LEN));
        assert_eq!(CRC_FIELD.ty.fixed_size(), Some(CRC_LEN));
        let media = &datagrams()[0];
        assert_eq!(media.kind, KIND_MEDIA);
        let fixed: Option<usize> = media
            .fields
            .iter()
            .take_while(|f| f.name != "payload")
            .map(|f| f.ty.fixed_size())
            .sum();
        assert_eq!(fixed.map(|n| n + HEADER_LEN), Some(MEDIA_HEADER_LEN));
        assert_eq!(
            media.fields.last().map(|f| f.ty),
            Some(FieldType::Payload {
                max: MAX_MEDIA_PAYLOAD
            })
        );
        let md = markdown();
        for phrase in [
            format!("a {HEADER_LEN}-byte header"),
            format!("a {CRC_LEN}-byte trailer"),
            format!("larger than {MAX_DATAGRAM} bytes"),
            format!("at most {MAX_MEDIA_DATAGRAM} bytes"),
            format!("a {MEDIA_HEADER_LEN}-byte media header"),
            format!("up to {MAX_MEDIA_PAYLOAD} bytes of payload"),
            format!("1..={MAX_NAME_LEN} bytes of UTF-8"),
            format!("up to {MAX_ACKS} seqs"),
            format!("| {MEDIA_HEADER_LEN} | 1..={MAX_MEDIA_PAYLOAD} | payload |"),
        ] {
            assert!(md.contains(&phrase), "the text lacks {phrase:?}");
        }
    }

    #[test]
    fn stream_ids_follow_the_documented_fnv_parameters() {
        for (origin, name) in [("server-1", "news"), ("s", ""), ("", "x"), ("é", "ü")] {
            let mut h = FNV_OFFSET_BASIS;
            for b in origin.bytes().chain([0]).chain(name.bytes()) {
                h = (h ^ u32::from(b)).wrapping_mul(FNV_PRIME);
            }
            assert_eq!(h, stream_id(origin, name), "{origin}/{name}");
        }
    }

    #[test]
    fn the_ping_table_renders_offsets_sizes_and_bytes_as_a_reader_needs_them() {
        let md = markdown();
        let expected = "\
| offset | size | field | type | meaning |
|---:|---:|---|---|---|
| 0 | 6 | header | Header record | kind `0x04` (Datagram); see Header |
| 6 | 1 | type | u8 | `0x01` (Ping) |
| 7 | 8 | t_us | u64 BE | the sender's own clock, µs; echoed in the Pong |
| 15 | 4 | crc | u32 BE | CRC32C of every byte before it (see Overview) |
";
        assert!(md.contains(expected), "Ping table:\n{md}");
        // After a variable field, offsets are relative to its end.
        assert!(md.contains("| 7 | 1+len | origin | string (u8 len + UTF-8) |"));
        assert!(md.contains("| …+0 | 4 | incarnation | u32 BE |"));
        assert!(md.contains("| …+16 | count × variable | channels | list of Channel |"));
    }

    #[test]
    fn the_document_names_every_datagram_message_and_record_and_is_deterministic() {
        let md = markdown();
        assert_eq!(md, markdown());
        for d in datagrams() {
            assert!(md.contains(&format!("### {} (kind `0x{:02X}`)", d.name, d.kind)));
        }
        for m in messages() {
            let t = m.type_byte.unwrap_or(0);
            assert!(
                md.contains(&format!("### {} (type `0x{t:02X}`)", m.name)),
                "{}",
                m.name
            );
            assert!(
                md.contains(&format!("| `0x{t:02X}` | {} |", m.name)),
                "{}",
                m.name
            );
        }
        for r in records() {
            assert!(md.contains(&format!("### {}\n", r.name)) || r.name == "Header");
        }
        assert!(md.contains("## Header\n"));
        // Every table row has as many cells as its header: no text breaks a table.
        for line in md.lines().filter(|l| l.starts_with('|')) {
            let cells = line.matches('|').count();
            assert!(cells == 6 || cells == 7, "broken row: {line}");
        }
    }
}
