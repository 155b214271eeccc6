//! The driver's user-space side: its libraries, binaries, firmware and sockets under the
//! driver root, found through the linker cache and the usual folders, and its version.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::devices::*;
use super::ldcache;
use super::smi::*;
use super::types::*;
use crate::sys::inroot::{self, host_path};

impl Ctx<'_> {
    pub(super) fn warn(&mut self, msg: String) {
        if !self.warnings.contains(&msg) {
            self.warnings.push(msg);
        }
    }

    /// `proc/<rel>` under the driver root, else under the device root.
    pub(super) fn proc_path(&self, rel: &str) -> Option<PathBuf> {
        [&self.opts.driver_root, &self.opts.dev_root]
            .into_iter()
            .map(|root| root.join("proc").join(rel))
            .find(|p| p.exists())
    }

    pub(super) fn proc_driver_version(&self) -> Option<String> {
        let text = fs::read_to_string(self.proc_path("driver/nvidia/version")?).ok()?;
        let first = text.lines().next()?;
        let after = first.split_once("Module").map_or(first, |(_, rest)| rest);
        after
            .split_whitespace()
            .find(|tok| is_driver_version(tok))
            .map(str::to_string)
    }

    /// Maps device minor numbers to GPU UUIDs from `/proc/driver/nvidia/gpus/*/information`.
    pub(super) fn proc_gpu_uuids(&self) -> BTreeMap<u32, String> {
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
    pub(super) fn find_libraries(&mut self) -> Vec<PathBuf> {
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
    pub(super) fn select_library_version(&mut self, libs: Vec<PathBuf>, version: Option<&str>) -> Vec<PathBuf> {
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
    pub(super) fn find_binaries(&self) -> Vec<(PathBuf, PathBuf)> {
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

    pub(super) fn find_nvidia_smi(&self) -> Option<PathBuf> {
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
    pub(super) fn run_nvidia_smi(&mut self, libs: &[PathBuf]) -> Option<Vec<SmiGpu>> {
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
    pub(super) fn assemble_gpus(
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

    pub(super) fn found_gpu(
        &mut self,
        index: u32,
        uuid: Option<String>,
        node: &GpuNode,
        minor: u32,
        migs: &[SmiMig],
    ) -> FoundGpu {
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
    pub(super) fn proc_mig_instances(&self, minor: u32) -> Vec<(u32, u32)> {
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
    pub(super) fn mig_cap_nodes(&self, minor: u32, gi: u32, ci: u32) -> Option<Vec<PathBuf>> {
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

/// Whether a file name matches one of [`LIBRARY_PATTERNS`].
pub(super) fn is_driver_library(name: &str) -> bool {
    LIBRARY_PATTERNS.iter().any(|p| glob_match(p, name))
}

/// Shell-style match supporting only `*`.
pub(super) fn glob_match(pattern: &str, text: &str) -> bool {
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
pub(super) fn is_driver_version(text: &str) -> bool {
    let parts: Vec<&str> = text.split('.').collect();
    parts.len() >= 2
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// The driver version in a library file name (`libcuda.so.535.104.05` → `535.104.05`).
pub(super) fn library_version(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let (_, suffix) = name.split_once(".so.")?;
    is_driver_version(suffix).then(|| suffix.to_string())
}

/// The highest version among the libcuda / libnvidia-ml files.
pub(super) fn version_from_libraries(libs: &[PathBuf]) -> Option<String> {
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
pub(super) fn elf_matches_host(path: &Path) -> bool {
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
pub(super) fn resolve_in_root(root: &Path, path: &Path) -> io::Result<PathBuf> {
    inroot::resolve(root, path)?.ok_or_else(|| io::ErrorKind::NotFound.into())
}
