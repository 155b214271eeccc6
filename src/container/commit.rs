//! What committing a container takes from it: its image, its writable layer and the run
//! settings it was made with. A running container can be frozen (its cgroup's freezer) for
//! as long as the returned [`CommitSource`] lives, so its files do not change while the
//! layer is written; dropping it thaws the container.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use super::error::{setup_err, ContainerError};
use super::lifecycle::Containers;
use super::model::ContainerState;
use crate::cgroup::{self, Hierarchy};

/// A container's part of a commit.
#[derive(Debug)]
pub struct CommitSource {
    pub id: String,
    /// The image id it was made from.
    pub image_id: String,
    /// Its writable layer (overlayfs upper directory).
    pub upper: PathBuf,
    /// The variables it sets over its image's.
    pub env: Vec<(String, String)>,
    pub working_dir: String,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    /// Its command line, for the history entry.
    pub created_by: String,
    frozen: Option<Frozen>,
}

impl CommitSource {
    /// Whether the container is frozen for the commit.
    pub fn is_frozen(&self) -> bool {
        self.frozen.is_some()
    }
}

#[derive(Debug)]
struct Frozen {
    hierarchy: Hierarchy,
    path: String,
}

impl Drop for Frozen {
    fn drop(&mut self) {
        if let Err(e) = cgroup::set_frozen(&self.hierarchy, &self.path, false) {
            tracing::warn!(cgroup = %self.path, error = %e, "thawing a container after a commit");
        }
    }
}

fn freeze(id: &str, cgroups_path: &str) -> Result<Frozen, ContainerError> {
    let failed =
        |e: String| ContainerError::FailedPrecondition(format!("cannot pause container {id} for the commit: {e}"));
    let path = cgroup::runtime_path(cgroups_path).map_err(failed)?;
    let hierarchy = Hierarchy::detect().map_err(|e| failed(e.to_string()))?;
    if let Err(e) = cgroup::set_frozen(&hierarchy, &path, true) {
        // Half-frozen is worse than not frozen: thaw whatever was frozen.
        let _ = cgroup::set_frozen(&hierarchy, &path, false);
        return Err(failed(e.to_string()));
    }
    Ok(Frozen { hierarchy, path })
}

impl Containers {
    /// The parts of container `id` a commit needs; with `pause`, a running container is
    /// frozen until the result is dropped.
    pub async fn commit_source(&self, id: &str, pause: bool) -> Result<CommitSource, ContainerError> {
        let rec = self.get(id).await?;
        let upper = self.driver.writable_layer(&rec.id);
        let meta = std::fs::symlink_metadata(&upper).map_err(|_| {
            ContainerError::FailedPrecondition(format!(
                "container {} has no writable layer any more (it was removed or the node restarted)",
                rec.id
            ))
        })?;
        if meta.uid() != 0 {
            // Its files belong to the pod's shifted ids, not to the image's.
            return Err(ContainerError::FailedPrecondition(format!(
                "container {} runs in its own user namespace; its changes cannot be committed",
                rec.id
            )));
        }
        let spec = &rec.spec;
        let (entrypoint, cmd) = match (spec.command.is_empty(), spec.args.is_empty()) {
            (false, _) => (Some(spec.command.clone()), Some(spec.args.clone())),
            (true, false) => (None, Some(spec.args.clone())),
            (true, true) => (None, None),
        };
        let created_by = rec
            .spec
            .command
            .iter()
            .chain(&rec.spec.args)
            .cloned()
            .collect::<Vec<_>>()
            .join(" ");
        let frozen = if pause && rec.state == ContainerState::Running {
            let (id, path) = (rec.id.clone(), rec.cgroup.clone());
            Some(
                tokio::task::spawn_blocking(move || freeze(&id, &path))
                    .await
                    .map_err(|e| setup_err(&rec.id)(format!("freeze task: {e}")))??,
            )
        } else {
            None
        };
        Ok(CommitSource {
            id: rec.id.clone(),
            image_id: rec.image.id.clone(),
            upper,
            env: spec.envs.clone(),
            working_dir: spec.working_dir.clone(),
            entrypoint,
            cmd,
            created_by: if created_by.is_empty() {
                "berthctl commit".into()
            } else {
                format!("berthctl commit: {created_by}")
            },
            frozen,
        })
    }
}
