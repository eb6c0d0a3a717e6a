//! Logging set-up shared by the binaries: human-readable lines on stderr, filtered by
//! `MESHCAST_LOG` (or `RUST_LOG`), default `info`; coloured only on a terminal, so log files
//! (the lab's, CI's) hold plain text.

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// Installs the subscriber with `default` as the filter when neither variable is set.
pub fn init(default: &str) {
    let filter = std::env::var("MESHCAST_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| default.to_owned());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
