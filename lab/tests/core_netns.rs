//! CORE files run as CORE would: `first.imn` and `second.imn` (in `topologies/core/`) are
//! imported with their underlay, brought up with `up --netns` (one namespace per CORE node,
//! routers forwarding), and carry the server's channel to the imported client. Root only.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{bin, read_json};

struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn core_file_carries_a_channel_to_its_client(name: &str) {
    if !common::netns_ready() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("meshcast-core-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let scratch = Scratch(dir);
    let imn = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../topologies/core")
        .join(format!("{name}.imn"));
    let topology = scratch.0.join(format!("{name}.toml"));
    let import = Command::new(bin("meshcast-lab"))
        .arg("import")
        .arg(&imn)
        .arg("-o")
        .arg(&topology)
        .output()
        .unwrap();
    assert!(
        import.status.success(),
        "{}",
        String::from_utf8_lossy(&import.stderr)
    );
    let run_dir = scratch.0.join("run");
    let up = Command::new(bin("meshcast-lab"))
        .arg("--runs-root")
        .arg(scratch.0.join("runs"))
        .arg("up")
        .arg(&topology)
        .args(["--netns", "--clients", "headless", "--duration", "14"])
        .arg("--run-dir")
        .arg(&run_dir)
        .output()
        .unwrap();
    let shown = format!(
        "{}\n{}",
        String::from_utf8_lossy(&up.stdout),
        String::from_utf8_lossy(&up.stderr)
    );
    assert!(up.status.success(), "{shown}");
    assert!(shown.contains("(netns mc"), "not in namespaces: {shown}");
    let stats = read_json(&run_dir.join("stats/c1.json")).expect("client stats");
    let packets = stats["media_packets"].as_u64().unwrap_or(0);
    assert!(packets > 1000, "only {packets} media packets: {shown}");
    assert_eq!(stats["continuity_errors"], 0, "{stats}");
    common::decodes_cleanly(&run_dir.join("c1.ts")).unwrap_or_else(|e| panic!("{e}"));
    // Nothing of the run is left: no namespace of its tag, routers and switch included.
    assert_eq!(common::namespaces_left(&run_dir), Vec::<String>::new());
}

#[test]
fn first_imn_carries_a_channel_to_a_client_in_namespaces() {
    core_file_carries_a_channel_to_its_client("first");
}

#[test]
fn second_imn_carries_a_channel_to_a_client_in_namespaces() {
    core_file_carries_a_channel_to_its_client("second");
}
