//! Containers of a pod with its own user namespace: the container must ask for its pod's
//! (or not say), and the sources of its volume mounts are shifted into that namespace with
//! idmapped mounts, so what is owned by N on disk is owned by N inside the pod. A source
//! whose filesystem cannot be idmapped is mounted as it is (its owners then show as the
//! overflow ID inside), with a warning.

use std::path::Path;

use super::error::ContainerError;
use super::lifecycle::Containers;
use super::model::{ContainerSpec, MountSpec, PodUserNs};
use crate::sandbox::{SandboxRecord, UserNsChoice};

/// The pod's user namespace for a container of `sandbox`, once the container's own request
/// agrees with it.
pub(super) fn pod_userns(sandbox: &SandboxRecord, spec: &ContainerSpec) -> Result<Option<PodUserNs>, ContainerError> {
    let pod = sandbox.spec.userns;
    let invalid = |m: String| Err(ContainerError::Invalid(m));
    match (spec.security.userns, pod) {
        (UserNsChoice::Unset, _) | (UserNsChoice::Node, None) => {}
        (UserNsChoice::Pod(asked), Some(map)) if asked == map => {}
        (UserNsChoice::Pod(_), Some(_)) => {
            return invalid("the container's user namespace mappings differ from its pod's".into())
        }
        (UserNsChoice::Pod(_), None) => {
            return invalid(format!(
                "the container asks for its pod's user namespace, but pod {} runs in the node's",
                sandbox.id
            ))
        }
        (UserNsChoice::Node, Some(_)) => {
            return invalid(format!(
                "pod {} has its own user namespace: its containers cannot use the node's",
                sandbox.id
            ))
        }
    }
    let Some(map) = pod else { return Ok(None) };
    if spec.security.pid_mode == crate::sandbox::NsMode::Node {
        return invalid("a container in a pod's own user namespace cannot use the node's PID namespace".into());
    }
    let pin = sandbox.userns.clone().ok_or_else(|| {
        ContainerError::FailedPrecondition(format!("sandbox {} has lost its user namespace", sandbox.id))
    })?;
    Ok(Some(PodUserNs { pin, map }))
}

impl Containers {
    /// `mounts` with each host directory or file source replaced by an idmapped view of it
    /// (image volumes are shifted when they are mounted; devices stay as they are).
    pub(super) fn idmap_volumes(
        &self,
        id: &str,
        mounts: Vec<MountSpec>,
        userns: &PodUserNs,
    ) -> Result<Vec<MountSpec>, ContainerError> {
        let mut out = Vec::with_capacity(mounts.len());
        for (n, mut m) in mounts.into_iter().enumerate() {
            let source = Path::new(&m.host_path);
            let shiftable = m.image.is_none()
                && !m.host_path.is_empty()
                && std::fs::metadata(source).is_ok_and(|md| md.is_dir() || md.is_file());
            if shiftable {
                match self.driver.idmap_volume(id, n, source, userns) {
                    Ok(view) => m.host_path = view.display().to_string(),
                    Err(e) => tracing::warn!(
                        container = %id,
                        source = %m.host_path,
                        error = %e,
                        "volume mounted without idmapping: its owners show as the overflow ID in the pod"
                    ),
                }
            }
            out.push(m);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::{IdMapping, SandboxSpec, SandboxState, UserNsMap};

    fn map(host_id: u32) -> UserNsMap {
        let m = IdMapping {
            container_id: 0,
            host_id,
            length: 65_536,
        };
        UserNsMap { uids: m, gids: m }
    }

    fn sandbox(userns: Option<UserNsMap>) -> SandboxRecord {
        SandboxRecord {
            id: "pod".into(),
            spec: SandboxSpec {
                userns,
                ..Default::default()
            },
            state: SandboxState::Ready,
            created_at: 0,
            netns: None,
            userns: userns.map(|_| "/run/berth/userns/pod".into()),
            ips: vec![],
            infra_pid: None,
            infra_start: 0,
            cgroup: String::new(),
            cgroup_dirs: vec![],
            resources: None,
        }
    }

    fn asking(choice: UserNsChoice) -> ContainerSpec {
        let mut spec = ContainerSpec::default();
        spec.security.userns = choice;
        spec
    }

    #[test]
    fn a_container_takes_its_pods_user_namespace_or_nothing() {
        let private = sandbox(Some(map(100_000)));
        let node = sandbox(None);
        let joined = pod_userns(&private, &asking(UserNsChoice::Unset)).expect("unset joins the pod's");
        assert_eq!(joined.map(|u| u.map), Some(map(100_000)));
        assert!(pod_userns(&private, &asking(UserNsChoice::Pod(map(100_000))))
            .expect("same")
            .is_some());
        assert!(pod_userns(&node, &asking(UserNsChoice::Node)).expect("node").is_none());
        assert!(pod_userns(&node, &asking(UserNsChoice::Unset))
            .expect("unset")
            .is_none());
        for (sb, choice, says) in [
            (&private, UserNsChoice::Pod(map(200_000)), "differ"),
            (&private, UserNsChoice::Node, "cannot use the node's"),
            (&node, UserNsChoice::Pod(map(100_000)), "runs in the node's"),
        ] {
            let err = pod_userns(sb, &asking(choice)).expect_err("refused").to_string();
            assert!(err.contains(says), "{err}");
        }
        let mut host_pid = asking(UserNsChoice::Unset);
        host_pid.security.pid_mode = crate::sandbox::NsMode::Node;
        assert!(pod_userns(&private, &host_pid).is_err());
    }
}
