#!/usr/bin/env bash
# Builds every fuzz target and runs each for SECONDS (default 20) over its checked-in seeds
# (fuzz/corpus/<target>/, read only: new inputs go to a scratch dir). Exit 1 on any crash,
# panic, timeout or OOM; the reproducer is left in fuzz/artifacts/<target>/.
#
#   fuzz/run.sh [SECONDS]
#   FUZZ_SANITIZER=none fuzz/run.sh 60    # no ASan: faster build and runs
#   FUZZ_TARGETS="cri_log ws_frame" fuzz/run.sh
#
# Needs the nightly toolchain and a C++ compiler (libfuzzer-sys); installs cargo-fuzz from
# crates.io when it is missing. Nothing else is fetched.
set -euo pipefail

secs=${1:-20}
toolchain=${FUZZ_TOOLCHAIN:-nightly}
sanitizer=${FUZZ_SANITIZER:-address}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

now() { date +%s; }
t_start=$(now)

# Without a nightly toolchain, the stable one builds the targets too (RUSTC_BOOTSTRAP lets it
# take cargo-fuzz's -Z flags), without a sanitizer.
if ! rustup run "$toolchain" rustc --version >/dev/null 2>&1; then
    echo "== no $toolchain toolchain: using stable with RUSTC_BOOTSTRAP=1, no sanitizer"
    toolchain=stable
    sanitizer=none
    export RUSTC_BOOTSTRAP=1
fi

if ! cargo "+$toolchain" fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo "+$toolchain" install cargo-fuzz --locked
fi

# -a: debug assertions and overflow checks on (an overflow is a finding too).
flags=(-a -s "$sanitizer")
echo "== building fuzz targets (sanitizer: $sanitizer)"
t_build=$(now)
cargo "+$toolchain" fuzz build "${flags[@]}"
build_s=$(( $(now) - t_build ))
echo "== build: ${build_s}s"

targets=${FUZZ_TARGETS:-$(cargo "+$toolchain" fuzz list)}
work=$(mktemp -d -t berth-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT

dict_for() {
    case $1 in
        image_manifest | cni_result | registry_auth) echo "-dict=fuzz/dict/json.dict" ;;
        cdi_spec) cat fuzz/dict/json.dict fuzz/dict/yaml.dict >"$work/cdi.dict" && echo "-dict=$work/cdi.dict" ;;
        image_hosts) echo "-dict=fuzz/dict/toml.dict" ;;
    esac
}

failed=()
summary=()
for t in $targets; do
    mkdir -p "$work/corpus/$t" "$work/tmp/$t"
    dict=$(dict_for "$t")
    log="$work/$t.log"
    echo "== $t: ${secs}s"
    t0=$(now)
    # TMPDIR: scratch dirs of the targets (unpack roots, config files) go away with $work.
    if TMPDIR="$work/tmp/$t" cargo "+$toolchain" fuzz run "${flags[@]}" "$t" "$work/corpus/$t" "fuzz/corpus/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 $dict >"$log" 2>&1; then
        status=ok
    else
        status=FAILED
        failed+=("$t")
        # The finding (panic message or sanitizer report), then the reproducer's path.
        grep -m 1 -A 12 -E "panicked at|ERROR: (AddressSanitizer|libFuzzer)|SUMMARY: " "$log" || tail -n 40 "$log"
        grep -A 2 "^Failing input:" "$log" || true
    fi
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
    eps=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
    corp=$(grep -o 'corp: [0-9]*/[0-9a-zA-Z]*' "$log" | tail -n 1 | cut -d' ' -f2 || echo "?")
    summary+=("$(printf '%-16s %-7s %10s runs %7s exec/s  corpus %-10s %4ss' "$t" "$status" "$runs" "$eps" "$corp" "$(( $(now) - t0 ))")")
done

echo
echo "== summary (build ${build_s}s, total $(( $(now) - t_start ))s)"
printf '%s\n' "${summary[@]}"
if ((${#failed[@]})); then
    echo "FAILED: ${failed[*]} (reproducers in fuzz/artifacts/)"
    exit 1
fi
