//! Shared set-up of the simulation scenarios.

#![allow(dead_code)]

use meshcast_proto::client::ClientCommand;
use meshcast_sim::{LinkModel, Sim};
use meshcast_topology::Topology;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Loads `topologies/NAME` of the repository.
pub fn topology(name: &str) -> Topology {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../topologies")
        .join(name);
    Topology::load(&path)
        .unwrap_or_else(|e| panic!("{e}"))
        .topology
}

/// Every `[[client]]` of the topology as a viewer at 127.200.0.N, one PoP hop of 0.5 ms away.
pub fn add_viewers(sim: &mut Sim, t: &Topology) -> Vec<String> {
    sim.set_default_link(LinkModel {
        latency: Duration::from_micros(500),
        ..LinkModel::default()
    });
    let mut names = Vec::new();
    for (i, c) in t.clients().iter().enumerate() {
        let addr = SocketAddr::from(([127, 200, 0, (i + 1) as u8], 9000));
        let pops = c.pops.iter().map(|p| sim.addr(p)).collect();
        sim.add_client(&c.id, addr, pops);
        names.push(c.id.clone());
    }
    names
}

/// Starts every viewer on `channel`.
pub fn watch_all(sim: &mut Sim, viewers: &[String], channel: &str) {
    for v in viewers {
        sim.client_command(v, ClientCommand::Watch(channel.to_owned()));
    }
}

/// e2e.toml (s1–n1–n2–n3–{n4,n5}, viewers at n4 and n5) with `loss` on every link, the
/// viewers' own links included, and a source publishing `pps` datagrams/s; not watching yet.
pub fn lossy_chain(seed: u64, loss: f64, pps: u32) -> (Sim, Vec<String>) {
    let t = topology("e2e.toml");
    let mut sim = Sim::from_topology(&t, seed, |_| {});
    let viewers = add_viewers(&mut sim, &t);
    sim.set_default_link(LinkModel {
        latency: Duration::from_micros(500),
        loss,
        ..LinkModel::default()
    });
    sim.set_loss_everywhere(loss);
    sim.add_source("s1", "tv", pps);
    (sim, viewers)
}
