#!/usr/bin/env bash
# density.sh — pod startup as kubelet measures it: two of the node e2e suite's own Density
# benchmarks (../shared/kube: Kubernetes v1.36's e2e_node.test, its real kubelet and embedded
# API server) run on Berth, then on Debian's containerd, on this machine:
#   - "create 35 pods with 0s interval": 35 pods created at once;
#   - "create 10 pods with 50 background pods": 10 pods one after another over 50 running ones.
# Each reports the latency from the API create call to the pod seen Running through a watch,
# p50/p90/p99 over its pods, as the suite writes it. A third run is Berth with kubelet's
# EventedPLEG feature gate on (kubelet learns of container starts and exits from the
# runtime's GetContainerEvents stream instead of listing every second; containerd 1.6 has no
# such stream). Writes density-berth.json, density-containerd.json and
# density-berth-evented.json into $OUT (default target/bench/) for `cri-bench report`; the
# suite's own reports stay in $OUT/density-<run>/.
#
#   sudo e2e/bench/density.sh                     (run.sh runs it)
#   sudo DENSITY_RUNS=berth e2e/bench/density.sh  some of berth, containerd, berth-evented
# Env: BERTHD, KUBE_KIT, CRITEST_KIT as elsewhere.
#
# What the suite needs that this host or the kit lacks, and what stands in:
#   - its Density specs start a cAdvisor pod (gcr.io/cadvisor/cadvisor) to sample the
#     kubelet's and the runtime's CPU and memory: the kit has no such image, so a stand-in
#     that only keeps running is pushed. The specs' resource half then has no samples (they
#     log that and fail after the latencies are logged); the latency half is untouched.
#   - they find the runtime's process by name (default "containerd"): a wrapper around
#     e2e_node.test passes --container-runtime-process-name for Berth.
#   - on cgroup v1 they want the runtime's and kubelet's cpu and memory cgroups to be one
#     path: the daemon and kubelet run in a cgroup of this script's own, as under a service
#     manager.
# Needs root. Numbers are printed by run.sh's report, never asserted.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
KUBE_KIT=$(cd "${KUBE_KIT:-$ROOT/../shared/kube}" && pwd)
CRITEST_KIT=$(cd "${CRITEST_KIT:-$ROOT/../shared/critest}" && pwd)
OUT=${OUT:-$ROOT/target/bench}
export BERTHD=${BERTHD:-$ROOT/target/release/berthd}
FOCUS='Density .*create (35 pods with 0s interval|10 pods with 50 background pods) \[Benchmark\]'
SKIP='\[Flaky\]'
[[ $(id -u) -eq 0 ]] || { echo "density.sh needs root" >&2; exit 1; }
[[ -x $KUBE_KIT/node-e2e.sh ]] || { echo "node e2e kit not found at $KUBE_KIT" >&2; exit 1; }
[[ -x $BERTHD ]] || { echo "no berthd at $BERTHD (cargo build --release)" >&2; exit 1; }

WORK=$(mktemp -d /tmp/berth-density.XXXXXX)
SHARED_BIN=${KUBE_KIT_BIN:-/var/tmp/berth-kube-kit}
CGROUPS=()
cleanup() {
    # Whatever still runs in this script's cgroups (its own shell included) goes back to
    # where this script started before they are removed.
    local dir
    for dir in "${CGROUPS[@]}"; do
        while read -r pid; do
            echo "$pid" >"$(dirname "$dir")/cgroup.procs" 2>/dev/null || true
        done <"$dir/cgroup.procs" 2>/dev/null || true
        rmdir "$dir" 2>/dev/null || echo "note: $dir not removed (still in use)" >&2
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$OUT"

# The kit's binaries, unpacked as its node-e2e.sh does (once per content).
mkdir -p "$SHARED_BIN"
for b in kubelet e2e_node.test agnhost kubectl ginkgo; do
    sum=$(sha256sum "$KUBE_KIT/bin/$b.xz" | cut -c1-16)
    if [[ ! -x $SHARED_BIN/$b || $(cat "$SHARED_BIN/$b.sum" 2>/dev/null) != "$sum" ]]; then
        xz -dc "$KUBE_KIT/bin/$b.xz" >"$SHARED_BIN/$b.tmp" && chmod +x "$SHARED_BIN/$b.tmp" &&
            mv "$SHARED_BIN/$b.tmp" "$SHARED_BIN/$b" && echo "$sum" >"$SHARED_BIN/$b.sum"
    fi
done

# kit_for RUN PROCESS [FEATURE_GATE]: a copy of the kit whose e2e_node.test is a wrapper
# naming the runtime's process, and whose kubelet config turns FEATURE_GATE on. The kit's
# script unpacks nothing that is already there with its checksum, and finds the critest kit
# beside itself.
kit_for() {
    local name=$2 gate=${3:-} kit=$WORK/kit-$1/kube bin=$WORK/kit-$1/bin b
    mkdir -p "$kit/bin" "$bin"
    ln -s "$CRITEST_KIT" "$WORK/kit-$1/critest"
    cp "$KUBE_KIT/node-e2e.sh" "$kit/"
    if [[ -n $gate ]]; then
        { cat "$KUBE_KIT/kubelet-config.yaml"; printf 'featureGates:\n  %s: true\n' "$gate"; } >"$kit/kubelet-config.yaml"
    fi
    for f in "$KUBE_KIT"/*; do [[ -e $kit/${f##*/} ]] || ln -s "$f" "$kit/${f##*/}"; done
    for b in kubelet agnhost kubectl ginkgo; do
        ln -s "$SHARED_BIN/$b" "$bin/$b"
        cp "$SHARED_BIN/$b.sum" "$bin/$b.sum"
        ln -s "$KUBE_KIT/bin/$b.xz" "$kit/bin/$b.xz"
    done
    printf '#!/bin/sh\nexec %q "$@" --container-runtime-process-name=%q --container-runtime-pid-file=\n' \
        "$SHARED_BIN/e2e_node.test" "$name" >"$bin/e2e_node.test"
    chmod +x "$bin/e2e_node.test"
    cp "$SHARED_BIN/e2e_node.test.sum" "$bin/e2e_node.test.sum"
    KIT_DIR=$kit KIT_BIN=$bin
}

# The cAdvisor stand-in, and the registry it goes to (started before this script's cgroup
# is entered: it outlives the script).
"$CRITEST_KIT/registry.sh" start >/dev/null
python3 "$ROOT/e2e/node-e2e/cadvisor_standin.py" --kit "$CRITEST_KIT"

# cgroup v1 with cpu and memory at different paths: enter one path in both.
if [[ ! -f /sys/fs/cgroup/cgroup.controllers ]]; then
    cpu=$(awk -F: '$2 ~ /(^|,)cpu(,|$)/ {print $3}' /proc/self/cgroup)
    mem=$(awk -F: '$2 ~ /(^|,)memory(,|$)/ {print $3}' /proc/self/cgroup)
    if [[ $cpu != "$mem" ]]; then
        for c in cpu memory; do
            dir=/sys/fs/cgroup/$c/berth-bench-density.$$
            mkdir "$dir"
            CGROUPS+=("$dir")
            echo $$ >"$dir/cgroup.procs"
        done
    fi
fi

for run in ${DENSITY_RUNS:-berth containerd berth-evented}; do
    case $run in
        berth) kit_for "$run" berthd; rt=berth ;;
        containerd) kit_for "$run" containerd; rt=containerd ;;
        berth-evented) kit_for "$run" berthd EventedPLEG; rt=berth ;;
        *) echo "DENSITY_RUNS: berth, containerd, berth-evented" >&2; exit 2 ;;
    esac
    echo "density: $run (kubelet + node e2e Density benchmarks, ~3 min)…"
    rm -rf "$OUT/density-$run"
    NODE_E2E_RUNTIME=$rt NODES=1 NODE_E2E_OUT=$OUT/density-$run KUBE_KIT=$KIT_DIR KUBE_KIT_BIN=$KIT_BIN \
        CRITEST_KIT=$CRITEST_KIT bash "$ROOT/e2e/node-e2e.sh" "$FOCUS" "$SKIP" >"$WORK/$run.log" 2>&1 || true
    python3 "$HERE/density_parse.py" "$run" "$OUT/density-$run" >"$OUT/density-$run.json"
    cat "$OUT/density-$run.json"
done
