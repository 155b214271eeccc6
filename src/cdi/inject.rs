//! Applying resolved CDI edits to a container's OCI spec.
//!
//! Device nodes take their type and numbers from the host node (`hostPath`, else `path`),
//! unless the spec gives them; each gets a device cgroup allow rule. Mounts replace a mount of
//! the same destination and are ordered parents first. Env entries replace the same key.
//! Hooks are added to the OCI hook point they name. Two edits that disagree (the same env key,
//! device path or mount destination with different values, two Intel RDT classes) are a
//! conflict, reported with both origins; nothing is applied then.

use std::collections::HashMap;
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    Hook, HookBuilder, Hooks, LinuxDevice, LinuxDeviceBuilder, LinuxDeviceCgroupBuilder, LinuxDeviceType,
    LinuxIntelRdtBuilder, LinuxNetDeviceBuilder, Mount, MountBuilder, Spec,
};

use super::registry::Edit;
use super::spec::{self, DeviceNode};
use crate::sys::dev::{major, minor};

/// A device node injected into the container, as found on the host (for `/dev/char` links).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostNode {
    pub block: bool,
    pub major: i64,
    pub minor: i64,
    pub host_path: PathBuf,
}

/// Tracks which edit set each value, to report conflicts.
#[derive(Default)]
struct Claims {
    seen: HashMap<(&'static str, String), (String, String)>,
}

impl Claims {
    fn claim(&mut self, what: &'static str, key: &str, value: String, origin: &str) -> Result<(), String> {
        match self.seen.get(&(what, key.to_owned())) {
            Some((v, o)) if *v != value => Err(format!(
                "CDI conflict: {what} {key:?} is {v:?} for {o} but {value:?} for {origin}"
            )),
            Some(_) => Ok(()),
            None => {
                self.seen.insert((what, key.to_owned()), (value, origin.to_owned()));
                Ok(())
            }
        }
    }
}

/// Applies `edits` to `spec`. On error (a conflict, a missing host node, a bad value) the spec
/// is left unchanged.
pub fn apply(oci: &mut Spec, edits: &[Edit]) -> Result<Vec<HostNode>, String> {
    if edits.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = oci.clone();
    let mut claims = Claims::default();
    let mut nodes = Vec::new();
    for e in edits {
        let origin = e.origin.as_str();
        for kv in &e.edits.env {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            claims.claim("env", k, v.to_owned(), origin)?;
            set_env(&mut out, k, kv);
        }
        for (i, n) in e.edits.device_nodes.iter().enumerate() {
            let (dev, host) = device(n).map_err(|err| format!("{origin}: deviceNodes[{i}] ({}): {err}", n.path))?;
            claims.claim(
                "device node",
                &n.path,
                format!("{:?} {}:{}", dev.typ(), dev.major(), dev.minor()),
                origin,
            )?;
            add_device(&mut out, dev, n.permissions.as_deref().unwrap_or("rwm"))?;
            nodes.extend(host);
        }
        for m in &e.edits.mounts {
            claims.claim("mount", &m.container_path, m.host_path.clone(), origin)?;
            add_mount(&mut out, m)?;
        }
        for h in &e.edits.hooks {
            add_hook(&mut out, h)?;
        }
        if let Some(rdt) = &e.edits.intel_rdt {
            claims.claim("intelRdt", "", format!("{rdt:?}"), origin)?;
            let mut b = LinuxIntelRdtBuilder::default();
            if let Some(v) = &rdt.clos_id {
                b = b.clos_id(v.clone());
            }
            if let Some(v) = &rdt.l3_cache_schema {
                b = b.l3_cache_schema(v.clone());
            }
            if let Some(v) = &rdt.mem_bw_schema {
                b = b.mem_bw_schema(v.clone());
            }
            if let Some(v) = rdt.enable_cmt {
                b = b.enable_cmt(v);
            }
            if let Some(v) = rdt.enable_mbm {
                b = b.enable_mbm(v);
            }
            let rdt = b.build().map_err(|e| format!("{origin}: intelRdt: {e}"))?;
            linux(&mut out).set_intel_rdt(Some(rdt));
        }
        if !e.edits.additional_gids.is_empty() {
            let mut process = out.process().clone().unwrap_or_default();
            let mut user = process.user().clone();
            let mut gids = user.additional_gids().clone().unwrap_or_default();
            for g in &e.edits.additional_gids {
                if *g != 0 && !gids.contains(g) {
                    gids.push(*g);
                }
            }
            user.set_additional_gids(Some(gids));
            process.set_user(user);
            out.set_process(Some(process));
        }
        for n in &e.edits.net_devices {
            claims.claim("netDevice", &n.host_interface_name, n.name.clone(), origin)?;
            let mut b = LinuxNetDeviceBuilder::default();
            if !n.name.is_empty() {
                b = b.name(n.name.clone());
            }
            let dev = b.build().map_err(|e| format!("{origin}: netDevices: {e}"))?;
            let l = linux(&mut out);
            let mut map = l.net_devices().clone().unwrap_or_default();
            map.insert(n.host_interface_name.clone(), dev);
            l.set_net_devices(Some(map));
        }
    }
    // Parents before children, so a CDI mount under another mount is not hidden by it.
    if let Some(m) = out.mounts_mut() {
        m.sort_by_key(|m| m.destination().components().count());
    }
    *oci = out;
    Ok(nodes)
}

fn linux(spec: &mut Spec) -> &mut oci_spec::runtime::Linux {
    spec.linux_mut().get_or_insert_with(Default::default)
}

fn set_env(spec: &mut Spec, key: &str, entry: &str) {
    let mut process = spec.process().clone().unwrap_or_default();
    let mut env = process.env().clone().unwrap_or_default();
    let prefix = format!("{key}=");
    match env.iter_mut().find(|e| e.starts_with(&prefix) || *e == key) {
        Some(e) => *e = entry.to_owned(),
        None => env.push(entry.to_owned()),
    }
    process.set_env(Some(env));
    spec.set_process(Some(process));
}

fn dev_type(t: &str) -> LinuxDeviceType {
    match t {
        "b" => LinuxDeviceType::B,
        "u" => LinuxDeviceType::U,
        "p" => LinuxDeviceType::P,
        _ => LinuxDeviceType::C,
    }
}

/// The OCI device for a CDI device node, and the host node it was read from.
fn device(n: &DeviceNode) -> Result<(LinuxDevice, Option<HostNode>), String> {
    let host_path = PathBuf::from(n.host_path.as_deref().unwrap_or(&n.path));
    let complete = n.typ.as_deref() == Some("p") || (n.typ.is_some() && n.major.is_some() && n.minor.is_some());
    let host = match std::fs::metadata(&host_path) {
        Ok(m) => Some(m),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && complete => None,
        Err(e) => return Err(format!("host node {}: {e}", host_path.display())),
    };
    let host_type = host.as_ref().and_then(|m| {
        let ft = m.file_type();
        if ft.is_char_device() {
            Some("c")
        } else if ft.is_block_device() {
            Some("b")
        } else if ft.is_fifo() {
            Some("p")
        } else {
            None
        }
    });
    if host.is_some() && host_type.is_none() {
        return Err(format!("host node {} is not a device", host_path.display()));
    }
    let typ = n.typ.as_deref().or(host_type).unwrap_or("c");
    let mut b = LinuxDeviceBuilder::default()
        .path(PathBuf::from(&n.path))
        .typ(dev_type(typ));
    let (mut maj, mut min) = (n.major, n.minor);
    if let Some(m) = &host {
        maj = maj.or(Some(major(m.rdev())));
        min = min.or(Some(minor(m.rdev())));
    }
    if typ != "p" {
        b = b.major(maj.unwrap_or(0)).minor(min.unwrap_or(0));
    }
    let mode = n.file_mode.or(host.as_ref().map(|m| m.mode() & 0o777));
    if let Some(mode) = mode {
        b = b.file_mode(mode);
    }
    if let Some(uid) = n.uid {
        b = b.uid(uid);
    }
    if let Some(gid) = n.gid {
        b = b.gid(gid);
    }
    let dev = b.build().map_err(|e| e.to_string())?;
    let node = (host.is_some() && matches!(typ, "c" | "b" | "u")).then(|| HostNode {
        block: typ == "b",
        major: dev.major(),
        minor: dev.minor(),
        host_path: host_path.clone(),
    });
    Ok((dev, node))
}

fn add_device(spec: &mut Spec, dev: LinuxDevice, access: &str) -> Result<(), String> {
    let rule = (dev.typ() != LinuxDeviceType::P)
        .then(|| {
            LinuxDeviceCgroupBuilder::default()
                .allow(true)
                .typ(if dev.typ() == LinuxDeviceType::B {
                    LinuxDeviceType::B
                } else {
                    LinuxDeviceType::C
                })
                .major(dev.major())
                .minor(dev.minor())
                .access(access)
                .build()
                .map_err(|e| e.to_string())
        })
        .transpose()?;
    let l = linux(spec);
    let mut devices = l.devices().clone().unwrap_or_default();
    devices.retain(|d| d.path() != dev.path());
    devices.push(dev);
    l.set_devices(Some(devices));
    if let Some(rule) = rule {
        let mut res = l.resources().clone().unwrap_or_default();
        let mut rules = res.devices().clone().unwrap_or_default();
        rules.push(rule);
        res.set_devices(Some(rules));
        l.set_resources(Some(res));
    }
    Ok(())
}

fn add_mount(spec: &mut Spec, m: &spec::Mount) -> Result<(), String> {
    let mut options = m.options.clone();
    let bind = options.iter().any(|o| o == "bind" || o == "rbind");
    let typ = match (&m.typ, bind) {
        (Some(t), _) => t.clone(),
        (None, _) => {
            if !bind {
                options.push("bind".into());
            }
            "bind".into()
        }
    };
    let mount: Mount = MountBuilder::default()
        .destination(PathBuf::from(&m.container_path))
        .source(PathBuf::from(&m.host_path))
        .typ(typ)
        .options(options)
        .build()
        .map_err(|e| format!("mount {}: {e}", m.container_path))?;
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    mounts.retain(|x| x.destination() != Path::new(&m.container_path));
    mounts.push(mount);
    spec.set_mounts(Some(mounts));
    Ok(())
}

fn add_hook(spec: &mut Spec, h: &spec::Hook) -> Result<(), String> {
    let mut b = HookBuilder::default().path(PathBuf::from(&h.path));
    if !h.args.is_empty() {
        b = b.args(h.args.clone());
    }
    if !h.env.is_empty() {
        b = b.env(h.env.clone());
    }
    if let Some(t) = h.timeout {
        b = b.timeout(t);
    }
    let hook: Hook = b.build().map_err(|e| format!("hook {}: {e}", h.path))?;
    let hooks = spec.hooks_mut().get_or_insert_with(Hooks::default);
    #[allow(deprecated)]
    let list = match h.hook_name.as_str() {
        "prestart" => hooks.prestart_mut(),
        "createRuntime" => hooks.create_runtime_mut(),
        "createContainer" => hooks.create_container_mut(),
        "startContainer" => hooks.start_container_mut(),
        "poststart" => hooks.poststart_mut(),
        "poststop" => hooks.poststop_mut(),
        other => return Err(format!("hook {}: unknown hook point {other:?}", h.path)),
    };
    list.get_or_insert_with(Vec::new).push(hook);
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::spec::{ContainerEdits, Hook as CdiHook, Mount as CdiMount};
    use super::*;

    fn base() -> Spec {
        let mut s = Spec::default();
        let mut p = s.process().clone().unwrap();
        p.set_env(Some(vec!["PATH=/bin".into(), "A=old".into()]));
        s.set_process(Some(p));
        s
    }

    fn edit(origin: &str, edits: ContainerEdits) -> Edit {
        Edit {
            origin: origin.into(),
            edits,
        }
    }

    #[test]
    fn applies_every_kind_of_edit() {
        let mut s = base();
        let nodes = apply(
            &mut s,
            &[
                edit(
                    "common",
                    ContainerEdits {
                        env: vec!["A=new".into(), "B=1".into()],
                        mounts: vec![
                            CdiMount {
                                host_path: "/usr/lib/x/libv.so.1".into(),
                                container_path: "/usr/lib/libv.so.1".into(),
                                options: vec!["ro".into(), "nosuid".into()],
                                typ: None,
                            },
                            CdiMount {
                                host_path: "/".into(),
                                container_path: "/x".into(),
                                options: vec![],
                                typ: Some("tmpfs".into()),
                            },
                        ],
                        hooks: vec![CdiHook {
                            hook_name: "createContainer".into(),
                            path: "/bin/true".into(),
                            args: vec!["true".into(), "x".into()],
                            ..Default::default()
                        }],
                        additional_gids: vec![44, 0, 44],
                        ..Default::default()
                    },
                ),
                edit(
                    "v.com/c=0",
                    ContainerEdits {
                        device_nodes: vec![
                            DeviceNode {
                                path: "/dev/vnull".into(),
                                host_path: Some("/dev/null".into()),
                                permissions: Some("rw".into()),
                                ..Default::default()
                            },
                            DeviceNode {
                                path: "/dev/virtual".into(),
                                host_path: Some("/nonexistent/dev".into()),
                                typ: Some("b".into()),
                                major: Some(7),
                                minor: Some(9),
                                ..Default::default()
                            },
                        ],
                        ..Default::default()
                    },
                ),
            ],
        )
        .unwrap();
        let env = s.process().as_ref().unwrap().env().clone().unwrap();
        assert_eq!(env, vec!["PATH=/bin", "A=new", "B=1"]);
        let linux = s.linux().as_ref().unwrap();
        let devs = linux.devices().as_ref().unwrap();
        let vnull = devs.iter().find(|d| d.path() == Path::new("/dev/vnull")).unwrap();
        assert_eq!((vnull.typ(), vnull.major(), vnull.minor()), (LinuxDeviceType::C, 1, 3));
        let virt = devs.iter().find(|d| d.path() == Path::new("/dev/virtual")).unwrap();
        assert_eq!((virt.typ(), virt.major(), virt.minor()), (LinuxDeviceType::B, 7, 9));
        let rules = linux.resources().as_ref().unwrap().devices().clone().unwrap();
        assert!(rules
            .iter()
            .any(|r| r.major() == Some(1) && r.minor() == Some(3) && r.access().as_deref() == Some("rw")));
        assert_eq!(
            nodes,
            vec![HostNode {
                block: false,
                major: 1,
                minor: 3,
                host_path: "/dev/null".into()
            }]
        );
        let mounts = s.mounts().as_ref().unwrap();
        let lib = mounts
            .iter()
            .find(|m| m.destination() == Path::new("/usr/lib/libv.so.1"))
            .unwrap();
        assert_eq!(lib.typ().as_deref(), Some("bind"));
        assert!(lib.options().as_ref().unwrap().contains(&"bind".to_string()));
        let hooks = s.hooks().as_ref().unwrap().create_container().clone().unwrap();
        assert_eq!(hooks[0].args().clone().unwrap(), vec!["true", "x"]);
        assert_eq!(
            s.process().as_ref().unwrap().user().additional_gids().clone().unwrap(),
            vec![44]
        );
    }

    #[test]
    fn conflicts_and_missing_nodes_leave_the_spec_alone() {
        let env = |o: &str, v: &str| {
            edit(
                o,
                ContainerEdits {
                    env: vec![v.into()],
                    ..Default::default()
                },
            )
        };
        let mut s = base();
        let before = s.clone();
        let err = apply(&mut s, &[env("a=1", "K=1"), env("a=2", "K=2")]).unwrap_err();
        assert!(
            err.contains("a=1") && err.contains("a=2") && err.contains("\"K\""),
            "{err}"
        );
        assert_eq!(s, before);
        apply(&mut s, &[env("a=1", "K=1"), env("a=2", "K=1")]).unwrap();

        let missing = edit(
            "v.com/c=9",
            ContainerEdits {
                device_nodes: vec![DeviceNode {
                    path: "/dev/nothere".into(),
                    ..Default::default()
                }],
                ..Default::default()
            },
        );
        let err = apply(&mut s, &[missing]).unwrap_err();
        assert!(err.contains("v.com/c=9") && err.contains("/dev/nothere"), "{err}");
    }
}
