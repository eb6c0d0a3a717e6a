//! Topology texts shared by the lab's unit tests.

/// A chain `s1 - n1 - n2` on 127.0.0.x with client `c1` preferring PoP `n2`, then `n1`.
pub const CHAIN: &str = r#"
links = [["s1", "n1"], ["n1", "n2"]]
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
[[node]]
id = "n2"
role = "node"
addr = "127.0.0.4:7000"
[[client]]
id = "c1"
pops = ["n2", "n1"]
"#;
