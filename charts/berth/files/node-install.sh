#!/usr/bin/env bash
# node-install.sh — the berth chart's init container: installs (or removes) Berth on the
# node whose root is mounted at $HOST_ROOT, with the image's install.sh/uninstall.sh, and
# (re)starts berthd through the host's systemd (nsenter into PID 1's namespaces).
set -euo pipefail

HOST=${HOST_ROOT:-/host}
CHART_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BERTH_DIR=${BERTH_DIR:-/opt/berth}
# Runs a command in the host system (overridable for tests).
HOST_EXEC=${BERTH_HOST_EXEC:-"nsenter -t 1 -m -u -i -n -p --"}
PREFIX=${BERTH_PREFIX:-/usr/local}
echo "berth: node $(cat "$HOST/etc/hostname" 2>/dev/null || hostname), mode ${BERTH_MODE:-install}"

if [[ ${BERTH_MODE:-install} == uninstall ]]; then
    args=(--root "$HOST" --host-exec "$HOST_EXEC" --prefix "$PREFIX")
    [[ ${BERTH_KEEP_DATA:-false} == true ]] && args+=(--keep-data)
    [[ ${BERTH_FORCE:-false} == true ]] && args+=(--force)
    exec "$BERTH_DIR/uninstall.sh" "${args[@]}"
fi

args=(--root "$HOST" --host-exec "$HOST_EXEC" --prefix "$PREFIX" --runtime "${BERTH_RUNTIME:-runc}")
[[ ${BERTH_INSTALL_DEPS:-true} == true ]] || args+=(--no-deps)
[[ ${BERTH_DEFAULT_NETWORK:-false} == true ]] || args+=(--no-cni)
[[ ${BERTH_ALWAYS_RESTART:-false} == true ]] && args+=(--restart)

# berthd drop-ins from the chart's ConfigMap; earlier chart drop-ins no longer rendered go.
dropin_dir=$HOST/etc/berth/config.toml.d
for f in "$CHART_DIR"/*-helm*.toml; do
    [[ -e $f ]] && args+=(--config-dropin "$f")
done
for f in "$dropin_dir"/*-helm*.toml; do
    [[ -e $f && ! -e $CHART_DIR/$(basename "$f") ]] || continue
    echo "berth: removing stale drop-in $(basename "$f")"
    rm -f "$f"
    args+=(--restart)
done

# Registry hosts.toml files: each ConfigMap entry starts with "# berth-host: HOST".
certs=$HOST${BERTH_REGISTRY_CONFIG_PATH:-/etc/berth/certs.d}
wanted=()
for f in "$CHART_DIR"/registry-host.*.toml; do
    [[ -e $f ]] || continue
    h=$(sed -n '1s/^# berth-host: //p' "$f")
    [[ -n $h && $h != */* && $h != .* ]] || { echo "berth: bad registry host in $f" >&2; exit 1; }
    wanted+=("$h")
    mkdir -p "$certs/$h"
    if ! cmp -s "$f" "$certs/$h/hosts.toml"; then
        install -m 0644 "$f" "$certs/$h/hosts.toml"
        echo "berth: registry config for $h"
        args+=(--restart)
    fi
done
for f in "$certs"/*/hosts.toml; do
    if ! { [[ -e $f ]] && head -n1 "$f" | grep -q '^# berth-host: '; }; then continue; fi
    h=$(basename "$(dirname "$f")")
    printf '%s\n' "${wanted[@]}" | grep -qxF -- "$h" && continue
    echo "berth: removing registry config for $h"
    rm -rf "${certs:?}/$h"
    args+=(--restart)
done

exec "$BERTH_DIR/install.sh" "${args[@]}"
