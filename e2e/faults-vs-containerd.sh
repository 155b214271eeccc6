#!/usr/bin/env bash
# faults-vs-containerd.sh — the faults of the suite's fault tests (registries that drop,
# stall or lie, a container filling the disk, the runtime SIGKILLed under a churning real
# kubelet with CNI failures and shim kills) run through the same program, `fault-table`,
# against Berth and against Debian's containerd (1.6, its CRI plugin, configured alike),
# then printed as one table: what each runtime answered and what it left behind.
#
#   sudo e2e/faults-vs-containerd.sh              every fault (~15 min)
#   sudo e2e/faults-vs-containerd.sh pulls disk   some groups (pulls, disk, imagegc, chaos)
#   CHAOS_SECS=600 CHAOS_PODS=30 sudo e2e/faults-vs-containerd.sh chaos   the long chaos run
# Env: OUT (default target/faults): faults-berth.jsonl, faults-containerd.jsonl, table.md.
# The suite's tests (pull_faults, hostile_registry, disk_pressure, kubelet_chaos) assert
# Berth's column; this script reports, it does not fail on containerd's.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$ROOT/target/faults}
mkdir -p "$OUT"
[[ $(id -u) == 0 ]] || { echo "run as root (real mounts, namespaces, cgroups)" >&2; exit 1; }
need=()
for p in containerd runc containernetworking-plugins busybox-static; do
    dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if ((${#need[@]})); then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null
fi
# containerd's package enables its own service; this run starts its own instances.
systemctl is-active -q containerd 2>/dev/null && echo "note: a system containerd is running too (not used)"
(cd "$ROOT" && cargo build -q --workspace --bins)

for runtime in berth containerd; do
    echo "== $runtime"
    E2E_RUNTIME=$runtime "$ROOT/target/debug/fault-table" "$@" | tee "$OUT/faults-$runtime.jsonl"
done

python3 - "$OUT" "$(containerd --version | awk '{print $3}')" <<'PY' | tee "$OUT/table.md"
import json, pathlib, sys
out, version = pathlib.Path(sys.argv[1]), sys.argv[2]
rows = {}
for runtime in ("berth", "containerd"):
    for line in (out / f"faults-{runtime}.jsonl").read_text().splitlines():
        r = json.loads(line)
        left = "; ".join(r["left"]) if r["left"] else "nothing"
        cell = f'{r["outcome"]}. Left: {left}'.replace("|", "/")
        rows.setdefault(r["fault"], {})[runtime] = cell
print(f"| fault | Berth | containerd {version} |")
print("| --- | --- | --- |")
for fault, cells in rows.items():
    print(f'| {fault} | {cells.get("berth", "not run")} | {cells.get("containerd", "not run")} |')
PY
