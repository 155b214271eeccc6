//! The CDI spec registry: spec files from the configured directories, loaded on first use and
//! again whenever a file in them is added, removed or changed.
//!
//! Directories are listed lowest priority first (default `/etc/cdi`, then `/var/run/cdi`): a
//! device declared in a later directory replaces one of the same name from an earlier one.
//! Two files of the same directory declaring the same device make that device unusable, with
//! an error naming both. A file that fails to parse or validate is skipped with an error
//! naming it and the field; the other files still load.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use super::spec::{self, ContainerEdits, Spec};

/// A loaded, valid spec file.
#[derive(Debug)]
pub struct LoadedSpec {
    pub path: PathBuf,
    /// Index of its directory in the registry's list (higher wins).
    pub priority: usize,
    pub spec: Spec,
}

#[derive(Debug, Clone)]
struct Entry {
    spec: Arc<LoadedSpec>,
    device: usize,
    /// Another file of the same priority that declares the same device.
    conflict: Option<PathBuf>,
}

/// Identity of one spec file as last seen: path, mtime, size, inode.
type Stamp = (PathBuf, Option<SystemTime>, u64, u64);

#[derive(Debug, Default)]
struct State {
    loaded: bool,
    stamps: Vec<Stamp>,
    /// Fully qualified name → where it is declared.
    devices: BTreeMap<String, Entry>,
    errors: Vec<String>,
}

/// Edits to apply for a request, each with where it came from (for conflict messages).
#[derive(Debug, Clone)]
pub struct Edit {
    pub origin: String,
    pub edits: ContainerEdits,
}

/// The CDI devices known on this node.
#[derive(Debug)]
pub struct Registry {
    dirs: Vec<PathBuf>,
    state: Mutex<State>,
}

/// Summary of the registry for status output.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Listing {
    pub spec_dirs: Vec<PathBuf>,
    pub devices: Vec<String>,
    pub errors: Vec<String>,
}

impl Registry {
    /// A registry over `dirs`, lowest priority first. Nothing is read until first use.
    pub fn new(dirs: Vec<PathBuf>) -> Self {
        Self {
            dirs,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        let mut st = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let stamps = stamps(&self.dirs);
        if !st.loaded || st.stamps != stamps {
            *st = load(&self.dirs, stamps);
        }
        st
    }

    /// The devices and load errors, refreshed.
    pub fn listing(&self) -> Listing {
        let st = self.state();
        Listing {
            spec_dirs: self.dirs.clone(),
            devices: st.devices.keys().cloned().collect(),
            errors: st.errors.clone(),
        }
    }

    /// Resolves fully qualified device names (`vendor.com/class=name`; `=all` is the spec's
    /// device named `all`, else every device of the kind) to the edits to apply: each spec's
    /// common edits once, then each device's, in request order, duplicates dropped. An unknown
    /// or malformed name is an error naming it.
    pub fn resolve(&self, names: &[String]) -> Result<Vec<Edit>, String> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let st = self.state();
        let mut picked: Vec<(String, Entry)> = Vec::new();
        for name in names {
            let (kind, dev) = spec::parse_qualified(name)?;
            let found: Vec<(String, Entry)> = match st.devices.get(name.as_str()) {
                Some(e) => vec![(name.clone(), e.clone())],
                None if dev == "all" => {
                    let prefix = format!("{kind}=");
                    st.devices
                        .iter()
                        .filter(|(k, _)| k.starts_with(&prefix))
                        .map(|(k, e)| (k.clone(), e.clone()))
                        .collect()
                }
                None => Vec::new(),
            };
            if found.is_empty() {
                let hint = if st.errors.is_empty() {
                    String::new()
                } else {
                    format!(" (spec errors: {})", st.errors.join("; "))
                };
                return Err(format!(
                    "unknown CDI device {name:?}: no spec in {} declares it{hint}",
                    self.dirs
                        .iter()
                        .map(|d| d.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            for (qualified, e) in found {
                if let Some(other) = &e.conflict {
                    return Err(format!(
                        "CDI device {qualified:?} is declared by both {} and {}",
                        e.spec.path.display(),
                        other.display()
                    ));
                }
                if !picked.iter().any(|(q, _)| *q == qualified) {
                    picked.push((qualified, e));
                }
            }
        }
        let mut out = Vec::new();
        let mut specs_done: Vec<&Path> = Vec::new();
        for (_, e) in &picked {
            if specs_done.contains(&e.spec.path.as_path()) {
                continue;
            }
            specs_done.push(&e.spec.path);
            if let Some(common) = &e.spec.spec.container_edits {
                out.push(Edit {
                    origin: format!("{} ({})", e.spec.spec.kind, e.spec.path.display()),
                    edits: common.clone(),
                });
            }
        }
        for (q, e) in picked {
            out.push(Edit {
                origin: q,
                edits: e.spec.spec.devices[e.device].container_edits.clone(),
            });
        }
        Ok(out)
    }
}

fn is_spec_file(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e, "json" | "yaml" | "yml"))
}

/// Spec files of `dirs` in load order (directory order, then name), with their stamps.
fn stamps(dirs: &[PathBuf]) -> Vec<Stamp> {
    use std::os::unix::fs::MetadataExt as _;
    let mut out = Vec::new();
    for dir in dirs {
        let Ok(rd) = std::fs::read_dir(dir) else { continue };
        let mut files: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| is_spec_file(p))
            .collect();
        files.sort();
        for f in files {
            if let Ok(m) = std::fs::metadata(&f) {
                if m.is_file() {
                    out.push((f, m.modified().ok(), m.len(), m.ino()));
                }
            }
        }
    }
    out
}

/// Largest spec file read (a spec is a few KiB; this bounds a corrupt or hostile one).
const MAX_SPEC_BYTES: u64 = 4 << 20;

fn read_spec(path: &Path) -> Result<Spec, String> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    file.take(MAX_SPEC_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_SPEC_BYTES {
        return Err(format!("larger than {MAX_SPEC_BYTES} bytes"));
    }
    spec::parse(path, &bytes)
}

fn load(dirs: &[PathBuf], stamps: Vec<Stamp>) -> State {
    let mut st = State {
        loaded: true,
        ..State::default()
    };
    for (path, ..) in &stamps {
        let priority = dirs.iter().rposition(|d| path.starts_with(d)).unwrap_or(0);
        let spec = match read_spec(path) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "CDI spec skipped");
                st.errors.push(format!("{}: {e}", path.display()));
                continue;
            }
        };
        let loaded = Arc::new(LoadedSpec {
            path: path.clone(),
            priority,
            spec,
        });
        for (i, d) in loaded.spec.devices.iter().enumerate() {
            let qualified = format!("{}={}", loaded.spec.kind, d.name);
            let entry = Entry {
                spec: loaded.clone(),
                device: i,
                conflict: None,
            };
            match st.devices.get_mut(&qualified) {
                Some(old) if old.spec.priority == priority => old.conflict = Some(path.clone()),
                Some(old) => *old = entry,
                None => {
                    st.devices.insert(qualified, entry);
                }
            }
        }
    }
    st.stamps = stamps;
    tracing::debug!(devices = st.devices.len(), errors = st.errors.len(), "CDI specs loaded");
    st
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn spec(kind: &str, devices: &[(&str, &str)], common_env: Option<&str>) -> String {
        let devs: Vec<String> = devices
            .iter()
            .map(|(n, env)| format!(r#"{{"name":"{n}","containerEdits":{{"env":["{env}"]}}}}"#))
            .collect();
        let common = common_env.map_or(String::new(), |e| format!(r#","containerEdits":{{"env":["{e}"]}}"#));
        format!(
            r#"{{"cdiVersion":"0.6.0","kind":"{kind}","devices":[{}]{common}}}"#,
            devs.join(",")
        )
    }

    fn envs(edits: &[Edit]) -> Vec<String> {
        edits.iter().flat_map(|e| e.edits.env.clone()).collect()
    }

    #[test]
    fn resolves_priorities_all_and_refreshes() {
        let tmp = tempfile::tempdir().unwrap();
        let (etc, run) = (tmp.path().join("etc"), tmp.path().join("run"));
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::create_dir_all(&run).unwrap();
        std::fs::write(
            etc.join("a.json"),
            spec("v.com/gpu", &[("0", "G=0"), ("1", "G=1")], Some("COMMON=1")),
        )
        .unwrap();
        std::fs::write(
            etc.join("bad.yaml"),
            "cdiVersion: \"0.6.0\"\nkind: v.com/x\ndevices: []\n",
        )
        .unwrap();
        std::fs::write(etc.join("ignored.txt"), "not a spec").unwrap();
        let reg = Registry::new(vec![etc.clone(), run.clone()]);

        let l = reg.listing();
        assert_eq!(l.devices, vec!["v.com/gpu=0", "v.com/gpu=1"]);
        assert_eq!(l.errors.len(), 1);
        assert!(l.errors[0].contains("bad.yaml: devices"), "{:?}", l.errors);

        let e = reg.resolve(&["v.com/gpu=1".into(), "v.com/gpu=1".into()]).unwrap();
        assert_eq!(envs(&e), vec!["COMMON=1", "G=1"]);
        let e = reg.resolve(&["v.com/gpu=all".into()]).unwrap();
        assert_eq!(envs(&e), vec!["COMMON=1", "G=0", "G=1"]);

        let err = reg.resolve(&["v.com/gpu=7".into()]).unwrap_err();
        assert!(err.contains("\"v.com/gpu=7\"") && err.contains("bad.yaml"), "{err}");
        assert!(reg.resolve(&["gpu7".into()]).unwrap_err().contains("\"gpu7\""));

        // A higher-priority directory overrides; a new file is seen without a restart.
        std::fs::write(run.join("b.yaml"), spec("v.com/gpu", &[("1", "G=run1")], None)).unwrap();
        let e = reg.resolve(&["v.com/gpu=1".into()]).unwrap();
        assert_eq!(envs(&e), vec!["G=run1"]);

        // Same directory, same device: unusable, both files named.
        std::fs::write(run.join("c.json"), spec("v.com/gpu", &[("1", "G=c")], None)).unwrap();
        let err = reg.resolve(&["v.com/gpu=1".into()]).unwrap_err();
        assert!(err.contains("b.yaml") && err.contains("c.json"), "{err}");

        // Removing files is seen too.
        std::fs::remove_file(run.join("b.yaml")).unwrap();
        std::fs::remove_file(run.join("c.json")).unwrap();
        assert_eq!(
            envs(&reg.resolve(&["v.com/gpu=1".into()]).unwrap()),
            vec!["COMMON=1", "G=1"]
        );
    }

    #[test]
    fn explicit_all_device_wins_and_missing_dirs_are_fine() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(
            tmp.path().join("n.json"),
            spec("nvidia.com/gpu", &[("0", "G=0"), ("all", "G=ALL")], None),
        )
        .unwrap();
        let reg = Registry::new(vec![tmp.path().join("missing"), tmp.path().to_path_buf()]);
        assert_eq!(
            envs(&reg.resolve(&["nvidia.com/gpu=all".into()]).unwrap()),
            vec!["G=ALL"]
        );
        assert!(reg.resolve(&[]).unwrap().is_empty());
    }
}
