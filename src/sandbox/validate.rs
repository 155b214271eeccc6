//! What makes a pod sandbox request valid, checked before anything is made; and the name
//! rule pod and container names share.

use super::{NsMode, SandboxSpec};

/// Whether `name` can name a pod, a namespace, a uid or a container: at most 253 bytes,
/// no `/` (names become path components) and no NUL.
pub fn valid_name(name: &str) -> bool {
    name.len() <= 253 && !name.contains(['/', '\0'])
}

/// Pod annotation sizing this pod's `/dev/shm` in bytes (what `berthctl run --shm-size`
/// sets); without it the pod gets `sandbox_shm_size`.
pub const SHM_SIZE_ANNOTATION: &str = "io.berth.shm-size";

/// The pod's own `/dev/shm` size, if it asks for one: 4 KiB to 1 TiB.
pub(super) fn shm_size(annotations: &std::collections::BTreeMap<String, String>) -> Result<Option<u64>, String> {
    let Some(v) = annotations.get(SHM_SIZE_ANNOTATION) else {
        return Ok(None);
    };
    match v.trim().parse::<u64>() {
        Ok(n) if (4096..=1 << 40).contains(&n) => Ok(Some(n)),
        _ => Err(format!(
            "annotation {SHM_SIZE_ANNOTATION}: {v:?} is not a size in bytes between 4096 and 1 TiB"
        )),
    }
}

pub(super) fn validate(spec: &SandboxSpec) -> Result<(), String> {
    let invalid = |m: &str| Err(m.to_string());
    shm_size(&spec.annotations)?;
    super::hosts_group::validate(&spec.annotations)?;
    if spec.name.is_empty() {
        return invalid("sandbox config metadata.name is required");
    }
    if spec.uid.is_empty() {
        return invalid("sandbox config metadata.uid is required");
    }
    if spec.namespace.is_empty() {
        return invalid("sandbox config metadata.namespace is required");
    }
    for (what, value) in [("name", &spec.name), ("namespace", &spec.namespace), ("uid", &spec.uid)] {
        if !valid_name(value) {
            return Err(format!("sandbox metadata.{what} {value:?} is not a valid name"));
        }
    }
    if spec.hostname.len() > 64 || spec.hostname.contains(['/', '\0', ' ']) {
        return Err(format!("hostname {:?} is not valid", spec.hostname));
    }
    if matches!(spec.namespaces.network, NsMode::Container | NsMode::Target) {
        return invalid("network namespace mode must be POD or NODE for a sandbox");
    }
    if matches!(spec.namespaces.ipc, NsMode::Container | NsMode::Target) {
        return invalid("IPC namespace mode must be POD or NODE for a sandbox");
    }
    for key in spec.sysctls.keys() {
        let k = key.replace('/', ".");
        let net = k.starts_with("net.");
        let ipc = k.starts_with("kernel.shm")
            || k.starts_with("kernel.msg")
            || k == "kernel.sem"
            || k.starts_with("fs.mqueue.");
        if !net && !ipc {
            return Err(format!("sysctl {key:?} is not namespaced and cannot be set for a pod"));
        }
        if net && spec.namespaces.network == NsMode::Node {
            return Err(format!(
                "sysctl {key:?} would change the host: the pod uses the host network"
            ));
        }
        if ipc && spec.namespaces.ipc == NsMode::Node {
            return Err(format!(
                "sysctl {key:?} would change the host: the pod uses the host IPC namespace"
            ));
        }
    }
    super::bandwidth::from_annotations(&spec.annotations)?;
    for pm in &spec.port_mappings {
        if pm.container_port == 0 {
            return Err("port mapping with container port 0".into());
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn shm_size_annotation_is_bytes_within_bounds() {
        let with = |v: &str| std::collections::BTreeMap::from([(SHM_SIZE_ANNOTATION.to_string(), v.to_string())]);
        assert_eq!(shm_size(&Default::default()).unwrap(), None);
        assert_eq!(shm_size(&with("16777216")).unwrap(), Some(16 << 20));
        for bad in ["16m", "0", "100", "-1", "2199023255553"] {
            let e = shm_size(&with(bad)).unwrap_err();
            assert!(e.contains(SHM_SIZE_ANNOTATION), "{e}");
        }
    }
}
