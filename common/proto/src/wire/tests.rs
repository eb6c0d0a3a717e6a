//! Golden bytes pin every layout in the module table; property tests pin round-trips and
//! the never-panic rule.

use super::*;
use proptest::prelude::*;

fn hex(s: &str) -> Vec<u8> {
    let clean: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..clean.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&clean[i..i + 2], 16).expect("test hex"))
        .collect()
}

/// `body` (hex) followed by its CRC32C, as every datagram ends.
fn with_crc(body: &str) -> Vec<u8> {
    let mut b = hex(body);
    let crc = crc32c::crc32c(&b);
    b.extend_from_slice(&crc.to_be_bytes());
    b
}

fn golden(d: Datagram<'_>, expected: &str) {
    let bytes = d.encode();
    assert_eq!(bytes, with_crc(expected), "encoding of {d:?}");
    assert_eq!(Datagram::decode(&bytes).expect("decodes"), d);
}

#[test]
fn the_checksum_is_crc32c() {
    // The standard check value of CRC-32C (Castagnoli).
    assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
    let bytes = Datagram::Control(Message::Ping { t_us: 1 }).encode();
    let n = bytes.len();
    assert_eq!(
        &bytes[n - 4..],
        &crc32c::crc32c(&bytes[..n - 4]).to_be_bytes()
    );
}

#[test]
fn any_flipped_bit_is_caught_by_the_checksum() {
    let payload = [0x47u8; 188];
    let good = Datagram::Media {
        stream: 1,
        incarnation: 4,
        seq: 2,
        ts_us: 3,
        payload: &payload,
    }
    .encode();
    assert_eq!(
        peek(&good),
        Peek::Media(MediaHeader {
            stream: 1,
            incarnation: 4,
            seq: 2,
            ts_us: 3
        })
    );
    for i in 2..good.len() {
        for bit in 0..8 {
            let mut bad = good.clone();
            bad[i] ^= 1 << bit;
            // (a flipped kind byte no longer looks like media: peek leaves it to decode)
            assert!(
                matches!(peek(&bad), Peek::Corrupt | Peek::Other),
                "byte {i} bit {bit}"
            );
            assert_eq!(Datagram::decode(&bad), Err(DecodeError::BadChecksum));
        }
    }
}

fn chan() -> ChannelInfo {
    ChannelInfo {
        stream: 0x0102_0304,
        name: "tv".into(),
        codec: "h264".into(),
        width: 1280,
        height: 720,
        fps_milli: 30_000,
        bitrate_kbps: 2628,
    }
}

const CHAN_HEX: &str = "01020304 02 7476 04 68323634 0500 02d0 00007530 00000a44";

#[test]
fn media_layout_is_header_stream_seq_payload() {
    golden(
        Datagram::Media {
            stream: 0xAABB_CCDD,
            incarnation: 0x0A0B_0C0D,
            seq: 5,
            ts_us: 0x0102_0304,
            payload: &[0x47, 1, 2],
        },
        "4d43 01 01 00 00 aabbccdd 0a0b0c0d 0000000000000005 01020304 470102",
    );
}

#[test]
fn reliable_ack_and_datagram_layouts() {
    golden(
        Datagram::Reliable {
            session: 7,
            seq: 9,
            message: Message::Join { stream: 0x10 },
        },
        "4d43 01 02 00 00 00000007 0000000000000009 04 00000010",
    );
    golden(
        Datagram::Ack {
            session: 7,
            seqs: vec![1, 2],
        },
        "4d43 01 03 00 00 00000007 02 0000000000000001 0000000000000002",
    );
    golden(
        Datagram::Control(Message::Ping { t_us: 0x0102 }),
        "4d43 01 04 00 00 01 0000000000000102",
    );
}

#[test]
fn every_message_has_a_pinned_layout() {
    let cases: Vec<(Message, String)> = vec![
        (Message::Pong { t_us: 3 }, "02 0000000000000003".into()),
        (
            Message::Announce(Announce {
                origin: "s1".into(),
                incarnation: 0xdead_beef,
                seq: 4,
                part: 0,
                parts: 1,
                cost_us: 250,
                hops: 2,
                channels: vec![chan()],
            }),
            format!("03 02 7331 deadbeef 00000004 00 01 000000fa 02 01 {CHAN_HEX}"),
        ),
        (Message::Leave { stream: 1 }, "05 00000001".into()),
        (
            Message::Nack {
                stream: 1,
                ranges: vec![(5, 2), (9, 1)],
            },
            "08 00000001 02 0000000000000005 0002 0000000000000009 0001".into(),
        ),
        (
            Message::RouteRequest {
                origin: "s1".into(),
                incarnation: 2,
                seq: 3,
            },
            "07 02 7331 00000002 00000003".into(),
        ),
        (
            Message::JoinReject {
                stream: 1,
                reason: RejectReason::NoRoute,
            },
            "06 00000001 01".into(),
        ),
        (
            Message::Probe { nonce: 2, t_us: 3 },
            "10 00000002 0000000000000003".into(),
        ),
        (
            Message::ProbeReply {
                nonce: 2,
                t_us: 3,
                channels: 4,
            },
            "11 00000002 0000000000000003 0004".into(),
        ),
        (Message::ListChannels { request: 8 }, "12 00000008".into()),
        (
            Message::Channels {
                request: 8,
                part: 0,
                parts: 1,
                channels: vec![chan()],
            },
            format!("13 00000008 00 01 01 {CHAN_HEX}"),
        ),
        (
            Message::Watch {
                request: 9,
                name: "tv".into(),
            },
            "14 00000009 02 7476".into(),
        ),
        (
            Message::WatchReply {
                request: 9,
                status: WatchStatus::NoSuchChannel,
                stream: 0,
            },
            "15 00000009 01 00000000".into(),
        ),
        (Message::Unwatch { name: "tv".into() }, "16 02 7476".into()),
        (
            Message::BootRequest {
                nonce: 1,
                id: "n1".into(),
            },
            "20 00000001 02 6e31".into(),
        ),
        (
            Message::BootReply {
                nonce: 1,
                id: "n1".into(),
                addr: "127.0.0.3:7000".parse().expect("addr"),
                neighbours: vec![Neighbour {
                    id: "s1".into(),
                    addr: "[::1]:80".parse().expect("addr"),
                }],
            },
            "21 00000001 02 6e31 04 7f000003 1b58 01 02 7331 06 00000000000000000000000000000001 0050"
                .into(),
        ),
        (
            Message::BootError {
                nonce: 1,
                code: BootErrorCode::UnknownId,
                text: "x".into(),
            },
            "22 00000001 01 01 78".into(),
        ),
    ];
    for (m, body) in cases {
        let kind = if m.is_reliable() {
            "02 00 00 00000001 0000000000000002"
        } else {
            "04 00 00"
        };
        let d = if m.is_reliable() {
            Datagram::Reliable {
                session: 1,
                seq: 2,
                message: m,
            }
        } else {
            Datagram::Control(m)
        };
        golden(d, &format!("4d43 01 {kind} {body}"));
    }
}

#[test]
fn largest_media_datagram_fits_an_ethernet_mtu() {
    let payload = vec![0x47; MAX_MEDIA_PAYLOAD];
    let bytes = Datagram::Media {
        stream: 1,
        incarnation: 1,
        seq: 1,
        ts_us: 0,
        payload: &payload,
    }
    .encode();
    assert_eq!(bytes.len(), 1346);
    assert_eq!(bytes.len(), MAX_MEDIA_DATAGRAM);
    assert!(bytes.len() + 20 + 8 <= 1500);
    let mut body = bytes[..bytes.len() - 4].to_vec();
    body.push(0x47);
    let crc = crc32c::crc32c(&body);
    body.extend_from_slice(&crc.to_be_bytes());
    assert_eq!(
        Datagram::decode(&body),
        Err(DecodeError::BadField("media.payload"))
    );
    assert_eq!(peek(&body), Peek::Other);
}

#[test]
fn foreign_and_future_datagrams_are_rejected_by_reason() {
    assert_eq!(
        Datagram::decode(b"GET / HTTP/1.1"),
        Err(DecodeError::BadMagic)
    );
    assert_eq!(
        Datagram::decode(&with_crc("4d43 02 01 00 00")),
        Err(DecodeError::UnsupportedVersion(2))
    );
    assert_eq!(
        Datagram::decode(&with_crc("4d43 01 09 00 00")),
        Err(DecodeError::UnknownKind(9))
    );
    assert_eq!(
        Datagram::decode(&with_crc("4d43 01 04 01 00 01 0000000000000001")),
        Err(DecodeError::UnsupportedFlags(1))
    );
    assert_eq!(
        Datagram::decode(&with_crc("4d43 01 04 00 00 01 0000000000000001 ff")),
        Err(DecodeError::TrailingBytes(1))
    );
    // a reliable-only message sent as a plain datagram is refused
    assert_eq!(
        Datagram::decode(&with_crc("4d43 01 04 00 00 04 00000001")),
        Err(DecodeError::BadField("datagram.message"))
    );
    assert_eq!(
        Datagram::decode(&with_crc("4d43 01 04 00 00 08 00000001 00")),
        Err(DecodeError::BadField("nack.count"))
    );
    assert_eq!(Datagram::decode(&[]), Err(DecodeError::Truncated));
}

#[test]
fn peek_media_agrees_with_full_decode() {
    let bytes = Datagram::Media {
        stream: 77,
        incarnation: 3,
        seq: 1 << 40,
        ts_us: 9,
        payload: &[0x47; 188],
    }
    .encode();
    assert_eq!(peek_media(&bytes), Some((77, 1 << 40)));
    assert_eq!(media_payload(&bytes), &[0x47; 188][..]);
    assert_eq!(
        peek_media(&Datagram::Control(Message::Ping { t_us: 1 }).encode()),
        None
    );
}

#[test]
fn split_channels_keeps_every_part_under_the_datagram_limit() {
    let many: Vec<ChannelInfo> = (0..100)
        .map(|i| ChannelInfo {
            stream: i,
            name: format!("channel-with-a-long-name-{i:04}-xxxxxxxxxxxxxxxxxxxx"),
            ..chan()
        })
        .collect();
    let fixed = announce_fixed_len("server-origin");
    let parts = split_channels(fixed, &many);
    assert!(parts.len() > 1);
    assert_eq!(parts.iter().map(Vec::len).sum::<usize>(), 100);
    for (i, p) in parts.iter().enumerate() {
        let a = Announce {
            origin: "server-origin".into(),
            incarnation: 1,
            seq: 1,
            part: i as u8,
            parts: parts.len() as u8,
            cost_us: 1,
            hops: 1,
            channels: p.clone(),
        };
        let bytes = Datagram::Control(Message::Announce(a.clone())).encode();
        assert_eq!(bytes.len(), a.encoded_len());
        assert!(
            bytes.len() <= MAX_DATAGRAM,
            "part {i} is {} bytes",
            bytes.len()
        );
    }
}

#[test]
fn stream_ids_differ_by_origin_and_name() {
    assert_eq!(stream_id("s1", "tv"), stream_id("s1", "tv"));
    assert_ne!(stream_id("s1", "tv"), stream_id("s2", "tv"));
    assert_ne!(stream_id("s1", "tv"), stream_id("s1", "tv2"));
    assert_ne!(stream_id("s1x", "y"), stream_id("s1", "xy"));
}

fn arb_name() -> impl Strategy<Value = String> {
    "[a-z0-9._-]{1,20}"
}

fn arb_channel() -> impl Strategy<Value = ChannelInfo> {
    (
        any::<u32>(),
        arb_name(),
        "[a-z0-9]{0,8}",
        any::<u16>(),
        any::<u16>(),
        any::<u32>(),
        any::<u32>(),
    )
        .prop_map(
            |(stream, name, codec, width, height, fps_milli, bitrate_kbps)| ChannelInfo {
                stream,
                name,
                codec,
                width,
                height,
                fps_milli,
                bitrate_kbps,
            },
        )
}

fn arb_message() -> impl Strategy<Value = Message> {
    let addr = (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::from((ip, port)));
    prop_oneof![
        any::<u64>().prop_map(|t_us| Message::Ping { t_us }),
        any::<u64>().prop_map(|t_us| Message::Pong { t_us }),
        (
            arb_name(),
            any::<u32>(),
            any::<u32>(),
            1u8..=255,
            any::<u32>(),
            any::<u8>(),
            prop::collection::vec(arb_channel(), 0..5)
        )
            .prop_flat_map(|(origin, inc, seq, parts, cost_us, hops, channels)| {
                (0..parts).prop_map(move |part| {
                    Message::Announce(Announce {
                        origin: origin.clone(),
                        incarnation: inc,
                        seq,
                        part,
                        parts,
                        cost_us,
                        hops,
                        channels: channels.clone(),
                    })
                })
            }),
        any::<u32>().prop_map(|stream| Message::Join { stream }),
        any::<u32>().prop_map(|stream| Message::Leave { stream }),
        (
            any::<u32>(),
            prop::collection::vec((any::<u64>(), 1u16..), 1..=MAX_NACK_RANGES)
        )
            .prop_map(|(stream, ranges)| Message::Nack { stream, ranges }),
        (arb_name(), any::<u32>(), any::<u32>()).prop_map(|(origin, incarnation, seq)| {
            Message::RouteRequest {
                origin,
                incarnation,
                seq,
            }
        }),
        (any::<u32>(), 2u8..=255).prop_map(|(stream, r)| Message::JoinReject {
            stream,
            reason: RejectReason::from_code(r - 1),
        }),
        (any::<u32>(), any::<u64>()).prop_map(|(nonce, t_us)| Message::Probe { nonce, t_us }),
        (any::<u32>(), any::<u64>(), any::<u16>()).prop_map(|(nonce, t_us, channels)| {
            Message::ProbeReply {
                nonce,
                t_us,
                channels,
            }
        }),
        any::<u32>().prop_map(|request| Message::ListChannels { request }),
        (any::<u32>(), prop::collection::vec(arb_channel(), 0..4)).prop_map(
            |(request, channels)| Message::Channels {
                request,
                part: 0,
                parts: 1,
                channels
            }
        ),
        (any::<u32>(), arb_name()).prop_map(|(request, name)| Message::Watch { request, name }),
        (any::<u32>(), any::<u8>(), any::<u32>()).prop_map(|(request, s, stream)| {
            Message::WatchReply {
                request,
                status: WatchStatus::from_code(s),
                stream,
            }
        }),
        arb_name().prop_map(|name| Message::Unwatch { name }),
        (any::<u32>(), arb_name()).prop_map(|(nonce, id)| Message::BootRequest { nonce, id }),
        (
            any::<u32>(),
            arb_name(),
            addr.clone(),
            prop::collection::vec((arb_name(), addr), 0..6)
        )
            .prop_map(|(nonce, id, addr, ns)| Message::BootReply {
                nonce,
                id,
                addr,
                neighbours: ns
                    .into_iter()
                    .map(|(id, addr)| Neighbour { id, addr })
                    .collect(),
            }),
        (any::<u32>(), any::<u8>(), "[ -~]{0,40}").prop_map(|(nonce, c, text)| {
            Message::BootError {
                nonce,
                code: BootErrorCode::from_code(c),
                text,
            }
        }),
    ]
}

proptest! {
    #[test]
    fn every_message_round_trips(m in arb_message(), session in any::<u32>(), seq in any::<u64>()) {
        let d = if m.is_reliable() {
            Datagram::Reliable { session, seq, message: m }
        } else {
            Datagram::Control(m)
        };
        let bytes = d.encode();
        prop_assert_eq!(Datagram::decode(&bytes), Ok(d));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..1600)) {
        let _ = Datagram::decode(&bytes);
        let _ = peek_media(&bytes);
        let _ = media_payload(&bytes);
    }

    #[test]
    fn mutated_valid_datagrams_never_panic(m in arb_message(), flips in prop::collection::vec((any::<usize>(), any::<u8>()), 1..8), cut in any::<usize>()) {
        let mut bytes = Datagram::Control(if m.is_reliable() { Message::Ping { t_us: 1 } } else { m }).encode();
        for (i, b) in flips {
            let n = bytes.len();
            bytes[i % n] ^= b;
        }
        let n = bytes.len();
        bytes.truncate(cut % (n + 1));
        let _ = Datagram::decode(&bytes);
    }

    #[test]
    fn acks_round_trip(session in any::<u32>(), seqs in prop::collection::vec(any::<u64>(), 1..=MAX_ACKS)) {
        let d = Datagram::Ack { session, seqs };
        let bytes = d.encode();
        prop_assert_eq!(Datagram::decode(&bytes), Ok(d.clone()));
    }
}

#[test]
fn nack_ranges_merge_consecutive_numbers_and_stop_when_full() {
    let mut r = Vec::new();
    for seq in [3, 4, 5, 9, 10, 20] {
        assert!(add_nack_range(&mut r, seq));
    }
    assert_eq!(r, vec![(3, 3), (9, 2), (20, 1)]);
    let mut full: Vec<(u64, u16)> = (0..MAX_NACK_RANGES as u64).map(|i| (i * 10, 1)).collect();
    assert!(!add_nack_range(&mut full, 10_000));
    assert!(
        add_nack_range(&mut full, (MAX_NACK_RANGES as u64 - 1) * 10 + 1),
        "still extends the last"
    );
}
