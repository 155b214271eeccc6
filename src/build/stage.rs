//! One build, stage by stage: the stages the target needs, in order; FROM, then each
//! instruction; metadata steps change the state, RUN/COPY/ADD make layers (or take them
//! from the cache), and a stage ends as an image.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use tokio::sync::mpsc;

use super::dockerfile::{self, Dockerfile, Instruction, Keyword};
use super::error::BuildError;
use super::state::State;
use super::{cache, pod, BuildOptions, Builder, Progress};
use crate::image::commit::CommitSpec;

pub(super) struct Run<'a> {
    pub b: &'a Builder,
    pub ws: &'a mut pod::Workspace,
    pub opts: &'a BuildOptions,
    progress: &'a mpsc::Sender<Progress>,
    pub file: &'a Dockerfile,
    /// ARGs before the first FROM, with their values.
    pub meta: BTreeMap<String, Option<String>>,
    /// `--build-arg`s some ARG took.
    pub consumed: BTreeSet<String>,
    target: usize,
    needed: Vec<bool>,
    pub total: u32,
    pub index: u32,
    /// Each built stage's image id.
    pub built: Vec<Option<String>>,
    /// Whether every step so far came from the cache.
    pub all_cached: bool,
}

impl<'a> Run<'a> {
    pub fn new(
        b: &'a Builder,
        ws: &'a mut pod::Workspace,
        opts: &'a BuildOptions,
        progress: &'a mpsc::Sender<Progress>,
        file: &'a Dockerfile,
    ) -> Result<Run<'a>, BuildError> {
        let mut meta: BTreeMap<String, Option<String>> = BTreeMap::new();
        let mut consumed = BTreeSet::new();
        for ins in &file.meta_args {
            let raw = match &ins.args {
                dockerfile::Args::Raw(r) => r.clone(),
                dockerfile::Args::Json(_) => {
                    return Err(BuildError::Invalid(format!(
                        "line {}: ARG takes NAME[=VALUE]",
                        ins.line
                    )))
                }
            };
            let pairs = dockerfile::pairs(&raw, file.escape, false, &|n| meta.get(n).cloned().flatten())
                .map_err(|e| BuildError::Invalid(format!("line {}: {e}", ins.line)))?;
            for (k, default) in pairs {
                let value = match opts.build_args.get(&k) {
                    Some(v) => {
                        consumed.insert(k.clone());
                        Some(v.clone())
                    }
                    None => default,
                };
                meta.insert(k, value);
            }
        }
        let target = if opts.target.is_empty() {
            file.stages.len() - 1
        } else {
            file.stages
                .iter()
                .position(|s| s.name.as_deref() == Some(opts.target.to_ascii_lowercase().as_str()))
                .ok_or_else(|| BuildError::Invalid(format!("--target {}: no stage has that name", opts.target)))?
        };
        let mut run = Run {
            b,
            ws,
            opts,
            progress,
            file,
            meta,
            consumed,
            target,
            needed: vec![false; file.stages.len()],
            total: 0,
            index: 0,
            built: vec![None; file.stages.len()],
            all_cached: true,
        };
        run.mark_needed()?;
        run.total = file
            .stages
            .iter()
            .zip(&run.needed)
            .filter(|(_, n)| **n)
            .map(|(s, _)| 1 + s.instructions.len() as u32)
            .sum();
        Ok(run)
    }

    fn meta_lookup(&self, name: &str) -> Option<String> {
        self.meta.get(name).cloned().flatten()
    }

    /// The stage FROM `base` names, if it is an earlier stage of stage `i`.
    fn base_stage(&self, i: usize) -> Result<(String, Option<usize>), BuildError> {
        let from = &self.file.stages[i].from;
        let base = dockerfile::expand(&self.file.stages[i].base, self.file.escape, &|n| self.meta_lookup(n))
            .map_err(|e| BuildError::Invalid(format!("line {}: {e}", from.line)))?;
        let stage = self
            .file
            .stage_index(&base)
            .filter(|j| *j < i && base.parse::<usize>().is_err());
        Ok((base, stage))
    }

    /// Marks the stages the target needs: itself, FROM stages and COPY --from stages.
    fn mark_needed(&mut self) -> Result<(), BuildError> {
        self.needed[self.target] = true;
        for i in (0..=self.target).rev() {
            if !self.needed[i] {
                continue;
            }
            if let (_, Some(j)) = self.base_stage(i)? {
                self.needed[j] = true;
            }
            for ins in &self.file.stages[i].instructions {
                if let Some(from) = ins.flag("from") {
                    if let Some(j) = self.file.stage_index(from).filter(|j| *j < i) {
                        self.needed[j] = true;
                    }
                }
            }
        }
        Ok(())
    }

    /// Builds the needed stages; returns the target's image id.
    pub async fn all(&mut self) -> Result<String, BuildError> {
        for i in 0..=self.target {
            if self.needed[i] {
                let image = self.stage(i).await?;
                self.built[i] = Some(image);
            }
        }
        self.built[self.target]
            .clone()
            .ok_or_else(|| BuildError::Internal("the target stage made no image".into()))
    }

    pub async fn send(&self, p: Progress) -> Result<(), BuildError> {
        self.progress.send(p).await.map_err(|_| BuildError::Cancelled)
    }

    async fn begin(&mut self, stage: &str, ins: &Instruction) -> Result<Instant, BuildError> {
        self.index += 1;
        self.send(Progress::Step {
            index: self.index,
            total: self.total,
            stage: stage.to_string(),
            instruction: ins.original.clone(),
        })
        .await?;
        Ok(Instant::now())
    }

    async fn done(&self, cached: bool, started: Instant) -> Result<(), BuildError> {
        self.send(Progress::Done {
            index: self.index,
            cached,
            seconds: started.elapsed().as_secs_f64(),
        })
        .await
    }

    /// The error of the current step.
    pub fn step_err(&self, ins: &Instruction, message: impl Into<String>) -> BuildError {
        BuildError::Step {
            step: format!("[{}/{}] {}", self.index, self.total, ins.original),
            message: message.into(),
        }
    }

    async fn stage(&mut self, i: usize) -> Result<String, BuildError> {
        let file = self.file;
        let st = &file.stages[i];
        let name = st.name.clone().unwrap_or_else(|| i.to_string());
        let started = self.begin(&name, &st.from).await?;
        if let Some(platform) = st.from.flag("platform") {
            let host = format!("linux/{}", crate::image::commit::host_architecture());
            if platform != host && !platform.starts_with('$') {
                return Err(self.step_err(
                    &st.from,
                    format!("--platform={platform}: this node builds for {host} only"),
                ));
            }
        }
        let (base, stage) = self.base_stage(i)?;
        let (parent, fetched) = if base.eq_ignore_ascii_case("scratch") {
            (None, false)
        } else if let Some(j) = stage {
            (self.built[j].clone(), false)
        } else {
            let present = self.b.images.resolve(&base);
            match present {
                Some(r) if !self.opts.pull => (Some(r.id), false),
                _ => (Some(self.b.images.pull(&base, None).await?.id), true),
            }
        };
        let config = parent
            .as_deref()
            .and_then(|p| self.b.images.resolve(p))
            .and_then(|r| self.b.images.config_json(&r));
        let mut state = State::new(parent, config.as_ref(), file.escape);
        self.done(!fetched, started).await?;
        for ins in &st.instructions {
            let started = self.begin(&name, ins).await?;
            let cached = match ins.keyword {
                Keyword::Run => self.run_step(&mut state, ins).await?,
                Keyword::Copy | Keyword::Add => self.copy_step(&mut state, ins, i).await?,
                // Each metadata step is an image of its own (config only), so the cache
                // tells truly whether the step was done before; an ARG makes nothing.
                Keyword::Arg => {
                    state.apply(ins, &self.opts.build_args, &self.meta, &mut self.consumed)?;
                    self.all_cached
                }
                _ => {
                    state.apply(ins, &self.opts.build_args, &self.meta, &mut self.consumed)?;
                    self.flush(&mut state).await?
                }
            };
            self.done(cached, started).await?;
        }
        if i == self.target && !self.opts.labels.is_empty() {
            let labels = state.config.entry("Labels").or_insert_with(|| serde_json::json!({}));
            if !labels.is_object() {
                *labels = serde_json::json!({});
            }
            for (k, v) in &self.opts.labels {
                labels[k] = serde_json::json!(v);
            }
            let shown: Vec<String> = self.opts.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let text = format!("LABEL {}", shown.join(" "));
            state.pending.push(serde_json::json!({
                "created": crate::image::commit::now_rfc3339(),
                "created_by": text,
                "comment": "berthctl build",
                "empty_layer": true
            }));
            state.pending_text.push(text);
        }
        self.flush_or_make(&mut state, true).await?;
        state
            .parent
            .ok_or_else(|| BuildError::Internal(format!("stage {name} made no image")))
    }

    /// Makes the state an image when metadata steps changed it (or a scratch stage has
    /// none yet): a config-only step, cached like the others.
    /// Returns whether the image came from the cache (or nothing was needed).
    pub async fn flush(&mut self, state: &mut State) -> Result<bool, BuildError> {
        self.flush_or_make(state, false).await
    }

    /// [`Run::flush`]; with `make`, a scratch stage with nothing yet gets its (empty) image.
    async fn flush_or_make(&mut self, state: &mut State, make: bool) -> Result<bool, BuildError> {
        if state.pending_text.is_empty() && (state.parent.is_some() || !make) {
            return Ok(true);
        }
        let mut parts = vec!["config".to_string()];
        parts.extend(state.pending_text.iter().cloned());
        parts.push(state.author.clone());
        let key = cache::key(state.parent.as_deref(), &state.config, &parts);
        let cached = self.cached(&key);
        let hit = cached.is_some();
        let image = match cached {
            Some(id) => id,
            None => {
                self.all_cached = false;
                let spec = CommitSpec {
                    base: state.parent.clone().unwrap_or_default(),
                    upper: None,
                    author: state.author.clone(),
                    created_by: "FROM scratch".into(),
                    run_config: Some(state.config.clone()),
                    history: std::mem::take(&mut state.pending),
                    cache_key: key,
                    ..Default::default()
                };
                self.b.images.commit(spec).await?.id
            }
        };
        state.parent = Some(image);
        state.pending.clear();
        state.pending_text.clear();
        Ok(hit)
    }

    /// The layer compression, part of a layer step's cache key.
    pub fn compression(&self) -> &'static str {
        if self.opts.zstd {
            "zstd"
        } else {
            "gzip"
        }
    }

    /// The step's cache key; `None` when the cache had its image, which is then the
    /// stage's image (the step need not run).
    pub fn take_cached(&mut self, state: &mut State, parts: &[String]) -> Option<String> {
        let key = cache::key(state.parent.as_deref(), &state.config, parts);
        if let Some(id) = self.cached(&key) {
            state.parent = Some(id);
            return None;
        }
        self.all_cached = false;
        Some(key)
    }

    /// The image a step with `key` made before (unless `--no-cache`).
    pub fn cached(&self, key: &str) -> Option<String> {
        if self.opts.no_cache {
            return None;
        }
        cache::find(&self.b.images, key).map(|r| r.id)
    }

    async fn run_step(&mut self, state: &mut State, ins: &Instruction) -> Result<bool, BuildError> {
        let mut network = self.opts.network.clone();
        for (flag, value) in &ins.flags {
            match flag.as_str() {
                "network" if matches!(value.as_str(), "default" | "host") => network = value.clone(),
                other => {
                    return Err(self.step_err(ins, format!("RUN --{other}={value} is not supported")));
                }
            }
        }
        if network == "default" {
            network.clear();
        }
        self.flush(state).await?;
        let command = state.command(&ins.args);
        let env = state.run_args();
        let parts = vec![
            "RUN".to_string(),
            format!("{:?}", ins.args),
            format!("{env:?}"),
            network.clone(),
            self.compression().into(),
        ];
        let Some(key) = self.take_cached(state, &parts) else {
            return Ok(true);
        };
        let has_files = |id: &String| self.b.images.resolve(id).is_some_and(|r| !r.layers.is_empty());
        let Some(parent) = state.parent.clone().filter(has_files) else {
            return Err(self.step_err(ins, "nothing to run it in: the stage has no files yet (FROM scratch)"));
        };
        let name = format!("step-{}", self.index);
        let id = self
            .ws
            .container(&network, &name, &parent, command.clone(), env)
            .await?;
        let result = self
            .run_and_commit(state, ins, &id, &name, &parent, &command, key)
            .await;
        self.ws.remove(&id).await;
        state.parent = Some(result?);
        Ok(false)
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_and_commit(
        &mut self,
        state: &State,
        ins: &Instruction,
        id: &str,
        name: &str,
        parent: &str,
        command: &[String],
        key: String,
    ) -> Result<String, BuildError> {
        let code = super::run_step::run_to_exit(&self.b.containers, self.ws, id, name, self.progress).await?;
        if code != 0 {
            return Err(self.step_err(ins, format!("the command exited with code {code}")));
        }
        let source = self.b.containers.commit_source(id, false).await?;
        let spec = CommitSpec {
            base: parent.to_string(),
            upper: Some(source.upper.clone()),
            author: state.author.clone(),
            created_by: format!("RUN {}", command.join(" ")),
            message: "berthctl build".into(),
            run_config: Some(state.config.clone()),
            cache_key: key,
            zstd: self.opts.zstd,
            ..Default::default()
        };
        Ok(self.b.images.commit(spec).await?.id)
    }
}
