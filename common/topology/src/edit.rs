//! Changes a running experiment makes to a validated topology: link attributes only, so every
//! guarantee of [`Topology`] still holds after an edit.

use crate::{LinkAttrs, Topology};

impl Topology {
    /// Replaces the attributes of the link between `a` and `b` (either order). Returns whether
    /// such a link exists. The lab uses it to change loss or latency, or to cut a link
    /// (`loss = 1`), while processes follow the rewritten file.
    pub fn set_link_attrs(&mut self, a: &str, b: &str, attrs: LinkAttrs) -> bool {
        match self.links.iter_mut().find(|link| link.connects(a, b)) {
            Some(link) => {
                link.attrs = attrs;
                true
            }
            None => false,
        }
    }

    /// The same topology with the addresses of overlay nodes replaced by `map(node)`; `None`
    /// keeps an address. Used to run a loopback topology in network namespaces, where each
    /// host has an address of its own. Returns `None` if the new addresses collide.
    pub fn with_addresses(
        &self,
        mut map: impl FnMut(&crate::NodeSpec) -> Option<std::net::SocketAddr>,
    ) -> Option<Topology> {
        let mut out = self.clone();
        for node in &mut out.nodes {
            if let Some(addr) = map(node) {
                node.addr = addr;
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        out.nodes.iter().all(|n| seen.insert(n.addr)).then_some(out)
    }
}

#[cfg(test)]
mod tests {
    use crate::{LinkAttrs, Topology};

    const TEXT: &str = r#"
        links = [["s1", "n1"]]
        [[node]]
        id = "boot"
        role = "bootstrapper"
        addr = "127.0.0.1:7000"
        [[node]]
        id = "s1"
        role = "server"
        addr = "127.0.0.2:7000"
        [[node]]
        id = "n1"
        role = "node"
        addr = "127.0.0.3:7000"
    "#;

    #[test]
    fn set_link_attrs_changes_only_that_link_and_survives_a_round_trip() {
        let mut t = Topology::parse(TEXT, "t.toml").unwrap().topology;
        let attrs = LinkAttrs {
            loss: Some(1.0),
            latency_ms: Some(20.0),
            ..LinkAttrs::default()
        };
        assert!(t.set_link_attrs("n1", "s1", attrs));
        assert!(!t.set_link_attrs("n1", "boot", attrs));
        let back = Topology::parse(&t.to_toml(), "t.toml").unwrap().topology;
        assert_eq!(back.link_between("s1", "n1").unwrap().attrs, attrs);
    }

    #[test]
    fn with_addresses_refuses_colliding_addresses() {
        let t = Topology::parse(TEXT, "t.toml").unwrap().topology;
        let moved = t
            .with_addresses(|n| format!("10.0.0.{}:7000", n.id.len()).parse().ok())
            .map(|t| t.nodes().len());
        // "s1" and "n1" both map to 10.0.0.2.
        assert_eq!(moved, None);
        let ok = t
            .with_addresses(|n| {
                let last = n.addr.ip().to_string();
                let last = last.rsplit('.').next().unwrap().to_owned();
                format!("10.9.0.{last}:7000").parse().ok()
            })
            .unwrap();
        assert_eq!(ok.node("n1").unwrap().addr.to_string(), "10.9.0.3:7000");
    }
}
