//! Runtime handlers: what a RuntimeClass's `handler` names, as the config states them.
//!
//! ```toml
//! [runtime_handlers]
//! crun = "crun"                      # an OCI runtime with runc's command line
//! [runtime_handlers.runsc]           # the table form
//! kind = "gvisor"                    # "oci" (default), "gvisor" or "shim-v2"
//! binary = "runsc"                   # default "runsc" for gvisor; required otherwise
//! args = ["--platform=ptrace"]       # global flags before every subcommand
//! [runtime_handlers.runc-shim-v2]
//! kind = "shim-v2"                   # a containerd shim v2 (Task API over ttrpc)
//! binary = "containerd-shim-runc-v2"
//! features_from = "runc"             # the OCI runtime under the shim, asked for `features`
//! ```
//!
//! A `gvisor` handler runs each pod in one gVisor sandbox: the pod gets a sandbox
//! container of its own (see `runtime::gvisor`), and its containers join it. A `shim-v2`
//! handler's containers are run by that shim v2, which a berth-shim drives for each of
//! them (see the shim's `serve::task`); a shim v2 that groups containers (by the pod id
//! annotation) serves a whole pod from one process.

use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HandlerKind {
    /// One OCI container per CRI container (runc, crun, youki).
    #[default]
    Oci,
    /// gVisor's `runsc`: one sandbox per pod, containers inside it.
    Gvisor,
    /// A containerd shim v2 binary (`containerd-shim-<name>-v<N>`: Kata, runwasi,
    /// containerd-shim-runc-v2), driven over its Task API.
    #[serde(rename = "shim-v2")]
    ShimV2,
}

/// One runtime handler as configured.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "toml::Value")]
pub struct RuntimeHandler {
    pub kind: HandlerKind,
    /// The runtime binary: a name looked up on PATH, or a path.
    pub binary: String,
    /// Global flags passed before every subcommand.
    pub args: Vec<String>,
    /// A shim v2 has no `features` command: the OCI runtime it runs containers with, whose
    /// `features` answer stands for the handler's (recursive read-only mounts, user
    /// namespaces). None: the handler offers no optional feature.
    pub features_from: Option<String>,
}

impl RuntimeHandler {
    /// An OCI runtime with runc's command line and no extra flags.
    pub fn oci(binary: &str) -> RuntimeHandler {
        RuntimeHandler {
            kind: HandlerKind::Oci,
            binary: binary.into(),
            args: Vec::new(),
            features_from: None,
        }
    }

    /// A containerd shim v2 binary that runs containers with OCI runtime `features_from`
    /// (asked for the handler's optional features), if known.
    pub fn shim_v2(binary: &str, features_from: Option<&str>) -> RuntimeHandler {
        RuntimeHandler {
            kind: HandlerKind::ShimV2,
            binary: binary.into(),
            args: Vec::new(),
            features_from: features_from.map(str::to_string),
        }
    }

    /// gVisor's `runsc` as this host runs it: the ptrace platform (no KVM needed); the
    /// pod's own network namespace used through the host stack (`--network=host`), as
    /// runsc's own stack (`--network=sandbox`) refuses to start when
    /// `/proc/sys/net/core/rmem_default` is readable, which kernels since 6.x make true in
    /// every network namespace, not only the root one; and the pod's seccomp profiles
    /// applied inside the sandbox (`--oci-seccomp`), as a pod that asks for one expects.
    pub fn gvisor() -> RuntimeHandler {
        RuntimeHandler {
            kind: HandlerKind::Gvisor,
            binary: "runsc".into(),
            args: vec![
                "--platform=ptrace".into(),
                "--network=host".into(),
                "--oci-seccomp".into(),
            ],
            features_from: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Table {
    #[serde(default)]
    kind: HandlerKind,
    binary: Option<String>,
    #[serde(default)]
    args: Vec<String>,
    features_from: Option<String>,
}

impl TryFrom<toml::Value> for RuntimeHandler {
    type Error = String;

    fn try_from(v: toml::Value) -> Result<Self, String> {
        let h = match v {
            toml::Value::String(binary) => RuntimeHandler::oci(&binary),
            toml::Value::Table(t) => {
                let t: Table = toml::Value::Table(t)
                    .try_into()
                    .map_err(|e: toml::de::Error| e.message().to_string())?;
                let binary = match (t.binary, t.kind) {
                    (Some(b), _) => b,
                    (None, HandlerKind::Gvisor) => "runsc".into(),
                    (None, HandlerKind::Oci) => return Err("an oci runtime handler needs `binary`".into()),
                    (None, HandlerKind::ShimV2) => {
                        return Err("a shim-v2 runtime handler needs `binary` (its containerd-shim-*-v* binary)".into())
                    }
                };
                if t.features_from.is_some() && t.kind != HandlerKind::ShimV2 {
                    return Err("`features_from` is for shim-v2 handlers (the others are asked themselves)".into());
                }
                if t.features_from.as_deref() == Some("") {
                    return Err("a runtime handler's features_from must not be empty".into());
                }
                RuntimeHandler {
                    kind: t.kind,
                    binary,
                    args: t.args,
                    features_from: t.features_from,
                }
            }
            other => {
                return Err(format!(
                    "a runtime handler is a binary name or a table, not {}",
                    other.type_str()
                ))
            }
        };
        if h.binary.is_empty() {
            return Err("a runtime handler's binary must not be empty".into());
        }
        if let Some(bad) = h.args.iter().find(|a| !a.starts_with('-')) {
            return Err(format!(
                "runtime handler args must be flags (`--name=value`), not {bad:?}"
            ));
        }
        Ok(h)
    }
}

/// CAP_AUDIT_READ: the last capability the runsc releases without a `features`
/// subcommand know.
pub const GVISOR_LAST_CAP: u32 = 37;

/// A runtime handler resolved for use: its binary's path, flags and kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runtime {
    pub binary: PathBuf,
    pub args: Vec<String>,
    pub kind: HandlerKind,
    /// The OCI runtime asked for `features` in place of a shim v2, its path resolved.
    pub features_from: Option<PathBuf>,
}

impl Runtime {
    /// The default handler's plain OCI runtime.
    pub fn oci(binary: impl Into<PathBuf>) -> Runtime {
        Runtime {
            binary: binary.into(),
            args: Vec::new(),
            kind: HandlerKind::Oci,
            features_from: None,
        }
    }
}

/// The state directory (`--root`) of a runtime handler's runtime: one per handler, as
/// runtimes do not share state formats.
pub fn runtime_root(state_dir: &Path, handler: &str) -> PathBuf {
    let name = if handler.is_empty() { "default" } else { handler };
    state_dir.join("runtimes").join(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<std::collections::BTreeMap<String, RuntimeHandler>, String> {
        #[derive(Deserialize)]
        struct Doc {
            runtime_handlers: std::collections::BTreeMap<String, RuntimeHandler>,
        }
        toml::from_str::<Doc>(text)
            .map(|d| d.runtime_handlers)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn string_and_table_forms() {
        let h = parse(
            "[runtime_handlers]\ncrun = \"crun\"\n[runtime_handlers.runsc]\nkind = \"gvisor\"\nargs = [\"--platform=ptrace\"]\n\
             [runtime_handlers.other]\nbinary = \"/opt/rt\"\n\
             [runtime_handlers.v2]\nkind = \"shim-v2\"\nbinary = \"containerd-shim-runc-v2\"\nfeatures_from = \"runc\"\n",
        )
        .expect("parse");
        assert_eq!(h["crun"], RuntimeHandler::oci("crun"));
        assert_eq!(h["runsc"].kind, HandlerKind::Gvisor);
        assert_eq!(h["runsc"].binary, "runsc");
        assert_eq!(h["runsc"].args, ["--platform=ptrace"]);
        assert_eq!(h["other"], RuntimeHandler::oci("/opt/rt"));
        assert_eq!(h["v2"].kind, HandlerKind::ShimV2);
        assert_eq!(
            h["v2"],
            RuntimeHandler::shim_v2("containerd-shim-runc-v2", Some("runc"))
        );
    }

    #[test]
    fn bad_entries_are_named() {
        let e = parse("[runtime_handlers.x]\nkind = \"oci\"\n").expect_err("refused");
        assert!(e.contains("needs `binary`"), "{e}");
        let e = parse("[runtime_handlers.x]\nkind = \"shim-v2\"\n").expect_err("refused");
        assert!(e.contains("containerd-shim"), "{e}");
        let e = parse("[runtime_handlers.x]\nkind = \"kata\"\n").expect_err("refused");
        assert!(e.contains("kata"), "{e}");
        let e = parse("[runtime_handlers.x]\nbinary = \"b\"\nbogus = 1\n").expect_err("refused");
        assert!(e.contains("bogus"), "{e}");
        let e = parse("[runtime_handlers.x]\nbinary = \"b\"\nargs = [\"ptrace\"]\n").expect_err("refused");
        assert!(e.contains("must be flags"), "{e}");
        let e = parse("[runtime_handlers]\nx = 3\n").expect_err("refused");
        assert!(e.contains("integer"), "{e}");
        assert!(parse("[runtime_handlers]\nx = \"\"\n").is_err());
        let e = parse("[runtime_handlers.x]\nbinary = \"b\"\nfeatures_from = \"runc\"\n").expect_err("refused");
        assert!(e.contains("shim-v2 handlers"), "{e}");
        let e = parse("[runtime_handlers.x]\nkind = \"shim-v2\"\nbinary = \"b\"\nfeatures_from = \"\"\n")
            .expect_err("refused");
        assert!(e.contains("must not be empty"), "{e}");
    }
}
