#!/usr/bin/env bash
# Runs the whole experiment suite (scenarios/*.toml on loopback, then the complex and a
# failure scenario in network namespaces when run as root), keeps each run's summary in
# report/data/, and regenerates report/README.md and report/plots/ from them.
#
#   scripts/report.sh            # about 12 minutes on 2 cores
#
# Installs what it needs (ffmpeg) when run as root, else prints the line.
set -euo pipefail
cd "$(dirname -- "${BASH_SOURCE[0]}")/.."
bash scripts/deps.sh
cargo build --release --workspace --bins
lab=target/release/meshcast-lab
rm -rf report/data
status=0
"$lab" run scenarios/*.toml --save-to report/data || status=$?
if [ "$(id -u)" = 0 ]; then
    "$lab" run scenarios/complex.toml scenarios/relay-failure.toml --netns --save-to report/data || status=$?
else
    echo "report.sh: not root: the --netns runs are left out" >&2
fi
"$lab" report
exit "$status"
