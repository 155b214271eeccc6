#!/usr/bin/env bash
# run.sh — Berth's benchmarks in one command, with Debian's containerd 1.6 measured in the
# same run on the same machine through the same CRI client (cri-bench), the same CNI config
# and the same local registry:
#   1. 30 pods one after another: median/p90 of RunPodSandbox, CreateContainer,
#      StartContainer and their sum;
#   2. 20 and 100 pods started at once: wall time and pods/s;
#   3. RSS/PSS of the daemon idle and with 20 pods, of the shims per container and of each
#      pod's infra process;
#   4. a cold pull of a ~200 MB, 5-layer gzip image from the local registry (median of RUNS
#      fresh daemons each), and the time `gzip -dc` alone needs for those layers;
#   5. stop+remove of the 30 pods;  6. ExecSync round trip;  7. ListContainerStats with 50
#      containers running;
#   and pod start with crun as the runtime handler, for both; on Berth also pod start,
#   stop+remove and memory per pod (shims, gVisor's processes, infra; 10 pods) with the
#   runtime handlers runsc (gVisor) and runc-shim-v2 (Debian's containerd-shim-runc-v2:
#   containerd's own default, so its column compares);
#   8. pod startup as kubelet measures it: two of the node e2e suite's Density benchmarks
#   with the real kubelet, p50/p90/p99 (density.sh; about 10 minutes for both runtimes).
# Prints a table with both columns, the ratio and each goal; writes every number as JSON
# under $OUT (default target/bench/): berth.json, containerd.json, *-crun.json,
# berth-runsc.json, berth-runc-shim-v2.json, pull.json, density-*.json and summary.json.
# Installs containerd, crun and the rest from Debian when missing.
#
#   sudo e2e/bench/run.sh            everything
#   sudo e2e/bench/run.sh pods       without the pull benchmark
#   sudo e2e/bench/run.sh pull       only the pull benchmark
#   sudo e2e/bench/run.sh density    only the kubelet Density benchmarks (density.sh)
#   sudo e2e/bench/run.sh build      only `berthctl build` cold/warm (build.sh; Berth alone)
# Needs root. Numbers are printed, never asserted.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
KIT=${CRITEST_KIT:-$ROOT/../shared/critest}
WHAT=${1:-all}
case $WHAT in all | pods | pull | density | build) ;; *) sed -n '2,30p' "$0" >&2; exit 2 ;; esac
RUNS=${RUNS:-3}
OUT=${OUT:-$ROOT/target/bench}
IMAGE=registry.k8s.io/e2e-test-images/busybox:1.29-2
BIG=127.0.0.1:5000/testkit/big:200mb
[[ $(id -u) -eq 0 ]] || { echo "run.sh needs root (namespaces, mounts, cgroups)" >&2; exit 1; }
[[ $WHAT == build ]] && exec "$HERE/build.sh"

PACKAGES=(containerd runc crun runsc containernetworking-plugins docker-registry iptables curl python3 gzip busybox-static xz-utils)
missing=()
for p in "${PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
    echo "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q "${missing[@]}" >/dev/null; }
fi
# containerd's package enables its own service; this run starts its own instance.
systemctl is-active -q containerd 2>/dev/null && echo "note: a system containerd is running too (not measured)"

echo "building (release)…"
cargo build --release --manifest-path "$ROOT/Cargo.toml" --workspace --bins >/dev/null 2>&1 || { echo "release build failed" >&2; exit 1; }
BENCH=$ROOT/target/release/cri-bench
"$KIT/registry.sh" start >/dev/null
if [[ $WHAT == pods || $WHAT == density ]]; then "$KIT/build-images.sh" >/dev/null; else "$KIT/build-images.sh" --big >/dev/null; fi
EXTRA_CLEANUP="ip link del bbench0 2>/dev/null || true; rm -rf /var/lib/cni/networks/berth-bench"
# shellcheck source=e2e/bench/lib.sh
source "$HERE/lib.sh"
write_bench_cni
mkdir -p "$OUT"
# Only the parts measured now are replaced; the report reads whatever is there.
case $WHAT in
    pull) rm -f "$OUT/pull.json" ;;
    pods) rm -f "$OUT"/{berth,containerd,berth-crun,containerd-crun,berth-runsc,berth-runc-shim-v2}.json ;;
    density) rm -f "$OUT"/density-*.json ;;
    *) rm -f "$OUT"/*.json ;;
esac
have_containerd() { command -v containerd >/dev/null; }
now() { date +%s.%N; }

cat >"$OUT/meta.json" <<JSON
{"berthd": "$("$ROOT/target/release/berthd" --version | awk '{print $2}')",
 "containerd": "$(have_containerd && containerd --version | awk '{print $3}' || echo none)",
 "runc": "$(runc --version | awk 'NR==1{print $3}')", "crun": "$(crun --version 2>/dev/null | awk 'NR==1{print $3}')",
 "kernel": "$(uname -r)", "cpus": "$(nproc)", "cgroup": "$(stat -fc %T /sys/fs/cgroup)"}
JSON

# suite NAME ENDPOINT PID MARKER: the whole CRI suite, then pod start with crun.
suite() {
    echo "measuring $1…"
    "$BENCH" suite "$2" --image "$IMAGE" --daemon-pid "$3" --marker "$4" --crictl "$KIT/bin/crictl" >"$OUT/$1.json"
    if command -v crun >/dev/null; then
        "$BENCH" startup "$2" --image "$IMAGE" --handler crun >"$OUT/$1-crun.json"
    fi
}

if [[ $WHAT == all || $WHAT == pods ]]; then
    start_berthd
    suite berth "unix://$B/berth.sock" "$BERTHD_PID" "$B/state/"
    # The other handlers of Berth's default config, where their binaries are installed.
    for h in runsc:runsc runc-shim-v2:containerd-shim-runc-v2; do
        command -v "${h#*:}" >/dev/null || { echo "${h#*:} not installed: no ${h%%:*} rows"; continue; }
        echo "measuring berth on handler ${h%%:*}…"
        "$BENCH" startup "unix://$B/berth.sock" --image "$IMAGE" --handler "${h%%:*}" --sequential 20 \
            --memory-pods 10 --daemon-pid "$BERTHD_PID" --marker "$B/state/" >"$OUT/berth-${h%%:*}.json"
    done
    stop_pid "$BERTHD_PID"
    if have_containerd; then
        start_containerd
        suite containerd "unix://$WORK/ctrd/containerd.sock" "$CTRD_PID" "$WORK/ctrd/containerd.sock"
        stop_pid "$CTRD_PID"
    else
        echo "containerd not installed: Berth's column only"
    fi
fi

# pull_once NAME N: one cold pull into a fresh daemon root; prints seconds.
pull_once() {
    local dir=$WORK/pull-$1-$2 pid sock t0 t1
    mkdir -p "$dir"
    if [[ $1 == berth ]]; then
        sock=$dir/berth.sock
        "$ROOT/target/release/berthd" --listen "unix://$sock" --root "$dir/root" --state "$dir/state" \
            --nri-socket "$dir/nri.sock" --registry-config-path "$KIT/certs.d" --log-level warn 2>"$dir/log" &
    else
        sock=$dir/containerd.sock
        printf 'version = 2\nroot = "%s/root"\nstate = "%s/state"\n[grpc]\n  address = "%s"\n[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = "%s/certs.d"\n' \
            "$dir" "$dir" "$sock" "$KIT" >"$dir/config.toml"
        containerd --config "$dir/config.toml" >"$dir/log" 2>&1 &
    fi
    pid=$!
    PIDS+=("$pid")
    wait_sock "$sock"
    sleep 0.5
    printf 'runtime-endpoint: unix://%s\nimage-endpoint: unix://%s\n' "$sock" "$sock" >"$dir/crictl.yaml"
    t0=$(now)
    "$KIT/bin/crictl" -c "$dir/crictl.yaml" pull "$BIG" >/dev/null
    t1=$(now)
    stop_pid "$pid"
    grep -F " $dir/" /proc/self/mountinfo | awk '{print $5}' | sort -r | while read -r m; do umount -l "$m" || true; done || true
    rm -rf "$dir"
    python3 -c "print(round($t1-$t0,3))"
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

if [[ $WHAT == all || $WHAT == pull ]]; then
    echo "measuring pulls ($RUNS cold runs each)…"
    manifest=$(curl -fsS -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://127.0.0.1:5000/v2/testkit/big/manifests/200mb")
    read -r layers nlayers bytes < <(python3 -c 'import json,sys; m=json.loads(sys.argv[1]); l=m["layers"]; print(",".join(x["digest"] for x in l), len(l), sum(x["size"] for x in l))' "$manifest")
    # The floor: the same layers decompressed one after another from page cache.
    for d in ${layers//,/ }; do curl -fsS "http://127.0.0.1:5000/v2/testkit/big/blobs/$d" -o "$WORK/${d#sha256:}.gz"; done
    t0=$(now); for f in "$WORK"/*.gz; do gzip -dc "$f" >/dev/null; done; t1=$(now)
    rm -f "$WORK"/*.gz
    berth_s=$(for i in $(seq 1 "$RUNS"); do pull_once berth "$i"; done | median)
    ctrd_s=null
    if have_containerd; then ctrd_s=$(for i in $(seq 1 "$RUNS"); do pull_once containerd "$i"; done | median); fi
    python3 -c "import json,sys; print(json.dumps({'image': '$BIG', 'mb': $bytes/1e6, 'layers': $nlayers, 'runs': $RUNS, 'berth_s': $berth_s, 'containerd_s': $ctrd_s, 'gzip_s': round($t1-$t0,3)}))" >"$OUT/pull.json"
fi

if [[ $WHAT == all || $WHAT == density ]]; then
    OUT=$OUT CRITEST_KIT=$KIT BERTHD=$ROOT/target/release/berthd bash "$HERE/density.sh"
fi

"$BENCH" report "$OUT"
