//! CreateContainer: the request checked, the name reserved, the root filesystem prepared,
//! the OCI spec generated from the container, its image and its sandbox, and the container
//! created by the driver; every step is taken back when a later one fails.

use std::path::Path;

use super::driver::Spawn;
use super::error::ContainerError;
use super::hooks::Pending;
use super::lifecycle::Containers;
use super::model::{reserved_name, ContainerRecord, ContainerSpec, ContainerState, ImageRef, SandboxContext};
use super::spec::{self, ImageDefaults, SpecInput};
use crate::config::CgroupDriver;
use crate::image::ImageRecord;
use crate::sandbox::{NsMode, SandboxRecord, SandboxState};

impl Containers {
    /// Creates a container in a ready sandbox; returns its id.
    pub async fn create(&self, sandbox_id: &str, spec: ContainerSpec) -> Result<String, ContainerError> {
        self.create_attempt(sandbox_id, spec, None).await
    }

    /// [`Containers::create`], the new container taking over the writable layer of the
    /// exited container `layer_of` (given back if this fails).
    pub(super) async fn create_attempt(
        &self,
        sandbox_id: &str,
        spec: ContainerSpec,
        layer_of: Option<&str>,
    ) -> Result<String, ContainerError> {
        super::validate::validate(&spec).map_err(ContainerError::Invalid)?;
        // The pod cannot be stopped or removed while this container joins it; one that
        // was is seen as not ready (or gone) here.
        let _members = self.sandboxes.hold_members(sandbox_id).await;
        let sandbox = self
            .sandboxes
            .get(sandbox_id)
            .map_err(|_| ContainerError::NotFound(format!("sandbox {sandbox_id}")))?;
        if sandbox.state != SandboxState::Ready {
            return Err(ContainerError::FailedPrecondition(format!(
                "sandbox {} is not ready",
                sandbox.id
            )));
        }
        let handler = sandbox.spec.runtime_handler.clone();
        self.check_handler_supports(&handler, &spec)?;
        // Unknown CDI devices fail the request before anything is set up.
        let cdi_edits = self
            .cdi
            .resolve(&spec.cdi_devices, &spec.annotations)
            .map_err(ContainerError::Invalid)?;
        let id = crate::sandbox::new_id();
        // The images stay leased to the container until it is removed (or this fails).
        let created = self.create_leased(&id, &sandbox, spec, &cdi_edits, layer_of).await;
        if created.is_err() {
            self.images.release(&id);
        }
        created
    }

    async fn create_leased(
        &self,
        id: &str,
        sandbox: &SandboxRecord,
        mut spec: ContainerSpec,
        cdi_edits: &[crate::cdi::registry::Edit],
        layer_of: Option<&str>,
    ) -> Result<String, ContainerError> {
        let image = self
            .images
            .lease(id, &spec.image)
            .ok_or_else(|| ContainerError::NotFound(format!("image {}", spec.image)))?;
        spec.image_id = image.id.clone();
        let volume_images = self.lease_image_volumes(id, &mut spec)?;
        let name = reserved_name(&sandbox.id, &spec);
        let reservation = self
            .records
            .reserve(&name, id)
            .map_err(|holder| ContainerError::NameTaken { name, id: holder })?;
        let _lock = self.locks.lock(id).await;
        let handler = &sandbox.spec.runtime_handler;
        let setup = async {
            if let Some(from) = layer_of {
                self.driver.move_layer(from, id)?;
            }
            self.setup(id, sandbox, &image, &volume_images, spec, cdi_edits).await
        };
        // `_pending` (the hooks' hold on a container being created) ends once it is recorded.
        let saved = match setup.await {
            Ok((rec, _pending)) => self.save(&rec),
            Err(e) => Err(e),
        };
        if let Err(e) = saved {
            // The reservation, dropped, gives the name back.
            if let Some(from) = layer_of {
                self.give_layer_back(id, from).await;
            }
            self.driver.teardown(id, Some(handler)).await;
            return Err(e);
        }
        reservation.keep();
        Ok(id.to_string())
    }

    /// Docker's first use of a volume: an empty one of berthd's gets the image's content at
    /// its path (a pod with its own user namespace would see the image's owners unshifted,
    /// so its volumes stay as they are).
    fn fill_empty_volumes(&self, id: &str, spec: &ContainerSpec, rootfs: &Path) -> Result<(), ContainerError> {
        let Some(root) = &self.volume_root else { return Ok(()) };
        for m in spec.mounts.iter().filter(|m| m.image.is_none()) {
            let host = Path::new(&m.host_path);
            if host.starts_with(root) && host.is_dir() {
                super::copy_up::fill_if_empty(rootfs, &m.container_path, host).map_err(|e| {
                    super::error::setup_err(id)(format!("filling volume {} from the image: {e}", host.display()))
                })?;
            }
        }
        Ok(())
    }

    /// Refuses what the handler's OCI runtime would ignore or fail on late.
    fn check_handler_supports(&self, handler: &str, spec: &ContainerSpec) -> Result<(), ContainerError> {
        let features = self.driver.features().get(handler).copied().unwrap_or_default();
        if let Some(m) = spec.mounts.iter().find(|m| m.recursive_read_only) {
            if !features.recursive_read_only {
                return Err(ContainerError::Invalid(format!(
                    "mount {}: recursive read-only mounts are not supported by runtime handler {handler:?}",
                    m.container_path
                )));
            }
        }
        Ok(())
    }

    async fn setup(
        &self,
        id: &str,
        sandbox: &SandboxRecord,
        image: &ImageRecord,
        volume_images: &[ImageRecord],
        spec: ContainerSpec,
        cdi_edits: &[crate::cdi::registry::Edit],
    ) -> Result<(ContainerRecord, Option<Pending>), ContainerError> {
        let userns = super::userns::pod_userns(sandbox, &spec)?;
        let prepared = self.driver.prepare(id, image, userns.as_ref()).await?;
        if userns.is_none() {
            self.fill_empty_volumes(id, &spec, &prepared.rootfs)?;
            fill_image_volumes(id, image, &spec, &prepared.rootfs, &prepared.volumes)?;
        }
        let mut mounts = self.mount_image_volumes(id, &spec, volume_images, userns.as_ref())?;
        if let Some(userns) = &userns {
            mounts = self.idmap_volumes(id, mounts, userns)?;
        }
        let mounted = ContainerSpec { mounts, ..spec.clone() };
        let cgroup = self.cgroup_path(sandbox, id)?;
        let files = self.sandboxes.files_dir(&sandbox.id);
        let ctx = SandboxContext {
            sandbox_id: sandbox.id.clone(),
            infra_pid: sandbox.infra_pid.unwrap_or(0),
            netns: sandbox.netns.clone(),
            host_network: sandbox.spec.namespaces.network == NsMode::Node,
            host_ipc: sandbox.spec.namespaces.ipc == NsMode::Node,
            pid_mode: sandbox.spec.namespaces.pid,
            hostname: sandbox.spec.hostname.clone(),
            resolv_conf: files.join("resolv.conf"),
            hosts: files.join("hosts"),
            hostname_file: files.join("hostname"),
            shm: (sandbox.spec.namespaces.ipc != NsMode::Node).then(|| files.join("shm")),
            sysctls: sandbox.spec.sysctls.clone(),
            privileged: sandbox.spec.privileged,
            userns,
        };
        let defaults = image_defaults(image);
        let min_oom = std::fs::read_to_string("/proc/self/oom_score_adj")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        let input = SpecInput {
            id,
            container: &mounted,
            image: &defaults,
            sandbox: &ctx,
            rootfs: &prepared.rootfs,
            cgroups_path: &cgroup,
            volumes_dir: &prepared.volumes,
            min_oom_score_adj: min_oom,
            runtime_last_cap: self
                .driver
                .features()
                .get(&sandbox.spec.runtime_handler)
                .and_then(|f| f.last_cap),
        };
        let mut oci = spec::generate(&input)?;
        self.cdi.inject(&mut oci, cdi_edits).map_err(ContainerError::Invalid)?;
        let pending = match self.hooks.get() {
            Some(h) => Some(
                h.create(sandbox, id, &spec, &mut oci)
                    .await
                    .map_err(super::error::setup_err(id))?,
            ),
            None => None,
        };
        let stop_signal = spec::stop_signal(&spec, &defaults)?;
        let log_path = if sandbox.spec.log_directory.is_empty() || spec.log_path.is_empty() {
            String::new()
        } else {
            Path::new(&sandbox.spec.log_directory)
                .join(&spec.log_path)
                .display()
                .to_string()
        };
        let pid = self
            .driver
            .spawn(Spawn {
                id,
                handler: &sandbox.spec.runtime_handler,
                spec: &oci,
                log_path: &log_path,
                stdin: spec.stdin,
                stdin_once: spec.stdin_once,
                tty: spec.tty,
            })
            .await?;
        let process = oci.process().clone().unwrap_or_default();
        let user = process.user();
        let rec = ContainerRecord {
            id: id.to_string(),
            sandbox_id: sandbox.id.clone(),
            image: ImageRef {
                id: image.id.clone(),
                name: image
                    .repo_digests
                    .first()
                    .or(image.repo_tags.first())
                    .cloned()
                    .unwrap_or_else(|| image.id.clone()),
                tag: image.repo_tags.first().cloned().unwrap_or_default(),
            },
            state: ContainerState::Created,
            created_at: crate::clock::now_nanos(),
            started_at: 0,
            finished_at: 0,
            exit_code: 0,
            reason: String::new(),
            message: String::new(),
            pid,
            log_path,
            cgroup,
            stop_signal,
            uid: user.uid(),
            gid: user.gid(),
            additional_gids: user.additional_gids().clone().unwrap_or_default(),
            env: process.env().clone().unwrap_or_default(),
            cwd: process.cwd().display().to_string(),
            runtime_handler: sandbox.spec.runtime_handler.clone(),
            stop_requested: false,
            spec,
        };
        Ok((rec, pending))
    }

    /// The container's cgroup: a leaf under the pod's parent (cgroupfs), or a systemd
    /// `slice:prefix:name` triple.
    fn cgroup_path(&self, sandbox: &SandboxRecord, id: &str) -> Result<String, ContainerError> {
        match self.cgroup_driver {
            CgroupDriver::Cgroupfs => crate::cgroup::leaf_path(CgroupDriver::Cgroupfs, &sandbox.spec.cgroup_parent, id),
            CgroupDriver::Systemd => {
                let parent = if sandbox.spec.cgroup_parent.is_empty() {
                    "berth.slice"
                } else {
                    &sandbox.spec.cgroup_parent
                };
                Ok(format!("{parent}:berth:{id}"))
            }
        }
        .map_err(ContainerError::Invalid)
    }
}

/// The image's VOLUMEs start with what the image has there, as with Docker and other CRI
/// runtimes: each directory is filled when it is made (a restart's next attempt takes the
/// old one over, so it is never filled twice). VOLUMEs under a mount of the request get
/// none.
fn fill_image_volumes(
    id: &str,
    image: &ImageRecord,
    spec: &ContainerSpec,
    rootfs: &Path,
    volumes_dir: &Path,
) -> Result<(), ContainerError> {
    if !volumes_dir.is_dir() {
        return Ok(());
    }
    for v in image.run_config.volumes.iter().flat_map(|v| v.keys()) {
        let dest = super::mounts::clean(v);
        let covered = spec
            .mounts
            .iter()
            .any(|m| Path::new(&dest).starts_with(super::mounts::clean(&m.container_path)));
        let dir = volumes_dir.join(super::mounts::volume_dir_name(&dest));
        if dest == "/" || covered || dir.exists() {
            continue;
        }
        let fill = std::fs::create_dir_all(&dir).and_then(|()| super::copy_up::fill_if_empty(rootfs, &dest, &dir));
        fill.map_err(|e| super::error::setup_err(id)(format!("filling image volume {dest}: {e}")))?;
    }
    Ok(())
}

fn image_defaults(image: &ImageRecord) -> ImageDefaults {
    let c = &image.run_config;
    ImageDefaults {
        user: c.user.clone(),
        env: c.env.clone().unwrap_or_default(),
        entrypoint: c.entrypoint.clone().unwrap_or_default(),
        cmd: c.cmd.clone().unwrap_or_default(),
        working_dir: c.working_dir.clone().unwrap_or_default(),
        volumes: c
            .volumes
            .as_ref()
            .map(|v| v.keys().cloned().collect())
            .unwrap_or_default(),
        stop_signal: c.stop_signal.clone(),
    }
}
