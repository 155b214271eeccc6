# shellcheck shell=bash
# daemons.sh — starting the CRI runtimes the suites and benchmarks compare, the same way
# everywhere: the kit's registry mapping ($KIT/certs.d, every registry on 127.0.0.1:5000),
# a CNI config directory, Debian's plugins in /usr/lib/cni. Sourced; each function sets
# DAEMON_PID and DAEMON_SOCK and waits until the socket exists (status 1 if it never does).

daemon_wait_sock() { for _ in $(seq 1 200); do [[ -S $1 ]] && return 0; sleep 0.05; done; return 1; }

# start_berthd_at BINARY DIR CNI_DIR LOG [LEVEL [ARG...]]: berthd with root and state under
# DIR, and any further arguments (e.g. --config FILE).
start_berthd_at() {
    local bin=$1 dir=$2 cni=$3 log=$4 level=${5:-info}
    DAEMON_SOCK=$dir/berth.sock
    "$bin" --listen "unix://$DAEMON_SOCK" --root "$dir/root" --state "$dir/state" \
        --registry-config-path "$KIT/certs.d" --cni-conf-dir "$cni" --cni-bin-dir /usr/lib/cni \
        --nri-socket "$dir/nri.sock" \
        --log-level "$level" "${@:6}" 2>"$log" &
    DAEMON_PID=$!
    daemon_wait_sock "$DAEMON_SOCK"
}

# start_containerd_at DIR CNI_DIR LOG SANDBOX_IMAGE [EXTRA_TOML]: Debian's containerd with its
# CRI plugin, root and state under DIR. This machine lacks CAP_SYS_RESOURCE, so containerd's
# negative oom_score_adj (pause gets -998) is restricted to its own.
start_containerd_at() {
    local dir=$1 cni=$2 log=$3 pause=$4 extra=${5:-}
    command -v containerd >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q containerd >/dev/null
    DAEMON_SOCK=$dir/containerd.sock
    mkdir -p "$dir"
    cat >"$dir/config.toml" <<TOML
version = 2
root = "$dir/root"
state = "$dir/state"
[grpc]
  address = "$DAEMON_SOCK"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$pause"
  restrict_oom_score_adj = true
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = "/usr/lib/cni"
  conf_dir = "$cni"
[plugins."io.containerd.grpc.v1.cri".registry]
  config_path = "$KIT/certs.d"
$extra
TOML
    containerd --config "$dir/config.toml" >"$log" 2>&1 &
    DAEMON_PID=$!
    daemon_wait_sock "$DAEMON_SOCK"
}
