//! NVIDIA GPU discovery producing a Container Device Interface (CDI) spec.
//!
//! [`discover`] looks at the device nodes, the driver installation and (when present) `nvidia-smi`, and builds a
//! spec of kind `nvidia.com/gpu`, so that a container asking for `nvidia.com/gpu=all` (or `=0`, `=GPU-<uuid>`, …)
//! gets the GPUs, the control nodes, the driver's user-space libraries and tools — the equivalent of
//! `docker run --gpus all`. Nothing from NVIDIA is needed to build or test this module.
//!
//! The spec's `createContainer` hook runs `<hook_binary> cdi-hook update-ldcache --folder DIR…`, which the runtime
//! implements with [`update_ldcache`]: it adds the library folders to the container's `ld.so.conf.d` and rebuilds the
//! container's linker cache with the host's `ldconfig -r <rootfs>`. That also creates the soname links
//! (`libcuda.so.1` → `libcuda.so.<version>`) next to the mounted files, so only the real, versioned files are mounted.

mod gpus_flag;
mod hook;
mod ldcache;

pub use gpus_flag::gpus_flag_to_cdi;
pub use hook::update_ldcache;

use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::sys::dev;
use crate::sys::inroot::{self, host_path};

/// The CDI kind of the generated spec.
pub const KIND: &str = "nvidia.com/gpu";
/// Lowest CDI version covering what the spec uses: device names starting with a digit and `hostPath` on device
/// nodes are v0.5.0 features; nothing from v0.6.0 (annotations, dots in the class) is used.
const CDI_VERSION: &str = "0.5.0";
/// Options of every bind mount in the spec.
const MOUNT_OPTIONS: [&str; 4] = ["ro", "nosuid", "nodev", "bind"];
/// Name of the file written under the container's `/etc/ld.so.conf.d`.
/// How long `nvidia-smi -L` may run.
const SMI_TIMEOUT: Duration = Duration::from_secs(30);

/// Driver libraries to mount, as shell-style patterns (`*` only) on the file name.
const LIBRARY_PATTERNS: &[&str] = &[
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
const LIBRARY_DIRS: &[&str] = &[
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
const BINARIES: &[&str] = &[
    "nvidia-smi",
    "nvidia-debugdump",
    "nvidia-persistenced",
    "nvidia-cuda-mps-control",
    "nvidia-cuda-mps-server",
];

/// Folders (relative to the driver root) searched for the tools, in order.
const BIN_DIRS: &[&str] = &["usr/bin", "usr/sbin", "bin", "sbin"];

/// Control nodes given to every container that gets any of the devices.
const CONTROL_NODES: &[&str] = &["nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia-modeset"];

/// IPC sockets of NVIDIA daemons, mounted when present.
const SOCKETS: &[&str] = &["run/nvidia-persistenced/socket", "run/nvidia-fabricmanager/socket"];

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

/// Discovers the node's NVIDIA GPUs and driver and builds the CDI spec.
///
/// None when the node has no NVIDIA GPU (no /dev/nvidia[0-9]+ under dev_root).
///
/// The spec has one device per GPU named by index and one by UUID (when known), one per MIG device named
/// `<gpu>:<N>` (`N` from nvidia-smi's `Device N`) and by MIG UUID, and `all`. The common edits carry
/// `NVIDIA_VISIBLE_DEVICES=void`, the control nodes present, read-only bind mounts of the driver libraries, tools,
/// firmware and daemon sockets found, and the `createContainer` ld-cache hook (left out when no library was found).
/// Only errors reading `<dev_root>/dev` are returned; anything else missing becomes a warning.
pub fn discover(opts: &Options) -> std::io::Result<Option<Discovery>> {
    let nodes = gpu_nodes(&opts.dev_root)?;
    if nodes.is_empty() {
        return Ok(None);
    }
    let mut warnings = Vec::new();
    let mut ctx = Ctx {
        opts,
        warnings: &mut warnings,
    };

    // Driver files first: nvidia-smi under a non-"/" driver root needs the library folders.
    let proc_version = ctx.proc_driver_version();
    let libs = ctx.find_libraries();
    let driver_version = proc_version.or_else(|| version_from_libraries(&libs));
    let libs = ctx.select_library_version(libs, driver_version.as_deref());

    let smi = ctx.run_nvidia_smi(&libs);
    let proc_uuids = ctx.proc_gpu_uuids();
    let gpus = ctx.assemble_gpus(&nodes, smi, &proc_uuids);

    let mut mounts: BTreeMap<PathBuf, PathBuf> = BTreeMap::new();
    let mut folders = BTreeSet::new();
    for lib in &libs {
        if let Some(parent) = lib.parent() {
            folders.insert(parent.to_path_buf());
        }
        mounts.insert(lib.clone(), host_path(&opts.driver_root, lib));
    }
    for (container, host) in ctx.find_binaries() {
        mounts.entry(container).or_insert(host);
    }
    if let Some(version) = &driver_version {
        let firmware = PathBuf::from(format!("/lib/firmware/nvidia/{version}"));
        if let Ok(real) = resolve_in_root(&opts.driver_root, &firmware) {
            if fs::metadata(host_path(&opts.driver_root, &real)).is_ok_and(|m| m.is_dir()) {
                mounts.insert(firmware, host_path(&opts.driver_root, &real));
            }
        }
    }
    for socket in SOCKETS {
        let container = Path::new("/").join(socket);
        if let Ok(real) = resolve_in_root(&opts.driver_root, &container) {
            let host = host_path(&opts.driver_root, &real);
            if fs::metadata(&host).is_ok_and(|m| m.file_type().is_socket()) {
                mounts.insert(container, host);
            }
        }
    }
    if libs.is_empty() {
        ctx.warn(format!(
            "no NVIDIA driver libraries found under {}",
            opts.driver_root.display()
        ));
    }

    let control: Vec<PathBuf> = CONTROL_NODES
        .iter()
        .map(|n| Path::new("/dev").join(n))
        .filter(|p| is_char_device(&host_path(&opts.dev_root, p)))
        .collect();
    if control.iter().all(|p| p != Path::new("/dev/nvidiactl")) {
        ctx.warn("/dev/nvidiactl not found: CUDA will not work in containers".to_string());
    }

    let spec = build_spec(opts, &gpus, &control, &mounts, &folders, ctx.warnings);
    let gpus = gpus.into_iter().map(|g| g.public).collect();
    Ok(Some(Discovery {
        spec,
        gpus,
        driver_version,
        warnings,
    }))
}

/// Whether any spec file in `dirs` (*.json, *.yaml, *.yml) already declares kind "nvidia.com/gpu" (cheap text/JSON
/// check; for YAML a line `kind: nvidia.com/gpu` with optional quotes).
///
/// Unreadable folders and files are skipped, and so are files named `except` (the spec that
/// discovery itself writes).
pub fn has_nvidia_spec(dirs: &[PathBuf], except: &str) -> bool {
    dirs.iter().any(|dir| {
        let Ok(entries) = fs::read_dir(dir) else {
            return false;
        };
        entries.flatten().any(|entry| {
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') || name == except {
                return false;
            }
            let is_json = name.ends_with(".json");
            let is_yaml = name.ends_with(".yaml") || name.ends_with(".yml");
            if !is_json && !is_yaml {
                return false;
            }
            let Ok(text) = fs::read_to_string(&path) else {
                return false;
            };
            if let Ok(value) = serde_json::from_str::<Value>(&text) {
                return value.get("kind").and_then(Value::as_str) == Some(KIND);
            }
            is_yaml && yaml_declares_kind(&text)
        })
    })
}

/// Writes the spec atomically (temp file + rename, mode 0644) as `<dir>/<name>`, creating dir.
pub fn write_spec(dir: &Path, name: &str, spec: &serde_json::Value) -> std::io::Result<PathBuf> {
    fs::create_dir_all(dir)?;
    let target = dir.join(name);
    let mut text = serde_json::to_string_pretty(spec).map_err(io::Error::other)?;
    text.push('\n');
    write_atomic(dir, &target, text.as_bytes())?;
    // Make the rename durable; failing to sync a folder is not worth failing the write.
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(target)
}

// ---------------------------------------------------------------------------------------------------------------------
// Discovery internals.

/// A GPU plus what is needed to build its spec entries.
struct FoundGpu {
    public: Gpu,
    /// Host path of the device node.
    host_node: PathBuf,
    /// MIG devices with their position in `nvidia-smi -L` and the host paths of their cap nodes.
    migs: Vec<(u32, Vec<PathBuf>)>,
}

/// What `nvidia-smi -L` says about one GPU.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SmiGpu {
    index: u32,
    uuid: Option<String>,
    migs: Vec<SmiMig>,
}

/// What `nvidia-smi -L` says about one MIG device.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SmiMig {
    /// The `Device N` number.
    index: u32,
    uuid: Option<String>,
    /// Instance ids encoded in old-style `MIG-GPU-<uuid>/<gi>/<ci>` UUIDs.
    ids: Option<(u32, u32)>,
}

/// A GPU device node: its number (from the name) and host path.
#[derive(Debug)]
struct GpuNode {
    number: u32,
    host: PathBuf,
}

struct Ctx<'a> {
    opts: &'a Options,
    warnings: &'a mut Vec<String>,
}

impl Ctx<'_> {
    fn warn(&mut self, msg: String) {
        if !self.warnings.contains(&msg) {
            self.warnings.push(msg);
        }
    }

    /// `proc/<rel>` under the driver root, else under the device root.
    fn proc_path(&self, rel: &str) -> Option<PathBuf> {
        [&self.opts.driver_root, &self.opts.dev_root]
            .into_iter()
            .map(|root| root.join("proc").join(rel))
            .find(|p| p.exists())
    }

    fn proc_driver_version(&self) -> Option<String> {
        let text = fs::read_to_string(self.proc_path("driver/nvidia/version")?).ok()?;
        let first = text.lines().next()?;
        let after = first.split_once("Module").map_or(first, |(_, rest)| rest);
        after
            .split_whitespace()
            .find(|tok| is_driver_version(tok))
            .map(str::to_string)
    }

    /// Maps device minor numbers to GPU UUIDs from `/proc/driver/nvidia/gpus/*/information`.
    fn proc_gpu_uuids(&self) -> BTreeMap<u32, String> {
        let mut out = BTreeMap::new();
        let Some(dir) = self.proc_path("driver/nvidia/gpus") else {
            return out;
        };
        let Ok(entries) = fs::read_dir(dir) else {
            return out;
        };
        for entry in entries.flatten() {
            let Ok(text) = fs::read_to_string(entry.path().join("information")) else {
                continue;
            };
            let mut uuid = None;
            let mut minor = None;
            for line in text.lines() {
                if let Some((key, val)) = line.split_once(':') {
                    match key.trim() {
                        "GPU UUID" => uuid = Some(val.trim().to_string()),
                        "Device Minor" => minor = val.trim().parse::<u32>().ok(),
                        _ => {}
                    }
                }
            }
            if let (Some(uuid), Some(minor)) = (uuid, minor) {
                if uuid.starts_with("GPU-") {
                    out.insert(minor, uuid);
                }
            }
        }
        out
    }

    /// Finds the driver libraries (container paths of the real files), via the ld.so.cache and the usual folders.
    fn find_libraries(&mut self) -> Vec<PathBuf> {
        let root = &self.opts.driver_root;
        let mut candidates: BTreeSet<PathBuf> = BTreeSet::new();
        if let Ok(cache) = resolve_in_root(root, Path::new("/etc/ld.so.cache")) {
            match ldcache::read(&host_path(root, &cache)) {
                Ok(entries) => {
                    for entry in entries {
                        if let Some(name) = entry.path.file_name().and_then(|n| n.to_str()) {
                            if is_driver_library(name) || is_driver_library(&entry.soname) {
                                candidates.insert(entry.path);
                            }
                        }
                    }
                }
                Err(e) => self.warn(format!("cannot read {}/etc/ld.so.cache: {e}", root.display())),
            }
        }
        for dir in LIBRARY_DIRS {
            let Ok(real_dir) = resolve_in_root(root, &Path::new("/").join(dir)) else {
                continue;
            };
            let Ok(entries) = fs::read_dir(host_path(root, &real_dir)) else {
                continue;
            };
            for entry in entries.flatten() {
                if entry.file_name().to_str().is_some_and(is_driver_library) {
                    candidates.insert(real_dir.join(entry.file_name()));
                }
            }
        }
        let mut libs = BTreeSet::new();
        for candidate in candidates {
            let Ok(real) = resolve_in_root(root, &candidate) else {
                continue;
            };
            let host = host_path(root, &real);
            let Ok(meta) = fs::metadata(&host) else {
                continue;
            };
            if !meta.is_file() || real.to_str().is_none() || !elf_matches_host(&host) {
                continue;
            }
            // A symlink to something that is not a driver library (e.g. a stub) is not mounted.
            if real.file_name().and_then(|n| n.to_str()).is_some_and(is_driver_library) {
                libs.insert(real);
            }
        }
        libs.into_iter().collect()
    }

    /// Drops library files whose version suffix is a driver version other than `version`.
    fn select_library_version(&mut self, libs: Vec<PathBuf>, version: Option<&str>) -> Vec<PathBuf> {
        let Some(version) = version else {
            return libs;
        };
        let any_match = libs.iter().any(|l| library_version(l).as_deref() == Some(version));
        if !any_match {
            if !libs.is_empty() {
                self.warn(format!(
                    "no driver library of version {version} found; mounting the libraries found"
                ));
            }
            return libs;
        }
        let (keep, drop): (Vec<PathBuf>, Vec<PathBuf>) = libs
            .into_iter()
            .partition(|l| library_version(l).is_none_or(|v| v == version));
        for l in drop {
            self.warn(format!("skipping {}: not of driver version {version}", l.display()));
        }
        keep
    }

    /// The tools found: container path → host path.
    fn find_binaries(&self) -> Vec<(PathBuf, PathBuf)> {
        let root = &self.opts.driver_root;
        let mut out = Vec::new();
        for bin in BINARIES {
            for dir in BIN_DIRS {
                let container = Path::new("/").join(dir).join(bin);
                let Ok(real) = resolve_in_root(root, &container) else {
                    continue;
                };
                let host = host_path(root, &real);
                if fs::metadata(&host).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0) {
                    out.push((container, host));
                    break;
                }
            }
        }
        out
    }

    fn find_nvidia_smi(&self) -> Option<PathBuf> {
        if let Some(p) = &self.opts.nvidia_smi {
            return Some(p.clone());
        }
        let root = &self.opts.driver_root;
        BIN_DIRS.iter().find_map(|dir| {
            let real = resolve_in_root(root, &Path::new("/").join(dir).join("nvidia-smi")).ok()?;
            let host = host_path(root, &real);
            fs::metadata(&host).is_ok_and(|m| m.is_file()).then_some(host)
        })
    }

    /// Runs `nvidia-smi -L`; None (with a warning) when it is missing or fails.
    fn run_nvidia_smi(&mut self, libs: &[PathBuf]) -> Option<Vec<SmiGpu>> {
        let Some(smi) = self.find_nvidia_smi() else {
            self.warn("nvidia-smi not found: devices named by index only".to_string());
            return None;
        };
        let mut cmd = Command::new(&smi);
        cmd.arg("-L")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if self.opts.driver_root != Path::new("/") {
            let dirs: BTreeSet<String> = libs
                .iter()
                .filter_map(|l| l.parent())
                .map(|d| host_path(&self.opts.driver_root, d).to_string_lossy().into_owned())
                .collect();
            if !dirs.is_empty() {
                cmd.env("LD_LIBRARY_PATH", dirs.into_iter().collect::<Vec<_>>().join(":"));
            }
        }
        match run_with_timeout(cmd, SMI_TIMEOUT) {
            Ok(out) => {
                let gpus = parse_smi_list(&out);
                if gpus.is_empty() {
                    self.warn(format!(
                        "{} -L listed no GPU: devices named by index only",
                        smi.display()
                    ));
                    return None;
                }
                Some(gpus)
            }
            Err(e) => {
                self.warn(format!(
                    "{} -L failed ({e}): devices named by index only",
                    smi.display()
                ));
                None
            }
        }
    }

    /// Pairs nvidia-smi's GPUs with the device nodes.
    ///
    /// A GPU listed by nvidia-smi uses the node whose minor number `/proc/driver/nvidia/gpus/*/information` gives
    /// for its UUID, else the node numbered like its index. Nodes nvidia-smi did not list are kept, named by number.
    fn assemble_gpus(
        &mut self,
        nodes: &BTreeMap<u32, GpuNode>,
        smi: Option<Vec<SmiGpu>>,
        proc_uuids: &BTreeMap<u32, String>,
    ) -> Vec<FoundGpu> {
        let mut gpus: BTreeMap<u32, FoundGpu> = BTreeMap::new();
        let mut used_minors = BTreeSet::new();
        for g in smi.unwrap_or_default() {
            let minor = g
                .uuid
                .as_ref()
                .and_then(|u| proc_uuids.iter().find(|(_, pu)| *pu == u).map(|(m, _)| *m))
                .unwrap_or(g.index);
            let Some(node) = nodes.get(&minor) else {
                self.warn(format!(
                    "GPU {} ({}) has no device node /dev/nvidia{minor}; skipped",
                    g.index,
                    g.uuid.as_deref().unwrap_or("no UUID")
                ));
                continue;
            };
            if gpus.contains_key(&g.index) || !used_minors.insert(minor) {
                self.warn(format!("nvidia-smi listed GPU {} twice; ignoring the repeat", g.index));
                continue;
            }
            let found = self.found_gpu(g.index, g.uuid.clone(), node, minor, &g.migs);
            gpus.insert(g.index, found);
        }
        let smi_used = !gpus.is_empty();
        for (minor, node) in nodes {
            if used_minors.contains(minor) {
                continue;
            }
            if smi_used {
                self.warn(format!("/dev/nvidia{} was not listed by nvidia-smi", node.number));
            }
            if gpus.contains_key(&node.number) {
                self.warn(format!(
                    "/dev/nvidia{} clashes with another GPU's index; skipped",
                    node.number
                ));
                continue;
            }
            let found = self.found_gpu(node.number, proc_uuids.get(minor).cloned(), node, *minor, &[]);
            gpus.insert(node.number, found);
        }
        gpus.into_values().collect()
    }

    fn found_gpu(&mut self, index: u32, uuid: Option<String>, node: &GpuNode, minor: u32, migs: &[SmiMig]) -> FoundGpu {
        let instances = self.proc_mig_instances(minor);
        let mut public_migs = Vec::new();
        let mut mig_edits = Vec::new();
        for m in migs {
            let ids = m.ids.or_else(|| {
                // Without ids in the UUID, the pairing is only certain when there is exactly one of each.
                (migs.len() == 1 && instances.len() == 1).then(|| instances[0])
            });
            let mut caps_host = Vec::new();
            if let Some((gi, ci)) = ids {
                match self.mig_cap_nodes(minor, gi, ci) {
                    Some(nodes) => caps_host = nodes,
                    None => self.warn(format!(
                        "MIG device {index}:{} (gi {gi}, ci {ci}): /dev/nvidia-caps nodes not found; only the parent \
                         GPU node is given",
                        m.index
                    )),
                }
            } else {
                self.warn(format!(
                    "MIG device {index}:{}: GPU/compute instance ids unknown; only the parent GPU node is given",
                    m.index
                ));
            }
            let (gi, ci) = ids.unwrap_or((UNKNOWN_INSTANCE, UNKNOWN_INSTANCE));
            public_migs.push(Mig {
                gpu: index,
                gi,
                ci,
                uuid: m.uuid.clone(),
                caps: caps_host
                    .iter()
                    .map(|h| container_dev_path(&self.opts.dev_root, h))
                    .collect(),
            });
            mig_edits.push((m.index, caps_host));
        }
        FoundGpu {
            public: Gpu {
                index,
                uuid,
                node: PathBuf::from(format!("/dev/nvidia{}", node.number)),
                mig: public_migs,
            },
            host_node: node.host.clone(),
            migs: mig_edits,
        }
    }

    /// The (gi, ci) pairs present under `/proc/driver/nvidia/capabilities/gpu<minor>/mig`, sorted.
    fn proc_mig_instances(&self, minor: u32) -> Vec<(u32, u32)> {
        let mut out = Vec::new();
        let Some(dir) = self.proc_path(&format!("driver/nvidia/capabilities/gpu{minor}/mig")) else {
            return out;
        };
        for gi in numbered_entries(&dir, "gi") {
            for ci in numbered_entries(&dir.join(format!("gi{gi}")), "ci") {
                out.push((gi, ci));
            }
        }
        out.sort_unstable();
        out
    }

    /// Host paths of the cap nodes for a GPU instance and a compute instance in it.
    fn mig_cap_nodes(&self, minor: u32, gi: u32, ci: u32) -> Option<Vec<PathBuf>> {
        let base = format!("driver/nvidia/capabilities/gpu{minor}/mig/gi{gi}");
        let mut out = Vec::new();
        for access in [format!("{base}/access"), format!("{base}/ci{ci}/access")] {
            let text = fs::read_to_string(self.proc_path(&access)?).ok()?;
            let cap_minor = text.lines().find_map(|l| {
                let (key, val) = l.split_once(':')?;
                (key.trim() == "DeviceFileMinor").then(|| val.trim().parse::<u32>().ok())?
            })?;
            out.push(find_cap_node(&self.opts.dev_root, cap_minor)?);
        }
        Some(out)
    }
}

/// GPU device nodes `<dev_root>/dev/nvidia<N>` (character devices), keyed by minor number.
fn gpu_nodes(dev_root: &Path) -> io::Result<BTreeMap<u32, GpuNode>> {
    let dev = dev_root.join("dev");
    let entries = match fs::read_dir(&dev) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(e),
    };
    let mut out = BTreeMap::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(number) = name
            .to_str()
            .and_then(|n| n.strip_prefix("nvidia"))
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let host = entry.path();
        let Some((_, minor)) = char_device_numbers(&host) else {
            continue;
        };
        out.insert(minor, GpuNode { number, host });
    }
    Ok(out)
}

/// (major, minor) of a character device; None for anything else.
fn char_device_numbers(path: &Path) -> Option<(u32, u32)> {
    let meta = fs::metadata(path).ok()?;
    if !meta.file_type().is_char_device() {
        return None;
    }
    let rdev = meta.rdev();
    Some((dev::major(rdev) as u32, dev::minor(rdev) as u32))
}

fn is_char_device(path: &Path) -> bool {
    char_device_numbers(path).is_some()
}

/// The `/dev/nvidia-caps` node with the given minor number (host path), preferring `nvidia-cap<minor>`.
fn find_cap_node(dev_root: &Path, minor: u32) -> Option<PathBuf> {
    let dir = dev_root.join("dev/nvidia-caps");
    let named = dir.join(format!("nvidia-cap{minor}"));
    if char_device_numbers(&named).is_some_and(|(_, m)| m == minor) {
        return Some(named);
    }
    let mut found: Vec<PathBuf> = fs::read_dir(&dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| char_device_numbers(p).is_some_and(|(_, m)| m == minor))
        .collect();
    found.sort();
    found.into_iter().next()
}

/// Container path (`/dev/...`) of a node found under `dev_root`.
fn container_dev_path(dev_root: &Path, host: &Path) -> PathBuf {
    Path::new("/").join(host.strip_prefix(dev_root).unwrap_or(host))
}

/// Numbers N of the entries named `<prefix>N` in a folder.
fn numbered_entries(dir: &Path, prefix: &str) -> Vec<u32> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_prefix(prefix)?.parse::<u32>().ok())
        .collect()
}

/// Parses `nvidia-smi -L` output.
fn parse_smi_list(text: &str) -> Vec<SmiGpu> {
    let mut gpus: Vec<SmiGpu> = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        let uuid = line
            .rfind("(UUID:")
            .and_then(|i| line[i + 6..].split(')').next())
            .map(|u| u.trim().to_string())
            .filter(|u| !u.is_empty());
        if let Some(rest) = line.strip_prefix("GPU ") {
            let Some(index) = rest.split(':').next().and_then(|n| n.trim().parse::<u32>().ok()) else {
                continue;
            };
            gpus.push(SmiGpu {
                index,
                uuid: uuid.filter(|u| u.starts_with("GPU-")),
                migs: Vec::new(),
            });
        } else if line.starts_with("MIG ") {
            let Some(gpu) = gpus.last_mut() else {
                continue;
            };
            let Some(index) = line
                .split_once("Device")
                .and_then(|(_, rest)| rest.split(':').next())
                .and_then(|n| n.trim().parse::<u32>().ok())
            else {
                continue;
            };
            let ids = uuid.as_deref().and_then(|u| {
                let mut parts = u.strip_prefix("MIG-GPU-")?.rsplitn(3, '/');
                let ci = parts.next()?.parse().ok()?;
                let gi = parts.next()?.parse().ok()?;
                Some((gi, ci))
            });
            gpu.migs.push(SmiMig { index, uuid, ids });
        }
    }
    gpus
}

/// Runs a command, returning its stdout when it exits 0 within `timeout`.
fn run_with_timeout(mut cmd: Command, timeout: Duration) -> io::Result<String> {
    let mut child = cmd.spawn()?;
    let mut stdout = child.stdout.take();
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(out) = stdout.as_mut() {
            let _ = out.read_to_end(&mut buf);
        }
        buf
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::new(io::ErrorKind::TimedOut, "timed out"));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = reader.join().unwrap_or_default();
    if !status.success() {
        return Err(io::Error::other(format!("exit {status}")));
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn build_spec(
    opts: &Options,
    gpus: &[FoundGpu],
    control: &[PathBuf],
    mounts: &BTreeMap<PathBuf, PathBuf>,
    folders: &BTreeSet<PathBuf>,
    warnings: &mut Vec<String>,
) -> Value {
    let node = |host: &Path| -> Value {
        let path = container_dev_path(&opts.dev_root, host);
        if opts.dev_root == Path::new("/") {
            json!({ "path": path })
        } else {
            json!({ "path": path, "hostPath": host })
        }
    };
    let nodes = |hosts: &BTreeSet<PathBuf>| -> Value {
        let mut sorted: Vec<&PathBuf> = hosts.iter().collect();
        sorted.sort_by_key(|h| container_dev_path(&opts.dev_root, h));
        Value::Array(sorted.into_iter().map(|h| node(h)).collect())
    };
    let device = |name: String, hosts: &BTreeSet<PathBuf>| -> Value {
        json!({ "name": name, "containerEdits": { "deviceNodes": nodes(hosts) } })
    };

    let mut by_index = Vec::new();
    let mut by_uuid = BTreeMap::new();
    let mut all = BTreeSet::new();
    for g in gpus {
        let gpu_nodes: BTreeSet<PathBuf> = [g.host_node.clone()].into();
        all.insert(g.host_node.clone());
        by_index.push(device(g.public.index.to_string(), &gpu_nodes));
        if let Some(uuid) = &g.public.uuid {
            add_uuid_device(&mut by_uuid, uuid, &gpu_nodes, warnings);
        }
        for ((mig_index, caps), public) in g.migs.iter().zip(&g.public.mig) {
            let mut mig_nodes = gpu_nodes.clone();
            mig_nodes.extend(caps.iter().cloned());
            all.extend(caps.iter().cloned());
            by_index.push(device(format!("{}:{mig_index}", g.public.index), &mig_nodes));
            if let Some(uuid) = &public.uuid {
                add_uuid_device(&mut by_uuid, uuid, &mig_nodes, warnings);
            }
        }
    }
    let mut devices = by_index;
    devices.extend(by_uuid.into_iter().map(|(name, hosts)| device(name, &hosts)));
    devices.push(device("all".to_string(), &all));

    let mut edits = serde_json::Map::new();
    edits.insert("env".to_string(), json!(["NVIDIA_VISIBLE_DEVICES=void"]));
    let control_hosts: BTreeSet<PathBuf> = control.iter().map(|p| host_path(&opts.dev_root, p)).collect();
    if !control_hosts.is_empty() {
        edits.insert("deviceNodes".to_string(), nodes(&control_hosts));
    }
    if !folders.is_empty() {
        let arg0 = opts
            .hook_binary
            .file_name()
            .map_or_else(|| opts.hook_binary.to_string_lossy(), |n| n.to_string_lossy());
        let mut args = vec![arg0.into_owned(), "cdi-hook".to_string(), "update-ldcache".to_string()];
        for folder in folders {
            args.push("--folder".to_string());
            args.push(folder.to_string_lossy().into_owned());
        }
        edits.insert(
            "hooks".to_string(),
            json!([{ "hookName": "createContainer", "path": opts.hook_binary, "args": args }]),
        );
    }
    if !mounts.is_empty() {
        let list: Vec<Value> = mounts
            .iter()
            .map(|(container, host)| json!({ "hostPath": host, "containerPath": container, "options": MOUNT_OPTIONS }))
            .collect();
        edits.insert("mounts".to_string(), Value::Array(list));
    }

    json!({
        "cdiVersion": CDI_VERSION,
        "kind": KIND,
        "devices": devices,
        "containerEdits": Value::Object(edits),
    })
}

fn add_uuid_device(
    by_uuid: &mut BTreeMap<String, BTreeSet<PathBuf>>,
    uuid: &str,
    hosts: &BTreeSet<PathBuf>,
    warnings: &mut Vec<String>,
) {
    if valid_device_name(uuid) {
        by_uuid.insert(uuid.to_string(), hosts.clone());
    } else {
        let msg = format!("UUID {uuid:?} is not a valid CDI device name; device not named by UUID");
        if !warnings.contains(&msg) {
            warnings.push(msg);
        }
    }
}

/// CDI device names: letters, digits, `_`, `-`, `.`, `:`; starting and ending with a letter or digit.
fn valid_device_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
}

/// Whether a file name matches one of [`LIBRARY_PATTERNS`].
fn is_driver_library(name: &str) -> bool {
    LIBRARY_PATTERNS.iter().any(|p| glob_match(p, name))
}

/// Shell-style match supporting only `*`.
fn glob_match(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let Some(first) = parts.next() else {
        return text.is_empty();
    };
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// `535.104.05`-like: at least two dot-separated all-digit parts.
fn is_driver_version(text: &str) -> bool {
    let parts: Vec<&str> = text.split('.').collect();
    parts.len() >= 2
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// The driver version in a library file name (`libcuda.so.535.104.05` → `535.104.05`).
fn library_version(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let (_, suffix) = name.split_once(".so.")?;
    is_driver_version(suffix).then(|| suffix.to_string())
}

/// The highest version among the libcuda / libnvidia-ml files.
fn version_from_libraries(libs: &[PathBuf]) -> Option<String> {
    libs.iter()
        .filter(|l| {
            l.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libcuda.so.") || n.starts_with("libnvidia-ml.so."))
        })
        .filter_map(|l| library_version(l))
        .max_by_key(|v| v.split('.').map(|p| p.parse::<u64>().unwrap_or(0)).collect::<Vec<_>>())
}

/// False only for ELF files built for another architecture or word size than this program (e.g. 32-bit compat
/// libraries); anything unrecognised is accepted.
fn elf_matches_host(path: &Path) -> bool {
    let expected: u16 = match std::env::consts::ARCH {
        "x86_64" => 62,
        "aarch64" => 183,
        _ => return true,
    };
    let mut header = [0u8; 20];
    let Ok(mut file) = fs::File::open(path) else {
        return true;
    };
    if file.read_exact(&mut header).is_err() || &header[..4] != b"\x7fELF" {
        return true;
    }
    let machine = if header[5] == 2 {
        u16::from_be_bytes([header[18], header[19]])
    } else {
        u16::from_le_bytes([header[18], header[19]])
    };
    header[4] == 2 && machine == expected
}

/// `path` resolved inside `root` (the absolute path inside it); NotFound when it is not there.
fn resolve_in_root(root: &Path, path: &Path) -> io::Result<PathBuf> {
    inroot::resolve(root, path)?.ok_or_else(|| io::ErrorKind::NotFound.into())
}

/// Writes `target` (mode 0644) through a temporary file in `dir` and a rename, never following a symlink.
fn write_atomic(dir: &Path, target: &Path, data: &[u8]) -> io::Result<()> {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let result = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        file.write_all(data)?;
        file.set_permissions(fs::Permissions::from_mode(0o644))?;
        file.sync_all()?;
        fs::rename(&tmp, target)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Whether YAML text has a top-level `kind: nvidia.com/gpu` line (the value optionally quoted).
fn yaml_declares_kind(text: &str) -> bool {
    text.lines().any(|line| {
        let Some(value) = line.strip_prefix("kind:") else {
            return false;
        };
        let value = value.split(" #").next().unwrap_or_default().trim();
        let value = strip_outer_quotes(value);
        value == KIND
    })
}

/// Removes one pair of matching outer `"` or `'` quotes.
fn strip_outer_quotes(text: &str) -> &str {
    for q in ['"', '\''] {
        if let Some(inner) = text.strip_prefix(q).and_then(|t| t.strip_suffix(q)) {
            return inner;
        }
    }
    text
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
