//! A stage's state while it is built: the image so far, its run config with the metadata
//! instructions applied since, the ARGs in scope, the shell, and the history entries not yet
//! in an image.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::dockerfile::{self, Args, Instruction, Keyword};
use super::error::BuildError;
use crate::image::commit::changes::{exposed_port, set_env};
use crate::image::commit::now_rfc3339;

pub(super) const DEFAULT_SHELL: [&str; 2] = ["/bin/sh", "-c"];

#[derive(Debug, Clone, Default)]
pub(super) struct State {
    /// The image so far (an id); `None` for `FROM scratch` before its first layer.
    pub parent: Option<String>,
    /// The image config's `config` object, metadata instructions applied.
    pub config: Map<String, Value>,
    /// MAINTAINER: the image's author.
    pub author: String,
    /// ARGs declared in this stage, with their values.
    pub args: BTreeMap<String, Option<String>>,
    pub shell: Vec<String>,
    /// Whether this stage set CMD (an ENTRYPOINT clears an inherited one only).
    pub cmd_set: bool,
    /// History entries of metadata steps since `parent`, and their text (for cache keys).
    pub pending: Vec<Value>,
    pub pending_text: Vec<String>,
    pub escape: char,
}

impl State {
    /// The state at FROM: the base image's config (`None`: scratch).
    pub fn new(parent: Option<String>, image_config: Option<&Value>, escape: char) -> State {
        let config = image_config
            .and_then(|c| c.get("config"))
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let shell = config
            .get("Shell")
            .and_then(|s| serde_json::from_value::<Vec<String>>(s.clone()).ok())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| DEFAULT_SHELL.iter().map(|s| s.to_string()).collect());
        State {
            parent,
            config,
            shell,
            escape,
            ..Default::default()
        }
    }

    pub fn env(&self) -> Vec<String> {
        self.config
            .get("Env")
            .and_then(|e| serde_json::from_value(e.clone()).ok())
            .unwrap_or_default()
    }

    /// A variable as instructions see it: ENV wins over ARG.
    pub fn lookup(&self, name: &str) -> Option<String> {
        let env = self.env();
        let from_env = env.iter().rev().find_map(|e| {
            let (k, v) = e.split_once('=').unwrap_or((e, ""));
            (k == name).then(|| v.to_string())
        });
        from_env.or_else(|| self.args.get(name).cloned().flatten())
    }

    /// The ARG values a RUN step sees as environment (those no ENV shadows).
    pub fn run_args(&self) -> Vec<(String, String)> {
        let env = self.env();
        self.args
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.clone()?)))
            .filter(|(k, _)| !env.iter().any(|e| e.split_once('=').map_or(e.as_str(), |p| p.0) == k))
            .collect()
    }

    pub fn expand(&self, raw: &str) -> Result<String, String> {
        dockerfile::expand(raw, self.escape, &|n| self.lookup(n))
    }

    pub fn expand_words(&self, raw: &str) -> Result<Vec<String>, String> {
        dockerfile::expand_words(raw, self.escape, &|n| self.lookup(n))
    }

    /// A RUN/CMD/ENTRYPOINT command: the exec form as it is, the shell form under SHELL.
    pub fn command(&self, args: &Args) -> Vec<String> {
        match args {
            Args::Json(v) => v.clone(),
            Args::Raw(text) => self.shell.iter().cloned().chain([text.clone()]).collect(),
        }
    }

    fn record(&mut self, ins: &Instruction, shown: String) {
        self.pending.push(
            json!({"created": now_rfc3339(), "created_by": shown, "comment": "berthctl build", "empty_layer": true}),
        );
        self.pending_text.push(ins.original.clone());
    }

    /// Applies a metadata instruction (anything but FROM, RUN, COPY and ADD).
    /// `build_args` are `--build-arg`s; the names an ARG takes from them go to `consumed`.
    pub fn apply(
        &mut self,
        ins: &Instruction,
        build_args: &BTreeMap<String, String>,
        global_args: &BTreeMap<String, Option<String>>,
        consumed: &mut std::collections::BTreeSet<String>,
    ) -> Result<(), BuildError> {
        let bad = |e: String| BuildError::Invalid(format!("line {}: {}: {e}", ins.line, ins.original));
        let raw = match &ins.args {
            Args::Raw(r) => r.clone(),
            Args::Json(v) => serde_json::to_string(v).unwrap_or_default(),
        };
        let words = || match &ins.args {
            Args::Json(v) => Ok(v.clone()),
            Args::Raw(r) => self.expand_words(r),
        };
        match ins.keyword {
            Keyword::Env => {
                let lookup = |n: &str| self.lookup(n);
                let pairs = dockerfile::pairs(&raw, self.escape, true, &lookup).map_err(bad)?;
                let mut env = self.env();
                for (k, v) in &pairs {
                    set_env(&mut env, k, v.as_deref().unwrap_or(""));
                }
                self.config.insert("Env".into(), json!(env));
                let shown = pairs
                    .iter()
                    .map(|(k, v)| format!("{k}={}", v.as_deref().unwrap_or("")))
                    .collect::<Vec<_>>()
                    .join(" ");
                self.record(ins, format!("ENV {shown}"));
            }
            Keyword::Arg => {
                let lookup = |n: &str| self.lookup(n);
                for (k, default) in dockerfile::pairs(&raw, self.escape, false, &lookup).map_err(bad)? {
                    let value = match build_args.get(&k) {
                        Some(v) => {
                            consumed.insert(k.clone());
                            Some(v.clone())
                        }
                        None => default.or_else(|| global_args.get(&k).cloned().flatten()),
                    };
                    self.args.insert(k, value);
                }
            }
            Keyword::Label => {
                let lookup = |n: &str| self.lookup(n);
                let pairs = dockerfile::pairs(&raw, self.escape, true, &lookup).map_err(bad)?;
                let labels = object(&mut self.config, "Labels");
                for (k, v) in pairs {
                    labels.insert(k, json!(v.unwrap_or_default()));
                }
                self.record(ins, ins.original.clone());
            }
            Keyword::Expose => {
                let ports = words().map_err(bad)?;
                let exposed = object(&mut self.config, "ExposedPorts");
                for p in ports {
                    exposed.insert(exposed_port(&p).map_err(bad)?, json!({}));
                }
                self.record(ins, ins.original.clone());
            }
            Keyword::Volume => {
                let paths = words().map_err(bad)?;
                let volumes = object(&mut self.config, "Volumes");
                for p in paths {
                    volumes.insert(p, json!({}));
                }
                self.record(ins, ins.original.clone());
            }
            Keyword::Workdir => {
                let dir = self.expand(&raw).map_err(bad)?;
                let base = self.config.get("WorkingDir").and_then(Value::as_str).unwrap_or("/");
                let joined = std::path::Path::new(if base.is_empty() { "/" } else { base }).join(&dir);
                let clean = normalize(&joined.display().to_string());
                self.config.insert("WorkingDir".into(), json!(clean));
                self.record(ins, format!("WORKDIR {clean}"));
            }
            Keyword::User => {
                let user = self.expand(&raw).map_err(bad)?;
                self.config.insert("User".into(), json!(user));
                self.record(ins, format!("USER {user}"));
            }
            Keyword::StopSignal => {
                let signal = self.expand(&raw).map_err(bad)?;
                self.config.insert("StopSignal".into(), json!(signal));
                self.record(ins, format!("STOPSIGNAL {signal}"));
            }
            Keyword::Cmd => {
                let cmd = self.command(&ins.args);
                self.config.insert("Cmd".into(), json!(cmd));
                self.cmd_set = true;
                self.record(ins, format!("CMD {}", json!(cmd)));
            }
            Keyword::Entrypoint => {
                let entrypoint = self.command(&ins.args);
                self.config.insert("Entrypoint".into(), json!(entrypoint));
                if !self.cmd_set {
                    self.config.insert("Cmd".into(), Value::Null);
                }
                self.record(ins, format!("ENTRYPOINT {}", json!(entrypoint)));
            }
            Keyword::Shell => {
                let Args::Json(shell) = &ins.args else {
                    return Err(bad("SHELL takes a JSON array".into()));
                };
                if shell.is_empty() {
                    return Err(bad("SHELL needs at least the shell".into()));
                }
                self.shell = shell.clone();
                self.config.insert("Shell".into(), json!(shell));
                self.record(ins, ins.original.clone());
            }
            Keyword::Healthcheck => {
                let check = super::healthcheck::parse(ins).map_err(bad)?;
                self.config.insert("Healthcheck".into(), check);
                self.record(ins, ins.original.clone());
            }
            Keyword::OnBuild => {
                let list = self.config.entry("OnBuild").or_insert_with(|| json!([]));
                if !list.is_array() {
                    *list = json!([]);
                }
                list.as_array_mut()
                    .expect("an array was just put there")
                    .push(json!(raw));
                self.record(ins, ins.original.clone());
            }
            Keyword::Maintainer => {
                self.author = self.expand(&raw).map_err(bad)?;
                self.record(ins, ins.original.clone());
            }
            Keyword::From | Keyword::Run | Keyword::Copy | Keyword::Add => {
                return Err(BuildError::Internal(format!(
                    "{:?} is not a metadata step",
                    ins.keyword
                )))
            }
        }
        Ok(())
    }
}

fn object<'a>(doc: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let slot = doc.entry(key).or_insert_with(|| json!({}));
    if !slot.is_object() {
        *slot = json!({});
    }
    slot.as_object_mut().expect("an object was just put there")
}

/// An absolute path with `.`, `..` and repeated slashes taken out.
pub(super) fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalized() {
        assert_eq!(normalize("/a/./b//c/../d"), "/a/b/d");
        assert_eq!(normalize("/.."), "/");
    }

    #[test]
    fn env_wins_over_arg_and_run_sees_args() {
        let mut s = State::new(None, None, '\\');
        s.args.insert("V".into(), Some("arg".into()));
        s.args.insert("ONLY".into(), Some("a".into()));
        s.args.insert("UNSET".into(), None);
        assert_eq!(s.lookup("V").as_deref(), Some("arg"));
        s.config.insert("Env".into(), json!(["V=env"]));
        assert_eq!(s.lookup("V").as_deref(), Some("env"));
        assert_eq!(s.run_args(), vec![("ONLY".to_string(), "a".to_string())]);
        assert_eq!(
            s.command(&Args::Raw("echo hi".into())),
            vec!["/bin/sh", "-c", "echo hi"]
        );
    }
}
