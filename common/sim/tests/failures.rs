//! Failures on the 50-node overlay: relays on the active tree crash one after another while
//! 12 viewers watch. Every viewer must recover from every crash; the median stall must stay
//! under 500 ms.

mod common;

use meshcast_proto::wire::stream_id;
use meshcast_sim::seed::{ReplayHint, seeds};
use meshcast_sim::{Sim, check};
use std::time::Duration;

const PPS: u32 = 200;

/// The live relay (not the server) with the most downstream entries for `stream`.
fn busiest_relay(sim: &Sim, stream: u32) -> Option<String> {
    sim.node_names()
        .into_iter()
        .filter(|n| n != "s1")
        .map(|n| {
            let fan = sim
                .node(&n)
                .routes()
                .get(&stream)
                .map_or(0, |r| r.downstream.len());
            (fan, n)
        })
        .filter(|(fan, _)| *fan > 0)
        .max()
        .map(|(_, n)| n)
}

#[test]
fn viewers_recover_from_the_busiest_relays_crashing_one_after_another() {
    let t = common::topology("mesh-50.toml");
    let stream = stream_id("s1", "tv");
    let mut all_stalls = Vec::new();
    for seed in seeds(&[1, 2, 3, 4, 5, 6, 7, 8]) {
        let _hint = ReplayHint::new(seed, "cargo test -p meshcast-sim --test failures");
        let mut sim = Sim::from_topology(&t, seed, |_| {});
        let viewers = common::add_viewers(&mut sim, &t);
        sim.add_source("s1", "tv", PPS);
        sim.run_for(Duration::from_secs(3));
        common::watch_all(&mut sim, &viewers, "tv");
        sim.run_for(Duration::from_secs(4));
        let mut crashed = Vec::new();
        for _ in 0..3 {
            let victim = busiest_relay(&sim, stream).expect("a relay carries the stream");
            sim.crash(&victim);
            crashed.push(victim);
            sim.run_for(Duration::from_secs(4));
        }
        // Everyone is receiving again, from a tree with no cycle.
        let before: Vec<u64> = viewers.iter().map(|v| sim.client_media(v)).collect();
        sim.run_for(Duration::from_secs(1));
        for (v, b) in viewers.iter().zip(before) {
            let got = sim.client_media(v) - b;
            if got <= PPS as u64 / 2 {
                let c = sim.client(v);
                let pops = c.pops(sim.now());
                let mut chain = Vec::new();
                if let Some(pop) = c.selected_pop()
                    && let Some(mut at) = sim.node_names().into_iter().find(|n| sim.addr(n) == pop)
                {
                    for _ in 0..12 {
                        let node = sim.node(&at);
                        let r = node.routes().get(&stream);
                        chain.push(format!(
                            "{at}: up={:?} cands={:?} adv={:?} epoch={:?} down={:?} media_in={} last_media={:?}",
                            r.and_then(|r| r.upstream).and_then(|u| node.neighbour_id(u)),
                            r.map(|r| r.candidates.iter().map(|(a, c)| (node.neighbour_id(*a).unwrap_or("?").to_owned(), c.epoch.seq, c.advertised_us, c.metric_us)).collect::<Vec<_>>()),
                            r.and_then(|r| r.advertised),
                            r.and_then(|r| r.epoch),
                            r.map(|r| r.downstream.keys().map(|a| node.neighbour_id(*a).map_or(a.to_string(), str::to_owned)).collect::<Vec<_>>()),
                            r.map_or(0, |r| r.media_in),
                            r.and_then(|r| r.last_media).map(|t| sim.now() - t),
                        ));
                        match r
                            .and_then(|r| r.upstream)
                            .and_then(|u| node.neighbour_id(u))
                        {
                            Some(p) => at = p.to_owned(),
                            _ => break,
                        }
                    }
                }
                panic!(
                    "seed {seed}: {v} got {got} packets in the last second after crashing {crashed:?}\npops {pops:?}\n{}",
                    chain.join("\n")
                );
            }
        }
        assert_eq!(check::find_cycle(&sim, stream), None, "seed {seed}");
        let mut stalls = Vec::new();
        for v in &viewers {
            let r = sim.client(v).report("tv").expect("watching");
            stalls.extend(
                r.stalls
                    .iter()
                    .filter(|s| !s.trailing)
                    .map(|s| s.duration_ms),
            );
            if std::env::var_os("SIM_TRACE").is_some() {
                for st in r.stalls.iter().filter(|s| s.duration_ms > 500) {
                    eprintln!(
                        "  {v} stall at +{} ms for {} ms (pop {:?})",
                        st.start_ms, st.duration_ms, r.pop
                    );
                }
            }
        }
        if std::env::var_os("SIM_TRACE").is_some() {
            for n in sim.node_names() {
                for (t, e) in sim.node_events(&n) {
                    eprintln!("  {:>8.3} {n}: {e:?}", sim.since_start(*t).as_secs_f64());
                }
            }
        }
        eprintln!("seed {seed}: crashed {crashed:?}; stalls (ms) {stalls:?}");
        all_stalls.extend(stalls);
    }
    all_stalls.sort_unstable();
    let median = all_stalls.get(all_stalls.len() / 2).copied().unwrap_or(0);
    eprintln!(
        "{} stalls over all seeds: median {median} ms, max {} ms",
        all_stalls.len(),
        all_stalls.last().copied().unwrap_or(0)
    );
    assert!(median < 500, "median stall {median} ms");
}

/// The end of the stall that covers `at` (ms since the watch request), if any.
fn resume_after(sim: &Sim, viewer: &str, at_ms: u64) -> Option<u64> {
    let r = sim.client(viewer).report("tv")?;
    r.stalls
        .iter()
        .filter(|s| !s.trailing && s.start_ms <= at_ms + 500 && s.start_ms + s.duration_ms >= at_ms)
        .map(|s| s.start_ms + s.duration_ms)
        .max()
}

#[test]
fn a_restarted_server_is_watched_again_within_three_seconds() {
    let t = common::topology("e2e.toml");
    for seed in seeds(&[1, 2, 3, 4, 5, 6, 7, 8]) {
        let _hint = ReplayHint::new(seed, "cargo test -p meshcast-sim --test failures");
        let mut sim = Sim::from_topology(&t, seed, |_| {});
        let viewers = common::add_viewers(&mut sim, &t);
        sim.add_source("s1", "tv", PPS);
        sim.run_for(Duration::from_secs(3));
        common::watch_all(&mut sim, &viewers, "tv");
        sim.run_for(Duration::from_secs(4));
        sim.crash("s1");
        sim.run_for(Duration::from_secs(2));
        sim.restart("s1");
        let restarted_ms = 6_000; // watch at 3 s, crash at 7 s, restart at 9 s
        sim.run_for(Duration::from_secs(6));
        for v in &viewers {
            let resumed = resume_after(&sim, v, 4_000)
                .unwrap_or_else(|| panic!("seed {seed}: {v} never stalled: was the server down?"));
            let wait = resumed.saturating_sub(restarted_ms);
            eprintln!("seed {seed}: {v} plays again {wait} ms after the server restarted");
            assert!(wait < 3_000, "seed {seed}: {v} waited {wait} ms");
            let got = sim.client(v).report("tv").expect("watching").media_packets;
            assert!(
                got > u64::from(PPS) * 8,
                "seed {seed}: {v} got only {got} packets"
            );
        }
    }
}

#[test]
fn a_viewer_moves_to_its_other_pop_when_its_pop_crashes() {
    let t = common::topology("mesh-50.toml");
    let mut stalls = Vec::new();
    for seed in seeds(&[1, 2, 3, 4, 5, 6, 7, 8]) {
        let _hint = ReplayHint::new(seed, "cargo test -p meshcast-sim --test failures");
        let mut sim = Sim::from_topology(&t, seed, |_| {});
        let viewers = common::add_viewers(&mut sim, &t);
        sim.add_source("s1", "tv", PPS);
        sim.run_for(Duration::from_secs(3));
        common::watch_all(&mut sim, &viewers, "tv");
        sim.run_for(Duration::from_secs(3));
        let v = &viewers[(seed as usize) % viewers.len()];
        let pop = sim.client(v).selected_pop().expect("a PoP");
        let name = sim
            .node_names()
            .into_iter()
            .find(|n| sim.addr(n) == pop)
            .expect("the PoP is a node");
        sim.crash(&name);
        sim.run_for(Duration::from_secs(4));
        let now_pop = sim.client(v).selected_pop().expect("a PoP");
        assert_ne!(
            now_pop, pop,
            "seed {seed}: {v} is still on the crashed PoP {name}"
        );
        // It plays again: media keeps coming in the second after (a stall still open would
        // not be in the stall list yet).
        let before = sim.client_media(v);
        sim.run_for(Duration::from_secs(1));
        let got = sim.client_media(v) - before;
        assert!(
            got > u64::from(PPS) / 2,
            "seed {seed}: {v} got {got} packets in the second after moving from {name}"
        );
        let worst = resume_after(&sim, v, 3_000).map_or(0, |end| end - 3_000);
        eprintln!(
            "seed {seed}: {v} left crashed PoP {name}; stall ended {worst} ms after the crash"
        );
        assert!(worst < 1_000, "seed {seed}: {v} stalled {worst} ms");
        stalls.push(worst);
    }
    stalls.sort_unstable();
    eprintln!("PoP crash: time to media again after the crash, ms: {stalls:?}");
}

/// Dual-parent relays and dual-PoP viewers on two disjoint paths: a crash of a viewer's PoP,
/// or of the relay feeding it, costs the viewer no packet at all.
#[test]
fn with_two_parents_a_crash_loses_no_packet() {
    let t = common::topology("diamond.toml");
    let stream = stream_id("s1", "tv");
    for seed in seeds(&[1, 2, 3, 4, 5, 6, 7, 8]) {
        for victim_is_pop in [true, false] {
            let _hint = ReplayHint::new(seed, "cargo test -p meshcast-sim --test failures");
            let mut sim = Sim::from_topology(&t, seed, |c| c.dual_parent = true);
            let viewers = common::add_viewers(&mut sim, &t);
            for v in &viewers {
                sim.set_client_dual(v, true);
            }
            sim.add_source("s1", "tv", PPS);
            sim.run_for(Duration::from_secs(3));
            common::watch_all(&mut sim, &viewers, "tv");
            sim.run_for(Duration::from_secs(3));
            let pop = sim.client("c1").selected_pop().expect("a PoP");
            let pop_name = sim
                .node_names()
                .into_iter()
                .find(|n| sim.addr(n) == pop)
                .expect("PoP is a node");
            let route = &sim.node(&pop_name).routes()[&stream];
            assert!(
                route.secondary.is_some(),
                "seed {seed}: {pop_name} has no second parent: candidates {:?}, advertised {:?}, epoch {:?}",
                route
                    .candidates
                    .values()
                    .map(|c| (c.epoch.seq, c.advertised_us, c.metric_us))
                    .collect::<Vec<_>>(),
                route.advertised,
                route.epoch
            );
            let victim = if victim_is_pop {
                pop_name.clone()
            } else {
                let up = route.upstream.expect("a parent");
                sim.node(&pop_name)
                    .neighbour_id(up)
                    .expect("parent id")
                    .to_owned()
            };
            sim.crash(&victim);
            sim.run_for(Duration::from_secs(4));
            for v in &viewers {
                let r = sim.client(v).report("tv").expect("watching");
                assert_eq!(
                    (r.lost_packets, r.continuity_errors),
                    (0, 0),
                    "seed {seed}: {v} lost packets when {victim} crashed"
                );
                assert!(
                    r.media_packets > u64::from(PPS) * 6,
                    "seed {seed}: {v} got {}",
                    r.media_packets
                );
                let stalls: Vec<_> = r.stalls.iter().filter(|s| !s.trailing).collect();
                assert!(stalls.is_empty(), "seed {seed}: {v} stalled: {stalls:?}");
            }
            assert_eq!(check::find_cycle(&sim, stream), None, "seed {seed}");
            eprintln!("seed {seed}: crashed {victim}: no viewer lost a packet");
        }
    }
}

/// A parent that becomes slower (not dead) is replaced make-before-break: the old parent keeps
/// sending until the new one delivers, so the switch costs the viewer nothing.
#[test]
fn switching_away_from_a_slower_parent_loses_no_packet() {
    let t = common::topology("diamond.toml");
    let stream = stream_id("s1", "tv");
    for seed in seeds(&[1, 2, 3, 4, 5, 6, 7, 8]) {
        let _hint = ReplayHint::new(seed, "cargo test -p meshcast-sim --test failures");
        let mut sim = Sim::from_topology(&t, seed, |_| {});
        common::add_viewers(&mut sim, &t);
        sim.add_source("s1", "tv", PPS);
        sim.run_for(Duration::from_secs(3));
        // Only c1 watches, so the other relay does not carry the stream before the switch.
        sim.client_command(
            "c1",
            meshcast_proto::client::ClientCommand::Watch("tv".into()),
        );
        sim.run_for(Duration::from_secs(3));
        let pop = sim.client("c1").selected_pop().expect("a PoP");
        let pop_name = sim
            .node_names()
            .into_iter()
            .find(|n| sim.addr(n) == pop)
            .expect("PoP is a node");
        let node = sim.node(&pop_name);
        let parent = node
            .routes()
            .get(&stream)
            .and_then(|r| r.upstream)
            .and_then(|u| node.neighbour_id(u))
            .expect("a parent")
            .to_owned();
        // The parent's link to s1 gets 40 ms slower: after a few rounds the PoP's path
        // through the other relay is clearly better and it switches.
        sim.set_latency("s1", &parent, Duration::from_millis(40));
        sim.run_for(Duration::from_secs(8));
        let node = sim.node(&pop_name);
        let now_parent = node
            .routes()
            .get(&stream)
            .and_then(|r| r.upstream)
            .and_then(|u| node.neighbour_id(u))
            .expect("a parent")
            .to_owned();
        assert_ne!(now_parent, parent, "seed {seed}: {pop_name} did not switch");
        let r = sim.client("c1").report("tv").expect("watching");
        assert_eq!(
            (r.lost_packets, r.continuity_errors, r.seq_gaps),
            (0, 0, 0),
            "seed {seed}: the switch from {parent} to {now_parent} cost c1 packets"
        );
        assert!(r.stalls.is_empty(), "seed {seed}: {:?}", r.stalls);
    }
}
