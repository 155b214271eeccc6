#!/usr/bin/env bash
# pods.sh — pod start benchmark: COUNT pods (default 30) one after another, each
# RunPodSandbox + CreateContainer + StartContainer of a `sleep` container (the kit's busybox
# image from the local registry), through the same CRI client (cri-bench) against berthd
# and, when installed, Debian's containerd in the same run with the same CNI config. Prints
# median/p90 per call and for the whole pod start, then the RSS and PSS of the per-container
# shims (berth-shim vs containerd-shim-runc-v2) while the pods run, and writes JSON to $OUT.
# Needs root. Numbers are printed, never asserted.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
KIT=${CRITEST_KIT:-$ROOT/../shared/critest}
COUNT=${1:-30}
OUT=${OUT:-/tmp/berth-bench-pods.json}
IMAGE=registry.k8s.io/e2e-test-images/busybox:1.29-2

cargo build --release --manifest-path "$ROOT/Cargo.toml" --workspace --bins >/dev/null 2>&1 || { echo "release build failed" >&2; exit 1; }
BENCH=$ROOT/target/release/cri-bench
"$KIT/registry.sh" start >/dev/null && "$KIT/build-images.sh" >/dev/null
EXTRA_CLEANUP="ip link del bbench0 2>/dev/null || true; rm -rf /var/lib/cni/networks/berth-bench"
# shellcheck source=e2e/bench/lib.sh
source "$HERE/lib.sh"
write_bench_cni

# RSS and PSS (kB) summed over the given pids, and their count.
mem() { local rss=0 pss=0 n=0; for p in "$@"; do
    r=$(awk '/^Rss:/{print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)
    s=$(awk '/^Pss:/{print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)
    rss=$((rss + r)); pss=$((pss + s)); n=$((n + 1)); done
    echo "{\"shims\": $n, \"rss_kb\": $rss, \"pss_kb\": $pss}"; }

start_berthd
berth=$("$BENCH" pods "unix://$B/berth.sock" "$IMAGE" "$COUNT")
mapfile -t shims < <(cat "$B"/state/containers/*/shim.pid 2>/dev/null)
berth_mem=$(mem "${shims[@]}")
berth_rss=$(awk '/^Rss:/{print $2}' "/proc/${PIDS[0]}/smaps_rollup")
"$BENCH" cleanup "unix://$B/berth.sock" >/dev/null

ctrd="null"; ctrd_mem="null"; ctrd_rss=0
if command -v containerd >/dev/null; then
    start_containerd
    C=$WORK/ctrd
    ctrd=$("$BENCH" pods "unix://$C/containerd.sock" "$IMAGE" "$COUNT")
    # containerd's shims (one per pod) are the processes whose command line names our socket.
    shims=()
    for d in /proc/[0-9]*; do
        if tr '\0' ' ' <"$d/cmdline" 2>/dev/null | grep -q "containerd-shim.*$C/containerd.sock"; then shims+=("${d#/proc/}"); fi
    done
    ctrd_mem=$(mem "${shims[@]}")
    ctrd_rss=$(awk '/^Rss:/{print $2}' "/proc/${PIDS[1]}/smaps_rollup")
    "$BENCH" cleanup "unix://$C/containerd.sock" >/dev/null
fi

python3 - "$berth" "$ctrd" "$berth_mem" "$ctrd_mem" "$berth_rss" "$ctrd_rss" "$COUNT" "$OUT" <<'PY'
import json, sys
b, c, bm, cm = (json.loads(x) for x in sys.argv[1:5]); brss, crss, n, out = int(sys.argv[5]), int(sys.argv[6]), sys.argv[7], sys.argv[8]
print(f"{n} pods one after another (RunPodSandbox + CreateContainer + StartContainer), ms")
print(f"{'':26}{'berth med':>10}{'p90':>8}" + (f"{'containerd med':>16}{'p90':>8}{'ratio':>8}" if c else ""))
for k in ["run_pod_sandbox", "create_container", "start_container", "pod_start_total"]:
    line = f"{k:26}{b[k]['median_ms']:10.1f}{b[k]['p90_ms']:8.1f}"
    if c:
        line += f"{c[k]['median_ms']:16.1f}{c[k]['p90_ms']:8.1f}{b[k]['median_ms'] / c[k]['median_ms']:8.2f}"
    print(line)
def per(m):
    return (m["rss_kb"] / max(m["shims"], 1) / 1024, m["pss_kb"] / max(m["shims"], 1) / 1024)
r, p = per(bm)
print(f"berth-shim per container: RSS {r:.2f} MiB, PSS {p:.2f} MiB ({bm['shims']} shims); berthd RSS with {n} pods {brss/1024:.1f} MiB")
if cm:
    r2, p2 = per(cm)
    print(f"containerd-shim-runc-v2 per pod: RSS {r2:.2f} MiB, PSS {p2:.2f} MiB ({cm['shims']} shims); containerd RSS {crss/1024:.1f} MiB")
json.dump({"berth": b, "containerd": c, "berth_shims": bm, "containerd_shims": cm, "berthd_rss_kb": brss, "containerd_rss_kb": crss}, open(out, "w"), indent=2)
print(f"json: {out}")
PY
