# shellcheck shell=bash
# lib.sh — shared by the benchmark scripts: a work dir, processes started here stopped by
# PID on exit, mounts under the work dir detached, and a wait for a socket.
WORK=$(mktemp -d /tmp/berth-bench.XXXXXX)
PIDS=()
EXTRA_CLEANUP=${EXTRA_CLEANUP:-}
bench_cleanup() {
    # Pods outlive their daemon by design (their infra processes and shims are not its
    # children to kill): a run cut short removes them through CRI first.
    for sock in "$WORK"/berth/berth.sock "$WORK"/ctrd/containerd.sock; do
        [[ -S $sock ]] && timeout 120 "${BENCH:-$ROOT/target/release/cri-bench}" cleanup "unix://$sock" >/dev/null 2>&1 || true
    done
    for p in "${PIDS[@]}"; do
        kill "$p" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null || true
    done
    grep -F " $WORK/" /proc/self/mountinfo | awk '{print $5}' | sort -r | while read -r m; do umount -l "$m" || true; done || true
    [[ -n $EXTRA_CLEANUP ]] && eval "$EXTRA_CLEANUP"
    rm -rf "$WORK"
}
trap bench_cleanup EXIT
# Stops one process started here (by PID) and waits for it.
stop_pid() {
    kill "$1" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
    kill -9 "$1" 2>/dev/null || true
}
wait_sock() { daemon_wait_sock "$1"; }
# shellcheck source=e2e/daemons.sh
source "$(dirname "${BASH_SOURCE[0]}")/../daemons.sh"

# Starts the release berthd on $WORK/berth (the kit's registry mapping, the bench CNI
# config), sets B to its directory and BERTHD_PID.
start_berthd() {
    B=$WORK/berth
    start_berthd_at "$ROOT/target/release/berthd" "$B" "$WORK/cni" "$WORK/berthd.log" "${BERTH_LOG_LEVEL:-warn}"
    BERTHD_PID=$DAEMON_PID
    PIDS+=("$BERTHD_PID")
}

# The CNI network both runtimes use: bridge bbench0, 10.244.0.0/16, portmap.
write_bench_cni() {
    mkdir -p "$WORK/cni"
    cat >"$WORK/cni/10-bench.conflist" <<JSON
{"cniVersion": "1.0.0", "name": "berth-bench", "plugins": [
  {"type": "bridge", "bridge": "bbench0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.0.0/16"}]]}},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}
JSON
}

# Starts Debian's containerd with its CRI plugin on $WORK/ctrd (same CNI config, the kit's
# registry mapping, pause image pre-pulled, a `crun` runtime handler beside runc) and sets
# CTRD_PID.
start_containerd() {
    local C=$WORK/ctrd
    start_containerd_at "$C" "$WORK/cni" "$WORK/containerd.log" registry.k8s.io/pause:3.6 '
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.crun]
  runtime_type = "io.containerd.runc.v2"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.crun.options]
  BinaryName = "/usr/bin/crun"'
    CTRD_PID=$DAEMON_PID
    PIDS+=("$CTRD_PID")
    sleep 1
    "$KIT/bin/crictl" -r "unix://$C/containerd.sock" -i "unix://$C/containerd.sock" pull registry.k8s.io/pause:3.6 >/dev/null 2>&1
}
