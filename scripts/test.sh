#!/usr/bin/env bash
# Runs every meshcast check: formatting, lints, docs, and all tests — unit, golden-byte,
# property, simulation (50 nodes, seeded), GUI (egui_kittest, no display needed) and the
# real-process end-to-end tests (FFmpeg server, relays, headless clients on 127.0.0.0/8).
#
#   scripts/test.sh
#
# Installs what the tests need (ffmpeg, mpv, xvfb) when run as root, else prints the line.
set -euo pipefail
cd "$(dirname -- "${BASH_SOURCE[0]}")/.."

if ! command -v cargo >/dev/null 2>&1; then
    echo "test.sh: cargo not found; install Rust from https://rustup.rs first" >&2
    exit 1
fi
bash scripts/deps.sh --test

step() { printf '\n== %s\n' "$*" >&2; }

step "format"
cargo fmt --all -- --check
step "lints"
cargo clippy --workspace --all-targets -- -D warnings
step "docs"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet
step "build (the end-to-end tests run these binaries)"
cargo build --workspace --bins
step "tests"
cargo test --workspace
