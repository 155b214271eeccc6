#!/usr/bin/env bash
# pull.sh — pull benchmark: a ~200 MB, 5-layer gzip image (testkit/big:200mb from the
# critest kit) pulled cold from the local registry on 127.0.0.1:5000 by berthd, and by
# Debian's containerd in the same run when it is installed; prints seconds, MB/s, the
# ratio, and the time `gzip -dc` alone needs for those layers (the CPU floor here).
#   e2e/bench/pull.sh [RUNS]    (default 3 runs each; the median is reported)
# Needs root. Numbers are printed, never asserted.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
KIT=${CRITEST_KIT:-$ROOT/../shared/critest}
RUNS=${1:-3}
IMAGE=127.0.0.1:5000/testkit/big:200mb
CRICTL=$KIT/bin/crictl

cargo build --release --bin berthd --bin berthctl --manifest-path "$ROOT/Cargo.toml" >/dev/null 2>&1
"$KIT/registry.sh" start >/dev/null
"$KIT/build-images.sh" --big >/dev/null

# shellcheck source=e2e/bench/lib.sh
source "$HERE/lib.sh"

# Compressed size of the image's layers, from the registry.
manifest=$(curl -fsS -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://127.0.0.1:5000/v2/testkit/big/manifests/200mb")
layers=$(python3 -c 'import json,sys; m=json.loads(sys.argv[1]); print(" ".join(l["digest"] for l in m["layers"]))' "$manifest")
bytes=$(python3 -c 'import json,sys; m=json.loads(sys.argv[1]); print(sum(l["size"] for l in m["layers"]))' "$manifest")
mb=$(python3 -c "print($bytes/1e6)")

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
now() { date +%s.%N; }

# gzip -dc floor: the layers decompressed one after another from page cache.
for d in $layers; do curl -fsS "http://127.0.0.1:5000/v2/testkit/big/blobs/$d" -o "$WORK/${d#sha256:}.gz"; done
t0=$(now); for f in "$WORK"/*.gz; do gzip -dc "$f" >/dev/null; done; t1=$(now)
gzip_s=$(python3 -c "print(round($t1-$t0,3))")
rm -f "$WORK"/*.gz

pull_berth() {
    local dir=$WORK/berth-$1
    mkdir -p "$dir"
    "$ROOT/target/release/berthd" --listen "unix://$dir/berth.sock" --root "$dir/root" --state "$dir/state" \
        --registry-config-path "$KIT/certs.d" --log-level warn 2>"$dir/log" &
    local pid=$!
    PIDS+=("$pid")
    for _ in $(seq 1 100); do [[ -S $dir/berth.sock ]] && break; sleep 0.1; done
    local t0 t1
    t0=$(now)
    "$ROOT/target/release/berthctl" -r "unix://$dir/berth.sock" pull "$IMAGE" >/dev/null
    t1=$(now)
    kill "$pid"; wait "$pid" 2>/dev/null || true
    rm -rf "$dir"
    python3 -c "print(round($t1-$t0,3))"
}

pull_containerd() {
    local dir=$WORK/ctrd-$1
    mkdir -p "$dir"
    cat >"$dir/config.toml" <<TOML
version = 2
root = "$dir/root"
state = "$dir/state"
[grpc]
  address = "$dir/containerd.sock"
[plugins."io.containerd.grpc.v1.cri".registry]
  config_path = "$KIT/certs.d"
TOML
    containerd --config "$dir/config.toml" >"$dir/log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    for _ in $(seq 1 100); do [[ -S $dir/containerd.sock ]] && break; sleep 0.1; done
    sleep 0.5
    local t0 t1
    t0=$(now)
    "$CRICTL" -i "unix://$dir/containerd.sock" -r "unix://$dir/containerd.sock" pull "$IMAGE" >/dev/null 2>&1
    t1=$(now)
    kill "$pid"; wait "$pid" 2>/dev/null || true
    grep -F " $dir/" /proc/self/mountinfo | awk '{print $5}' | sort -r | while read -r m; do umount -l "$m" || true; done || true
    rm -rf "$dir"
    python3 -c "print(round($t1-$t0,3))"
}

berth_s=$(for i in $(seq 1 "$RUNS"); do pull_berth "$i"; done | median)
berth_rate=$(python3 -c "print(round($mb/$berth_s,1))")
echo "image: $IMAGE, $(python3 -c "print(round($mb,1))") MB compressed in 5 layers; $RUNS cold pulls each, median"
printf '%-22s %8s %8s\n' "" "seconds" "MB/s"
printf '%-22s %8s %8s\n' "berth" "$berth_s" "$berth_rate"
if command -v containerd >/dev/null; then
    ctrd_s=$(for i in $(seq 1 "$RUNS"); do pull_containerd "$i"; done | median)
    ctrd_rate=$(python3 -c "print(round($mb/$ctrd_s,1))")
    printf '%-22s %8s %8s\n' "containerd $(containerd --version | awk '{print $3}')" "$ctrd_s" "$ctrd_rate"
    echo "berth/containerd throughput ratio: $(python3 -c "print(round($ctrd_s/$berth_s,2))")x"
else
    echo "containerd not installed: no side-by-side numbers (apt-get install containerd)"
fi
echo "gzip -dc of the same layers alone: ${gzip_s}s (berth at $(python3 -c "print(round($berth_s/$gzip_s,2))")x that floor)"
