//! The CDI spec built from what discovery found: one device per GPU (by index and UUID),
//! per MIG device, and `all`, with the driver's files and hook in the common edits.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::devices::*;
use super::types::*;
use crate::sys::inroot::host_path;

pub(super) fn build_spec(
    opts: &Options,
    gpus: &[FoundGpu],
    control: &[PathBuf],
    mounts: &BTreeMap<PathBuf, PathBuf>,
    folders: &BTreeSet<PathBuf>,
    warnings: &mut Vec<String>,
) -> Value {
    let node = |host: &Path| -> Value {
        let path = container_dev_path(&opts.dev_root, host);
        if opts.dev_root == Path::new("/") {
            json!({ "path": path })
        } else {
            json!({ "path": path, "hostPath": host })
        }
    };
    let nodes = |hosts: &BTreeSet<PathBuf>| -> Value {
        let mut sorted: Vec<&PathBuf> = hosts.iter().collect();
        sorted.sort_by_key(|h| container_dev_path(&opts.dev_root, h));
        Value::Array(sorted.into_iter().map(|h| node(h)).collect())
    };
    let device = |name: String, hosts: &BTreeSet<PathBuf>| -> Value {
        json!({ "name": name, "containerEdits": { "deviceNodes": nodes(hosts) } })
    };

    let mut by_index = Vec::new();
    let mut by_uuid = BTreeMap::new();
    let mut all = BTreeSet::new();
    for g in gpus {
        let gpu_nodes: BTreeSet<PathBuf> = [g.host_node.clone()].into();
        all.insert(g.host_node.clone());
        by_index.push(device(g.public.index.to_string(), &gpu_nodes));
        if let Some(uuid) = &g.public.uuid {
            add_uuid_device(&mut by_uuid, uuid, &gpu_nodes, warnings);
        }
        for ((mig_index, caps), public) in g.migs.iter().zip(&g.public.mig) {
            let mut mig_nodes = gpu_nodes.clone();
            mig_nodes.extend(caps.iter().cloned());
            all.extend(caps.iter().cloned());
            by_index.push(device(format!("{}:{mig_index}", g.public.index), &mig_nodes));
            if let Some(uuid) = &public.uuid {
                add_uuid_device(&mut by_uuid, uuid, &mig_nodes, warnings);
            }
        }
    }
    let mut devices = by_index;
    devices.extend(by_uuid.into_iter().map(|(name, hosts)| device(name, &hosts)));
    devices.push(device("all".to_string(), &all));

    let mut edits = serde_json::Map::new();
    edits.insert("env".to_string(), json!(["NVIDIA_VISIBLE_DEVICES=void"]));
    let control_hosts: BTreeSet<PathBuf> = control.iter().map(|p| host_path(&opts.dev_root, p)).collect();
    if !control_hosts.is_empty() {
        edits.insert("deviceNodes".to_string(), nodes(&control_hosts));
    }
    if !folders.is_empty() {
        let arg0 = opts
            .hook_binary
            .file_name()
            .map_or_else(|| opts.hook_binary.to_string_lossy(), |n| n.to_string_lossy());
        let mut args = vec![arg0.into_owned(), "cdi-hook".to_string(), "update-ldcache".to_string()];
        for folder in folders {
            args.push("--folder".to_string());
            args.push(folder.to_string_lossy().into_owned());
        }
        edits.insert(
            "hooks".to_string(),
            json!([{ "hookName": "createContainer", "path": opts.hook_binary, "args": args }]),
        );
    }
    if !mounts.is_empty() {
        let list: Vec<Value> = mounts
            .iter()
            .map(|(container, host)| json!({ "hostPath": host, "containerPath": container, "options": MOUNT_OPTIONS }))
            .collect();
        edits.insert("mounts".to_string(), Value::Array(list));
    }

    json!({
        "cdiVersion": CDI_VERSION,
        "kind": KIND,
        "devices": devices,
        "containerEdits": Value::Object(edits),
    })
}

pub(super) fn add_uuid_device(
    by_uuid: &mut BTreeMap<String, BTreeSet<PathBuf>>,
    uuid: &str,
    hosts: &BTreeSet<PathBuf>,
    warnings: &mut Vec<String>,
) {
    if valid_device_name(uuid) {
        by_uuid.insert(uuid.to_string(), hosts.clone());
    } else {
        let msg = format!("UUID {uuid:?} is not a valid CDI device name; device not named by UUID");
        if !warnings.contains(&msg) {
            warnings.push(msg);
        }
    }
}

/// CDI device names: letters, digits, `_`, `-`, `.`, `:`; starting and ending with a letter or digit.
pub(super) fn valid_device_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
}
