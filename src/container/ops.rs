//! What a created or running container is asked besides its lifecycle: ExecSync, log
//! reopening, interactive exec's runtime target, and resource updates.

use std::time::Duration;

use super::error::ContainerError;
use super::lifecycle::Containers;
use super::model::{ContainerRecord, ContainerState, Resources};
use super::resources::{linux_resources, Controllers};
use crate::runtime::exec::RuntimeTarget;
use crate::runtime::shim::{ExecArgs, ExecResult};

impl Containers {
    /// Each runtime handler ("" = default) with what its OCI runtime supports.
    pub fn handler_features(&self) -> std::collections::BTreeMap<String, crate::runtime::features::Features> {
        self.driver.features()
    }

    /// The record of a running container (`FailedPrecondition` otherwise).
    async fn running(&self, id: &str) -> Result<ContainerRecord, ContainerError> {
        let rec = self.get(id).await?;
        if rec.state != ContainerState::Running {
            return Err(ContainerError::FailedPrecondition(format!(
                "container {} is not running",
                rec.id
            )));
        }
        Ok(rec)
    }

    pub async fn reopen_log(&self, id: &str) -> Result<(), ContainerError> {
        let rec = self.running(id).await?;
        self.driver.reopen_log(&rec.id).await?;
        Ok(())
    }

    /// Where a running container lives in its OCI runtime, for interactive exec.
    pub async fn running_target(&self, id: &str) -> Result<(ContainerRecord, RuntimeTarget), ContainerError> {
        let rec = self.running(id).await?;
        let target = self.driver.runtime_target(&rec.id, &rec.runtime_handler)?;
        Ok((rec, target))
    }

    /// What an exec changes of running container `id`'s process: `env` (`K=V`), `cwd`
    /// (absolute) and `user` (Docker's `name`, `uid`, `name:group`, `uid:gid`), the user
    /// resolved in the container's own /etc/passwd and /etc/group.
    pub async fn exec_overrides(
        &self,
        id: &str,
        env: Vec<String>,
        cwd: &str,
        user: &str,
    ) -> Result<crate::runtime::exec::ProcessOverrides, ContainerError> {
        if let Some(bad) = env
            .iter()
            .find(|e| e.split('=').next().is_none_or(str::is_empty) || !e.contains('='))
        {
            return Err(ContainerError::Invalid(format!("env {bad:?}: expected KEY=VALUE")));
        }
        if !cwd.is_empty() && !cwd.starts_with('/') {
            return Err(ContainerError::Invalid(format!("workdir {cwd:?} must be absolute")));
        }
        let user = if user.is_empty() {
            None
        } else {
            let rec = self.running(id).await?;
            let root = std::path::PathBuf::from(format!("/proc/{}/root", rec.pid));
            let u = super::user::resolve(&root, &Default::default(), Some(user))?;
            Some((u.uid(), u.gid(), u.additional_gids().clone().unwrap_or_default()))
        };
        Ok(crate::runtime::exec::ProcessOverrides {
            env,
            cwd: (!cwd.is_empty()).then(|| cwd.to_string()),
            user,
        })
    }

    /// Runs a command in a running container and returns its output (kubelet's exec probes).
    pub async fn exec_sync(
        &self,
        id: &str,
        cmd: Vec<String>,
        timeout: Option<Duration>,
    ) -> Result<ExecResult, ContainerError> {
        if cmd.is_empty() {
            return Err(ContainerError::Invalid("exec command is required".into()));
        }
        let rec = self.running(id).await?;
        let args = ExecArgs {
            args: cmd,
            env: rec.env.clone(),
            cwd: if rec.cwd.is_empty() {
                "/".into()
            } else {
                rec.cwd.clone()
            },
            uid: rec.uid,
            gid: rec.gid,
            additional_gids: rec.additional_gids.clone(),
            timeout,
            max_output: 16 << 20,
        };
        Ok(self.driver.exec(&rec.id, args).await?)
    }

    /// Applies OCI limits as given (an NRI plugin's update) to a running or created
    /// container, without the hooks: the plugins asked for it.
    pub async fn apply_linux_resources(
        &self,
        id: &str,
        resources: &oci_spec::runtime::LinuxResources,
    ) -> Result<(), ContainerError> {
        let rec = self.get(id).await?;
        let _lock = self.locks.lock(&rec.id).await;
        let rec = self.get(&rec.id).await?;
        if !matches!(rec.state, ContainerState::Running | ContainerState::Created) {
            return Err(ContainerError::FailedPrecondition(format!(
                "container {} is not running",
                rec.id
            )));
        }
        self.driver.update(&rec.id, &rec.runtime_handler, resources).await?;
        Ok(())
    }

    /// Applies new limits to a running or created container, and records them.
    pub async fn update_resources(&self, id: &str, r: Resources) -> Result<(), ContainerError> {
        let rec = self.get(id).await?;
        let _lock = self.locks.lock(&rec.id).await;
        let mut rec = self.get(&rec.id).await?;
        if !matches!(rec.state, ContainerState::Running | ContainerState::Created) {
            return Err(ContainerError::FailedPrecondition(format!(
                "container {} is not running",
                rec.id
            )));
        }
        let mut resources = linux_resources(&r, crate::cgroup::unified(), Controllers::detect())?;
        if let (Some(h), Ok(pod)) = (self.hooks.get(), self.sandboxes.get(&rec.sandbox_id)) {
            resources = h
                .update(&pod, &rec, resources)
                .await
                .map_err(super::error::setup_err(&rec.id))?;
        }
        self.driver.update(&rec.id, &rec.runtime_handler, &resources).await?;
        rec.spec.resources = r;
        self.save(&rec)
    }
}
