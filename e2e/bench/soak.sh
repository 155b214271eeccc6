#!/usr/bin/env bash
# soak.sh — Berth under a steady load, then over many create/remove cycles. Prints numbers;
# asserts nothing except that the calls succeed. Not run in CI.
#   (a) PODS pods x CONTAINERS containers created at once, then for MINUTES minutes an
#       ExecSync probe (`true`) against every container once a second and
#       ListContainerStats + ListPodSandboxStats every 10 s, like kubelet; errors counted;
#   (b) CYCLES pod+container create/start/stop/remove cycles, berthd's RSS (VmRSS) and open
#       fds printed every EVERY cycles, and their growth from the first sample to the last
#       with a verdict ("no growth" within 5% / 8 MiB of RSS and 3 fds).
# Uses the release build, the critest kit's registry and images, and the bench CNI config
# (e2e/bench/lib.sh), like run.sh.
#
#   sudo e2e/bench/soak.sh                 both parts, full size
#   sudo PODS=20 MINUTES=1 CYCLES=200 e2e/bench/soak.sh
#   sudo e2e/bench/soak.sh load|cycles     one part
# Needs root.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
KIT=${CRITEST_KIT:-$ROOT/../shared/critest}
WHAT=${1:-all}
PODS=${PODS:-100}
CONTAINERS=${CONTAINERS:-2}
MINUTES=${MINUTES:-3}
CYCLES=${CYCLES:-1000}
EVERY=${EVERY:-100}
IMAGE=registry.k8s.io/e2e-test-images/busybox:1.29-2
[[ $(id -u) -eq 0 ]] || { echo "soak.sh needs root (namespaces, mounts, cgroups)" >&2; exit 1; }

if [[ ${SKIP_BUILD:-} != 1 ]]; then
    echo "building (release)…"
    cargo build --release --manifest-path "$ROOT/Cargo.toml" --workspace --bins >/dev/null 2>&1 || { echo "release build failed" >&2; exit 1; }
fi
BENCH=$ROOT/target/release/cri-bench
"$KIT/registry.sh" start >/dev/null
"$KIT/build-images.sh" >/dev/null
EXTRA_CLEANUP="ip link del bbench0 2>/dev/null || true; rm -rf /var/lib/cni/networks/berth-bench"
# shellcheck source=e2e/bench/lib.sh
source "$HERE/lib.sh"
write_bench_cni
start_berthd
EP="unix://$B/berth.sock"
echo "berthd $("$ROOT/target/release/berthd" --version | awk '{print $2}') pid $BERTHD_PID, $(nproc) cpus, kernel $(uname -r)"

if [[ $WHAT == all || $WHAT == load ]]; then
    echo "== load: $PODS pods x $CONTAINERS containers, probes for $MINUTES min"
    "$BENCH" soak "$EP" --image "$IMAGE" --daemon-pid "$BERTHD_PID" --pods "$PODS" \
        --containers "$CONTAINERS" --minutes "$MINUTES" >"$WORK/load.out"
    grep -v '^{' "$WORK/load.out"
fi
if [[ $WHAT == all || $WHAT == cycles ]]; then
    echo "== cycles: $CYCLES create/start/stop/remove cycles"
    "$BENCH" cycles "$EP" --image "$IMAGE" --daemon-pid "$BERTHD_PID" --cycles "$CYCLES" \
        --every "$EVERY" | grep -v '^{'
fi
echo "berthd log: $(grep -c ' ERROR ' "$WORK/berthd.log" || true) error lines"
stop_pid "$BERTHD_PID"
