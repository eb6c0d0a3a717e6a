//! meshcast-lab: brings a topology up as real processes on this machine, watches them, and
//! tears them down; the library half is shared with other crates' system tests.
//!
//! # Layout
//!
//! - [`procs`]: the process supervisor of one run: run directories, log files, `pids.json`,
//!   cleanup after crashed runs, stop-on-drop, and the `wait_for` helpers.
//! - [`ready`]: whether a process has bound its address yet (from `/proc/net`).
//! - [`report`]: the "what runs where" table and the summary of a client's stats file.
//! - `main.rs` (binary `meshcast-lab`): the `up` and `cleanup` commands.

pub mod procs;
pub mod ready;
pub mod report;
