//! Named faults on simulated overlays: corrupted datagrams, a partition that heals, churn
//! (relays leaving and coming back), and a loss sweep. Eight seeds each.

mod common;

use meshcast_proto::wire::stream_id;
use meshcast_sim::seed::{ReplayHint, seeds};
use meshcast_sim::{Sim, check};
use std::time::Duration;

const PPS: u32 = 200;
const SEEDS: [u64; 8] = [1, 2, 3, 4, 5, 6, 7, 8];

fn start(topology: &str, seed: u64) -> (Sim, Vec<String>) {
    let t = common::topology(topology);
    let mut sim = Sim::from_topology(&t, seed, |_| {});
    let viewers = common::add_viewers(&mut sim, &t);
    sim.add_source("s1", "tv", PPS);
    sim.run_for(Duration::from_secs(3));
    common::watch_all(&mut sim, &viewers, "tv");
    (sim, viewers)
}

/// Media packets each viewer played during the next `d`.
fn played_during(sim: &mut Sim, viewers: &[String], d: Duration) -> Vec<u64> {
    let before: Vec<u64> = viewers.iter().map(|v| sim.client_media(v)).collect();
    sim.run_for(d);
    viewers
        .iter()
        .zip(before)
        .map(|(v, b)| sim.client_media(v) - b)
        .collect()
}

#[test]
fn corrupted_datagrams_are_recovered_and_never_played() {
    for seed in seeds(&SEEDS) {
        let _hint = ReplayHint::new(seed, "cargo test -p meshcast-sim --test faults corrupted");
        let (mut sim, viewers) = start("e2e.toml", seed);
        sim.set_corruption(0.02);
        sim.run_for(Duration::from_secs(15));
        assert!(
            sim.counters.corrupted > 100,
            "seed {seed}: too little corruption to test"
        );
        let caught: u64 = sim
            .node_names()
            .iter()
            .map(|n| sim.node(n).drops().corrupt)
            .sum();
        // The receivers' checksums catch the corrupted datagrams (a few, still in flight or
        // otherwise unseen when the run stops, are not counted): without the check they would
        // be taken for good ones, and a flipped payload bit rarely shows as a continuity error.
        let by_viewers: u64 = viewers
            .iter()
            .filter_map(|v| sim.client(v).report("tv"))
            .map(|r| r.corrupt_packets)
            .sum();
        let total = caught + by_viewers;
        assert!(
            total <= sim.counters.corrupted && total * 100 >= sim.counters.corrupted * 95,
            "seed {seed}: {total} of {} corrupted datagrams caught",
            sim.counters.corrupted
        );
        for v in &viewers {
            let r = sim.client(v).report("tv").expect("watching");
            assert_eq!(
                r.continuity_errors, 0,
                "seed {seed}: {v} played a damaged packet"
            );
            assert!(
                r.continuity_index.is_some_and(|c| c >= 0.999),
                "seed {seed}: {v} continuity {:?}",
                r.continuity_index
            );
            eprintln!(
                "seed {seed}: {v}: {} corrupted datagrams on the wire, {caught} caught by relays, \
                 {} by the viewer, {} recovered, continuity {:?}",
                sim.counters.corrupted, r.corrupt_packets, r.recovered_packets, r.continuity_index
            );
        }
    }
}

#[test]
fn a_partition_that_heals_lets_every_viewer_watch_again() {
    for seed in seeds(&SEEDS) {
        let _hint = ReplayHint::new(seed, "cargo test -p meshcast-sim --test faults partition");
        // e2e.toml is a chain: cutting n2–n3 leaves both viewers without any source.
        let (mut sim, viewers) = start("e2e.toml", seed);
        sim.run_for(Duration::from_secs(3));
        sim.partition("n2", "n3");
        let during = played_during(&mut sim, &viewers, Duration::from_secs(4));
        assert!(
            during.iter().all(|p| *p < u64::from(PPS) * 2),
            "seed {seed}: media crossed the partition: {during:?}"
        );
        sim.heal("n2", "n3");
        // Soft state brings the tree back: within 3 s of the heal every viewer plays again.
        sim.run_for(Duration::from_secs(3));
        let after = played_during(&mut sim, &viewers, Duration::from_secs(1));
        for (v, p) in viewers.iter().zip(&after) {
            assert!(
                *p > u64::from(PPS) / 2,
                "seed {seed}: {v} played {p} packets after the heal"
            );
        }
        assert_eq!(
            check::find_cycle(&sim, stream_id("s1", "tv")),
            None,
            "seed {seed}"
        );
        eprintln!(
            "seed {seed}: partition n2–n3 for 4 s, then healed: viewers play {after:?} packets/s"
        );
    }
}

#[test]
fn churn_of_relays_leaving_and_returning_keeps_viewers_watching() {
    let stream = stream_id("s1", "tv");
    let mut all_stalls = Vec::new();
    for seed in seeds(&SEEDS) {
        let _hint = ReplayHint::new(seed, "cargo test -p meshcast-sim --test faults churn");
        let (mut sim, viewers) = start("mesh-50.toml", seed);
        sim.run_for(Duration::from_secs(3));
        // Every 2 s one relay leaves (crash) and the one that left before comes back (restart
        // with the same id and a fresh state), for 20 s.
        let relays: Vec<String> = sim.node_names().into_iter().filter(|n| n != "s1").collect();
        let mut gone: Option<String> = None;
        for round in 0..10u64 {
            let victim = relays[((seed * 7 + round * 13) % relays.len() as u64) as usize].clone();
            if let Some(back) = gone.take() {
                sim.restart(&back);
            }
            if gone.is_none() && sim.node_names().contains(&victim) {
                sim.crash(&victim);
                gone = Some(victim);
            }
            sim.run_for(Duration::from_secs(2));
        }
        if let Some(back) = gone.take() {
            sim.restart(&back);
        }
        sim.run_for(Duration::from_secs(3));
        let last = played_during(&mut sim, &viewers, Duration::from_secs(1));
        for (v, p) in viewers.iter().zip(&last) {
            assert!(
                *p > u64::from(PPS) / 2,
                "seed {seed}: {v} played {p} packets in the last second"
            );
        }
        assert_eq!(check::find_cycle(&sim, stream), None, "seed {seed}");
        let mut worst = 1.0f64;
        for v in &viewers {
            let r = sim.client(v).report("tv").expect("watching");
            worst = worst.min(r.continuity_index.unwrap_or(0.0));
            all_stalls.extend(
                r.stalls
                    .iter()
                    .filter(|s| !s.trailing)
                    .map(|s| s.duration_ms),
            );
        }
        assert!(
            worst >= 0.95,
            "seed {seed}: a viewer's continuity fell to {worst}"
        );
        eprintln!("seed {seed}: 10 relays left and came back; worst viewer continuity {worst:.4}");
    }
    all_stalls.sort_unstable();
    let median = all_stalls.get(all_stalls.len() / 2).copied().unwrap_or(0);
    eprintln!(
        "churn: {} stalls, median {median} ms, max {:?} ms",
        all_stalls.len(),
        all_stalls.last()
    );
    assert!(median < 500, "median stall {median} ms");
}

#[test]
fn loss_sweep_from_zero_to_twenty_percent() {
    for loss in [0.0, 0.02, 0.05, 0.10, 0.15, 0.20] {
        let mut worst = 1.0f64;
        for seed in seeds(&[1, 2, 3, 4]) {
            let _hint = ReplayHint::new(seed, "cargo test -p meshcast-sim --test faults sweep");
            let (mut sim, viewers) = common::lossy_chain(seed, loss, PPS);
            // Under heavy loss announcements take a few rounds to reach the PoPs: watch once
            // both know the channel (as a viewer would retry a "no such channel").
            let stream = stream_id("s1", "tv");
            let known = sim.run_until(Duration::from_secs(20), |s| {
                ["n4", "n5"].iter().all(|p| {
                    s.node(p)
                        .routes()
                        .get(&stream)
                        .is_some_and(|r| r.reachable())
                })
            });
            assert!(
                known,
                "loss {loss}, seed {seed}: the PoPs never learned the channel"
            );
            common::watch_all(&mut sim, &viewers, "tv");
            sim.run_for(Duration::from_secs(10));
            for v in &viewers {
                let r = sim.client(v).report("tv").expect("watching");
                worst = worst.min(r.continuity_index.unwrap_or(0.0));
            }
        }
        eprintln!(
            "loss {:>4.0} % on every link: worst viewer continuity index {worst:.5}",
            loss * 100.0
        );
        if loss <= 0.05 {
            assert!(worst >= 0.999, "loss {loss}: continuity {worst}");
        } else if loss <= 0.10 {
            assert!(worst >= 0.99, "loss {loss}: continuity {worst}");
        }
    }
}

#[test]
fn a_region_cut_off_from_the_fifty_node_overlay_recovers_when_healed() {
    let t = common::topology("mesh-50.toml");
    // The region: relays n40..n49. Every link between it and the rest is cut, then healed.
    let in_region = |id: &str| {
        id.strip_prefix('n')
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|n| n >= 40)
    };
    let cut: Vec<(String, String)> = t
        .links()
        .iter()
        .filter(|l| in_region(&l.a) != in_region(&l.b))
        .map(|l| (l.a.clone(), l.b.clone()))
        .collect();
    assert!(!cut.is_empty());
    let stream = stream_id("s1", "tv");
    let mut cut_off = 0;
    for seed in seeds(&SEEDS) {
        let _hint = ReplayHint::new(seed, "cargo test -p meshcast-sim --test faults region");
        let (mut sim, viewers) = start("mesh-50.toml", seed);
        sim.run_for(Duration::from_secs(3));
        // Viewers watching through a PoP inside the region lose the stream while it is cut
        // off (their PoP still answers probes, so they stay and wait for the heal).
        let affected: Vec<usize> = viewers
            .iter()
            .enumerate()
            .filter(|(_, v)| {
                let pop = sim.client(v).selected_pop().expect("a PoP");
                sim.node_names()
                    .iter()
                    .any(|n| in_region(n) && sim.addr(n) == pop)
            })
            .map(|(i, _)| i)
            .collect();
        cut_off += affected.len();
        for (a, b) in &cut {
            sim.partition(a, b);
        }
        let during = played_during(&mut sim, &viewers, Duration::from_secs(4));
        for i in &affected {
            assert!(
                during[*i] < u64::from(PPS) * 2,
                "seed {seed}: {} played {} packets through a cut-off PoP",
                viewers[*i],
                during[*i]
            );
        }
        for (a, b) in &cut {
            sim.heal(a, b);
        }
        sim.run_for(Duration::from_secs(3));
        let after = played_during(&mut sim, &viewers, Duration::from_secs(1));
        for (v, p) in viewers.iter().zip(&after) {
            assert!(
                *p > u64::from(PPS) / 2,
                "seed {seed}: {v} played {p} packets/s after the heal"
            );
        }
        assert_eq!(check::find_cycle(&sim, stream), None, "seed {seed}");
        eprintln!(
            "seed {seed}: cut {} links around n40–n49 for 4 s ({} viewers cut off), healed: all {} viewers play again",
            cut.len(),
            affected.len(),
            viewers.len()
        );
    }
    assert!(
        cut_off > 0,
        "no seed had a viewer behind the cut: the partition tested nothing"
    );
}
