//! What discovery works with: the files it looks for, the options, what it reports, and the
//! intermediate findings its parts hand each other.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

/// The CDI kind of the generated spec.
pub const KIND: &str = "nvidia.com/gpu";
/// Lowest CDI version covering what the spec uses: device names starting with a digit and `hostPath` on device
/// nodes are v0.5.0 features; nothing from v0.6.0 (annotations, dots in the class) is used.
pub(super) const CDI_VERSION: &str = "0.5.0";
/// Options of every bind mount in the spec.
pub(super) const MOUNT_OPTIONS: [&str; 4] = ["ro", "nosuid", "nodev", "bind"];
/// Name of the file written under the container's `/etc/ld.so.conf.d`.
/// How long `nvidia-smi -L` may run.
pub(super) const SMI_TIMEOUT: Duration = Duration::from_secs(30);

/// Driver libraries to mount, as shell-style patterns (`*` only) on the file name.
pub(super) const LIBRARY_PATTERNS: &[&str] = &[
    "libcuda.so*",
    "libcudadebugger.so*",
    "libnvidia-ml.so*",
    "libnvidia-ptxjitcompiler.so*",
    "libnvidia-nvvm.so*",
    "libnvidia-opencl.so*",
    "libnvidia-gpucomp.so*",
    "libnvidia-allocator.so*",
    "libnvidia-cfg.so*",
    "libnvidia-pkcs11*.so*",
    "libnvidia-encode.so*",
    "libnvidia-opticalflow.so*",
    "libnvcuvid.so*",
    "libnvidia-fbc.so*",
    "libnvidia-eglcore.so*",
    "libnvidia-glcore.so*",
    "libnvidia-tls.so*",
    "libnvidia-glsi.so*",
    "libnvidia-glvkspirv.so*",
    "libnvidia-rtcore.so*",
    "libnvoptix.so*",
    "libGLX_nvidia.so*",
    "libEGL_nvidia.so*",
    "libGLESv2_nvidia.so*",
    "libGLESv1_CM_nvidia.so*",
    "libnvidia-ngx.so*",
];

/// Folders (relative to the driver root) scanned for driver libraries besides the ld.so.cache.
pub(super) const LIBRARY_DIRS: &[&str] = &[
    "usr/lib/x86_64-linux-gnu",
    "usr/lib64",
    "usr/lib",
    "lib/x86_64-linux-gnu",
    "usr/lib/x86_64-linux-gnu/nvidia/current",
    "usr/lib/aarch64-linux-gnu",
    "lib/aarch64-linux-gnu",
    "usr/lib/aarch64-linux-gnu/nvidia/current",
];

/// Driver tools mounted when present.
pub(super) const BINARIES: &[&str] = &[
    "nvidia-smi",
    "nvidia-debugdump",
    "nvidia-persistenced",
    "nvidia-cuda-mps-control",
    "nvidia-cuda-mps-server",
];

/// Folders (relative to the driver root) searched for the tools, in order.
pub(super) const BIN_DIRS: &[&str] = &["usr/bin", "usr/sbin", "bin", "sbin"];

/// Control nodes given to every container that gets any of the devices.
pub(super) const CONTROL_NODES: &[&str] = &["nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia-modeset"];

/// IPC sockets of NVIDIA daemons, mounted when present.
pub(super) const SOCKETS: &[&str] = &["run/nvidia-persistenced/socket", "run/nvidia-fabricmanager/socket"];

/// Value of [`Mig::gi`] and [`Mig::ci`] when the instance ids could not be determined.
pub const UNKNOWN_INSTANCE: u32 = u32::MAX;

/// Where and how to look for the GPUs and the driver.
#[derive(Debug, Clone)]
pub struct Options {
    /// Root under which /dev/nvidia* are looked up ("/" normally; a temp dir in tests).
    pub dev_root: PathBuf,
    /// Root of the driver installation (libraries, binaries, firmware); "/" normally.
    pub driver_root: PathBuf,
    /// nvidia-smi to ask for GPU UUIDs/MIG devices; None = look for it under driver_root's usual bin dirs; if absent
    /// or failing, discovery still works without UUIDs.
    pub nvidia_smi: Option<PathBuf>,
    /// Path of the hook binary the spec's createContainer hook runs to refresh the container's ld cache (Berth passes
    /// its own berthd path).
    pub hook_binary: PathBuf,
}

/// Result of [`discover`].
#[derive(Debug, Clone)]
pub struct Discovery {
    /// The CDI spec (kind `nvidia.com/gpu`), ready for [`write_spec`].
    pub spec: Value,
    /// The GPUs found, by index.
    pub gpus: Vec<Gpu>,
    /// The driver version (e.g. `535.104.05`), when known.
    pub driver_version: Option<String>,
    /// Things that were missing or odd; discovery went on without them.
    pub warnings: Vec<String>,
}

/// One GPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gpu {
    /// Index as `nvidia-smi` numbers it (without `nvidia-smi`: the device node's number); the CDI device name.
    pub index: u32,
    /// `GPU-…` UUID, when known (from `nvidia-smi -L` or `/proc/driver/nvidia/gpus/*/information`).
    pub uuid: Option<String>,
    /// Container path of the device node, `/dev/nvidiaN`.
    pub node: PathBuf,
    /// MIG devices of this GPU, in `nvidia-smi -L` order (the k-th is the CDI device `<index>:k`).
    pub mig: Vec<Mig>,
}

/// One MIG device (a compute instance inside a GPU instance).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mig {
    /// Index of the parent GPU.
    pub gpu: u32,
    /// GPU instance id, or [`UNKNOWN_INSTANCE`].
    pub gi: u32,
    /// Compute instance id, or [`UNKNOWN_INSTANCE`].
    pub ci: u32,
    /// `MIG-…` UUID, when known.
    pub uuid: Option<String>,
    /// Container paths of the `/dev/nvidia-caps/nvidia-capN` nodes granting access to the instance (empty when they
    /// could not be determined).
    pub caps: Vec<PathBuf>,
}

/// A GPU plus what is needed to build its spec entries.
pub(super) struct FoundGpu {
    pub(super) public: Gpu,
    /// Host path of the device node.
    pub(super) host_node: PathBuf,
    /// MIG devices with their position in `nvidia-smi -L` and the host paths of their cap nodes.
    pub(super) migs: Vec<(u32, Vec<PathBuf>)>,
}

/// What `nvidia-smi -L` says about one GPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SmiGpu {
    pub(super) index: u32,
    pub(super) uuid: Option<String>,
    pub(super) migs: Vec<SmiMig>,
}

/// What `nvidia-smi -L` says about one MIG device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SmiMig {
    /// The `Device N` number.
    pub(super) index: u32,
    pub(super) uuid: Option<String>,
    /// Instance ids encoded in old-style `MIG-GPU-<uuid>/<gi>/<ci>` UUIDs.
    pub(super) ids: Option<(u32, u32)>,
}

/// A GPU device node: its number (from the name) and host path.
#[derive(Debug)]
pub(super) struct GpuNode {
    pub(super) number: u32,
    pub(super) host: PathBuf,
}

pub(super) struct Ctx<'a> {
    pub(super) opts: &'a Options,
    pub(super) warnings: &'a mut Vec<String>,
}
