#!/usr/bin/env bash
# node-watch.sh — the berth chart's long-running container: logs berthd's systemd state on
# the node when it changes, so `kubectl logs` shows restarts and failures.
set -euo pipefail

trap 'exit 0' TERM INT
if [[ ${BERTH_MODE:-install} == uninstall ]]; then
    echo "berth: removed from this node; the DaemonSet can be deleted (helm uninstall)"
    while :; do sleep 3600 & wait $!; done
fi
last=
while :; do
    state=$(nsenter -t 1 -m -u -i -n -p -- systemctl is-active berthd.service 2>/dev/null || true)
    if [[ $state != "$last" ]]; then
        echo "berth: $(date -u +%FT%TZ) berthd.service is ${state:-unknown}"
        last=$state
    fi
    sleep 30 & wait $!
done
