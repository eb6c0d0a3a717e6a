//! Helpers shared by the real-process tests.

#![allow(dead_code)]

use meshcast_lab::procs::locate_binary;
use serde_json::Value;
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
