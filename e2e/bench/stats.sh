#!/usr/bin/env bash
# stats.sh — ListContainerStats latency with COUNT running containers (default 50, one per
# pod), ROUNDS calls (default 50) through the same CRI client (cri-bench) against berthd
# and, when installed, Debian's containerd in the same run. Prints median/p90 and the
# Berth/containerd ratio, and writes JSON to $OUT. Needs root. Numbers are printed, never
# asserted.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
KIT=${CRITEST_KIT:-$ROOT/../shared/critest}
COUNT=${1:-50}
ROUNDS=${2:-50}
OUT=${OUT:-/tmp/berth-bench-stats.json}
IMAGE=registry.k8s.io/e2e-test-images/busybox:1.29-2

cargo build --release --manifest-path "$ROOT/Cargo.toml" --workspace --bins >/dev/null 2>&1 || { echo "release build failed" >&2; exit 1; }
BENCH=$ROOT/target/release/cri-bench
"$KIT/registry.sh" start >/dev/null && "$KIT/build-images.sh" >/dev/null
EXTRA_CLEANUP="ip link del bbench0 2>/dev/null || true; rm -rf /var/lib/cni/networks/berth-bench"
# shellcheck source=e2e/bench/lib.sh
source "$HERE/lib.sh"
write_bench_cni

start_berthd
"$BENCH" pods "unix://$B/berth.sock" "$IMAGE" "$COUNT" >/dev/null
berth=$("$BENCH" stats "unix://$B/berth.sock" "$ROUNDS")
"$BENCH" cleanup "unix://$B/berth.sock" >/dev/null

ctrd="null"
if command -v containerd >/dev/null; then
    start_containerd
    C=$WORK/ctrd
    "$BENCH" pods "unix://$C/containerd.sock" "$IMAGE" "$COUNT" >/dev/null
    ctrd=$("$BENCH" stats "unix://$C/containerd.sock" "$ROUNDS")
    "$BENCH" cleanup "unix://$C/containerd.sock" >/dev/null
fi

python3 - "$berth" "$ctrd" "$COUNT" "$OUT" <<'PY'
import json, sys
b, c = json.loads(sys.argv[1]), json.loads(sys.argv[2]); n, out = sys.argv[3], sys.argv[4]
print(f"ListContainerStats over {n} running containers ({b['list_container_stats']['n']} calls):")
def row(name, r):
    s = r["list_container_stats"]
    print(f"  {name:<11} median {s['median_ms']:8.2f} ms   p90 {s['p90_ms']:8.2f} ms   "
          f"({r['containers']} containers, {r['with_cpu']} with CPU figures)")
row("berth", b)
if c:
    row("containerd", c)
    ratio = b["list_container_stats"]["median_ms"] / c["list_container_stats"]["median_ms"]
    print(f"  median ratio berth/containerd: {ratio:.2f}")
else:
    print("  containerd not installed: no comparison")
json.dump({"count": int(n), "berth": b, "containerd": c}, open(out, "w"), indent=1)
PY
