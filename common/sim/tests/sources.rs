//! Two servers with different and overlapping catalogues: each viewer's stream comes from the
//! source that is cheapest for it, and a channel only one server offers reaches everyone.

mod common;

use meshcast_proto::client::ClientEvent;
use meshcast_proto::wire::stream_id;
use meshcast_sim::seed::{ReplayHint, seeds};
use meshcast_sim::{Sim, check};
use std::time::Duration;

fn watching_stream(sim: &Sim, viewer: &str, channel: &str) -> Option<u32> {
    sim.client_events(viewer)
        .iter()
        .rev()
        .find_map(|(_, e)| match e {
            ClientEvent::Watching {
                channel: c, stream, ..
            } if c == channel => Some(*stream),
            _ => None,
        })
}

#[test]
fn each_viewer_pulls_an_overlapping_channel_from_its_nearest_source() {
    let t = common::topology("two-servers.toml");
    for seed in seeds(&[11, 12, 13]) {
        let _hint = ReplayHint::new(seed, "cargo test -p meshcast-sim --test sources");
        let mut sim = Sim::from_topology(&t, seed, |_| {});
        let viewers = common::add_viewers(&mut sim, &t);
        sim.add_source("s1", "news", 100);
        sim.add_source("s2", "news", 100);
        sim.add_source("s1", "sports", 100);
        sim.run_for(Duration::from_secs(3));
        common::watch_all(&mut sim, &viewers, "news");
        common::watch_all(&mut sim, &viewers, "sports");
        sim.run_for(Duration::from_secs(5));

        // At each viewer's PoP the stream of "news" it gets is the cheaper of the two sources.
        let mut used = std::collections::BTreeSet::new();
        for v in &viewers {
            let got = watching_stream(&sim, v, "news")
                .unwrap_or_else(|| panic!("seed {seed}: {v} not watching"));
            let pop = sim.client(v).selected_pop().expect("a PoP");
            let pop_name = sim
                .node_names()
                .into_iter()
                .find(|n| sim.addr(n) == pop)
                .expect("PoP is a node");
            let routes = sim.node(&pop_name).routes();
            let cost = |origin: &str| {
                routes
                    .get(&stream_id(origin, "news"))
                    .and_then(|r| r.cost())
                    .expect("route")
            };
            let cheapest = if cost("s1") <= cost("s2") { "s1" } else { "s2" };
            assert_eq!(
                got,
                stream_id(cheapest, "news"),
                "seed {seed}: {v} at {pop_name} is not on its cheapest source"
            );
            used.insert(got);
        }
        assert_eq!(
            used.len(),
            2,
            "seed {seed}: this topology puts the viewers nearer different servers"
        );
        for v in &viewers {
            assert_eq!(
                watching_stream(&sim, v, "sports"),
                Some(stream_id("s1", "sports")),
                "seed {seed}"
            );
            for ch in ["news", "sports"] {
                let r = sim.client(v).report(ch).expect("watching");
                assert!(
                    r.media_packets > 400,
                    "seed {seed}: {v} got {} packets of {ch}",
                    r.media_packets
                );
                assert_eq!(r.seq_gaps, 0, "seed {seed}: {v} missed {ch} packets");
            }
        }
        for s in [
            stream_id("s1", "news"),
            stream_id("s2", "news"),
            stream_id("s1", "sports"),
        ] {
            assert_eq!(check::find_cycle(&sim, s), None, "seed {seed}");
        }
    }
}

#[test]
fn an_unknown_channel_is_answered_as_such() {
    let t = common::topology("two-servers.toml");
    let mut sim = Sim::from_topology(&t, 5, |_| {});
    let viewers = common::add_viewers(&mut sim, &t);
    sim.add_source("s1", "news", 50);
    sim.run_for(Duration::from_secs(4));
    sim.client_command(
        &viewers[0],
        meshcast_proto::client::ClientCommand::Watch("nope".into()),
    );
    let answered = sim.run_until(Duration::from_secs(2), |s| {
        s.client_events(&viewers[0])
            .iter()
            .any(|(_, e)| matches!(e, ClientEvent::NoSuchChannel { channel } if channel == "nope"))
    });
    assert!(answered, "the PoP never said the channel does not exist");
}
