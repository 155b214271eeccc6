#!/usr/bin/env bash
# install_test.sh — install.sh, uninstall.sh and the chart's node script against throwaway
# roots. Run by check.sh inside a private mount namespace (unshare --mount), as root:
#   install_test.sh BIN_DIR RENDERED_DIR
# BIN_DIR holds the four built binaries; RENDERED_DIR is chart_check.py's output (may be
# absent: the DaemonSet part is then skipped). Prints "ok"/"FAIL" lines and a summary.
set -euo pipefail

BIN_DIR=$1
RENDERED=${2:-}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DEPLOY=$REPO/deploy
PY=${BERTH_CHECK_PYTHON:-python3}
PASS=0
FAIL=0
ok() { PASS=$((PASS + 1)); echo "  ok   $*"; }
bad() { FAIL=$((FAIL + 1)); echo "  FAIL $*"; }
expect() { # expect DESCRIPTION COMMAND...
    local what=$1; shift
    if "$@" >/dev/null 2>&1; then ok "$what"; else bad "$what"; fi
}

WORK=$(mktemp -d /tmp/berth-deploy-test.XXXXXX)
BERTHD_PID=
cleanup() {
    if [[ -n $BERTHD_PID ]]; then kill "$BERTHD_PID" 2>/dev/null || true; wait "$BERTHD_PID" 2>/dev/null || true; fi
    # Mounts made here vanish with the namespace; unmount anyway before removing.
    { grep -o " ${WORK}[^ ]*" /proc/self/mountinfo || true; } | sort -r | while read -r m; do umount -l "$m" || true; done
    rm -rf --one-file-system "$WORK"
}
trap cleanup EXIT

# A fresh "node": the directories a Debian system already has, plus foreign files that an
# install and uninstall must not touch.
new_root() {
    local r=$1
    mkdir -p "$r"/{etc,run,var/lib,usr/local/bin,usr/share/doc,tmp}
    echo node-a >"$r/etc/hostname"
    printf '#!/bin/sh\n' >"$r/usr/local/bin/other-tool"
    chmod 0755 "$r/usr/local/bin/other-tool"
}
listing() { (cd "$1" && find . -printf '%M %p\n' | LC_ALL=C sort); }
toml_ok() { "$PY" -c 'import sys, tomllib; tomllib.load(open(sys.argv[1], "rb"))' "$1"; }
json_ok() { "$PY" -c 'import sys, json; d = json.load(open(sys.argv[1])); assert d["plugins"]' "$1"; }
yaml_endpoint() { "$PY" -c 'import sys, yaml; d = yaml.safe_load(open(sys.argv[1])); assert d["runtime-endpoint"] == "unix:///run/berth/berth.sock"' "$1"; }

echo "[install.sh into a throwaway root]"
R=$WORK/root1
new_root "$R"
before=$(listing "$R")
if "$DEPLOY/install.sh" --root "$R" --bin-dir "$BIN_DIR" --no-deps --no-start >"$WORK/install1.log" 2>&1; then
    ok "install.sh --root --no-deps --no-start"
else
    bad "install.sh --root --no-deps --no-start"; cat "$WORK/install1.log"
fi
for b in berthd berthctl berth-shim berth-pause; do
    expect "$b installed, executable, identical" test -x "$R/usr/local/bin/$b" -a -f "$R/usr/local/bin/$b"
    cmp -s "$BIN_DIR/$b" "$R/usr/local/bin/$b" || bad "$b differs from $BIN_DIR/$b"
done
unit=$R/etc/systemd/system/berthd.service
expect "unit file installed" test -f "$unit"
expect "unit keeps shims alive on restart (KillMode=process, Delegate=yes)" grep -qx 'KillMode=process' "$unit"
expect "unit delegates cgroups" grep -qx 'Delegate=yes' "$unit"
# systemd-analyze checks the unit's syntax and that ExecStart exists: point it at the root.
sed "s|/usr/local/bin/|$R/usr/local/bin/|g" "$unit" >"$WORK/berthd.service"
# (A missing kmod only costs the optional modprobe: not a unit error.)
out=$(systemd-analyze verify --man=no --generators=no "$WORK/berthd.service" 2>&1 | grep -v modprobe || true)
if [[ -z $out ]]; then
    ok "systemd-analyze verify berthd.service"
else
    bad "systemd-analyze verify berthd.service: $out"
fi
expect "config.toml parses as TOML" toml_ok "$R/etc/berth/config.toml"
expect "config.toml is the default config" cmp -s "$DEPLOY/config.toml" "$R/etc/berth/config.toml"
expect "config.toml.d/ and certs.d/ exist" test -d "$R/etc/berth/config.toml.d" -a -d "$R/etc/berth/certs.d"
expect "crictl.yaml points at Berth" yaml_endpoint "$R/etc/crictl.yaml"
expect "default CNI conflist is valid JSON" json_ok "$R/etc/cni/net.d/10-berth-bridge.conflist"
expect "modules-load and sysctl files" test -f "$R/etc/modules-load.d/berth.conf" -a -f "$R/etc/sysctl.d/99-berth.conf"
expect "documentation installed" test -f "$R/usr/share/doc/berth/README.md"
expect "foreign files untouched" test -x "$R/usr/local/bin/other-tool"

# berthd runs from the installed layout (data and state inside the root) and answers.
sock=$R/run/berth/berth.sock
"$R/usr/local/bin/berthd" --config "$R/etc/berth/config.toml" --root "$R/var/lib/berth" \
    --state "$R/run/berth" --listen "unix://$sock" --nri-socket "$R/run/berth/nri.sock" >"$WORK/berthd.log" 2>&1 &
BERTHD_PID=$!
up=0
for _ in $(seq 1 100); do
    if "$R/usr/local/bin/berthctl" --runtime-endpoint "unix://$sock" --timeout 2 version >"$WORK/version.txt" 2>&1; then up=1; break; fi
    kill -0 "$BERTHD_PID" 2>/dev/null || break
    sleep 0.2
done
if ((up)) && grep -q 'RuntimeName: *berth' "$WORK/version.txt"; then
    ok "installed berthd serves CRI (berthctl version)"
else
    bad "installed berthd serves CRI"; cat "$WORK/berthd.log" "$WORK/version.txt" || true
fi
kill "$BERTHD_PID" 2>/dev/null || true
wait "$BERTHD_PID" 2>/dev/null || true
BERTHD_PID=

# Idempotent: a second run keeps an edited config and changes nothing else.
echo '# edited by the operator' >>"$R/etc/berth/config.toml"
sums=$(cd "$R" && find usr etc -type f ! -name install.manifest -exec md5sum {} + | sort)
if "$DEPLOY/install.sh" --root "$R" --bin-dir "$BIN_DIR" --no-deps --no-start >"$WORK/install2.log" 2>&1; then
    ok "install.sh runs again"
else
    bad "install.sh runs again"; cat "$WORK/install2.log"
fi
expect "edited config kept" grep -q 'edited by the operator' "$R/etc/berth/config.toml"
expect "second run changes no file" test "$sums" = "$(cd "$R" && find usr etc -type f ! -name install.manifest -exec md5sum {} + | sort)"
expect "manifest has no duplicate lines" test -z "$(sort "$R/etc/berth/install.manifest" | uniq -d)"

if "$DEPLOY/uninstall.sh" --root "$R" >"$WORK/uninstall1.log" 2>&1; then
    ok "uninstall.sh --root"
else
    bad "uninstall.sh --root"; cat "$WORK/uninstall1.log"
fi
if [[ $before == "$(listing "$R")" ]]; then
    ok "uninstall leaves the root as it was (state and data included)"
else
    bad "uninstall leaves the root as it was"; diff <(echo "$before") <(listing "$R") || true
fi

echo "[a node that already has crictl.yaml and a CNI network; --runtime crun; mounts left behind]"
R=$WORK/root2
new_root "$R"
mkdir -p "$R/etc/cni/net.d"
printf 'runtime-endpoint: unix:///run/other.sock\n' >"$R/etc/crictl.yaml"
printf '{"cniVersion":"1.0.0","name":"other","plugins":[{"type":"bridge"}]}\n' >"$R/etc/cni/net.d/05-other.conflist"
before=$(listing "$R")
printf 'log_level = "debug"\n' >"$WORK/20-site.toml"
"$DEPLOY/install.sh" --root "$R" --bin-dir "$BIN_DIR" --no-deps --no-start --runtime crun \
    --config-dropin "$WORK/20-site.toml" >"$WORK/install3.log" 2>&1 || { bad "install.sh --runtime crun"; cat "$WORK/install3.log"; }
expect "default_runtime follows --runtime" grep -qx 'default_runtime = "crun"' "$R/etc/berth/config.toml"
expect "config drop-in installed" cmp -s "$WORK/20-site.toml" "$R/etc/berth/config.toml.d/20-site.toml"
expect "foreign crictl.yaml kept" grep -q other.sock "$R/etc/crictl.yaml"
expect "no default network beside an existing one" test ! -e "$R/etc/cni/net.d/10-berth-bridge.conflist"
# Something still mounted under Berth's directories (a pod volume bind-mounted from
# elsewhere, a netns tmpfs): uninstall must unmount, never delete through the mount.
mkdir -p "$WORK/precious" "$R/var/lib/berth/pods/p1/volume" "$R/run/berth/netns"
echo keep >"$WORK/precious/data"
mount --bind "$WORK/precious" "$R/var/lib/berth/pods/p1/volume"
mount -t tmpfs tmpfs "$R/run/berth/netns"
if "$DEPLOY/uninstall.sh" --root "$R" --keep-data >"$WORK/uninstall2.log" 2>&1; then
    ok "uninstall.sh --keep-data"
else
    bad "uninstall.sh --keep-data"; cat "$WORK/uninstall2.log"
fi
expect "--keep-data keeps /var/lib/berth" test -d "$R/var/lib/berth/pods"
expect "state mounts unmounted" sh -c "! grep -q ' $R/run/berth' /proc/self/mountinfo"
"$DEPLOY/uninstall.sh" --root "$R" >"$WORK/uninstall3.log" 2>&1 || { bad "uninstall.sh after --keep-data"; cat "$WORK/uninstall3.log"; }
expect "bind-mounted data survives uninstall" grep -qx keep "$WORK/precious/data"
expect "no mount left under the root" sh -c "! grep -q ' $R/' /proc/self/mountinfo"
if [[ $before == "$(listing "$R")" ]]; then
    ok "second root back as it was (foreign crictl.yaml and network kept)"
else
    bad "second root back as it was"; diff <(echo "$before") <(listing "$R") || true
fi

echo "[a live target whose PID 1 is not systemd]"
R=$WORK/root4
new_root "$R"
# Reports that systemd is not booted (sd_booted); reads /proc/1/comm; anything else
# (process scans, ip link) is a no-op so the test never touches this machine's state.
cat >"$WORK/no-systemd" <<'EOF'
#!/bin/sh
case $1 in
test) exit 1 ;;
cat) exec "$@" ;;
esac
exit 0
EOF
chmod +x "$WORK/no-systemd"
if "$DEPLOY/install.sh" --root "$R" --bin-dir "$BIN_DIR" --no-deps --host-exec "$WORK/no-systemd" >"$WORK/install4.log" 2>&1; then
    ok "install.sh succeeds without systemd"
else
    bad "install.sh succeeds without systemd"; cat "$WORK/install4.log"
fi
expect "it says how to start berthd by hand" grep -q 'start it by hand' "$WORK/install4.log"
"$DEPLOY/uninstall.sh" --root "$R" --host-exec "$WORK/no-systemd" >"$WORK/uninstall4.log" 2>&1 ||
    { bad "uninstall.sh without systemd"; cat "$WORK/uninstall4.log"; }
expect "nothing left without systemd either" test ! -e "$R/etc/berth" -a ! -e "$R/usr/local/bin/berthd"

if [[ -n $RENDERED && -d $RENDERED/all-on/configmap ]]; then
    echo "[the chart's node script (DaemonSet init container) with the rendered ConfigMap]"
    # The image's layout: /opt/berth = deploy/ + bin/.
    IMG=$WORK/image/opt/berth
    mkdir -p "$IMG/bin"
    cp -r "$DEPLOY"/. "$IMG/"
    for b in berthd berthctl berth-shim berth-pause; do ln -s "$BIN_DIR/$b" "$IMG/bin/$b"; done
    # Stands in for nsenter into the host: logs the command; systemd "runs"; berthctl answers.
    cat >"$WORK/fake-host" <<EOF
#!/usr/bin/env bash
echo "\$*" >>"$WORK/host.log"
case "\$1 \${2:-}" in
"test -d") exit 0 ;;
"systemctl is-active") exit 3 ;;
systemctl*) exit 0 ;;
*/berthctl*) echo "RuntimeName: berth"; exit 0 ;;
esac
exit 0
EOF
    chmod +x "$WORK/fake-host"
    R=$WORK/root3
    new_root "$R"
    before=$(listing "$R")
    run_node() { # run_node CONFIGMAP_DIR [ENV=VALUE...]
        local cm=$1; shift
        env "$@" HOST_ROOT="$R" BERTH_DIR="$IMG" BERTH_HOST_EXEC="$WORK/fake-host" BERTH_INSTALL_DEPS=false \
            BERTH_PREFIX=/usr/local BERTH_RUNTIME=crun bash "$cm/node-install.sh"
    }
    cp -r "$RENDERED/all-on/configmap" "$WORK/cm"
    if run_node "$WORK/cm" >"$WORK/node1.log" 2>&1; then ok "node-install.sh (all-on values)"; else bad "node-install.sh (all-on values)"; cat "$WORK/node1.log"; fi
    expect "chart drop-ins installed" cmp -s "$WORK/cm/50-helm.toml" "$R/etc/berth/config.toml.d/50-helm.toml"
    expect "extra drop-in installed" test -f "$R/etc/berth/config.toml.d/51-helm-extra.toml"
    expect "registry hosts.toml written" test -f "$R/etc/berth/certs.d/registry.example.test:5000/hosts.toml" -a -f "$R/etc/berth/certs.d/ghcr.example.test/hosts.toml"
    expect "systemd reloaded, unit enabled, berthd restarted" grep -qx 'systemctl restart berthd.service' "$WORK/host.log"
    expect "daemon-reload before restart" grep -qx 'systemctl daemon-reload' "$WORK/host.log"
    # The next rollout drops the extra drop-in and one registry.
    rm "$WORK/cm/51-helm-extra.toml" "$WORK/cm/registry-host.ghcr.example.test.toml"
    : >"$WORK/host.log"
    run_node "$WORK/cm" >"$WORK/node2.log" 2>&1 || { bad "node-install.sh again"; cat "$WORK/node2.log"; }
    expect "stale drop-in removed" test ! -e "$R/etc/berth/config.toml.d/51-helm-extra.toml"
    expect "stale registry config removed" test ! -e "$R/etc/berth/certs.d/ghcr.example.test"
    expect "kept registry config stays" test -f "$R/etc/berth/certs.d/registry.example.test:5000/hosts.toml"
    expect "berthd restarted for the change" grep -qx 'systemctl restart berthd.service' "$WORK/host.log"
    if run_node "$RENDERED/uninstall/configmap" BERTH_MODE=uninstall >"$WORK/node3.log" 2>&1; then
        ok "node-install.sh in uninstall mode"
    else
        bad "node-install.sh in uninstall mode"; cat "$WORK/node3.log"
    fi
    if [[ $before == "$(listing "$R")" ]]; then
        ok "DaemonSet install + uninstall leaves the node as it was"
    else
        bad "DaemonSet install + uninstall leaves the node as it was"; diff <(echo "$before") <(listing "$R") || true
    fi
else
    echo "[chart node script skipped: no rendered chart]"
fi

echo "install: $PASS passed, $FAIL failed"
((FAIL == 0))
