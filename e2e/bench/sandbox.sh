#!/usr/bin/env bash
# sandbox.sh — RunPodSandbox benchmark: COUNT pods (default 30) started one after another
# through the same CRI client (cri-bench) against berthd and, when installed, Debian's
# containerd in the same run, both with the same CNI config (bridge + host-local + portmap
# from Debian's plugins). containerd's pause image comes from the local kit registry and is
# pulled before timing. Prints median/p90 of RunPodSandbox, the stop+remove total, the
# ratio, and writes the numbers as JSON to $OUT (default /tmp/berth-bench-sandbox.json).
# Needs root. Numbers are printed, never asserted.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
KIT=${CRITEST_KIT:-$ROOT/../shared/critest}
COUNT=${1:-30}
OUT=${OUT:-/tmp/berth-bench-sandbox.json}

cargo build --release --manifest-path "$ROOT/Cargo.toml" --workspace --bins >/dev/null 2>&1 || { echo "release build failed" >&2; exit 1; }
BENCH=$ROOT/target/release/cri-bench
EXTRA_CLEANUP="ip link del bbench0 2>/dev/null || true; rm -rf /var/lib/cni/networks/berth-bench"
# shellcheck source=e2e/bench/lib.sh
source "$HERE/lib.sh"

write_bench_cni


# berthd
start_berthd
berth=$("$BENCH" sandboxes "unix://$B/berth.sock" "$COUNT")

ctrd="null"
if command -v containerd >/dev/null; then
    "$KIT/registry.sh" start >/dev/null && "$KIT/build-images.sh" >/dev/null
    start_containerd
    C=$WORK/ctrd
    ctrd=$("$BENCH" sandboxes "unix://$C/containerd.sock" "$COUNT")
fi

python3 - "$berth" "$ctrd" "$OUT" "$COUNT" <<'PY'
import json, sys
b = json.loads(sys.argv[1]); c = json.loads(sys.argv[2]); out = sys.argv[3]; n = sys.argv[4]
print(f"RunPodSandbox, {n} pods one after another (ms)")
print(f"{'':14}{'median':>9}{'p90':>9}{'stop+rm total':>15}")
def row(name, r):
    s = r["run_pod_sandbox"]
    print(f"{name:14}{s['median_ms']:9.1f}{s['p90_ms']:9.1f}{r['stop_remove_total_ms']:15.0f}")
row("berth", b)
if c:
    row("containerd", c)
    print(f"berth/containerd median: {b['run_pod_sandbox']['median_ms'] / c['run_pod_sandbox']['median_ms']:.2f}x")
else:
    print("containerd not installed: no side-by-side numbers")
json.dump({"berth": b, "containerd": c}, open(out, "w"), indent=2)
print(f"json: {out}")
PY
