//! The bootstrapper is only needed while processes join: with real processes on loopback,
//! a joined node keeps running when it stops, a node started while it is down keeps asking,
//! and joins (and links up with its neighbour) once it is back.

mod common;

use common::read_json;
use meshcast_lab::procs::{Procs, RunDir, locate_binary, log_tail, wait_for};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

fn addr(i: u8) -> String {
    let pid = std::process::id();
    format!("127.{}.{}.{i}:7100", 100 + (pid % 100), (pid / 100) % 250)
}

/// Whether the node's stats file says neighbour `id` is up.
fn sees_up(stats: &Path, id: &str) -> bool {
    read_json(stats).is_some_and(|s| {
        s["neighbours"]
            .as_array()
            .is_some_and(|ns| ns.iter().any(|n| n["id"] == id && n["up"] == true))
    })
}

#[test]
fn the_overlay_outlives_the_bootstrapper_and_late_nodes_join_once_it_is_back() {
    let bin = |n: &str| {
        locate_binary(n).unwrap_or_else(|e| panic!("{e} (run `cargo build --bins` first)"))
    };
    let root = std::env::temp_dir().join(format!("meshcast-boot-{}", std::process::id()));
    let run = RunDir::create(&root, "boot").expect("run dir");
    let dir = run.path().to_owned();
    let topo = dir.join("t.toml");
    std::fs::write(
        &topo,
        format!(
            "links = [[\"n1\", \"n2\"], [\"n1\", \"s1\"]]\n\n\
             [[node]]\nid = \"boot\"\nrole = \"bootstrapper\"\naddr = \"{}\"\n\n\
             [[node]]\nid = \"s1\"\nrole = \"server\"\naddr = \"{}\"\n\n\
             [[node]]\nid = \"n1\"\nrole = \"node\"\naddr = \"{}\"\n\n\
             [[node]]\nid = \"n2\"\nrole = \"node\"\naddr = \"{}\"\n",
            addr(1),
            addr(2),
            addr(3),
            addr(4)
        ),
    )
    .expect("topology");
    let mut procs = Procs::new(run).expect("supervisor");
    let bootstrapper = |procs: &mut Procs, id: &str| {
        let mut c = Command::new(bin("meshcast-bootstrapper"));
        c.arg("--topology").arg(&topo);
        procs.spawn(id, "bootstrapper", c).expect("bootstrapper");
    };
    let node = |procs: &mut Procs, id: &str| {
        let mut c = Command::new(bin("meshcast-node"));
        c.args(["--id", id, "--bootstrapper", &addr(1)])
            .arg("--stats")
            .arg(dir.join(format!("{id}.json")));
        procs.spawn(id, "node", c).expect("node");
    };
    let deadline = || Instant::now() + Duration::from_secs(15);

    bootstrapper(&mut procs, "boot");
    node(&mut procs, "n1");
    assert!(
        wait_for(|| dir.join("n1.json").exists(), deadline()),
        "n1 never joined:\n{}",
        log_tail(&procs.run_dir().log_file("n1"), 20)
    );
    procs.stop("boot").expect("stop bootstrapper");

    // n2 starts while the bootstrapper is down: it keeps asking.
    node(&mut procs, "n2");
    let n2_log = procs.run_dir().log_file("n2");
    assert!(
        wait_for(
            || log_tail(&n2_log, 50).contains("not answering"),
            deadline()
        ),
        "n2 did not report the missing bootstrapper:\n{}",
        log_tail(&n2_log, 20)
    );
    assert!(!dir.join("n2.json").exists(), "n2 cannot have joined yet");
    // n1 runs on: its stats file is still being rewritten.
    let since = SystemTime::now();
    assert!(
        wait_for(
            || std::fs::metadata(dir.join("n1.json"))
                .and_then(|m| m.modified())
                .is_ok_and(|t| t > since),
            deadline()
        ),
        "n1 stopped when the bootstrapper went away"
    );
    assert!(procs.is_running("n1"));

    // The bootstrapper comes back: n2 joins, and the two nodes see each other.
    bootstrapper(&mut procs, "boot");
    assert!(
        wait_for(
            || sees_up(&dir.join("n2.json"), "n1") && sees_up(&dir.join("n1.json"), "n2"),
            deadline()
        ),
        "n2 did not join after the restart:\n{}",
        log_tail(&n2_log, 20)
    );
    drop(procs);
    let _ = std::fs::remove_dir_all(&root);
}
