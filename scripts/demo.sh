#!/usr/bin/env bash
# Builds meshcast and brings the demo overlay up on this machine.
#
#   scripts/demo.sh [TOPOLOGY]      default: topologies/demo.toml
#
# With a display (DISPLAY or WAYLAND_DISPLAY set) a viewer window opens for each [[client]] of
# the topology; Ctrl-C stops everything. Without one, headless clients record for 15 s and
# their stats are printed. Logs, stats and recordings land in runs/<topology>-<time>/.
set -euo pipefail

usage() {
    sed -n '2,8s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

case "${1:-}" in
    -h | --help) usage; exit 0 ;;
esac
if [[ $# -gt 1 ]]; then
    usage >&2
    exit 2
fi

# Resolve the topology against the caller's directory before moving to the repository root.
if [[ $# -eq 1 ]]; then
    if [[ ! -f "$1" ]]; then
        echo "demo.sh: no such topology file: $1" >&2
        exit 2
    fi
    topology=$(realpath -- "$1")
fi
cd "$(dirname -- "${BASH_SOURCE[0]}")/.."
topology=${topology:-topologies/demo.toml}

if ! command -v cargo >/dev/null 2>&1; then
    echo "demo.sh: cargo not found; install Rust from https://rustup.rs first" >&2
    exit 1
fi
bash scripts/deps.sh

echo "demo.sh: building meshcast (release; the first build takes a few minutes) ..." >&2
cargo build --release --bins
lab="${CARGO_TARGET_DIR:-target}/release/meshcast-lab"

# exec: Ctrl-C goes straight to the lab, which stops every process it started.
if [[ -n "${DISPLAY:-}" || -n "${WAYLAND_DISPLAY:-}" ]]; then
    exec "$lab" up "$topology" --clients gui
else
    echo "demo.sh: no display (DISPLAY/WAYLAND_DISPLAY unset): headless clients record for 15 s" >&2
    exec "$lab" up "$topology" --clients headless --duration 20
fi
