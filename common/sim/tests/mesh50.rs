//! The 50-node overlay on a lossless fabric: 12 viewers watch one channel.
//!
//! Acceptance of the end-to-end pipeline in simulation: the distribution tree has no cycle,
//! every viewer receives at least 99.9 % of the media packets, no overlay link carries the
//! stream twice, and an announcement round costs at most two datagrams per link.

mod common;

use meshcast_proto::wire::stream_id;
use meshcast_sim::seed::{ReplayHint, seeds};
use meshcast_sim::{Sim, check};
use std::time::{Duration, Instant};

const PPS: u32 = 200; // 200 datagrams/s of 7 TS packets ≈ 2.1 Mbit/s
const WATCH: Duration = Duration::from_secs(20);

#[test]
fn fifty_node_overlay_delivers_one_copy_per_link_to_every_viewer() {
    let t = common::topology("mesh-50.toml");
    let links = t.links().len() as u64;
    for seed in seeds(&[1, 2, 3, 4]) {
        let _hint = ReplayHint::new(seed, "cargo test -p meshcast-sim --test mesh50");
        let wall = Instant::now();
        let mut sim = Sim::from_topology(&t, seed, |_| {});
        let viewers = common::add_viewers(&mut sim, &t);
        assert!(
            viewers.len() >= 10,
            "the scenario needs at least 10 viewers"
        );
        sim.add_source("s1", "tv", PPS);

        // Let the overlay converge, then count one clean window of announcement rounds.
        sim.run_for(Duration::from_secs(3));
        let before = sim.counters.announces;
        sim.run_for(Duration::from_secs(10));
        let rounds = 10;
        let per_round = (sim.counters.announces - before) as f64 / f64::from(rounds);
        assert!(
            per_round <= (2 * links) as f64,
            "seed {seed}: {per_round} announcements per round > 2 × {links} links"
        );

        common::watch_all(&mut sim, &viewers, "tv");
        sim.run_for(WATCH);

        let stream = stream_id("s1", "tv");
        assert_eq!(
            check::find_cycle(&sim, stream),
            None,
            "seed {seed}: the tree has a cycle"
        );
        let both = check::links_carrying_both_ways(&sim, stream);
        assert!(
            both.is_empty(),
            "seed {seed}: links carrying the stream both ways: {both:?}"
        );
        assert_eq!(
            sim.counters.media_repeats, 0,
            "seed {seed}: a link carried a packet twice"
        );

        let mut worst = 1.0f64;
        for v in &viewers {
            let mut r = sim.client(v).report("tv").expect("watching");
            let startup = r
                .startup_ms
                .unwrap_or_else(|| panic!("seed {seed}: {v} got no media"));
            // Packets the source sent since this viewer's first packet arrived, less the
            // ones still in its playout buffer when the watch ends.
            let receiving = WATCH.as_secs_f64() - (startup + r.playout_latency_ms) / 1e3;
            assert!(
                r.continuity_index.is_some_and(|c| c >= 0.999),
                "seed {seed}: {v} continuity {:?}",
                r.continuity_index
            );
            let expected = receiving * f64::from(PPS);
            let ratio = r.media_packets as f64 / expected;
            worst = worst.min(ratio);
            assert!(
                ratio >= 0.999 - 2.0 / expected,
                "seed {seed}: {v} got {} of ~{expected:.0} packets",
                r.media_packets
            );
            assert_eq!(r.seq_gaps, 0, "seed {seed}: {v} missed packets");
            assert_eq!(
                r.continuity_errors, 0,
                "seed {seed}: {v} saw TS discontinuities"
            );
            assert_eq!(r.duplicate_packets, 0, "seed {seed}: {v} got duplicates");
            r.stalls.retain(|s| !s.trailing);
            assert!(
                r.stalls.is_empty(),
                "seed {seed}: {v} stalled: {:?}",
                r.stalls
            );
        }
        let control: u64 = sim.counters.control.values().sum();
        eprintln!(
            "seed {seed}: {links} links, {per_round:.1} announcements/round, {:.0} control datagrams/s overall, worst viewer {:.4} of packets, wall {:?}",
            control as f64 / sim.elapsed().as_secs_f64(),
            worst.min(1.0),
            wall.elapsed()
        );
    }
}
