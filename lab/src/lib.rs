//! meshcast-lab: brings a topology up as real processes on this machine, watches them, and
//! tears them down; the library half is shared with other crates' system tests.
//!
//! # Layout
//!
//! - [`procs`]: the process supervisor of one run: run directories, log files, `pids.json`,
//!   cleanup after crashed runs, stop-on-drop, and the `wait_for` helpers.
//! - [`ready`]: whether a process has bound its address yet (from `/proc/net`).
//! - [`report`]: the "what runs where" table and the summary of a client's stats file.
//! - [`mesh`]: one topology running as processes (start, kill, restart, change links).
//! - [`scenario`]: scenario files (topology, timeline, expectations) and their errors.
//! - [`runner`]: `run`: executes a scenario and measures it.
//! - [`results`]: what a run measured (JSON/CSV), paths, stretch, link stress, the summary table.
//! - [`netns`]: builds and tears down an emulated IP network of Linux network namespaces.
//! - [`underlay`]: which namespaces a topology needs and which process runs in which.
//! - [`document`]: `report`: regenerates `report/` (README.md, SVG plots) from saved results.
//! - [`svg`]: dependency-free SVG plots.
//! - [`interop`]: CORE `.imn` and neighbour-map import, CORE and Mininet export.
//! - [`metrics`]: the KPIs expectations name and how each is computed.
//! - `main.rs` (binary `meshcast-lab`): the commands.

pub mod document;
#[cfg(test)]
mod fixtures;
pub mod interop;
pub mod mesh;
pub mod metrics;
pub mod netns;
pub mod procs;
pub mod ready;
pub mod report;
pub mod results;
pub mod runner;
pub mod scenario;
pub mod svg;
pub mod underlay;
