//! Container Device Interface: devices (GPUs and others) described by CDI spec files and
//! injected into containers that ask for them.
//!
//! A container asks through the CRI `ContainerConfig.cdi_devices` field or through
//! `cdi.k8s.io/*` annotations (what device plugins send), each naming fully qualified devices
//! (`vendor.com/class=name`, comma-separated in annotations). [`Cdi::resolve`] looks them up in
//! the [`registry::Registry`] and [`Cdi::inject`] applies their edits to the generated OCI spec. NVIDIA GPUs are
//! discovered at start ([`nvidia`]) into a generated spec when the node has no NVIDIA spec.

pub mod inject;
pub mod nvidia;
pub mod registry;
pub mod spec;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

pub use registry::{Listing, Registry};

use crate::config::{CdiConfig, CgroupDriver};

/// Annotation key prefix through which device plugins request CDI devices.
pub const ANNOTATION_PREFIX: &str = "cdi.k8s.io/";

/// CDI as configured for this daemon.
#[derive(Debug)]
pub struct Cdi {
    registry: Option<Registry>,
    /// Create `/dev/char/MAJ:MIN` links for injected nodes (systemd cgroup driver).
    dev_links: bool,
}

/// Name of the spec file NVIDIA discovery writes (in the last, highest-priority spec dir).
pub const NVIDIA_SPEC_FILE: &str = "berth-nvidia.json";

impl Cdi {
    /// CDI as `cfg` says; runs NVIDIA discovery first when it is on. Never fails: a problem
    /// with discovery is logged and the node simply offers no generated GPU devices.
    pub fn start(cfg: &CdiConfig, driver: CgroupDriver) -> Self {
        if !cfg.enabled {
            return Self::new(None, false);
        }
        if cfg.nvidia_discovery {
            match discover_nvidia(cfg, false) {
                Ok(Some(report)) => {
                    tracing::info!(spec = %report.path.display(), gpus = report.gpus, devices = ?report.devices, "NVIDIA GPUs discovered")
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "NVIDIA discovery failed"),
            }
        }
        Self::new(Some(cfg.spec_dirs.clone()), driver == CgroupDriver::Systemd)
    }

    /// CDI over `spec_dirs` (lowest priority first); `None`: CDI is off and requests fail.
    pub fn new(spec_dirs: Option<Vec<PathBuf>>, dev_links: bool) -> Self {
        Self {
            registry: spec_dirs.map(Registry::new),
            dev_links,
        }
    }

    /// The known devices and spec errors (`None` when CDI is off).
    pub fn listing(&self) -> Option<Listing> {
        self.registry.as_ref().map(Registry::listing)
    }

    /// Resolves the devices a container asks for (its CRI `cdi_devices` and annotations) into
    /// the edits to apply (an error names an unknown device). Cheap when none is asked for (no
    /// file is read).
    pub fn resolve(
        &self,
        devices: &[String],
        annotations: &BTreeMap<String, String>,
    ) -> Result<Vec<registry::Edit>, String> {
        let names = requested(devices, annotations)?;
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let Some(reg) = &self.registry else {
            return Err(format!(
                "CDI devices {names:?} requested but CDI is disabled ([cdi] enabled = false)"
            ));
        };
        reg.resolve(&names)
    }

    /// Applies `edits` (from [`Cdi::resolve`]) to `oci`.
    pub fn inject(&self, oci: &mut Spec, edits: &[registry::Edit]) -> Result<(), String> {
        let nodes = inject::apply(oci, edits)?;
        if self.dev_links {
            // Without these links systemd drops the device from the container's cgroup allow
            // list on its next daemon-reload, and the GPU vanishes from a running container.
            if let Err(e) = ensure_dev_links(Path::new("/dev"), &nodes) {
                tracing::warn!(error = %e, "creating /dev/char links for CDI devices");
            }
        }
        Ok(())
    }
}

/// What NVIDIA discovery generated.
#[derive(Debug, Clone)]
pub struct NvidiaReport {
    pub path: PathBuf,
    pub gpus: usize,
    pub devices: Vec<String>,
    pub warnings: Vec<String>,
}

/// NVIDIA discovery: when `/dev/nvidia*` exist and no other spec declares `nvidia.com/gpu`
/// (unless `force`), writes a spec for every GPU to `<last spec dir>/berth-nvidia.json`. A node
/// without NVIDIA GPUs gets no file (a stale generated one is removed). The spec's
/// createContainer hook runs this berthd binary (`berthd cdi-hook update-ldcache`).
pub fn discover_nvidia(cfg: &CdiConfig, force: bool) -> Result<Option<NvidiaReport>, String> {
    let Some(out_dir) = cfg.spec_dirs.last() else {
        return Err("cdi.spec_dirs is empty".into());
    };
    let generated = out_dir.join(NVIDIA_SPEC_FILE);
    // An operator's own NVIDIA spec (e.g. from NVIDIA's toolkit) wins over discovery.
    if !force && nvidia::has_nvidia_spec(&cfg.spec_dirs, NVIDIA_SPEC_FILE) {
        tracing::info!("an NVIDIA CDI spec is present; discovery skipped");
        return Ok(None);
    }
    let hook_binary = std::env::current_exe().map_err(|e| format!("locating berthd: {e}"))?;
    let opts = nvidia::Options {
        dev_root: cfg.nvidia_dev_root.clone(),
        driver_root: cfg.nvidia_driver_root.clone(),
        nvidia_smi: None,
        hook_binary,
    };
    let Some(found) = nvidia::discover(&opts).map_err(|e| format!("NVIDIA discovery: {e}"))? else {
        let _ = std::fs::remove_file(&generated);
        return Ok(None);
    };
    let spec: spec::Spec = serde_json::from_value(found.spec.clone()).map_err(|e| format!("generated spec: {e}"))?;
    spec::validate(&spec).map_err(|e| format!("generated spec: {e}"))?;
    let path = nvidia::write_spec(out_dir, NVIDIA_SPEC_FILE, &found.spec)
        .map_err(|e| format!("{}: {e}", generated.display()))?;
    for w in &found.warnings {
        tracing::warn!(warning = %w, "NVIDIA discovery");
    }
    Ok(Some(NvidiaReport {
        path,
        gpus: found.gpus.len(),
        devices: spec
            .devices
            .iter()
            .map(|d| format!("{}={}", spec.kind, d.name))
            .collect(),
        warnings: found.warnings,
    }))
}

/// Fully qualified device names a container asks for: `cdi_devices` first, then each
/// `cdi.k8s.io/*` annotation's comma-separated list (annotation keys in order), without
/// duplicates. A malformed name is an error naming it and where it came from.
pub fn requested(devices: &[String], annotations: &BTreeMap<String, String>) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |name: &str, from: &str| -> Result<(), String> {
        spec::parse_qualified(name).map_err(|e| format!("{from}: {e}"))?;
        if !out.iter().any(|n| n == name) {
            out.push(name.to_owned());
        }
        Ok(())
    };
    for (i, d) in devices.iter().enumerate() {
        add(d, &format!("cdi_devices[{i}]"))?;
    }
    for (k, v) in annotations {
        if !k.starts_with(ANNOTATION_PREFIX) {
            continue;
        }
        for name in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            add(name, &format!("annotation {k}"))?;
        }
    }
    Ok(out)
}

/// Makes sure `<dev>/char/MAJ:MIN` (or `block/`) exists for each node, as a symlink to the host
/// node; existing entries are left alone.
pub fn ensure_dev_links(dev: &Path, nodes: &[inject::HostNode]) -> std::io::Result<()> {
    for n in nodes {
        let dir = dev.join(if n.block { "block" } else { "char" });
        let link = dir.join(format!("{}:{}", n.major, n.minor));
        if link.symlink_metadata().is_ok() {
            continue;
        }
        std::fs::create_dir_all(&dir)?;
        match std::os::unix::fs::symlink(&n.host_path, &link) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn requests_from_field_and_annotations() {
        let mut devices = vec!["nvidia.com/gpu=0".to_string()];
        let mut annotations = BTreeMap::new();
        annotations.insert(
            "cdi.k8s.io/nvidia-device-plugin_uuid".to_string(),
            "nvidia.com/gpu=0, nvidia.com/gpu=1".to_string(),
        );
        annotations.insert("other".into(), "x=y".into());
        assert_eq!(
            requested(&devices, &annotations).unwrap(),
            vec!["nvidia.com/gpu=0", "nvidia.com/gpu=1"]
        );
        annotations.insert("cdi.k8s.io/bad".into(), "gpu0".into());
        let e = requested(&devices, &annotations).unwrap_err();
        assert!(e.contains("annotation cdi.k8s.io/bad") && e.contains("\"gpu0\""), "{e}");
        devices = vec!["nope".into()];
        assert!(requested(&devices, &annotations)
            .unwrap_err()
            .starts_with("cdi_devices[0]"));
    }

    #[test]
    fn disabled_cdi_rejects_requests_only() {
        let cdi = Cdi::new(None, false);
        assert!(cdi.resolve(&[], &BTreeMap::new()).unwrap().is_empty());
        let devices = vec!["v.com/c=0".to_string()];
        assert!(cdi
            .resolve(&devices, &BTreeMap::new())
            .unwrap_err()
            .contains("disabled"));
    }

    #[test]
    fn dev_char_links() {
        let tmp = tempfile::tempdir().unwrap();
        let nodes = vec![
            inject::HostNode {
                block: false,
                major: 195,
                minor: 0,
                host_path: "/dev/nvidia0".into(),
            },
            inject::HostNode {
                block: true,
                major: 8,
                minor: 1,
                host_path: "/dev/sda1".into(),
            },
        ];
        ensure_dev_links(tmp.path(), &nodes).unwrap();
        ensure_dev_links(tmp.path(), &nodes).unwrap();
        assert_eq!(
            std::fs::read_link(tmp.path().join("char/195:0")).unwrap(),
            Path::new("/dev/nvidia0")
        );
        assert_eq!(
            std::fs::read_link(tmp.path().join("block/8:1")).unwrap(),
            Path::new("/dev/sda1")
        );
    }
}
