#!/usr/bin/env bash
# Checks that the programs meshcast runs are installed, and installs the missing ones.
#
#   scripts/deps.sh          ffmpeg, ffprobe, mpv (what the demo needs)
#   scripts/deps.sh --test   also xvfb-run and xauth (GUI tests without a display), ip
#                            (namespace tests) and python3 (checks the Mininet export)
#
# Quiet and exit 0 when everything is present. Otherwise, as root: apt-get update (once) and
# apt-get install of the missing packages; as another user: prints the install line, exit 1.
set -euo pipefail

usage() {
    sed -n '2,8s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

# command:package pairs
wanted=(ffmpeg:ffmpeg ffprobe:ffmpeg mpv:mpv)
case "${1:-}" in
    "") ;;
    --test) wanted+=(xvfb-run:xvfb xauth:xauth ip:iproute2 python3:python3) ;;
    -h | --help) usage; exit 0 ;;
    *) echo "deps.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
esac

missing_packages() {
    local entry command package found=()
    for entry in "${wanted[@]}"; do
        command=${entry%%:*}
        package=${entry#*:}
        if ! command -v "$command" >/dev/null 2>&1 && [[ " ${found[*]-} " != *" $package "* ]]; then
            found+=("$package")
        fi
    done
    echo "${found[*]-}"
}

read -r -a missing <<<"$(missing_packages)"
if [[ ${#missing[@]} -eq 0 ]]; then
    exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
    echo "meshcast needs these packages: ${missing[*]}. Install them with:" >&2
    echo "  sudo apt-get install -y ${missing[*]}" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "meshcast needs these packages: ${missing[*]}; install them with your package manager." >&2
    exit 1
fi

echo "deps.sh: installing ${missing[*]} ..." >&2
# Wait for a concurrent apt run instead of failing on its lock.
apt_options=(-o DPkg::Lock::Timeout=300 -o Acquire::Retries=3)
apt-get "${apt_options[@]}" update -qq
DEBIAN_FRONTEND=noninteractive apt-get "${apt_options[@]}" install -y -q \
    --no-install-recommends "${missing[@]}" >/dev/null

read -r -a still_missing <<<"$(missing_packages)"
if [[ ${#still_missing[@]} -ne 0 ]]; then
    echo "deps.sh: still missing after install: ${still_missing[*]}" >&2
    exit 1
fi
echo "deps.sh: installed ${missing[*]}" >&2
