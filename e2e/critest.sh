#!/usr/bin/env bash
# critest.sh — run the upstream CRI conformance suite (critest, from the offline kit in
# ../shared/critest or $CRITEST_KIT) against a berthd started here on a temporary root,
# then fail if any spec listed in e2e/critest/passing.txt did not pass.
#   e2e/critest.sh [FOCUS]      e.g. 'Image Manager|Runtime info'
#   UPDATE_PASSING=1 e2e/critest.sh   rewrite passing.txt from this run
#   CRITEST_HANDLER=runsc e2e/critest.sh   every pod on that runtime handler, checked
#                                          against e2e/critest/passing-runsc.txt
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
KIT=${CRITEST_KIT:-$ROOT/../shared/critest}
BERTHD=${BERTHD:-$ROOT/target/debug/berthd}
HANDLER=${CRITEST_HANDLER:-}
PASSING=$HERE/critest/passing${HANDLER:+-$HANDLER}.txt
FOCUS=${1:-}
[[ -x $KIT/run.sh ]] || { echo "critest kit not found at $KIT (set CRITEST_KIT)" >&2; exit 1; }
[[ -x $BERTHD ]] || { echo "berthd not built at $BERTHD: cargo build --bin berthd" >&2; exit 1; }

WORK=$(mktemp -d /tmp/berth-critest.XXXXXX)
# Containers in a pod's own user namespace traverse it to their root filesystems.
chmod 711 "$WORK"
PID=""
SOCK=$WORK/berth.sock
# The kit's CNI config uses bridge cni0; remove it afterwards if this run created it.
BRIDGE_EXISTED=$(ip link show cni0 >/dev/null 2>&1 && echo yes || echo no)
cleanup() {
    # Pods outlive berthd by design: remove what critest left before stopping it.
    if [[ -n $PID ]] && kill -0 "$PID" 2>/dev/null; then
        "$KIT/bin/crictl" -r "unix://$SOCK" -i "unix://$SOCK" rmp -a -f >/dev/null 2>&1 || true
    fi
    if [[ -n $PID ]] && kill -0 "$PID" 2>/dev/null; then
        kill "$PID"
        for _ in $(seq 1 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$PID" 2>/dev/null || true
    fi
    # Unmount anything a failed run left under the work dir, deepest first.
    grep -F " $WORK/" /proc/self/mountinfo | awk '{print $5}' | sort -r | while read -r m; do umount -l "$m" || true; done || true
    rm -rf "$WORK"
    if [[ $BRIDGE_EXISTED == no ]]; then
        ip link del cni0 2>/dev/null || true
        rm -rf /var/lib/cni/networks/critest
    fi
}
trap cleanup EXIT

mkdir -p "$WORK/cni"
cp "$KIT/10-critest-bridge.conflist" "$WORK/cni/"
# shellcheck source=e2e/daemons.sh
source "$HERE/daemons.sh"
start_berthd_at "$BERTHD" "$WORK" "$WORK/cni" "$WORK/berthd.log" || true
PID=$DAEMON_PID
[[ -S $SOCK ]] || { tail -20 "$WORK/berthd.log"; echo "berthd did not start" >&2; exit 1; }

OUT=$WORK/out
set +e
# critest acts as NRI plugins on berthd's socket (start_berthd_at puts it in the work dir).
CRITEST_OUT=$OUT "$KIT/run.sh" "unix://$SOCK" ${FOCUS:+"$FOCUS"} -- -nri-socket "$WORK/nri.sock" \
    ${HANDLER:+-runtime-handler "$HANDLER"}
set -e
cp "$OUT/critest.log" "${CRITEST_LOG:-/tmp/berth-critest-last.log}" 2>/dev/null || true
[[ -f $OUT/critest.xml ]] || { echo "critest produced no report" >&2; exit 1; }

# Specs that passed in this run, one name a line.
python3 - "$OUT/critest.xml" >"$WORK/passed.txt" <<'PY'
import sys, xml.etree.ElementTree as ET
for case in ET.parse(sys.argv[1]).getroot().iter("testcase"):
    if case.get("status") == "passed" or not any(c.tag in ("failure", "error", "skipped") for c in case):
        name = case.get("name", "").strip()
        if name and not name.startswith("[SynchronizedBeforeSuite]") and not name.startswith("[SynchronizedAfterSuite]"):
            print(name)
PY
sort -u "$WORK/passed.txt" -o "$WORK/passed.txt"
if [[ -n ${UPDATE_PASSING:-} ]]; then
    cp "$WORK/passed.txt" "$PASSING"
    echo "wrote $(wc -l <"$PASSING") passing specs to $PASSING"
fi
regressions=$(comm -23 <(sort -u "$PASSING") "$WORK/passed.txt" || true)
if [[ -n $regressions ]]; then
    echo "critest regressions: specs in e2e/critest/passing.txt that did not pass:"
    echo "$regressions" | sed 's/^/  /'
    echo "berthd log tail:"; tail -20 "$WORK/berthd.log"
    exit 1
fi
echo "critest: no regressions ($(wc -l <"$PASSING") specs in $(basename "$PASSING"))"
