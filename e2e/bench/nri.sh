#!/usr/bin/env bash
# nri.sh — what an NRI plugin costs a pod start: the same 30 pods one after another
# (cri-bench startup: RunPodSandbox + CreateContainer + StartContainer, then stop+remove)
# against berthd with no plugin, and with one no-op plugin connected that subscribes to every
# pod and container event (e2e/examples/nri_plugin.rs with `noop`, started by berthd from
# its plugin directory). ROUNDS rounds (default 3) alternate the two, each on a fresh
# berthd; the medians of the per-round medians are reported. Prints a table and writes
# $OUT/nri.json (default target/bench/). Numbers are printed, never asserted.
#
#   sudo e2e/bench/nri.sh
#   sudo ROUNDS=5 PODS=50 e2e/bench/nri.sh
#
# Release binaries (built here). Uses the critest kit's registry and busybox stand-in, and a
# CNI network of its own (lib.sh: bridge bbench0). Needs root.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
KIT=${CRITEST_KIT:-$ROOT/../shared/critest}
ROUNDS=${ROUNDS:-3}
PODS=${PODS:-30}
OUT=${OUT:-$ROOT/target/bench}
IMAGE=registry.k8s.io/e2e-test-images/busybox:1.29-2
[[ $(id -u) -eq 0 ]] || { echo "nri.sh needs root (namespaces, mounts, cgroups)" >&2; exit 1; }

echo "building (release)…"
cargo build --release --manifest-path "$ROOT/Cargo.toml" --workspace --bins >/dev/null 2>&1 || { echo "release build failed" >&2; exit 1; }
cargo build --release --manifest-path "$ROOT/Cargo.toml" -p berth-e2e --example nri_plugin >/dev/null 2>&1 || { echo "plugin build failed" >&2; exit 1; }
BENCH=$ROOT/target/release/cri-bench
"$KIT/registry.sh" start >/dev/null
"$KIT/build-images.sh" >/dev/null
EXTRA_CLEANUP="ip link del bbench0 2>/dev/null || true; rm -rf /var/lib/cni/networks/berth-bench"
# shellcheck source=e2e/bench/lib.sh
source "$HERE/lib.sh"
write_bench_cni
mkdir -p "$OUT" "$WORK/plugins" "$WORK/conf"
cp "$ROOT/target/release/examples/nri_plugin" "$WORK/plugins/10-noop"
echo noop >"$WORK/conf/10-noop.conf"
printf '[nri]\nplugin_path = "%s"\nplugin_config_path = "%s"\n' "$WORK/plugins" "$WORK/conf" >"$WORK/noop.toml"
printf '[nri]\nplugin_path = "%s"\n' "$WORK/none" >"$WORK/none.toml"

# round MODE N: one fresh berthd, PODS pods; writes $WORK/MODE-N.json.
round() {
    local dir=$WORK/$1-$2
    start_berthd_at "$ROOT/target/release/berthd" "$dir" "$WORK/cni" "$dir.log" warn --config "$WORK/$1.toml"
    PIDS+=("$DAEMON_PID")
    "$BENCH" startup "unix://$DAEMON_SOCK" --image "$IMAGE" --sequential "$PODS" >"$WORK/$1-$2.json"
    stop_pid "$DAEMON_PID"
    grep -F " $dir/" /proc/self/mountinfo | awk '{print $5}' | sort -r | while read -r m; do umount -l "$m" || true; done || true
}
for n in $(seq 1 "$ROUNDS"); do
    echo "round $n/$ROUNDS: no plugin, then one no-op plugin"
    round none "$n"
    round noop "$n"
done

python3 - "$WORK" "$ROUNDS" "$PODS" "$OUT/nri.json" <<'PY'
import json, statistics, sys
work, rounds, pods, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
keys = ["run_pod_sandbox", "create_container", "start_container", "pod_start_total"]
res = {}
for mode in ("none", "noop"):
    runs = [json.load(open(f"{work}/{mode}-{n}.json")) for n in range(1, rounds + 1)]
    res[mode] = {k: statistics.median(r[k]["median_ms"] for r in runs) for k in keys}
res["added_ms"] = {k: res["noop"][k] - res["none"][k] for k in keys}
res.update(rounds=rounds, pods=pods)
json.dump(res, open(out, "w"), indent=1)
print(f"pod start with one no-op NRI plugin (all events) vs none; {pods} pods x {rounds} rounds, medians")
print(f"{'metric':<24}{'none ms':>10}{'plugin ms':>11}{'added ms':>10}")
for k in keys:
    print(f"{k:<24}{res['none'][k]:>10.2f}{res['noop'][k]:>11.2f}{res['added_ms'][k]:>10.2f}")
print(f"goal: under 2 ms added per pod (pod_start_total): {'met' if res['added_ms']['pod_start_total'] < 2 else 'NOT met'}")
PY
