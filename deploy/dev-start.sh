#!/usr/bin/env bash
# dev-start.sh — build Berth (release) and run berthd in the foreground with the default
# configuration (deploy/config.toml) and, when the node has no CNI config, the default
# bridge network (deploy/10-berth-bridge.conflist), as root. Ctrl-C stops berthd; pods and
# containers keep running and are found again on the next start.
#   BERTH_ARGS="--log-level debug" deploy/dev-start.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $(id -u) -ne 0 ]]; then
    echo "berthd needs root (namespaces, mounts); run: sudo $0" >&2
    exit 1
fi
missing=()
for p in runc containernetworking-plugins iptables; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q "${missing[@]}" >/dev/null; }
fi
# berthd, berthctl, and berth-pause / berth-shim, which berthd finds beside itself.
cargo build --release --workspace --bins
install -d /etc/berth /etc/cni/net.d
[[ -f /etc/berth/config.toml ]] || install -m 0644 deploy/config.toml /etc/berth/config.toml
# A default pod network when the node has none (bridge berth0, 10.89.0.0/16, hostPort).
if ! ls /etc/cni/net.d/*.conf* >/dev/null 2>&1; then
    install -m 0644 deploy/10-berth-bridge.conflist /etc/cni/net.d/10-berth-bridge.conflist
fi
echo "berthd: socket unix:///run/berth/berth.sock; try: target/release/berthctl pull busybox" >&2
# shellcheck disable=SC2086
exec target/release/berthd --config /etc/berth/config.toml ${BERTH_ARGS:-}
