#!/usr/bin/env bash
# install.sh — install Berth on a Debian/Ubuntu node: runtime dependencies from the
# distribution (runc or crun, CNI plugins, iptables), the four binaries, the systemd unit,
# the default config, crictl.yaml and (when the node has no pod network yet) the default CNI
# bridge network; then enable and (re)start berthd. Safe to run again: binaries and the unit
# are upgraded, an existing /etc/berth/config.toml is kept, berthd restarts only on change.
#
#   sudo deploy/install.sh                          build (cargo) and install on this node
#   sudo ./install.sh --bin-dir ./bin               prebuilt binaries
#   ./install.sh --root /tmp/r --no-deps --no-start lay the files out under another root
#
# Every file it creates outside /etc/berth is listed in /etc/berth/install.manifest, which
# uninstall.sh reads to leave no trace.
set -euo pipefail

BINARIES=(berthd berthctl berth-shim berth-pause)
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

usage() {
    cat <<'EOF'
Usage: install.sh [OPTIONS]

  --bin-dir DIR        directory holding berthd, berthctl, berth-shim and berth-pause
                       (default: bin/ beside this script if present, else `cargo build
                       --release` in the source checkout this script belongs to)
  --root DIR           install into DIR instead of / (a chroot, an image, /host in a pod)
  --prefix DIR         binaries go to ROOT/PREFIX/bin (default /usr/local)
  --runtime NAME       OCI runtime to install and to use by default: runc or crun
                       (default runc; the default only applies to a newly written config)
  --config-dropin FILE install FILE into /etc/berth/config.toml.d/ (repeatable; replaces
                       a file of the same name; merged over config.toml by berthd)
  --host-exec CMD      command prefix that runs a program in the target system, used for
                       apt-get and systemctl when --root is not /, e.g. from a privileged
                       pod: --root /host --host-exec "nsenter -t 1 -m -u -i -n -p --"
  --no-deps            do not install distribution packages
  --no-cni             do not install the default bridge network (10-berth-bridge)
  --no-start           do not enable or start the service
  --restart            restart berthd even when nothing changed
  -h, --help           this text
EOF
}

die() { echo "install.sh: $*" >&2; exit 1; }
say() { echo "==> $*"; }

ROOT=/
PREFIX=/usr/local
BIN_DIR=
RUNTIME=runc
DEPS=1
CNI=1
START=1
FORCE_RESTART=0
HOST_EXEC_SET=0
HOST_EXEC=()
DROPINS=()
while (($#)); do
    case $1 in
    --bin-dir) BIN_DIR=${2:?--bin-dir needs a directory}; shift 2 ;;
    --root) ROOT=${2:?--root needs a directory}; shift 2 ;;
    --prefix) PREFIX=${2:?--prefix needs a directory}; shift 2 ;;
    --runtime) RUNTIME=${2:?--runtime needs runc or crun}; shift 2 ;;
    --config-dropin) DROPINS+=("${2:?--config-dropin needs a file}"); shift 2 ;;
    --host-exec) read -r -a HOST_EXEC <<<"${2:?--host-exec needs a command}"; HOST_EXEC_SET=1; shift 2 ;;
    --no-deps) DEPS=0; shift ;;
    --no-cni) CNI=0; shift ;;
    --no-start) START=0; shift ;;
    --restart) FORCE_RESTART=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
    esac
done

case $RUNTIME in runc | crun) ;; *) die "--runtime must be runc or crun, not $RUNTIME" ;; esac
[[ $PREFIX == /* ]] || die "--prefix must be absolute"
ROOT=${ROOT%/}
[[ -z $ROOT || -d $ROOT ]] || die "--root $ROOT is not a directory"
for f in "${DROPINS[@]}"; do [[ -f $f ]] || die "config drop-in $f not found"; done
[[ $(id -u) -eq 0 || -n $ROOT ]] || die "run as root (or use --root DIR for a staging tree)"

# The target system is reachable for apt-get/systemctl when it is this system, or through
# --host-exec. LIVE=0 means: only lay out files.
LIVE=0
if [[ -z $ROOT ]]; then
    LIVE=1
elif ((HOST_EXEC_SET)); then
    LIVE=1
fi
host() { "${HOST_EXEC[@]}" "$@"; }

# --- binaries ---------------------------------------------------------------------------
if [[ -z $BIN_DIR ]]; then
    if [[ -x $SCRIPT_DIR/bin/berthd ]]; then
        BIN_DIR=$SCRIPT_DIR/bin
    elif [[ -f $SCRIPT_DIR/../Cargo.toml ]]; then
        command -v cargo >/dev/null || die "no --bin-dir given and cargo is not installed"
        say "building Berth (cargo build --release)"
        (cd "$SCRIPT_DIR/.." && cargo build --release --workspace --bins)
        BIN_DIR=$SCRIPT_DIR/../target/release
    else
        die "no binaries: pass --bin-dir DIR"
    fi
fi
for b in "${BINARIES[@]}"; do
    [[ -x $BIN_DIR/$b ]] || die "$BIN_DIR/$b is missing or not executable"
done

# --- manifest: what this script created, for uninstall.sh --------------------------------
MANIFEST=$ROOT/etc/berth/install.manifest
declare -A RECORDED=()
if [[ -f $MANIFEST ]]; then
    while read -r kind path; do RECORDED["$kind $path"]=1; done <"$MANIFEST"
fi
record() { # record KIND PATH (PATH as seen inside the target root)
    if [[ -z ${RECORDED["$1 $2"]:-} ]]; then
        RECORDED["$1 $2"]=1
        echo "$1 $2" >>"$MANIFEST"
    fi
}
# mkdirs PATH: create PATH (inside the root) and record every directory that was missing.
mkdirs() {
    local p=$1 missing=()
    while [[ $p != / && ! -d $ROOT$p ]]; do
        missing=("$p" "${missing[@]}")
        p=$(dirname "$p")
    done
    for p in "${missing[@]}"; do
        mkdir -m 0755 "$ROOT$p"
        [[ $p == /etc/berth || $p == /etc/berth/* ]] || record dir "$p"
    done
}
CHANGED=0
# put SRC DEST MODE: install SRC at DEST (inside the root) unless identical.
put() {
    local src=$1 dest=$2 mode=$3
    mkdirs "$(dirname "$dest")"
    if [[ -f $ROOT$dest ]] && cmp -s "$src" "$ROOT$dest"; then
        chmod "$mode" "$ROOT$dest"
    else
        # Write beside and rename: a running berthd keeps its old inode.
        install -m "$mode" "$src" "$ROOT$dest.berth-new"
        mv -f "$ROOT$dest.berth-new" "$ROOT$dest"
        CHANGED=1
        echo "    $dest"
    fi
    [[ $dest == /etc/berth/* ]] || record file "$dest"
}

# The manifest lives in /etc/berth; a staging root may lack even /etc.
etc_created=0
if [[ ! -d $ROOT/etc ]]; then
    mkdir -m 0755 "$ROOT/etc"
    etc_created=1
fi
[[ -d $ROOT/etc/berth ]] || mkdir -m 0755 "$ROOT/etc/berth"
touch "$MANIFEST"
((etc_created)) && record dir /etc

# --- distribution packages ----------------------------------------------------------------
if ((DEPS)); then
    if ((!LIVE)); then
        say "dependencies skipped: --root $ROOT without --host-exec (install $RUNTIME, containernetworking-plugins and iptables there yourself)"
    elif ! host sh -c 'command -v apt-get >/dev/null && command -v dpkg >/dev/null'; then
        say "no apt-get on the target: install $RUNTIME, the CNI plugins and iptables with its package manager"
    else
        missing=()
        for p in "$RUNTIME" containernetworking-plugins iptables; do
            host dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
        done
        if ((${#missing[@]})); then
            say "installing packages: ${missing[*]}"
            host env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" ||
                { host env DEBIAN_FRONTEND=noninteractive apt-get update -q &&
                    host env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"; } ||
                die "apt-get install ${missing[*]} failed"
            for p in "${missing[@]}"; do record pkg "$p"; done
        fi
    fi
fi

# --- files ----------------------------------------------------------------------------------
say "installing Berth into ${ROOT:-/}"
for b in "${BINARIES[@]}"; do put "$BIN_DIR/$b" "$PREFIX/bin/$b" 0755; done

unit=$(mktemp)
trap 'rm -f "$unit"' EXIT
sed "s|/usr/local/bin/|$PREFIX/bin/|g" "$SCRIPT_DIR/berthd.service" >"$unit"
put "$unit" /etc/systemd/system/berthd.service 0644

if [[ -f $ROOT/etc/berth/config.toml ]]; then
    echo "    /etc/berth/config.toml kept (compare with $SCRIPT_DIR/config.toml after upgrades)"
else
    sed "s|^default_runtime = .*|default_runtime = \"$RUNTIME\"|" "$SCRIPT_DIR/config.toml" >"$unit"
    put "$unit" /etc/berth/config.toml 0644
fi
mkdirs /etc/berth/config.toml.d
mkdirs /etc/berth/certs.d
for f in "${DROPINS[@]}"; do put "$f" "/etc/berth/config.toml.d/$(basename "$f")" 0644; done

# Kernel modules and sysctls that pods need (overlay rootfs, bridged traffic, forwarding).
put "$SCRIPT_DIR/modules-load.conf" /etc/modules-load.d/berth.conf 0644
put "$SCRIPT_DIR/sysctl.conf" /etc/sysctl.d/99-berth.conf 0644
put "$SCRIPT_DIR/README.md" /usr/share/doc/berth/README.md 0644

# crictl and the default network are node-wide: never replace someone else's.
if [[ -f $ROOT/etc/crictl.yaml ]] && [[ -z ${RECORDED["file /etc/crictl.yaml"]:-} ]]; then
    grep -q 'berth/berth.sock' "$ROOT/etc/crictl.yaml" ||
        echo "    /etc/crictl.yaml kept (it points elsewhere; Berth's is $SCRIPT_DIR/crictl.yaml)"
else
    put "$SCRIPT_DIR/crictl.yaml" /etc/crictl.yaml 0644
fi
if ((CNI)); then
    conf=/etc/cni/net.d/10-berth-bridge.conflist
    others=$(find "$ROOT/etc/cni/net.d" -maxdepth 1 -type f \( -name '*.conf' -o -name '*.conflist' -o -name '*.json' \) \
        ! -name 10-berth-bridge.conflist 2>/dev/null | head -n1 || true)
    if [[ -n ${RECORDED["file $conf"]:-} || -z $others ]]; then
        put "$SCRIPT_DIR/10-berth-bridge.conflist" "$conf" 0644
    else
        echo "    default network not installed: the node already has $(basename "$others")"
    fi
fi

# --- service --------------------------------------------------------------------------------
manual() {
    echo "    start it by hand:  $PREFIX/bin/berthd --config /etc/berth/config.toml"
    echo "    then:              $PREFIX/bin/berthctl version"
}
if ((!START)); then
    say "installed; not started (--no-start). With systemd: systemctl daemon-reload && systemctl enable --now berthd"
    manual
    exit 0
fi
if ((!LIVE)); then
    say "installed into $ROOT; not started (no --host-exec to reach that system)"
    exit 0
fi
# systemd is the init system only when /run/systemd/system exists (sd_booted).
if ! host test -d /run/systemd/system; then
    say "installed; systemd is not running on this system (PID 1: $(host cat /proc/1/comm 2>/dev/null || echo unknown)), so the service was not started"
    manual
    exit 0
fi
host sh -c 'modprobe overlay; modprobe br_netfilter; sysctl -q --system' >/dev/null 2>&1 || true
host systemctl daemon-reload
host systemctl enable berthd.service >/dev/null 2>&1
if ((CHANGED || FORCE_RESTART)) || ! host systemctl is-active -q berthd.service; then
    say "restarting berthd (pods and containers keep running: KillMode=process)"
    host systemctl restart berthd.service
fi
for _ in $(seq 1 30); do
    if host "$PREFIX/bin/berthctl" --timeout 2 version >/dev/null 2>&1; then
        say "berthd is up: unix:///run/berth/berth.sock"
        host "$PREFIX/bin/berthctl" --timeout 2 version || true
        exit 0
    fi
    sleep 1
done
host systemctl status --no-pager berthd.service >&2 || true
die "berthd did not answer on unix:///run/berth/berth.sock within 30s (journalctl -u berthd)"
