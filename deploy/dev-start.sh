#!/usr/bin/env bash
# dev-start.sh — build berthd and berthctl (release) and run berthd in the foreground with
# the default configuration (deploy/config.toml), as root. Ctrl-C stops it.
#   BERTH_ARGS="--log-level debug" deploy/dev-start.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $(id -u) -ne 0 ]]; then
    echo "berthd needs root (namespaces, mounts); run: sudo $0" >&2
    exit 1
fi
if ! command -v runc >/dev/null; then
    apt-get install -y -q runc >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q runc >/dev/null; }
fi
cargo build --release --bin berthd --bin berthctl
install -d /etc/berth
[[ -f /etc/berth/config.toml ]] || install -m 0644 deploy/config.toml /etc/berth/config.toml
echo "berthd: socket unix:///run/berth/berth.sock; try: target/release/berthctl pull busybox" >&2
# shellcheck disable=SC2086
exec target/release/berthd --config /etc/berth/config.toml ${BERTH_ARGS:-}
