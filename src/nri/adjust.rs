//! Applying a (merged) NRI container adjustment to the container's OCI spec.
//!
//! The spec is edited as its JSON form (the OCI field names), then read back, so a value
//! the spec type rejects is an error and the spec is left as it was. Removal markers: a key
//! (annotation, env name, mount destination, device path, namespace type, sysctl) with a
//! `-` prefix removes that entry; removals are applied before additions.

use berth_proto::nri::{
    ContainerAdjustment, Hook, Hooks, IoPrioClass, LinuxContainerAdjustment, LinuxDevice, LinuxResources,
    LinuxSchedulerPolicy, LinuxSeccomp,
};
use oci_spec::runtime::Spec;
use serde_json::{json, Map, Value};

use super::error::{NriError, Result};

/// What the adjustment asks for that the OCI spec cannot carry: the caller resolves it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// CDI devices to inject (fully qualified names).
    pub cdi_devices: Vec<String>,
    /// A block I/O class (resolved against the node's class config, if any).
    pub blockio_class: Option<String>,
}

fn invalid(e: impl std::fmt::Display) -> NriError {
    NriError::Invalid(e.to_string())
}

/// `obj[key]` as an object, created (or replaced, when not an object) as needed.
fn obj<'a>(v: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    let m = v.as_object_mut().expect("an object");
    let e = m.entry(key).or_insert_with(|| json!({}));
    if !e.is_object() {
        *e = json!({});
    }
    e.as_object_mut().expect("an object")
}

/// `obj[key]` as an array, created as needed.
fn arr<'a>(m: &'a mut Map<String, Value>, key: &str) -> &'a mut Vec<Value> {
    let e = m.entry(key).or_insert_with(|| json!([]));
    if !e.is_array() {
        *e = json!([]);
    }
    e.as_array_mut().expect("an array")
}

fn marked(key: &str) -> Option<&str> {
    key.strip_prefix('-')
}

/// Applies `adj` to `spec`. On error the spec is unchanged.
pub fn apply_adjustment(spec: &mut Spec, adj: &ContainerAdjustment) -> Result<Applied> {
    let mut v = serde_json::to_value(&*spec).map_err(invalid)?;
    if !v.is_object() {
        return Err(invalid("spec is not an object"));
    }
    // Annotations.
    if !adj.annotations.is_empty() {
        let a = obj(&mut v, "annotations");
        for k in adj.annotations.keys().filter_map(|k| marked(k)) {
            a.remove(k);
        }
        for (k, val) in adj.annotations.iter().filter(|(k, _)| marked(k).is_none()) {
            a.insert(k.clone(), json!(val));
        }
    }
    // Mounts, by destination; parents before children.
    if !adj.mounts.is_empty() {
        let m = arr(v.as_object_mut().expect("object"), "mounts");
        for add in &adj.mounts {
            let dest = marked(&add.destination).unwrap_or(&add.destination);
            m.retain(|x| x.get("destination").and_then(Value::as_str) != Some(dest));
        }
        for add in adj.mounts.iter().filter(|m| marked(&m.destination).is_none()) {
            let mut o = json!({"destination": add.destination, "source": add.source, "options": add.options});
            if !add.r#type.is_empty() {
                o["type"] = json!(add.r#type);
            }
            m.push(o);
        }
        let depth = |x: &Value| {
            x.get("destination")
                .and_then(Value::as_str)
                .map_or(0, |d| d.split('/').filter(|s| !s.is_empty()).count())
        };
        m.sort_by_key(depth);
    }
    let linux_process = adj
        .linux
        .as_ref()
        .is_some_and(|l| l.oom_score_adj.is_some() || l.io_priority.is_some() || l.scheduler.is_some());
    if !adj.env.is_empty() || !adj.args.is_empty() || !adj.rlimits.is_empty() || linux_process {
        apply_process(obj(&mut v, "process"), adj);
    }
    if let Some(h) = &adj.hooks {
        apply_hooks(obj(&mut v, "hooks"), h);
    }
    let mut applied = Applied {
        cdi_devices: adj.cdi_devices.iter().map(|d| d.name.clone()).collect(),
        blockio_class: None,
    };
    if let Some(l) = &adj.linux {
        applied.blockio_class = apply_linux(obj(&mut v, "linux"), l)?;
    }
    *spec = serde_json::from_value(v).map_err(invalid)?;
    Ok(applied)
}

fn hook_json(h: &Hook) -> Value {
    let mut o = json!({"path": h.path});
    if !h.args.is_empty() {
        o["args"] = json!(h.args);
    }
    if !h.env.is_empty() {
        o["env"] = json!(h.env);
    }
    if let Some(t) = &h.timeout {
        o["timeout"] = json!(t.value);
    }
    o
}

fn apply_hooks(into: &mut Map<String, Value>, h: &Hooks) {
    for (key, hooks) in [
        ("prestart", &h.prestart),
        ("createRuntime", &h.create_runtime),
        ("createContainer", &h.create_container),
        ("startContainer", &h.start_container),
        ("poststart", &h.poststart),
        ("poststop", &h.poststop),
    ] {
        if !hooks.is_empty() {
            arr(into, key).extend(hooks.iter().map(hook_json));
        }
    }
}

fn apply_process(process: &mut Map<String, Value>, adj: &ContainerAdjustment) {
    if !adj.env.is_empty() {
        let env = arr(process, "env");
        for kv in &adj.env {
            let key = marked(&kv.key).unwrap_or(&kv.key).to_string();
            env.retain(|e| e.as_str().is_none_or(|e| e.split('=').next() != Some(key.as_str())));
            if marked(&kv.key).is_none() {
                env.push(json!(format!("{}={}", kv.key, kv.value)));
            }
        }
    }
    if !adj.args.is_empty() {
        process.insert("args".into(), json!(adj.args));
    }
    if !adj.rlimits.is_empty() {
        let rl = arr(process, "rlimits");
        for r in &adj.rlimits {
            rl.retain(|x| x.get("type").and_then(Value::as_str) != Some(r.r#type.as_str()));
            rl.push(json!({"type": r.r#type, "hard": r.hard, "soft": r.soft}));
        }
    }
    let Some(l) = &adj.linux else { return };
    if let Some(o) = &l.oom_score_adj {
        process.insert("oomScoreAdj".into(), json!(o.value));
    }
    // IOPRIO_CLASS_NONE and SCHED_NONE mean "not set".
    if let Some(p) = l
        .io_priority
        .as_ref()
        .filter(|p| p.class() != IoPrioClass::IoprioClassNone)
    {
        process.insert(
            "ioPriority".into(),
            json!({"class": p.class().as_str_name(), "priority": p.priority}),
        );
    }
    if let Some(s) = l
        .scheduler
        .as_ref()
        .filter(|s| s.policy() != LinuxSchedulerPolicy::SchedNone)
    {
        let flags: Vec<&str> = s.flags().map(|f| f.as_str_name()).collect();
        process.insert(
            "scheduler".into(),
            json!({
                "policy": s.policy().as_str_name(), "nice": s.nice, "priority": s.priority, "flags": flags,
                "runtime": s.runtime, "deadline": s.deadline, "period": s.period,
            }),
        );
    }
}

fn device_json(d: &LinuxDevice) -> Value {
    let mut o = json!({"path": d.path, "type": d.r#type, "major": d.major, "minor": d.minor});
    if let Some(m) = &d.file_mode {
        o["fileMode"] = json!(m.value);
    }
    if let Some(u) = &d.uid {
        o["uid"] = json!(u.value);
    }
    if let Some(g) = &d.gid {
        o["gid"] = json!(g.value);
    }
    o
}

fn seccomp_json(s: &LinuxSeccomp) -> Value {
    let syscalls: Vec<Value> = s
        .syscalls
        .iter()
        .map(|c| {
            let args: Vec<Value> = c
                .args
                .iter()
                .map(|a| json!({"index": a.index, "value": a.value, "valueTwo": a.value_two, "op": a.op}))
                .collect();
            let mut o = json!({"names": c.names, "action": c.action, "args": args});
            if let Some(e) = &c.errno_ret {
                o["errnoRet"] = json!(e.value);
            }
            o
        })
        .collect();
    let mut o = json!({
        "defaultAction": s.default_action, "architectures": s.architectures, "flags": s.flags,
        "syscalls": syscalls,
    });
    if let Some(e) = &s.default_errno {
        o["defaultErrnoRet"] = json!(e.value);
    }
    if !s.listener_path.is_empty() {
        o["listenerPath"] = json!(s.listener_path);
    }
    if !s.listener_metadata.is_empty() {
        o["listenerMetadata"] = json!(s.listener_metadata);
    }
    o
}

/// Applies the linux part; returns the block I/O class asked for.
fn apply_linux(linux: &mut Map<String, Value>, l: &LinuxContainerAdjustment) -> Result<Option<String>> {
    if !l.devices.is_empty() {
        let devs = arr(linux, "devices");
        for d in &l.devices {
            let path = marked(&d.path).unwrap_or(&d.path);
            devs.retain(|x| x.get("path").and_then(Value::as_str) != Some(path));
        }
        let added: Vec<&LinuxDevice> = l.devices.iter().filter(|d| marked(&d.path).is_none()).collect();
        devs.extend(added.iter().map(|d| device_json(d)));
        // Each added device may be used: an allow rule in the device cgroup.
        let res = linux.entry("resources").or_insert_with(|| json!({}));
        let rules = arr(res.as_object_mut().ok_or_else(|| invalid("resources"))?, "devices");
        for d in added {
            rules.push(json!({"allow": true, "type": d.r#type, "major": d.major, "minor": d.minor, "access": "rwm"}));
        }
    }
    let mut blockio = None;
    if let Some(r) = &l.resources {
        let res = linux.entry("resources").or_insert_with(|| json!({}));
        blockio = resources_into_json(res, r)?;
        if let Some(class) = &r.rdt_class {
            let rdt = linux.entry("intelRdt").or_insert_with(|| json!({}));
            rdt["closID"] = json!(class.value);
        }
    }
    if !l.cgroups_path.is_empty() {
        linux.insert("cgroupsPath".into(), json!(l.cgroups_path));
    }
    if let Some(s) = &l.seccomp_policy {
        linux.insert("seccomp".into(), seccomp_json(s));
    }
    if !l.namespaces.is_empty() {
        let nss = arr(linux, "namespaces");
        for ns in &l.namespaces {
            let t = marked(&ns.r#type).unwrap_or(&ns.r#type);
            nss.retain(|x| x.get("type").and_then(Value::as_str) != Some(t));
            if marked(&ns.r#type).is_none() {
                let mut o = json!({"type": ns.r#type});
                if !ns.path.is_empty() {
                    o["path"] = json!(ns.path);
                }
                nss.push(o);
            }
        }
    }
    if !l.sysctl.is_empty() {
        let s = linux.entry("sysctl").or_insert_with(|| json!({}));
        let s = s.as_object_mut().ok_or_else(|| invalid("sysctl"))?;
        for (k, v) in &l.sysctl {
            match marked(k) {
                Some(k) => s.remove(k),
                None => s.insert(k.clone(), json!(v)),
            };
        }
    }
    if !l.net_devices.is_empty() {
        let n = linux.entry("netDevices").or_insert_with(|| json!({}));
        let n = n.as_object_mut().ok_or_else(|| invalid("netDevices"))?;
        for (k, d) in &l.net_devices {
            n.insert(k.clone(), json!({"name": d.name}));
        }
    }
    if let Some(rdt) = &l.rdt {
        if rdt.remove {
            linux.remove("intelRdt");
        } else {
            let mut o = json!({});
            if let Some(c) = &rdt.clos_id {
                o["closID"] = json!(c.value);
            }
            if let Some(s) = &rdt.schemata {
                o["schemata"] = json!(s.value);
            }
            if let Some(m) = &rdt.enable_monitoring {
                o["enableMonitoring"] = json!(m.value);
            }
            linux.insert("intelRdt".into(), o);
        }
    }
    if let Some(p) = &l.memory_policy {
        let flags: Vec<&str> = p.flags().map(|f| f.as_str_name()).collect();
        let mut o = json!({"mode": p.mode().as_str_name(), "flags": flags});
        if !p.nodes.is_empty() {
            o["nodes"] = json!(p.nodes);
        }
        linux.insert("memoryPolicy".into(), o);
    }
    Ok(blockio)
}

/// Applies NRI resources to OCI resources (what UpdateContainer and container updates
/// carry): fields set in `r` replace those of `into`. Returns the block I/O class asked for.
pub fn apply_resources(into: &mut oci_spec::runtime::LinuxResources, r: &LinuxResources) -> Result<Option<String>> {
    let mut v = serde_json::to_value(&*into).map_err(invalid)?;
    let blockio = resources_into_json(&mut v, r)?;
    *into = serde_json::from_value(v).map_err(invalid)?;
    Ok(blockio)
}

fn resources_into_json(v: &mut Value, r: &LinuxResources) -> Result<Option<String>> {
    if !v.is_object() {
        *v = json!({});
    }
    if let Some(m) = &r.memory {
        let o = obj(v, "memory");
        let mut set = |k: &str, val: Option<Value>| {
            if let Some(val) = val {
                o.insert(k.into(), val);
            }
        };
        set("limit", m.limit.as_ref().map(|x| json!(x.value)));
        set("reservation", m.reservation.as_ref().map(|x| json!(x.value)));
        set("swap", m.swap.as_ref().map(|x| json!(x.value)));
        set("kernel", m.kernel.as_ref().map(|x| json!(x.value)));
        set("kernelTCP", m.kernel_tcp.as_ref().map(|x| json!(x.value)));
        set("swappiness", m.swappiness.as_ref().map(|x| json!(x.value)));
        set(
            "disableOOMKiller",
            m.disable_oom_killer.as_ref().map(|x| json!(x.value)),
        );
        set("useHierarchy", m.use_hierarchy.as_ref().map(|x| json!(x.value)));
    }
    if let Some(c) = &r.cpu {
        let o = obj(v, "cpu");
        let mut set = |k: &str, val: Option<Value>| {
            if let Some(val) = val {
                o.insert(k.into(), val);
            }
        };
        set("shares", c.shares.as_ref().map(|x| json!(x.value)));
        set("quota", c.quota.as_ref().map(|x| json!(x.value)));
        set("period", c.period.as_ref().map(|x| json!(x.value)));
        set("realtimeRuntime", c.realtime_runtime.as_ref().map(|x| json!(x.value)));
        set("realtimePeriod", c.realtime_period.as_ref().map(|x| json!(x.value)));
        set("cpus", (!c.cpus.is_empty()).then(|| json!(c.cpus)));
        set("mems", (!c.mems.is_empty()).then(|| json!(c.mems)));
    }
    if let Some(p) = &r.pids {
        obj(v, "pids").insert("limit".into(), json!(p.limit));
    }
    let o = v.as_object_mut().expect("object");
    if !r.hugepage_limits.is_empty() {
        let h = arr(o, "hugepageLimits");
        for l in &r.hugepage_limits {
            h.retain(|x| x.get("pageSize").and_then(Value::as_str) != Some(l.page_size.as_str()));
            h.push(json!({"pageSize": l.page_size, "limit": l.limit}));
        }
    }
    if !r.unified.is_empty() {
        let u = o.entry("unified").or_insert_with(|| json!({}));
        let u = u.as_object_mut().ok_or_else(|| invalid("unified"))?;
        for (k, val) in &r.unified {
            u.insert(k.clone(), json!(val));
        }
    }
    for d in &r.devices {
        let mut rule = json!({"allow": d.allow, "type": d.r#type, "access": d.access});
        if let Some(m) = &d.major {
            rule["major"] = json!(m.value);
        }
        if let Some(m) = &d.minor {
            rule["minor"] = json!(m.value);
        }
        arr(o, "devices").push(rule);
    }
    Ok(r.blockio_class.as_ref().map(|c| c.value.clone()))
}
