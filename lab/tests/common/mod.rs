//! Helpers shared by the real-process tests.

#![allow(dead_code)]

use meshcast_lab::procs::{locate_binary, log_tail};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Whether `tool -version` runs (ffmpeg, ffprobe).
pub fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A meshcast binary of this build.
pub fn bin(name: &str) -> PathBuf {
    locate_binary(name).unwrap_or_else(|e| panic!("{e} (run `cargo build --bins` first)"))
}

/// A loopback /24 of our own, so parallel runs and a running demo do not collide.
pub fn subnet() -> (u8, u8) {
    let pid = std::process::id();
    (100 + (pid % 100) as u8, ((pid / 100) % 250) as u8)
}

/// A JSON file (a stats file), if it exists and parses.
pub fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

/// The route of `channel` in a node's stats.
pub fn route<'a>(stats: &'a Value, channel: &str) -> Option<&'a Value> {
    stats["routes"]
        .as_array()?
        .iter()
        .find(|r| r["channel"] == channel)
}

/// The last `lines` lines of a log file (the binaries write plain text to files).
pub fn tail(path: &Path, lines: usize) -> String {
    log_tail(path, lines)
}

/// Every live process whose process group is one of `groups`, as "pid (cmdline)".
pub fn processes_in_groups(groups: &BTreeSet<i64>) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<i64>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let fields: Vec<&str> = after.split_whitespace().collect();
        let dead = fields
            .first()
            .is_some_and(|s| matches!(*s, "Z" | "X" | "x"));
        let pgrp = fields.get(2).and_then(|g| g.parse::<i64>().ok());
        if !dead && pgrp.is_some_and(|g| groups.contains(&g)) {
            let cmd = std::fs::read(entry.path().join("cmdline"))
                .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
                .unwrap_or_default();
            found.push(format!("{pid} ({})", cmd.trim()));
        }
    }
    found
}

/// Whether the node's stats file says `neighbour` is up.
pub fn neighbour_up(stats: &Path, neighbour: &str) -> bool {
    read_json(stats).is_some_and(|s| {
        s["neighbours"]
            .as_array()
            .is_some_and(|ns| ns.iter().any(|n| n["id"] == neighbour && n["up"] == true))
    })
}

/// The last `lines` lines of each of `ids`' logs in `run`, for a failure message.
pub fn dump(run: &meshcast_lab::procs::RunDir, ids: &[&str], lines: usize) -> String {
    ids.iter()
        .map(|id| format!("--- {id} log\n{}\n", tail(&run.log_file(id), lines)))
        .collect()
}

/// Whether the namespace tests can run: `false` (they are skipped) only when not root. Any
/// other reason (iproute2 missing, a namespace that cannot be made) fails the test: on CI,
/// which runs as root, namespace tests must never pass by skipping.
pub fn netns_ready() -> bool {
    match meshcast_lab::netns::available() {
        Ok(()) => true,
        Err(meshcast_lab::netns::NetnsError::NotRoot) => {
            eprintln!("skipped: network namespaces need root");
            false
        }
        Err(e) => panic!("network namespaces are unusable here: {e}"),
    }
}

/// The namespaces of a lab run that still exist: those whose names carry one of the run tags
/// found in the run's recorded command lines (`ip netns exec mc<TAG>-<host>`), the switch
/// namespace and routers included. Panics if the run started nothing in a namespace.
pub fn namespaces_left(run: &Path) -> Vec<String> {
    let pids = std::fs::read_to_string(run.join("pids.json")).unwrap_or_default();
    let mut tags: Vec<String> = pids
        .split('"')
        .filter(|w| w.starts_with("mc") && w.contains('-'))
        .map(|w| w.split('-').next().unwrap_or_default().to_owned())
        .collect();
    tags.sort();
    tags.dedup();
    assert!(
        !tags.is_empty(),
        "no namespace in the command lines of {}",
        run.display()
    );
    let present: Vec<String> = std::fs::read_dir(meshcast_lab::netns::NETNS_DIR)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    present
        .into_iter()
        .filter(|n| {
            tags.iter()
                .any(|t| n == t || n.starts_with(&format!("{t}-")))
        })
        .collect()
}

/// `ffmpeg -v error -xerror` on a recording: `Err` with FFmpeg's complaint unless it decodes
/// cleanly.
pub fn decodes_cleanly(recording: &Path) -> Result<(), String> {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-xerror", "-i"])
        .arg(recording)
        .args(["-f", "null", "-"])
        .output()
        .map_err(|e| format!("cannot run ffmpeg: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}
