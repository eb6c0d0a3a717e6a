//! `meshcast-lab run` with real processes: a scenario with a relay crash runs, measures and
//! passes; a failed expectation exits 1; an invalid scenario exits 2 and starts nothing; with
//! `--netns` (root) the same scenario runs in namespaces and leaves none behind.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{bin, have, read_json, subnet};
use serde_json::Value;

/// A scratch directory removed when the test ends, whatever happens.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("meshcast-run-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A diamond on a loopback /24 of this test's own: s1 feeds n1 and n2, both feed n3, the
/// viewer's only PoP; so the relay on its path (n1 or n2) can crash and the other takes over.
fn diamond(dir: &Path, third: u8) -> PathBuf {
    let (a, b) = subnet();
    let ip = |host: u8| format!("127.{a}.{}.{host}", b.wrapping_add(third));
    let text = format!(
        r#"
name = "diamond"
links = [["s1", "n1"], ["s1", "n2"], ["n1", "n3"], ["n2", "n3"]]
[[node]]
id = "boot"
role = "bootstrapper"
addr = "{}:7000"
[[node]]
id = "s1"
role = "server"
addr = "{}:7000"
[[node]]
id = "n1"
role = "node"
addr = "{}:7000"
[[node]]
id = "n2"
role = "node"
addr = "{}:7000"
[[node]]
id = "n3"
role = "node"
addr = "{}:7000"
[[client]]
id = "c1"
pops = ["n3"]
"#,
        ip(1),
        ip(2),
        ip(3),
        ip(4),
        ip(5)
    );
    let path = dir.join("diamond.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn lab(dir: &Path, args: &[&str]) -> Output {
    Command::new(bin("meshcast-lab"))
        .arg("--runs-root")
        .arg(dir.join("runs"))
        .args(args)
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The run dir of the only run under `dir/runs`.
fn only_run(dir: &Path) -> PathBuf {
    let runs: Vec<PathBuf> = std::fs::read_dir(dir.join("runs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir() && !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    runs.into_iter().next().unwrap()
}

const CRASH: &str = r#"
topology = "diamond.toml"
duration_s = 12
warmup_s = 2
expect = [
    "clients_playing == 1",
    "continuity >= 0.95",
    "max_repair_ms <= 2000",
    "unexpected_exits == 0",
]
[[event]]
at = 4
kill_relay_of = "c1"
[[event]]
at = 8
restart_killed = true
"#;

fn check_crash_run(dir: &Path, args: &[&str], mode: &str) -> Value {
    let scenario = dir.join("crash.toml");
    std::fs::write(&scenario, CRASH).unwrap();
    let mut all = vec!["run", scenario.to_str().unwrap(), "--no-progress"];
    all.extend_from_slice(args);
    let out = lab(dir, &all);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    assert!(shown.contains("crash: PASS"), "{shown}");
    assert!(shown.contains("| crash "), "summary table missing: {shown}");
    let run = only_run(dir);
    let summary = read_json(&run.join("results/summary.json")).expect("summary.json");
    assert_eq!(summary["mode"], mode);
    assert_eq!(summary["passed"], true);
    // The kill hit the relay on the viewer's path, and the viewer's repair was measured.
    let kill = &summary["events"][0];
    let target = kill["target"].as_str().unwrap_or_default();
    assert!(target == "n1" || target == "n2", "{kill}");
    let repairs = summary["repairs"].as_array().unwrap();
    assert_eq!(repairs.len(), 1, "{summary}");
    assert_eq!(repairs[0]["client"], "c1");
    let client = &summary["clients"][0];
    assert!(client["continuity"].as_f64().unwrap() >= 0.95, "{client}");
    assert_eq!(client["path"][0], "s1");
    assert_eq!(client["path"][2], "n3");
    // The recording was checked (a crash without dual parents may leave a glitch in it).
    assert!(
        have("ffmpeg"),
        "the server needs ffmpeg: it must be installed"
    );
    assert!(client["decode_ok"].is_boolean(), "{client}");
    // One line per client session, server and node, event; links that carried media.
    let lines = |csv: &str| {
        std::fs::read_to_string(run.join(format!("results/{csv}.csv")))
            .unwrap()
            .lines()
            .count()
    };
    assert_eq!(lines("clients"), 1 + 1);
    assert_eq!(lines("nodes"), 1 + 4);
    assert_eq!(lines("events"), 1 + 2);
    let links = lines("links") - 1;
    assert!((2..=4).contains(&links), "{links} links carried media");
    let events = std::fs::read_to_string(run.join("results/events.csv")).unwrap();
    assert!(events.contains("kill the relay of c1"), "{events}");
    summary
}

#[test]
fn a_scenario_with_a_relay_crash_runs_measures_and_passes() {
    let scratch = Scratch::new("crash");
    diamond(&scratch.0, 0);
    check_crash_run(&scratch.0, &[], "loopback");
}

#[test]
fn a_failed_expectation_exits_1_and_names_it() {
    let scratch = Scratch::new("fail");
    diamond(&scratch.0, 1);
    let scenario = scratch.0.join("strict.toml");
    std::fs::write(
        &scenario,
        "topology = \"diamond.toml\"\nduration_s = 4\nwarmup_s = 1\n\
         expect = [\"continuity > 1\", \"clients_playing == 1\"]\n",
    )
    .unwrap();
    let out = lab(
        &scratch.0,
        &[
            "run",
            scenario.to_str().unwrap(),
            "--no-progress",
            "--no-decode-check",
        ],
    );
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(shown.contains("FAIL continuity > 1"), "{shown}");
    assert!(shown.contains("ok   clients_playing == 1"), "{shown}");
    assert!(shown.contains("FAILED: strict"), "{shown}");
}

#[test]
fn an_invalid_scenario_exits_2_naming_file_line_and_field_and_starts_nothing() {
    let scratch = Scratch::new("invalid");
    diamond(&scratch.0, 2);
    let scenario = scratch.0.join("bad.toml");
    std::fs::write(
        &scenario,
        "topology = \"diamond.toml\"\nduration_s = 10\n[[event]]\nat = 2\nkill = \"n9\"\n",
    )
    .unwrap();
    let out = lab(&scratch.0, &["run", scenario.to_str().unwrap()]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(2), "{shown}");
    assert!(shown.contains("bad.toml:5:8: event.kill"), "{shown}");
    assert!(shown.contains("known: s1, n1, n2, n3"), "{shown}");
    let runs = scratch.0.join("runs");
    let started = std::fs::read_dir(&runs).map_or(0, |d| {
        d.flatten()
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .count()
    });
    assert_eq!(started, 0, "a run dir was created");
}

#[test]
fn with_netns_the_scenario_runs_in_namespaces_and_leaves_none() {
    if !common::netns_ready() {
        return;
    }
    let scratch = Scratch::new("netns");
    diamond(&scratch.0, 3);
    check_crash_run(&scratch.0, &["--netns"], "netns");
    let run = only_run(&scratch.0);
    assert_eq!(common::namespaces_left(&run), Vec::<String>::new());
    assert!(!run.join("netns.json").exists(), "state file left behind");
}
