#!/usr/bin/env bash
# build.sh — `berthctl build` timed: a 10-step Dockerfile (FROM busybox, ENV, WORKDIR, COPY,
# four RUN steps that each sleep a known 0.2 s, a second and a third COPY, CMD) built
#   cold     with --no-cache, every step run;
#   warm     unchanged right after, every step from the cache;
#   changed  with one file of the COPY at step 7 changed: steps 1-6 cached, 7-10 run
#            (two of the RUN steps among them);
# RUNS times each (default 3), in that order, each timed with a monotonic clock around the
# whole `berthctl build` (client, context upload, steps, commit and tag). Reports the
# medians: cold total, the RUN commands' own work (the sleeps), the overhead per step
# ((cold - RUN work) / 10), warm total and one-change total, and the builder's own per-step
# times from the progress lines (`[i] done in X.XXs`). Prints a table and writes JSON to
# $OUT/build.json (default target/bench/). Numbers are printed, never asserted.
#
#   sudo e2e/bench/build.sh                  release binaries (built when needed)
#   sudo PROFILE=debug e2e/bench/build.sh    the debug binaries (cargo build --bins)
#   sudo RUNS=5 e2e/bench/build.sh
#
# Starts its own berthd (as lib.sh does) in a temporary directory with a CNI network of its
# own (bridge bbuild0, 10.247.0.0/16) and the critest kit's registry mapping; starts the
# kit's registry (../shared/critest/registry.sh) when it is not answering, and stops it
# again at the end in that case. Needs root.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
KIT=${CRITEST_KIT:-$ROOT/../shared/critest}
RUNS=${RUNS:-3}
PROFILE=${PROFILE:-release}
OUT=${OUT:-$ROOT/target/bench}
IMAGE=registry.k8s.io/e2e-test-images/busybox:1.29-2
SLEEP=0.2   # each RUN step's own work, seconds
NRUN=4      # RUN steps in the Dockerfile
NSTEPS=10
[[ $(id -u) -eq 0 ]] || { echo "build.sh needs root (namespaces, mounts, cgroups)" >&2; exit 1; }
case $PROFILE in
    release) CARGO_FLAGS=(--release) ;;
    debug) CARGO_FLAGS=() ;;
    *) echo "PROFILE is release or debug" >&2; exit 2 ;;
esac
BIN=$ROOT/target/$PROFILE

echo "building ($PROFILE)…"
cargo build "${CARGO_FLAGS[@]}" --manifest-path "$ROOT/Cargo.toml" --workspace --bins >/dev/null 2>&1 || { echo "$PROFILE build failed" >&2; exit 1; }
export BENCH=$BIN/cri-bench   # lib.sh's cleanup removes pods a cut-short run leaves

# shellcheck source=e2e/bench/lib.sh
source "$HERE/lib.sh"
# lib.sh's cleanup runs this at exit: the network made here, and the kit's registry when it
# was started here (it is left running when it was already up).
EXTRA_CLEANUP="ip link del bbuild0 2>/dev/null || true; rm -rf /var/lib/cni/networks/berth-build-bench"
if ! curl -fsS -o /dev/null --max-time 2 http://127.0.0.1:5000/v2/ 2>/dev/null; then
    "$KIT/registry.sh" start >/dev/null
    EXTRA_CLEANUP+="; \"$KIT/registry.sh\" stop >/dev/null || true"
fi
"$KIT/build-images.sh" >/dev/null

mkdir -p "$WORK/cni" "$OUT"
cat >"$WORK/cni/10-build-bench.conflist" <<JSON
{"cniVersion": "1.0.0", "name": "berth-build-bench", "plugins": [
  {"type": "bridge", "bridge": "bbuild0", "isGateway": true, "ipMasq": false,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.247.0.0/16"}]]}},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}
JSON
B=$WORK/berth
start_berthd_at "$BIN/berthd" "$B" "$WORK/cni" "$WORK/berthd.log" "${BERTH_LOG_LEVEL:-warn}" ||
    { echo "berthd did not start:" >&2; cat "$WORK/berthd.log" >&2; exit 1; }
BERTHD_PID=$DAEMON_PID
PIDS+=("$BERTHD_PID")
ctl() { "$BIN/berthctl" -r "unix://$B/berth.sock" "$@"; }
ctl pull "$IMAGE" >/dev/null 2>&1

# The context: three small files, a directory of 20 files (the step-7 COPY), a Dockerfile.
CTX=$WORK/ctx
mkdir -p "$CTX/data"
echo alpha >"$CTX/a.txt"
echo beta >"$CTX/b.txt"
for i in $(seq 1 20); do head -c 4096 /dev/urandom | base64 >"$CTX/data/f$i.txt"; done
cat >"$CTX/Dockerfile" <<EOF
FROM $IMAGE
ENV APP=bench MODE=prod
WORKDIR /app
COPY a.txt b.txt ./
RUN sleep $SLEEP && echo one >/app/one
RUN sleep $SLEEP && head -c 1048576 /dev/zero >/app/zeros
COPY data/ /app/data/
RUN sleep $SLEEP && cat /app/data/*.txt >/app/all
RUN sleep $SLEEP && wc -c /app/all >/app/size
CMD ["cat", "/app/size"]
EOF
[[ $(grep -c '^[A-Z]' "$CTX/Dockerfile") -eq $NSTEPS ]] || { echo "the Dockerfile is not $NSTEPS steps" >&2; exit 1; }

# timed NAME ARGS...: one `berthctl build ARGS` timed with CLOCK_MONOTONIC around the
# process; appends "NAME seconds cached-steps" to $WORK/times and keeps its progress.
timed() {
    local name=$1 n
    shift
    if ! python3 - "$WORK/$name.secs" "$BIN/berthctl" -r "unix://$B/berth.sock" build "$@" "$CTX" \
        >"$WORK/$name.out" 2>"$WORK/$name.err" <<'PY'
import subprocess, sys, time
t0 = time.monotonic()
rc = subprocess.call(sys.argv[2:])
t1 = time.monotonic()
open(sys.argv[1], "w").write(f"{t1 - t0:.4f}\n")
sys.exit(rc)
PY
    then
        echo "build ($name) failed:" >&2
        cat "$WORK/$name.err" >&2
        exit 1
    fi
    n=$(grep -c '^\[[0-9]*\] CACHED$' "$WORK/$name.err" || true)
    echo "$name $(cat "$WORK/$name.secs") $n" >>"$WORK/times"
    cat "$WORK/$name.err" >>"$WORK/progress.log"
}

echo "building the 10-step Dockerfile: $RUNS x (cold --no-cache, warm, one file changed)…"
: >"$WORK/times"
for i in $(seq 1 "$RUNS"); do
    timed "cold$i" --no-cache -t bench:cold
    timed "warm$i" -t bench:warm
    echo "change $i $RANDOM" >>"$CTX/data/f7.txt"
    timed "changed$i" -t bench:changed
done
ctl run --rm bench:changed >/dev/null   # the image runs

# Report: medians over the runs, the builder's per-step times from the cold builds.
python3 - "$WORK" "$RUNS" "$SLEEP" "$NRUN" "$NSTEPS" "$OUT/build.json" "$("$BIN/berthd" --version | awk '{print $2}')" "$PROFILE" <<'PY'
import json, re, statistics, sys
work, runs, sleep, nrun, nsteps, out, version, profile = sys.argv[1:]
runs, sleep, nrun, nsteps = int(runs), float(sleep), int(nrun), int(nsteps)
rows = [l.split() for l in open(f"{work}/times")]
def kind(k):
    return [(float(s), int(c)) for n, s, c in rows if re.fullmatch(k + r"\d+", n)]
cold, warm, changed = kind("cold"), kind("warm"), kind("changed")
med = lambda xs: statistics.median(x for x, _ in xs)
work_s = sleep * nrun
# The builder's own "[i] done in X.XXs" of each step of each cold build, by step.
steps = {}
for i in range(1, runs + 1):
    title = {}
    for line in open(f"{work}/cold{i}.err"):
        m = re.match(r"\[(\d+)/\d+\] (.*)", line)
        if m:
            title[int(m[1])] = m[2].split()[0]
        m = re.match(r"\[(\d+)\] done in ([0-9.]+)s", line)
        if m:
            steps.setdefault(int(m[1]), (title.get(int(m[1]), "?"), []))[1].append(float(m[2]))
step_rows = [{"step": k, "instruction": t, "median_s": statistics.median(v)} for k, (t, v) in sorted(steps.items())]
run_steps = [r["median_s"] for r in step_rows if r["instruction"] == "RUN"]
summary = {
    "berthd": version, "profile": profile, "runs": runs, "steps": nsteps, "run_steps": nrun,
    "cold_s": round(med(cold), 3),
    "run_work_s": work_s,
    "overhead_per_step_ms": round((med(cold) - work_s) / nsteps * 1000, 1),
    "run_step_overhead_ms": round((statistics.mean(run_steps) - sleep) * 1000, 1) if run_steps else None,
    "steps_reported_s": round(sum(r["median_s"] for r in step_rows), 3),
    "warm_s": round(med(warm), 3),
    "warm_cached_steps": min(c for _, c in warm),
    "changed_s": round(med(changed), 3),
    "changed_cached_steps": min(c for _, c in changed),
    "all": {"cold": [x for x, _ in cold], "warm": [x for x, _ in warm], "changed": [x for x, _ in changed]},
    "cold_steps": step_rows,
}
json.dump(summary, open(out, "w"), indent=1)
s = summary
print(f"berthd {version} ({profile} build), median of {runs} runs each")
print(f"{'metric':<52}{'value':>10}  unit")
for name, v, unit in [
    ("cold build, --no-cache (10 steps)", s["cold_s"], "s"),
    (f"  of which RUN commands' own work ({nrun} x sleep {sleep})", s["run_work_s"], "s"),
    ("  overhead per step ((cold - RUN work) / 10)", s["overhead_per_step_ms"], "ms"),
    ("  overhead per RUN step (its time - its sleep)", s["run_step_overhead_ms"], "ms"),
    ("  sum of the builder's step times", s["steps_reported_s"], "s"),
    ("warm rebuild, unchanged", s["warm_s"], "s"),
    ("  steps from the cache", s["warm_cached_steps"], f"of {nsteps}"),
    ("one file changed (COPY at step 7)", s["changed_s"], "s"),
    ("  steps from the cache", s["changed_cached_steps"], f"of {nsteps}"),
]:
    print(f"{name:<52}{v:>10}  {unit}")
print("cold build, per step (median s):", ", ".join(f"{r['step']} {r['instruction']} {r['median_s']:.2f}" for r in step_rows))
print(f"JSON: {out}")
PY
