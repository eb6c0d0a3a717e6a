//! Invariants over a simulated overlay.

use crate::Sim;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

/// Parent pointers of `stream` over every live node: child id → parent id.
pub fn parents(sim: &Sim, stream: u32) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for name in sim.node_names() {
        let node = sim.node(&name);
        if let Some(up) = node.routes().get(&stream).and_then(|r| r.upstream)
            && let Some(p) = node.neighbour_id(up)
        {
            out.insert(name.clone(), p.to_owned());
        }
    }
    out
}

/// A cycle in the parent pointers of `stream`, if any (as the list of ids around it).
pub fn find_cycle(sim: &Sim, stream: u32) -> Option<Vec<String>> {
    let parents = parents(sim, stream);
    for start in parents.keys() {
        let mut seen = BTreeSet::new();
        let mut path = Vec::new();
        let mut cur = start.clone();
        while let Some(p) = parents.get(&cur) {
            if !seen.insert(cur.clone()) {
                let from = path.iter().position(|x| *x == cur).unwrap_or(0);
                return Some(path[from..].to_vec());
            }
            path.push(cur.clone());
            cur = p.clone();
        }
    }
    None
}

/// Overlay links that carried `stream` in both directions: each would mean a copy too many.
pub fn links_carrying_both_ways(sim: &Sim, stream: u32) -> Vec<(SocketAddr, SocketAddr)> {
    let mut out = Vec::new();
    for ((a, b, s), n) in &sim.counters.media {
        if *s == stream
            && *n > 0
            && a < b
            && sim
                .counters
                .media
                .get(&(*b, *a, stream))
                .is_some_and(|m| *m > 0)
        {
            out.push((*a, *b));
        }
    }
    out
}
