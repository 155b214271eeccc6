#!/usr/bin/env bash
# check.sh — checks of Berth's deployment files, run as root by e2e/run.sh (or by hand):
#   1. shellcheck on every shell script in deploy/, charts/ and e2e/deploy/
#   2. the Helm chart: linted and rendered by Helm's Go SDK (PyPI helm-python-sdk, in a
#      venv), every document parsed as YAML, values traced into the objects
#   3. install.sh / uninstall.sh / the chart's node script in throwaway roots inside a
#      private mount namespace, with the built binaries; berthd started from the layout
#   4. kind/minikube files parse; the Dockerfiles are there
#
#   sudo bash e2e/deploy/check.sh [BIN_DIR]     BIN_DIR or $BERTH_BIN_DIR, default target/debug
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO"
BIN_DIR=$(realpath "${1:-${BERTH_BIN_DIR:-target/debug}}")
[[ $(id -u) -eq 0 ]] || { echo "check.sh: run as root (mount namespaces, bind mounts)" >&2; exit 1; }
for b in berthd berthctl berth-shim berth-pause; do
    [[ -x $BIN_DIR/$b ]] || { echo "check.sh: $BIN_DIR/$b missing: build first (cargo build --workspace --bins)" >&2; exit 1; }
done
start=$SECONDS

apt_install() {
    local missing=() p
    for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    ((${#missing[@]})) || return 0
    echo "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 || {
        apt-get update -q >/dev/null && apt-get install -y -q "${missing[@]}" >/dev/null
    }
}
apt_install shellcheck util-linux systemd python3-venv

# A venv with Helm's SDK (a Go build of Helm v4 behind a C ABI) and PyYAML; kept between runs.
VENV=${BERTH_CHECK_VENV:-/var/cache/berth-e2e/deploy-venv}
if ! "$VENV/bin/python" -c 'import helm_python, yaml, tomllib' 2>/dev/null; then
    echo "creating $VENV (helm-python-sdk, pyyaml)"
    rm -rf "$VENV"
    mkdir -p "$(dirname "$VENV")"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check helm-python-sdk pyyaml
fi
PY=$VENV/bin/python

FAILED=()
step() { echo; echo "=== $*"; }

step "shellcheck"
mapfile -t scripts < <({
    find deploy charts e2e/deploy -type f -name '*.sh'
    grep -rlE '^#!.*\b(ba)?sh\b' deploy charts e2e/deploy 2>/dev/null
} | LC_ALL=C sort -u)
if shellcheck -x "${scripts[@]}"; then
    echo "  ok   ${#scripts[@]} scripts clean: ${scripts[*]}"
else
    FAILED+=(shellcheck)
fi

step "Helm chart (lint, render, YAML)"
RENDERED=$(mktemp -d /tmp/berth-chart.XXXXXX)
trap 'rm -rf "$RENDERED"' EXIT
"$PY" e2e/deploy/chart_check.py charts/berth e2e/deploy/values-all-on.yaml "$RENDERED" || FAILED+=(chart)
# berthd itself must accept what the chart writes (every config table denies unknown keys).
for dropin in "$RENDERED"/*/configmap/50-helm.toml deploy/kind/10-kind.toml deploy/minikube/10-minikube.toml; do
    if "$BIN_DIR/berthd" --config "$dropin" cdi list >/dev/null; then
        echo "  ok   berthd accepts ${dropin#"$RENDERED"/}"
    else
        echo "  FAIL berthd rejects ${dropin#"$RENDERED"/}"
        FAILED+=(chart-config)
    fi
done

step "install.sh / uninstall.sh / node script in throwaway roots"
unshare --mount --propagation private env BERTH_CHECK_PYTHON="$PY" \
    bash e2e/deploy/install_test.sh "$BIN_DIR" "$RENDERED" || FAILED+=(install)

step "kind, minikube, kubelet files"
files_ok=1
"$PY" - <<'PYEOF' || files_ok=0
import glob, json, sys, yaml
bad = 0
for f in sorted(glob.glob("deploy/kind/*.yaml") + glob.glob("deploy/kubelet/*.yaml") + ["deploy/crictl.yaml"]):
    try:
        docs = [d for d in yaml.safe_load_all(open(f)) if d is not None]
        assert docs, "empty"
        print(f"  ok   {f}: {len(docs)} YAML document(s)")
    except Exception as e:
        print(f"  FAIL {f}: {e}"); bad += 1
kind = yaml.safe_load(open("deploy/kind/kind-config.yaml"))
patches = "\n".join(p for n in kind["nodes"] for p in n.get("kubeadmConfigPatches", []))
for k in ("InitConfiguration", "JoinConfiguration"):
    if k not in patches:
        print(f"  FAIL kind-config.yaml: no {k} patch"); bad += 1
for p in (p for n in kind["nodes"] for p in n.get("kubeadmConfigPatches", [])):
    d = yaml.safe_load(p)
    if d["nodeRegistration"]["criSocket"] != "unix:///run/berth/berth.sock":
        print(f"  FAIL kind-config.yaml: {d['kind']} criSocket"); bad += 1
json.load(open("deploy/10-berth-bridge.conflist"))
import tomllib
for f in sorted(glob.glob("deploy/*.toml") + glob.glob("deploy/*/*.toml")):
    try:
        tomllib.load(open(f, "rb")); print(f"  ok   {f}: TOML")
    except Exception as e:
        print(f"  FAIL {f}: {e}"); bad += 1
sys.exit(1 if bad else 0)
PYEOF
for f in deploy/Dockerfile deploy/kind/Dockerfile deploy/kind/README.md deploy/minikube/README.md deploy/README.md charts/berth/README.md; do
    if [[ -s $f ]]; then echo "  ok   $f present"; else echo "  FAIL $f missing"; files_ok=0; fi
done
grep -q '^FROM .* AS build' deploy/Dockerfile || { echo "  FAIL deploy/Dockerfile is not multi-stage"; files_ok=0; }
((files_ok)) || FAILED+=(files)

echo
if ((${#FAILED[@]})); then
    echo "deploy checks failed: ${FAILED[*]} ($((SECONDS - start))s)"
    echo "deploy: 0 passed, ${#FAILED[@]} failed"
    exit 1
fi
echo "deploy checks passed ($((SECONDS - start))s)"
echo "deploy: 4 passed, 0 failed"
