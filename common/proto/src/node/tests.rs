//! Local rules of one node, driven by hand: the test plays its neighbours.

use super::*;
use crate::wire::{Datagram, Message, stream_id};
use proptest::prelude::*;

fn addr(n: u8) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, n], 7000))
}

const ME: u8 = 10;
const UP: u8 = 1;
const DOWN: u8 = 2;
const OTHER: u8 = 3;

fn neighbours() -> Vec<Neighbour> {
    [(UP, "up"), (DOWN, "down"), (OTHER, "other")]
        .into_iter()
        .map(|(n, id)| Neighbour {
            id: id.into(),
            addr: addr(n),
        })
        .collect()
}

fn channel(origin: &str, name: &str) -> ChannelInfo {
    ChannelInfo {
        stream: stream_id(origin, name),
        name: name.into(),
        codec: "h264".into(),
        width: 640,
        height: 360,
        fps_milli: 25_000,
        bitrate_kbps: 1000,
    }
}

fn announce(seq: u32, cost_us: u32) -> Vec<u8> {
    Datagram::Control(Message::Announce(Announce {
        origin: "src".into(),
        incarnation: 9,
        seq,
        part: 0,
        parts: 1,
        cost_us,
        hops: 1,
        channels: vec![channel("src", "tv")],
    }))
    .encode()
}

fn media(seq: u64) -> Vec<u8> {
    Datagram::Media {
        stream: stream_id("src", "tv"),
        incarnation: 9,
        seq,
        ts_us: seq as u32 * 1000,
        payload: &[0x47; 188],
    }
    .encode()
}

fn reliable(seq: u64, m: Message) -> Vec<u8> {
    Datagram::Reliable {
        session: 77,
        seq,
        message: m,
    }
    .encode()
}

struct Harness {
    node: Node,
    now: Instant,
}

impl Harness {
    fn new() -> Self {
        let now = crate::test_epoch();
        let mut node = Node::new(NodeConfig::new("me", 1));
        node.handle_command(now, NodeCommand::SetNeighbours(neighbours()));
        let mut h = Self { node, now };
        // Every neighbour says hello, so all are up.
        for n in [UP, DOWN, OTHER] {
            h.recv(n, &Datagram::Control(Message::Ping { t_us: 0 }).encode());
        }
        h.drain();
        h
    }

    fn recv(&mut self, from: u8, bytes: &[u8]) {
        self.node.handle_datagram(self.now, addr(from), bytes);
    }

    fn drain(&mut self) -> Vec<(SocketAddr, Vec<u8>)> {
        std::iter::from_fn(|| self.node.poll_transmit())
            .map(|t| (t.dst, t.payload))
            .collect()
    }

    fn sent_to(&mut self, n: u8) -> Vec<Vec<u8>> {
        self.drain()
            .into_iter()
            .filter(|(d, _)| *d == addr(n))
            .map(|(_, p)| p)
            .collect()
    }

    /// Lets `steps` × `dt` pass: each step the `talkers` ping, `UP` announces round
    /// `first_round + i` every tenth step (when `first_round` is set), and timers run.
    fn run(&mut self, steps: u32, dt: Duration, talkers: &[u8], first_round: Option<u32>) {
        for i in 0..steps {
            self.now += dt;
            for &n in talkers {
                self.recv(n, &Datagram::Control(Message::Ping { t_us: 0 }).encode());
            }
            if let Some(r) = first_round
                && i % 10 == 0
            {
                self.recv(UP, &announce(r + i, 100));
            }
            self.node.handle_timeout(self.now);
            self.drain();
        }
    }

    /// `UP` offers the stream; `DOWN` joins it.
    fn active_tree(&mut self) {
        self.recv(UP, &announce(1, 100));
        self.recv(
            DOWN,
            &reliable(
                0,
                Message::Join {
                    stream: stream_id("src", "tv"),
                },
            ),
        );
        self.drain();
    }
}

fn is_announce(p: &[u8]) -> bool {
    matches!(
        Datagram::decode(p),
        Ok(Datagram::Control(Message::Announce(_)))
    )
}

#[test]
fn an_announcement_is_forwarded_once_to_every_neighbour_but_its_senders() {
    let mut h = Harness::new();
    h.recv(UP, &announce(1, 100));
    let out = h.drain();
    let dsts: Vec<SocketAddr> = out
        .iter()
        .filter(|(_, p)| is_announce(p))
        .map(|(d, _)| *d)
        .collect();
    assert_eq!(dsts, vec![addr(DOWN), addr(OTHER)]);
    // the same round from another neighbour is not forwarded again
    h.recv(OTHER, &announce(1, 50));
    assert!(!h.drain().iter().any(|(_, p)| is_announce(p)));
    // a stale round is counted and dropped
    h.recv(OTHER, &announce(0, 50));
    assert_eq!(h.node.drops().stale_announce, 1);
}

#[test]
fn forwarded_cost_adds_half_the_link_rtt() {
    let mut h = Harness::new();
    h.recv(UP, &announce(1, 100));
    let fwd = h
        .sent_to(DOWN)
        .into_iter()
        .find_map(|p| match Datagram::decode(&p) {
            Ok(Datagram::Control(Message::Announce(a))) => Some(a),
            _ => None,
        })
        .expect("forwarded");
    // no RTT sample yet: the default link cost of 5 ms stands in
    assert_eq!(fwd.cost_us, 100 + 5_000);
    assert_eq!(fwd.hops, 2);
}

#[test]
fn media_is_forwarded_once_per_downstream_and_only_from_the_parent() {
    let mut h = Harness::new();
    h.active_tree();
    h.recv(UP, &media(0));
    assert_eq!(h.sent_to(DOWN), vec![media(0)]);
    h.recv(UP, &media(0));
    assert!(h.sent_to(DOWN).is_empty(), "duplicate forwarded");
    h.recv(OTHER, &media(1));
    assert!(
        h.sent_to(DOWN).is_empty(),
        "media from a non-parent forwarded"
    );
    h.recv(UP, &media(2));
    assert_eq!(
        h.sent_to(DOWN),
        vec![media(2)],
        "first packet after a gap dropped"
    );
    assert_eq!(h.node.drops().duplicate_media, 1);
    assert_eq!(h.node.drops().not_from_upstream, 1);
}

#[test]
fn joining_the_upstream_happens_on_first_downstream_and_leaving_on_last() {
    let mut h = Harness::new();
    h.recv(UP, &announce(1, 100));
    h.drain();
    h.recv(
        DOWN,
        &reliable(
            0,
            Message::Join {
                stream: stream_id("src", "tv"),
            },
        ),
    );
    let to_up = h.sent_to(UP);
    assert!(to_up.iter().any(|p| matches!(
        Datagram::decode(p),
        Ok(Datagram::Reliable {
            message: Message::Join { .. },
            ..
        })
    )));
    h.recv(
        DOWN,
        &reliable(
            1,
            Message::Leave {
                stream: stream_id("src", "tv"),
            },
        ),
    );
    let to_up = h.sent_to(UP);
    assert!(to_up.iter().any(|p| matches!(
        Datagram::decode(p),
        Ok(Datagram::Reliable {
            message: Message::Leave { .. },
            ..
        })
    )));
    assert_eq!(
        h.node.routes()[&stream_id("src", "tv")].state(),
        RouteState::Inactive
    );
}

#[test]
fn a_join_from_our_own_parent_is_rejected_so_no_loop_forms() {
    let mut h = Harness::new();
    h.recv(UP, &announce(1, 100));
    h.drain();
    h.recv(
        UP,
        &reliable(
            0,
            Message::Join {
                stream: stream_id("src", "tv"),
            },
        ),
    );
    let replies = h.sent_to(UP);
    assert!(replies.iter().any(|p| matches!(
        Datagram::decode(p),
        Ok(Datagram::Reliable {
            message: Message::JoinReject { .. },
            ..
        })
    )));
    assert!(
        h.node.routes()[&stream_id("src", "tv")]
            .downstream
            .is_empty()
    );
}

#[test]
fn a_downstream_that_stops_refreshing_is_pruned() {
    let mut h = Harness::new();
    h.active_tree();
    let stream = stream_id("src", "tv");
    assert_eq!(h.node.routes()[&stream].state(), RouteState::Active);
    // Keep the upstream alive and offering, but let the child's join lapse.
    h.run(40, Duration::from_millis(100), &[UP], Some(2));
    assert_eq!(h.node.routes()[&stream].state(), RouteState::Inactive);
}

#[test]
fn a_silent_parent_is_declared_down_and_another_offer_is_used() {
    let mut h = Harness::new();
    h.recv(UP, &announce(1, 100));
    h.recv(OTHER, &announce(1, 900));
    h.recv(
        DOWN,
        &reliable(
            0,
            Message::Join {
                stream: stream_id("src", "tv"),
            },
        ),
    );
    h.drain();
    let stream = stream_id("src", "tv");
    assert_eq!(h.node.routes()[&stream].upstream, Some(addr(UP)));
    // everyone but UP keeps talking
    h.run(30, Duration::from_millis(50), &[OTHER, DOWN], None);
    assert_eq!(h.node.routes()[&stream].upstream, Some(addr(OTHER)));
}

#[test]
fn strangers_cannot_join_or_announce() {
    let mut h = Harness::new();
    h.recv(UP, &announce(1, 100));
    h.drain();
    // a non-neighbour sending a reliable join is treated as a client, and clients cannot join
    h.recv(
        99,
        &reliable(
            0,
            Message::Join {
                stream: stream_id("src", "tv"),
            },
        ),
    );
    h.recv(99, &announce(5, 1));
    h.drain();
    assert!(
        h.node.routes()[&stream_id("src", "tv")]
            .downstream
            .is_empty()
    );
    assert_eq!(h.node.drops().not_a_neighbour, 2);
}

#[test]
fn a_client_watch_by_name_gets_the_stream_and_unknown_names_are_refused() {
    let mut h = Harness::new();
    // Three seconds of a healthy overlay: the node has heard full rounds and is ready.
    h.run(30, Duration::from_millis(100), &[UP, DOWN, OTHER], Some(1));
    h.recv(
        50,
        &reliable(
            0,
            Message::Watch {
                request: 7,
                name: "tv".into(),
            },
        ),
    );
    h.recv(
        50,
        &reliable(
            1,
            Message::Watch {
                request: 8,
                name: "nope".into(),
            },
        ),
    );
    let replies: Vec<Message> = h
        .sent_to(50)
        .into_iter()
        .filter_map(|p| match Datagram::decode(&p) {
            Ok(Datagram::Reliable { message, .. }) => Some(message),
            _ => None,
        })
        .collect();
    assert!(replies.contains(&Message::WatchReply {
        request: 7,
        status: WatchStatus::Ok,
        stream: stream_id("src", "tv")
    }));
    assert!(replies.contains(&Message::WatchReply {
        request: 8,
        status: WatchStatus::NoSuchChannel,
        stream: 0
    }));
    h.recv(UP, &media(0));
    assert_eq!(h.sent_to(50), vec![media(0)]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn arbitrary_datagrams_from_anyone_never_panic(
        inputs in prop::collection::vec((0u8..5, prop::collection::vec(any::<u8>(), 0..200), 0u64..400), 1..60)
    ) {
        let mut h = Harness::new();
        h.active_tree();
        for (who, mut bytes, dt) in inputs {
            // half the time, make it look like a meshcast header so it gets past the magic
            if bytes.len() > 6 && who % 2 == 0 {
                bytes[0] = 0x4D; bytes[1] = 0x43; bytes[2] = 1; bytes[4] = 0; bytes[5] = 0;
                bytes[3] = 1 + bytes[3] % 4;
            }
            h.now += Duration::from_millis(dt);
            h.recv([UP, DOWN, OTHER, 60, ME][usize::from(who)], &bytes);
            h.node.handle_timeout(h.now);
            h.drain();
        }
    }
}

#[test]
fn a_channel_left_out_of_a_complete_newer_round_is_withdrawn_at_once() {
    let mut h = Harness::new();
    let two = |seq: u32, names: &[&str]| {
        Datagram::Control(Message::Announce(Announce {
            origin: "src".into(),
            incarnation: 9,
            seq,
            part: 0,
            parts: 1,
            cost_us: 100,
            hops: 1,
            channels: names.iter().map(|n| channel("src", n)).collect(),
        }))
        .encode()
    };
    h.recv(UP, &two(1, &["tv", "radio"]));
    h.drain();
    assert!(h.node.routes()[&stream_id("src", "radio")].reachable());
    h.recv(UP, &two(2, &["tv"]));
    h.drain();
    // no offer is left for "radio": it is no longer reachable, and is forgotten at the next tick
    assert!(
        !h.node
            .routes()
            .get(&stream_id("src", "radio"))
            .is_some_and(Route::reachable)
    );
    h.now += Duration::from_millis(60);
    h.node.handle_timeout(h.now);
    assert!(!h.node.routes().contains_key(&stream_id("src", "radio")));
    assert!(h.node.routes()[&stream_id("src", "tv")].reachable());
}

fn route_request(seq: u32) -> Vec<u8> {
    Datagram::Control(Message::RouteRequest {
        origin: "src".into(),
        incarnation: 9,
        seq,
    })
    .encode()
}

fn is_route_request(p: &[u8]) -> bool {
    matches!(
        Datagram::decode(p),
        Ok(Datagram::Control(Message::RouteRequest { .. }))
    )
}

#[test]
fn losing_the_only_loop_free_parent_floods_one_round_request() {
    let mut h = Harness::new();
    h.active_tree();
    // UP goes silent while media was flowing: probe, then down, then no parent left.
    h.recv(UP, &media(0));
    h.drain();
    let mut requests = Vec::new();
    for _ in 0..12 {
        h.now += Duration::from_millis(25);
        h.recv(DOWN, &Datagram::Control(Message::Ping { t_us: 0 }).encode());
        h.recv(
            OTHER,
            &Datagram::Control(Message::Ping { t_us: 0 }).encode(),
        );
        h.node.handle_timeout(h.now);
        requests.extend(h.drain().into_iter().filter(|(_, p)| is_route_request(p)));
    }
    assert_eq!(h.node.routes()[&stream_id("src", "tv")].upstream, None);
    let dsts: Vec<SocketAddr> = requests.iter().map(|(d, _)| *d).collect();
    assert_eq!(
        dsts,
        vec![addr(DOWN), addr(OTHER)],
        "one request to each live neighbour"
    );
    // the same request coming back is not forwarded again
    h.recv(OTHER, &route_request(1));
    assert!(!h.drain().iter().any(|(_, p)| is_route_request(p)));
}

#[test]
fn an_origin_answers_a_round_request_with_a_new_round_at_once() {
    let now = crate::test_epoch();
    let mut node = Node::new(NodeConfig::new("src", 1));
    node.handle_command(now, NodeCommand::SetNeighbours(neighbours()));
    node.handle_datagram(
        now,
        addr(UP),
        &Datagram::Control(Message::Ping { t_us: 0 }).encode(),
    );
    node.handle_command(
        now,
        NodeCommand::AddChannel(LocalChannel {
            name: "tv".into(),
            codec: "h264".into(),
            width: 1,
            height: 1,
            fps_milli: 1,
            bitrate_kbps: 1,
        }),
    );
    node.handle_timeout(now);
    let rounds = |node: &mut Node| -> Vec<u32> {
        std::iter::from_fn(|| node.poll_transmit())
            .filter_map(|t| match Datagram::decode(&t.payload) {
                Ok(Datagram::Control(Message::Announce(a))) => Some(a.seq),
                _ => None,
            })
            .collect()
    };
    let first = rounds(&mut node);
    assert!(!first.is_empty());
    let later = now + Duration::from_millis(100);
    node.handle_datagram(
        later,
        addr(UP),
        &Datagram::Control(Message::RouteRequest {
            origin: "src".into(),
            incarnation: 0,
            seq: first[0],
        })
        .encode(),
    );
    node.handle_timeout(later);
    let next = rounds(&mut node);
    assert_eq!(
        next,
        vec![first[0] + 1],
        "a new round went out without waiting a second"
    );
}

#[test]
fn a_join_from_our_own_parent_makes_us_drop_it_as_parent() {
    let mut h = Harness::new();
    h.recv(UP, &announce(1, 100));
    h.recv(OTHER, &announce(1, 50));
    h.drain();
    let stream = stream_id("src", "tv");
    let parent = h.node.routes()[&stream].upstream.expect("a parent");
    let parent_n = if parent == addr(UP) { UP } else { OTHER };
    h.recv(parent_n, &reliable(0, Message::Join { stream }));
    h.drain();
    let r = &h.node.routes()[&stream];
    assert_ne!(
        r.upstream,
        Some(parent),
        "still using a parent that chose us"
    );
    assert!(r.upstream.is_some(), "the other offer is taken");
}
