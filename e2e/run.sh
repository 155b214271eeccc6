#!/usr/bin/env bash
# run.sh — the whole Berth test suite, from a fresh Debian machine with only the Rust
# toolchain: installs the Debian packages the tests use, builds the workspace, runs the
# unit and e2e tests (real registry, real mounts; needs root), a short run of every fuzz
# target, then the upstream CRI conformance suite (critest) with a regression check
# against e2e/critest/passing.txt, once more with every pod on gVisor (the runsc handler,
# against e2e/critest/passing-runsc.txt) and once with every pod on a containerd shim v2
# (the runc-shim-v2 handler, against e2e/critest/passing-runc-shim-v2.txt).
#
#   sudo e2e/run.sh            everything
#   SKIP_CRITEST=1 e2e/run.sh  without critest (not allowed when CI=true)
#   SKIP_FUZZ=1 e2e/run.sh     without the short fuzz run (not allowed when CI=true)
#   SKIP_NODE_E2E=1 e2e/run.sh without the node e2e subset (not allowed when CI=true)
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $(id -u) -ne 0 ]]; then
    echo "the suite uses real mounts, namespaces and a local registry: run it as root" >&2
    exit 1
fi

PACKAGES=(docker-registry apache2-utils busybox-static runc crun runsc containerd containernetworking-plugins iptables protobuf-compiler curl python3 ca-certificates xz-utils openssl)
missing=()
for p in "${PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
    echo "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 || {
        apt-get update -q >/dev/null
        apt-get install -y -q "${missing[@]}" >/dev/null
    }
fi

cargo build --workspace --bins
cargo test --workspace --no-fail-fast
# Deployment: shellcheck, the Helm chart (lint, render, parse), install/uninstall in throwaway roots.
bash e2e/deploy/check.sh target/debug

# Fuzzing: every cargo-fuzz target for a few seconds over its checked-in corpus (fuzz/run.sh
# builds with the nightly toolchain; a crash fails the suite).
if [[ -n ${SKIP_FUZZ:-} && ${CI:-} != true ]]; then
    echo "fuzz skipped (SKIP_FUZZ set)"
else
    bash fuzz/run.sh "${FUZZ_SECONDS:-10}"
fi

if [[ -n ${SKIP_CRITEST:-} && ${CI:-} != true ]]; then
    echo "critest skipped (SKIP_CRITEST set)"
else
    bash e2e/critest.sh
    CRITEST_HANDLER=runsc bash e2e/critest.sh
    CRITEST_HANDLER=runc-shim-v2 bash e2e/critest.sh
fi

if [[ -n ${SKIP_NODE_E2E:-} && ${CI:-} != true ]]; then
    echo "node e2e skipped (SKIP_NODE_E2E set)"
else
    bash e2e/node-e2e.sh
fi
