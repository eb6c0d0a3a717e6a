//! Graph algorithms over the overlay (servers and nodes joined by links)
//! and the underlay (hosts joined by nets).

use std::collections::BTreeMap;

use crate::spec::{HostSpec, LinkSpec, NetSpec, NodeSpec};

/// Connected components of the overlay graph.
///
/// Each component lists its ids sorted; components are ordered by their
/// smallest id. The bootstrapper and links to unknown ids are ignored.
pub(crate) fn components<'a>(nodes: &'a [NodeSpec], links: &[LinkSpec]) -> Vec<Vec<&'a str>> {
    let ids: BTreeMap<&str, usize> = nodes
        .iter()
        .filter(|node| node.is_overlay())
        .enumerate()
        .map(|(index, node)| (node.id.as_str(), index))
        .collect();
    let mut sets = DisjointSets::new(ids.len());
    for link in links {
        if let (Some(&a), Some(&b)) = (ids.get(link.a.as_str()), ids.get(link.b.as_str())) {
            sets.union(a, b);
        }
    }
    let mut by_root: BTreeMap<usize, Vec<&'a str>> = BTreeMap::new();
    for node in nodes.iter().filter(|node| node.is_overlay()) {
        if let Some(&index) = ids.get(node.id.as_str()) {
            by_root
                .entry(sets.find(index))
                .or_default()
                .push(node.id.as_str());
        }
    }
    let mut components: Vec<Vec<&str>> = by_root
        .into_values()
        .map(|mut ids| {
            ids.sort_unstable();
            ids.dedup();
            ids
        })
        .collect();
    components.sort();
    components
}

/// Connected components of the underlay: hosts joined when they share a
/// net. Same ordering as [`components`]; members naming no host are ignored.
pub(crate) fn underlay_components<'a>(
    hosts: &'a [HostSpec],
    nets: &[NetSpec],
) -> Vec<Vec<&'a str>> {
    let ids: BTreeMap<&str, usize> = hosts
        .iter()
        .enumerate()
        .map(|(index, host)| (host.id.as_str(), index))
        .collect();
    let mut sets = DisjointSets::new(hosts.len());
    for net in nets {
        let mut members = net
            .members
            .iter()
            .filter_map(|member| ids.get(member.host.as_str()).copied());
        if let Some(first) = members.next() {
            for other in members {
                sets.union(first, other);
            }
        }
    }
    let mut by_root: BTreeMap<usize, Vec<&'a str>> = BTreeMap::new();
    for (index, host) in hosts.iter().enumerate() {
        by_root
            .entry(sets.find(index))
            .or_default()
            .push(host.id.as_str());
    }
    let mut components: Vec<Vec<&str>> = by_root
        .into_values()
        .map(|mut ids| {
            ids.sort_unstable();
            ids.dedup();
            ids
        })
        .collect();
    components.sort();
    components
}

/// Union-find with path halving and union by size.
struct DisjointSets {
    parent: Vec<usize>,
    size: Vec<usize>,
}

impl DisjointSets {
    fn new(len: usize) -> Self {
        DisjointSets {
            parent: (0..len).collect(),
            size: vec![1; len],
        }
    }

    fn find(&mut self, mut x: usize) -> usize {
        while self.parent[x] != x {
            self.parent[x] = self.parent[self.parent[x]];
            x = self.parent[x];
        }
        x
    }

    fn union(&mut self, a: usize, b: usize) {
        let (mut a, mut b) = (self.find(a), self.find(b));
        if a == b {
            return;
        }
        if self.size[a] < self.size[b] {
            std::mem::swap(&mut a, &mut b);
        }
        self.parent[b] = a;
        self.size[a] += self.size[b];
    }
}
