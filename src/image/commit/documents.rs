//! The new image's config and manifest, made from the base's (or from nothing, for
//! `FROM scratch`).

use serde_json::{json, Map, Value};

use super::changes::{self, Change};
use super::spec::{CommitSpec, Written};
use crate::image::manifest::{DOCKER_MANIFEST, OCI_CONFIG, OCI_LAYER_GZIP, OCI_LAYER_ZSTD, OCI_MANIFEST};
use crate::image::reference::Digest;
use crate::image::ImageError;

const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// A Docker schema 2 manifest in OCI terms (same structure, OCI media types).
fn to_oci(doc: &mut Map<String, Value>) {
    doc.insert("mediaType".into(), json!(OCI_MANIFEST));
    if let Some(c) = doc.get_mut("config").and_then(Value::as_object_mut) {
        if c.get("mediaType").and_then(Value::as_str) == Some(DOCKER_CONFIG) {
            c.insert("mediaType".into(), json!(OCI_CONFIG));
        }
    }
    for l in doc
        .get_mut("layers")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if l.get("mediaType").and_then(Value::as_str) == Some(DOCKER_LAYER_GZIP) {
            l["mediaType"] = json!(OCI_LAYER_GZIP);
        }
    }
}

/// Now, as image configs write times.
pub fn now_rfc3339() -> String {
    let mut out = Vec::with_capacity(32);
    berth_shim::timefmt::push_rfc3339_nano(crate::clock::now_nanos(), &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

pub(in crate::image) fn internal(what: &str) -> impl FnOnce(serde_json::Error) -> ImageError + '_ {
    move |e| ImageError::Internal(format!("{what}: {e}"))
}

/// The node's architecture as image configs name it.
pub fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// The config and manifest of an image with no layers.
pub(super) fn scratch() -> (Vec<u8>, Vec<u8>) {
    let config = json!({
        "architecture": host_architecture(),
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": []},
        "history": [],
    });
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": "", "size": 0},
        "layers": [],
    });
    (config.to_string().into_bytes(), manifest.to_string().into_bytes())
}

fn object<'a>(doc: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let slot = doc.entry(key).or_insert_with(|| json!({}));
    if !slot.is_object() {
        *slot = json!({});
    }
    slot.as_object_mut().expect("an object was just put there")
}

fn array<'a>(doc: &'a mut Map<String, Value>, key: &str) -> &'a mut Vec<Value> {
    let slot = doc.entry(key).or_insert_with(|| json!([]));
    if !slot.is_array() {
        *slot = json!([]);
    }
    slot.as_array_mut().expect("an array was just put there")
}

/// A container's run settings (and `commit -c` changes) over the base's.
fn apply_run_settings(run: &mut Map<String, Value>, spec: &CommitSpec, changes: &[Change]) {
    let mut env: Vec<String> = run
        .get("Env")
        .and_then(|e| serde_json::from_value(e.clone()).ok())
        .unwrap_or_default();
    for (k, v) in &spec.env {
        changes::set_env(&mut env, k, v);
    }
    run.insert("Env".into(), json!(env));
    if !spec.working_dir.is_empty() {
        run.insert("WorkingDir".into(), json!(spec.working_dir));
    }
    if let Some(entrypoint) = &spec.entrypoint {
        run.insert("Entrypoint".into(), json!(entrypoint));
    }
    if let Some(cmd) = &spec.cmd {
        run.insert("Cmd".into(), json!(cmd));
    }
    changes::apply(run, changes);
}

/// The new config: the base's with the run settings (or a build's whole run config), the
/// new layer's diff id and the history entries.
pub(super) fn new_config(
    base: &[u8],
    spec: &CommitSpec,
    changes: &[Change],
    diff_id: Option<&Digest>,
) -> Result<Value, ImageError> {
    let mut doc: Map<String, Value> = serde_json::from_slice(base).map_err(internal("the base image's config"))?;
    let created = now_rfc3339();
    let run = object(&mut doc, "config");
    match &spec.run_config {
        Some(config) => *run = config.clone(),
        None => apply_run_settings(run, spec, changes),
    }
    doc.insert("created".into(), json!(created));
    if !spec.author.is_empty() {
        doc.insert("author".into(), json!(spec.author));
    }
    let rootfs = object(&mut doc, "rootfs");
    rootfs.insert("type".into(), json!("layers"));
    let ids = array(rootfs, "diff_ids");
    if let Some(diff_id) = diff_id {
        ids.push(json!(diff_id.as_str()));
    }
    let mut steps = spec.history.clone();
    if diff_id.is_some() || steps.is_empty() {
        let mut step = json!({"created": created, "created_by": spec.created_by});
        if !spec.author.is_empty() {
            step["author"] = json!(spec.author);
        }
        if !spec.message.is_empty() {
            step["comment"] = json!(spec.message);
        }
        if diff_id.is_none() {
            step["empty_layer"] = json!(true);
        }
        steps.push(step);
    }
    array(&mut doc, "history").extend(steps);
    Ok(Value::Object(doc))
}

/// The new manifest: the base's with the new config and the new layer, in the base's
/// format (Docker or OCI).
pub(super) fn new_manifest(
    base: &[u8],
    config: (&Digest, usize),
    layer: Option<&Written>,
) -> Result<Value, ImageError> {
    let mut doc: Map<String, Value> = serde_json::from_slice(base).map_err(internal("the base image's manifest"))?;
    let mut docker = doc.get("mediaType").and_then(Value::as_str) == Some(DOCKER_MANIFEST);
    if docker && layer.is_some_and(|l| l.zstd) {
        // Docker's format has no zstd layers: the image becomes an OCI one.
        to_oci(&mut doc);
        docker = false;
    }
    let layer_type = match (docker, layer.is_some_and(|l| l.zstd)) {
        (_, true) => OCI_LAYER_ZSTD,
        (true, false) => DOCKER_LAYER_GZIP,
        (false, false) => OCI_LAYER_GZIP,
    };
    let c = object(&mut doc, "config");
    c.insert("digest".into(), json!(config.0.as_str()));
    c.insert("size".into(), json!(config.1));
    if let Some(layer) = layer {
        let entry = json!({"mediaType": layer_type, "digest": layer.digest.as_str(), "size": layer.size});
        array(&mut doc, "layers").push(entry);
    }
    doc.remove("annotations");
    Ok(Value::Object(doc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_only_step_on_scratch() {
        let (config, manifest) = scratch();
        let spec = CommitSpec {
            run_config: Some(serde_json::from_value(json!({"Env": ["A=1"]})).expect("map")),
            history: vec![json!({"created_by": "ENV A=1", "empty_layer": true})],
            ..Default::default()
        };
        let doc = new_config(&config, &spec, &[], None).expect("config");
        assert_eq!(doc["config"], json!({"Env": ["A=1"]}));
        assert_eq!(doc["rootfs"]["diff_ids"], json!([]));
        assert_eq!(doc["history"], json!([{"created_by": "ENV A=1", "empty_layer": true}]));
        let digest = Digest::of(b"x");
        let m = new_manifest(&manifest, (&digest, 1), None).expect("manifest");
        assert_eq!(m["config"]["digest"], json!(digest.as_str()));
        assert_eq!(m["layers"], json!([]));
    }

    #[test]
    fn a_layer_step_adds_its_diff_id_and_history() {
        let base = json!({"config": {"Env": ["PATH=/bin"], "Cmd": ["sh"]}, "rootfs": {"type": "layers", "diff_ids": ["sha256:aa"]}, "history": [{"created_by": "base"}]});
        let spec = CommitSpec {
            env: vec![("A".into(), "1".into())],
            cmd: Some(vec!["run".into()]),
            created_by: "step".into(),
            message: "why".into(),
            ..Default::default()
        };
        let diff = Digest::of(b"layer");
        let doc = new_config(base.to_string().as_bytes(), &spec, &[], Some(&diff)).expect("config");
        assert_eq!(doc["config"]["Env"], json!(["PATH=/bin", "A=1"]));
        assert_eq!(doc["config"]["Cmd"], json!(["run"]));
        assert_eq!(doc["rootfs"]["diff_ids"], json!(["sha256:aa", diff.as_str()]));
        assert_eq!(doc["history"][1]["created_by"], json!("step"));
        assert_eq!(doc["history"][1]["comment"], json!("why"));
        assert!(doc["history"][1].get("empty_layer").is_none());
    }
}
