#!/usr/bin/env bash
# uninstall.sh — remove what install.sh put on a node: the service, binaries, config,
# crictl.yaml and default network (when install.sh wrote them), runtime state in /run/berth
# and, unless --keep-data, images and metadata in /var/lib/berth.
#
# Pods still running are not torn down silently: without --force the script stops and says
# how to remove them (drain the node, point kubelet at another runtime); with --force it
# deletes their containers through the OCI runtime and ends the shims and pod infra processes.
#
#   sudo deploy/uninstall.sh                 everything
#   sudo deploy/uninstall.sh --keep-data     keep /var/lib/berth (images, metadata)
#   deploy/uninstall.sh --root /tmp/r        a tree laid out with install.sh --root
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: uninstall.sh [OPTIONS]

  --root DIR         remove from DIR instead of / (as given to install.sh)
  --prefix DIR       where the binaries were installed (default /usr/local)
  --host-exec CMD    command prefix that runs a program in the target system (see install.sh)
  --keep-data        keep /var/lib/berth (images, snapshots, metadata)
  --force            also stop running pods: delete their containers and end shims
  --purge-deps       also remove the distribution packages install.sh installed
  -h, --help         this text
EOF
}

die() { echo "uninstall.sh: $*" >&2; exit 1; }
say() { echo "==> $*"; }

ROOT=/
PREFIX=/usr/local
KEEP_DATA=0
FORCE=0
PURGE_DEPS=0
HOST_EXEC_SET=0
HOST_EXEC=()
while (($#)); do
    case $1 in
    --root) ROOT=${2:?--root needs a directory}; shift 2 ;;
    --prefix) PREFIX=${2:?--prefix needs a directory}; shift 2 ;;
    --host-exec) read -r -a HOST_EXEC <<<"${2:?--host-exec needs a command}"; HOST_EXEC_SET=1; shift 2 ;;
    --keep-data) KEEP_DATA=1; shift ;;
    --force) FORCE=1; shift ;;
    --purge-deps) PURGE_DEPS=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
    esac
done
ROOT=${ROOT%/}
[[ -z $ROOT || -d $ROOT ]] || die "--root $ROOT is not a directory"
[[ $(id -u) -eq 0 || -n $ROOT ]] || die "run as root"
LIVE=0
[[ -z $ROOT ]] && LIVE=1
((HOST_EXEC_SET)) && LIVE=1
host() { "${HOST_EXEC[@]}" "$@"; }
# tsh SCRIPT ARGS...: run a shell snippet in the target system (paths without ROOT) or, for
# a staging tree, here (paths with ROOT).
tsh() { if ((LIVE)); then host sh -c "$@"; else sh -c "$@"; fi; }
tpath() { if ((LIVE)); then echo "$1"; else echo "$ROOT$1"; fi; }

MANIFEST=$ROOT/etc/berth/install.manifest
FILES=() DIRS=() PKGS=()
if [[ -f $MANIFEST ]]; then
    while read -r kind path; do
        case $kind in
        file) FILES+=("$path") ;;
        dir) DIRS+=("$path") ;;
        pkg) PKGS+=("$path") ;;
        esac
    done <"$MANIFEST"
else
    say "no install manifest; removing the standard layout"
    for b in berthd berthctl berth-shim berth-pause; do FILES+=("$PREFIX/bin/$b"); done
    FILES+=(/etc/systemd/system/berthd.service /etc/modules-load.d/berth.conf
        /etc/sysctl.d/99-berth.conf /usr/share/doc/berth/README.md
        /etc/cni/net.d/10-berth-bridge.conflist)
    grep -qs 'berth/berth.sock' "$ROOT/etc/crictl.yaml" && FILES+=(/etc/crictl.yaml)
    DIRS+=(/usr/share/doc/berth)
fi

# --- running workloads ----------------------------------------------------------------
# PIDs of berth-shim and berth-pause processes (one per container / per pod).
workload_pids() {
    ((LIVE)) || return 0
    # shellcheck disable=SC2016 # expanded by the inner shell
    tsh 'for p in /proc/[0-9]*; do e=$(readlink "$p/exe" 2>/dev/null) || continue
        case ${e% (deleted)} in */berth-shim | */berth-pause) echo "${p#/proc/}" ;; esac; done'
}
systemd_up() { ((LIVE)) && host test -d /run/systemd/system; }

stop_berthd() {
    if systemd_up && host systemctl cat berthd.service >/dev/null 2>&1; then
        say "stopping berthd"
        host systemctl disable --now berthd.service >/dev/null 2>&1 || true
    elif ((LIVE)); then
        # berthd started by hand: end it by PID (only the binary from this installation).
        # shellcheck disable=SC2016
        tsh 'for p in /proc/[0-9]*; do e=$(readlink "$p/exe" 2>/dev/null) || continue
            [ "${e% (deleted)}" = "$1/bin/berthd" ] && echo "${p#/proc/}"; done' _ "$PREFIX" |
            while read -r pid; do
                say "stopping berthd (pid $pid)"
                host kill -TERM "$pid" 2>/dev/null || true
            done
        sleep 1
    fi
}

pids=$(workload_pids | tr '\n' ' ')
if [[ -n ${pids// /} ]]; then
    if ((!FORCE)); then
        cat >&2 <<EOF
uninstall.sh: Berth still runs pods or containers on this node (berth-shim/berth-pause pids: $pids).
Remove them first, then run this again:
  - on a Kubernetes node: kubectl drain NODE --ignore-daemonsets, stop kubelet or point it at
    another runtime (see deploy/README.md), then remove the pods, e.g.
    crictl --runtime-endpoint unix:///run/berth/berth.sock rmp --force --all
  - or run uninstall.sh --force: containers are deleted through runc/crun and the shims ended
EOF
        exit 1
    fi
    stop_berthd
    say "deleting containers (--force)"
    # Each runtime handler keeps its OCI state under /run/berth/runtimes/NAME.
    # shellcheck disable=SC2016
    tsh 'for dir in /run/berth/runtimes/*/; do
        [ -d "$dir" ] || continue
        for rt in runc crun; do
            command -v "$rt" >/dev/null 2>&1 || continue
            for id in $("$rt" --root "$dir" list -q 2>/dev/null); do
                "$rt" --root "$dir" delete --force "$id" >/dev/null 2>&1 && echo "    deleted $id ($rt)"
            done
        done
    done' || true
    for sig in TERM KILL; do
        for pid in $(workload_pids); do host kill "-$sig" "$pid" 2>/dev/null || true; done
        [[ -z $(workload_pids) ]] && break
        sleep 3
    done
else
    stop_berthd
fi

# --- mounts: never remove a tree something is still mounted in ---------------------------
unmount_under() {
    # shellcheck disable=SC2016
    tsh 'awk -v d="$1" "\$5 == d || index(\$5, d \"/\") == 1 { print \$5 }" /proc/self/mountinfo |
        sort -r | while read -r m; do umount "$m" 2>/dev/null || umount -l "$m"; done' _ "$(tpath "$1")"
}
remove_tree() {
    local dir=$1
    [[ -e $ROOT$dir ]] || return 0
    unmount_under "$dir"
    rm -rf --one-file-system "$ROOT$dir"
    echo "    $dir"
}
in_list() { local x=$1; shift; local y; for y in "$@"; do [[ $x == "$y" ]] && return 0; done; return 1; }

say "removing Berth from ${ROOT:-/}"
remove_tree /run/berth
if ((KEEP_DATA)); then
    echo "    /var/lib/berth kept (--keep-data)"
else
    remove_tree /var/lib/berth
fi
for f in "${FILES[@]}"; do
    if [[ -e $ROOT$f || -L $ROOT$f ]]; then
        rm -f "$ROOT$f"
        echo "    $f"
    fi
done
# The default network's leftovers: host-local IP leases, cached results, the bridge.
if in_list /etc/cni/net.d/10-berth-bridge.conflist "${FILES[@]}"; then
    rm -rf "$ROOT/var/lib/cni/networks/berth"
    rm -f "$ROOT"/var/lib/cni/results/berth-*
    if ((LIVE)) && host ip link show berth0 >/dev/null 2>&1; then
        host ip link delete berth0 && echo "    network link berth0"
    fi
fi
remove_tree /etc/berth
# Directories install.sh created, deepest first, when nothing else lives there now.
while read -r d; do
    [[ -n $d ]] || continue
    rmdir "$ROOT$d" 2>/dev/null && echo "    $d/"
done < <(printf '%s\n' "${DIRS[@]}" | awk '{ print length($0) "\t" $0 }' | sort -rn | cut -f2-)

if systemd_up; then
    host systemctl daemon-reload
    host systemctl reset-failed berthd.service >/dev/null 2>&1 || true
fi
if ((PURGE_DEPS)) && ((${#PKGS[@]})); then
    if ((LIVE)); then
        say "removing packages: ${PKGS[*]}"
        host env DEBIAN_FRONTEND=noninteractive apt-get remove -y -q "${PKGS[@]}"
    else
        say "packages not removed (staging tree): ${PKGS[*]}"
    fi
elif ((${#PKGS[@]})); then
    say "packages install.sh added are kept: ${PKGS[*]} (--purge-deps removes them)"
fi
((LIVE)) && say "done; kernel settings from /etc/sysctl.d/99-berth.conf stay in effect until reboot"
say "Berth removed"
