//! Random loss on every link, including the viewers' own links: hop-by-hop NACK recovery
//! and the viewers' playout buffers keep the continuity index at ≥ 0.999 with 5 % loss and
//! ≥ 0.99 with 10 %, over four relay hops.

mod common;

use meshcast_proto::wire::stream_id;
use meshcast_sim::seed::{ReplayHint, seeds};
use std::time::Duration;

const PPS: u32 = 200;

/// Runs e2e.toml (s1–n1–n2–n3–{n4,n5}, viewers at n4 and n5) with `loss` on every link;
/// returns each viewer's continuity index and the retransmission overhead (re-sent
/// datagrams / original datagrams, summed over all hops).
fn run(seed: u64, loss: f64) -> (Vec<(String, f64)>, f64) {
    let (mut sim, viewers) = common::lossy_chain(seed, loss, PPS);
    sim.run_for(Duration::from_secs(3));
    common::watch_all(&mut sim, &viewers, "tv");
    sim.run_for(Duration::from_secs(20));
    let stream = stream_id("s1", "tv");
    let (mut sent, mut resent) = (0u64, 0u64);
    for n in sim.node_names() {
        if let Some(r) = sim.node(&n).routes().get(&stream) {
            sent += r.media_out.values().sum::<u64>();
            resent += r.retransmitted;
        }
    }
    let ci = viewers
        .iter()
        .map(|v| {
            let r = sim.client(v).report("tv").expect("watching");
            assert!(
                r.media_packets > 1000,
                "seed {seed}: {v} got {} packets",
                r.media_packets
            );
            if std::env::var_os("SIM_TRACE").is_some() {
                eprintln!(
                    "{v}: lost {} late {} recovered {} nacks {} stalls {:?}",
                    r.lost_packets, r.late_packets, r.recovered_packets, r.nacks_sent, r.stalls
                );
                for (t, e) in sim.client_events(v) {
                    eprintln!("  {:.3} {e:?}", sim.since_start(*t).as_secs_f64());
                }
                for n in sim.node_names() {
                    for (t, e) in sim.node_events(&n).iter().filter(|(_, e)| {
                        !matches!(e, meshcast_proto::node::NodeEvent::ClientWatch { .. })
                    }) {
                        if sim.since_start(*t).as_secs_f64() > 2.0 {
                            eprintln!("  {:.3} {n}: {e:?}", sim.since_start(*t).as_secs_f64());
                        }
                    }
                }
            }
            (v.clone(), r.continuity_index.unwrap_or(0.0))
        })
        .collect();
    (ci, resent as f64 / (sent - resent).max(1) as f64)
}

#[test]
fn five_and_ten_percent_loss_on_every_link_is_recovered() {
    for (loss, floor) in [(0.05, 0.999), (0.10, 0.99)] {
        for seed in seeds(&[1, 2, 3, 4, 5, 6, 7, 8]) {
            let _hint = ReplayHint::new(seed, "cargo test -p meshcast-sim --test loss");
            let (ci, overhead) = run(seed, loss);
            eprintln!(
                "loss {:.0} %, seed {seed}: continuity {ci:?}, retransmissions {:.1} % of media datagrams",
                loss * 100.0,
                overhead * 100.0
            );
            for (v, c) in ci {
                assert!(
                    c >= floor,
                    "loss {loss}, seed {seed}: {v} continuity {c} < {floor}"
                );
            }
        }
    }
}

#[test]
fn without_loss_nothing_is_retransmitted() {
    let (ci, overhead) = run(1, 0.0);
    assert!(ci.iter().all(|(_, c)| *c == 1.0), "{ci:?}");
    assert_eq!(overhead, 0.0);
}
