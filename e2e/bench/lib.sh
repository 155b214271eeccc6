# lib.sh — shared by the benchmark scripts: a work dir, processes started here stopped by
# PID on exit, mounts under the work dir detached, and a wait for a socket.
WORK=$(mktemp -d /tmp/berth-bench.XXXXXX)
PIDS=()
EXTRA_CLEANUP=${EXTRA_CLEANUP:-}
bench_cleanup() {
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
wait_sock() { for _ in $(seq 1 200); do [[ -S $1 ]] && return 0; sleep 0.05; done; return 1; }
