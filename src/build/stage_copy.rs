//! COPY and ADD steps of a build: where the sources come from (the context, an earlier
//! stage, an image), the cache check on their digest, and the copy into a step container
//! (or, on `FROM scratch`, into a fresh directory that becomes the layer).

use super::copy_step::{self, Attrs};
use super::dockerfile::{Args, Instruction, Keyword};
use super::error::BuildError;
use super::stage::Run;
use super::state::{normalize, State};
use super::Progress;
use crate::container::files::FsView;
use crate::image::commit::CommitSpec;

/// The command of step containers that are only written into, never started. The OCI
/// runtime checks at create that the command exists in the container; this one always
/// does, whatever the image holds (`/proc` is mounted by then).
const NEVER_RUN: &str = "/proc/self/exe";

impl Run<'_> {
    /// The image `--from` names: an earlier stage (by name or index) or an image.
    async fn source_image(&mut self, ins: &Instruction, stage: usize, from: &str) -> Result<String, BuildError> {
        if let Some(j) = self.file.stage_index(from).filter(|j| *j < stage) {
            return self.built[j]
                .clone()
                .ok_or_else(|| self.step_err(ins, format!("stage {from} was not built")));
        }
        if let Some(r) = self.b.images.resolve(from) {
            return Ok(r.id);
        }
        let _ = self
            .send(Progress::Warning(format!("pulling {from} for COPY --from")))
            .await;
        Ok(self.b.images.pull(from, None).await?.id)
    }

    pub(super) async fn copy_step(
        &mut self,
        state: &mut State,
        ins: &Instruction,
        stage: usize,
    ) -> Result<bool, BuildError> {
        let add = ins.keyword == Keyword::Add;
        let what = if add { "ADD" } else { "COPY" };
        let mut attrs = Attrs::default();
        let (mut from, mut chown) = (None, None);
        for (flag, value) in &ins.flags {
            match flag.as_str() {
                "from" => from = Some(value.clone()),
                "chown" => chown = Some(state.expand(value).map_err(|e| self.step_err(ins, e))?),
                "chmod" => {
                    let mode = u32::from_str_radix(value, 8)
                        .ok()
                        .filter(|m| *m <= 0o7777)
                        .ok_or_else(|| self.step_err(ins, format!("--chmod={value}: expected an octal mode")))?;
                    attrs.mode = Some(mode);
                }
                "link" => {}
                other => return Err(self.step_err(ins, format!("{what} --{other} is not supported"))),
            }
        }
        let words = match &ins.args {
            Args::Json(v) => v.iter().map(|w| state.expand(w)).collect::<Result<Vec<_>, _>>(),
            Args::Raw(r) => state.expand_words(r),
        }
        .map_err(|e| self.step_err(ins, e))?;
        let Some((dest_raw, sources)) = words.split_last().filter(|(_, s)| !s.is_empty()) else {
            return Err(self.step_err(ins, format!("{what} needs at least one source and a destination")));
        };
        let workdir = state.config.get("WorkingDir").and_then(|w| w.as_str()).unwrap_or("/");
        let dest = normalize(&if dest_raw.starts_with('/') {
            dest_raw.clone()
        } else {
            format!("{workdir}/{dest_raw}")
        });
        self.flush(state).await?;

        // The sources, and the container holding them when they are another image's.
        let mut source_ctr = None;
        let view = match &from {
            None => FsView::of_dir(self.ws.context()),
            Some(f) => {
                let image = self.source_image(ins, stage, f).await?;
                let id = self
                    .ws
                    .container(
                        "",
                        &format!("step-{}-from", self.index),
                        &image,
                        vec![NEVER_RUN.into()],
                        vec![],
                    )
                    .await?;
                source_ctr = Some(id.clone());
                attrs.keep_owner = true;
                self.b.containers.fs_view(&id).await?
            }
        };
        let result = self
            .copy_from(
                state,
                ins,
                &view,
                sources,
                &dest,
                dest_raw.ends_with('/'),
                attrs,
                chown,
                add,
            )
            .await;
        if let Some(id) = source_ctr {
            self.ws.remove(&id).await;
        }
        result
    }

    #[allow(clippy::too_many_arguments)]
    async fn copy_from(
        &mut self,
        state: &mut State,
        ins: &Instruction,
        view: &FsView,
        sources: &[String],
        dest: &str,
        slash: bool,
        mut attrs: Attrs,
        chown: Option<String>,
        add: bool,
    ) -> Result<bool, BuildError> {
        let units = copy_step::collect(view, sources, add).map_err(|e| self.step_err(ins, e))?;
        let into_dir = slash || units.len() > 1;
        let digest = copy_step::digest(&units, attrs).map_err(|e| self.step_err(ins, e.to_string()))?;
        let parts = vec![
            format!("{:?}", ins.keyword),
            format!("{:?}", ins.flags),
            dest.to_string(),
            into_dir.to_string(),
            digest,
            self.compression().into(),
        ];
        let Some(key) = self.take_cached(state, &parts) else {
            return Ok(true);
        };
        let spool = self.ws.dir.join(format!("step-{}.tar", self.index));
        let spec = |upper| CommitSpec {
            base: state.parent.clone().unwrap_or_default(),
            upper: Some(upper),
            author: state.author.clone(),
            created_by: ins.original.clone(),
            message: "berthctl build".into(),
            run_config: Some(state.config.clone()),
            cache_key: key.clone(),
            zstd: self.opts.zstd,
            ..Default::default()
        };
        // A stage with no layers yet (FROM scratch) has no filesystem to mount: the
        // files go into a fresh directory that is the new layer.
        let empty = state
            .parent
            .as_deref()
            .and_then(|p| self.b.images.resolve(p))
            .is_none_or(|r| r.layers.is_empty());
        let image = match state.parent.clone().filter(|_| !empty) {
            None => {
                let upper = self.ws.scratch(&format!("step-{}-layer", self.index))?;
                let target = FsView::of_dir(upper.clone());
                if let Some(c) = &chown {
                    attrs.owner = Some(self.numeric_owner(ins, c)?);
                }
                copy_step::place(&target, &units, dest, into_dir, attrs, &spool)?;
                self.b.images.commit(spec(upper)).await?.id
            }
            Some(parent) => {
                let name = format!("step-{}", self.index);
                let id = self
                    .ws
                    .container("", &name, &parent, vec![NEVER_RUN.into()], vec![])
                    .await?;
                let placed = async {
                    let target = self.b.containers.fs_view(&id).await?;
                    if let Some(c) = &chown {
                        let root = target
                            .locate("/", true)
                            .map_err(|e| self.step_err(ins, e.to_string()))?
                            .ok_or_else(|| self.step_err(ins, "the stage's filesystem is gone"))?;
                        let owner = crate::container::user::owner(&root.host, c)
                            .map_err(|e| self.step_err(ins, format!("--chown={c}: {e}")))?;
                        attrs.owner = Some(owner);
                    }
                    copy_step::place(&target, &units, dest, into_dir, attrs, &spool)?;
                    let source = self.b.containers.commit_source(&id, false).await?;
                    Ok::<_, BuildError>(self.b.images.commit(spec(source.upper.clone())).await?.id)
                }
                .await;
                self.ws.remove(&id).await;
                placed?
            }
        };
        state.parent = Some(image);
        Ok(false)
    }

    fn numeric_owner(&self, ins: &Instruction, spec: &str) -> Result<(u32, u32), BuildError> {
        let (u, g) = spec.split_once(':').unwrap_or((spec, spec));
        match (u.parse(), g.parse()) {
            (Ok(u), Ok(g)) => Ok((u, g)),
            _ => Err(self.step_err(
                ins,
                format!("--chown={spec}: names need an /etc/passwd; use numbers on FROM scratch"),
            )),
        }
    }
}
