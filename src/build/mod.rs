//! Building images from a Dockerfile with Berth's own parts: FROM images come from the
//! image store (pulled when missing), RUN steps run in a Berth pod, COPY and ADD write into
//! a step container's filesystem, and each step's changes become a layer through the same
//! commit path as `berthctl commit` (stored and verified like a pulled layer). Metadata
//! steps only change the config; steps are cached by what made them.

mod cache;
mod copy_step;
pub mod dockerfile;
mod error;
mod healthcheck;
mod pod;
mod run_step;
mod stage;
mod stage_copy;
mod state;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::container::lifecycle::Containers;
use crate::image::reference::Reference;
use crate::image::Images;
use crate::sandbox::Sandboxes;
pub use error::BuildError;
pub use healthcheck::duration as go_duration;
pub use pod::BUILD_LABEL;

/// On the CRI's view of images a build step made (its cache): `berthctl images` hides
/// them unless `-a`, as Docker hides intermediate images.
pub const BUILD_CACHE_ANNOTATION: &str = "io.berth.build.cache";

/// What to build.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    pub dockerfile: String,
    pub tags: Vec<String>,
    pub build_args: BTreeMap<String, String>,
    pub target: String,
    pub no_cache: bool,
    pub pull: bool,
    /// "" (the pod network) or "host".
    pub network: String,
    pub platform: String,
    pub labels: BTreeMap<String, String>,
    /// Layers compressed with zstd (else gzip).
    pub zstd: bool,
    /// The image built is converted to eStargz (every layer, the base image's too).
    pub estargz: bool,
}

/// How a build goes, as it goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    Step {
        index: u32,
        total: u32,
        stage: String,
        instruction: String,
    },
    Output(Vec<u8>),
    Done {
        index: u32,
        cached: bool,
        seconds: f64,
    },
    Warning(String),
}

/// The image built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildResult {
    pub image_id: String,
    pub tags: Vec<String>,
}

pub struct Builder {
    images: Arc<Images>,
    containers: Arc<Containers>,
    sandboxes: Arc<Sandboxes>,
    /// Where builds keep their contexts and logs.
    root: PathBuf,
}

impl Builder {
    pub fn new(images: Arc<Images>, containers: Arc<Containers>, sandboxes: Arc<Sandboxes>, root: PathBuf) -> Builder {
        Builder {
            images,
            containers,
            sandboxes,
            root,
        }
    }

    /// Removes what builds cut short by a crash left behind.
    pub async fn sweep(&self) {
        pod::sweep(&self.root, self.sandboxes.clone(), self.containers.clone()).await;
    }

    /// A new build's work area; the caller unpacks the context into `context_dir()`.
    pub fn workspace(&self) -> Result<Workspace, BuildError> {
        Ok(Workspace(pod::Workspace::create(
            &self.root,
            self.sandboxes.clone(),
            self.containers.clone(),
        )?))
    }

    /// Builds, telling `progress` how it goes; the workspace is removed at the end.
    pub async fn build(
        &self,
        ws: Workspace,
        opts: BuildOptions,
        progress: mpsc::Sender<Progress>,
    ) -> Result<BuildResult, BuildError> {
        let mut ws = ws.0;
        let result = self.build_in(&mut ws, &opts, &progress).await;
        ws.close().await;
        result
    }

    async fn build_in(
        &self,
        ws: &mut pod::Workspace,
        opts: &BuildOptions,
        progress: &mpsc::Sender<Progress>,
    ) -> Result<BuildResult, BuildError> {
        let host = format!("linux/{}", crate::image::commit::host_architecture());
        if !opts.platform.is_empty() && opts.platform != host {
            return Err(BuildError::Invalid(format!(
                "--platform {}: this node builds for {host} only",
                opts.platform
            )));
        }
        if !matches!(opts.network.as_str(), "" | "default" | "host") {
            return Err(BuildError::Invalid(format!(
                "--network {}: RUN steps use the pod network (default) or host",
                opts.network
            )));
        }
        let mut tags = Vec::new();
        for t in &opts.tags {
            let r = Reference::parse(t).map_err(|e| BuildError::Invalid(format!("-t {t}: {e}")))?;
            if r.digest.is_some() {
                return Err(BuildError::Invalid(format!("-t {t}: a tag may not carry a digest")));
            }
            tags.extend(r.tagged());
        }
        let file = dockerfile::parse(&opts.dockerfile).map_err(|e| BuildError::Invalid(e.to_string()))?;
        let mut run = stage::Run::new(self, ws, opts, progress, &file)?;
        let image = run.all().await?;
        let unused: BTreeSet<&String> = opts.build_args.keys().filter(|k| !run.consumed.contains(*k)).collect();
        if !unused.is_empty() {
            let _ = progress
                .send(Progress::Warning(format!(
                    "build arguments not consumed by any ARG: {}",
                    unused.into_iter().cloned().collect::<Vec<_>>().join(", ")
                )))
                .await;
        }
        let image = if opts.estargz {
            self.images.convert_estargz(&image, None).await?.0.id
        } else {
            image
        };
        let mut named = Vec::new();
        for tag in &tags {
            let (record, tag) = self.images.tag(&image, tag).await?;
            debug_assert_eq!(record.id, image);
            named.push(tag);
        }
        Ok(BuildResult {
            image_id: image,
            tags: named,
        })
    }
}

/// A build's work area, made before its context arrives.
pub struct Workspace(pod::Workspace);

impl Workspace {
    /// Where the build context is to be unpacked.
    pub fn context_dir(&self) -> PathBuf {
        self.0.context()
    }

    /// A file for spooling the incoming context.
    pub fn spool_path(&self) -> PathBuf {
        self.0.dir.join("context.tar")
    }

    /// Removes it without building (the context could not be received).
    pub async fn discard(self) {
        self.0.close().await;
    }
}

/// Unpacks a context archive into `dir` with the image unpacker (nothing lands outside it).
pub fn unpack_context(archive: &Path, dir: &Path, max_bytes: u64) -> Result<(), BuildError> {
    let file = std::fs::File::open(archive).map_err(BuildError::io("the context archive"))?;
    let limits = crate::image::unpack::UnpackLimits {
        max_bytes,
        ..Default::default()
    };
    crate::image::unpack::unpack_layer(std::io::BufReader::new(file), dir, &limits)
        .map_err(|e| BuildError::Invalid(format!("the build context: {e}")))?;
    Ok(())
}
