//! Merging the container adjustments of several plugins. Each adjustable thing (an
//! annotation key, a mount destination, an env variable, the memory limit...) may be set
//! by one plugin only: a second plugin touching it is a conflict naming both, as NRI does.
//! Removal markers (`-key`) claim the key like a setting does.

use std::collections::BTreeMap;

use berth_proto::nri::{
    ContainerAdjustment, ContainerUpdate, Field, FieldOwners, LinuxContainerAdjustment, LinuxResources, OwningPlugins,
};

use super::error::{NriError, Result};

/// The adjustments merged so far and which plugin owns each adjusted thing.
#[derive(Debug, Default, Clone)]
pub struct Merged {
    pub adjust: ContainerAdjustment,
    owners: BTreeMap<(Field, String), String>,
}

fn unmarked(key: &str) -> &str {
    key.strip_prefix('-').unwrap_or(key)
}

impl Merged {
    fn claim(&mut self, field: Field, key: &str, plugin: &str) -> Result<()> {
        let k = (field, unmarked(key).to_string());
        match self.owners.get(&k) {
            Some(owner) if owner != plugin => Err(NriError::Conflict {
                what: if k.1.is_empty() {
                    field.as_str_name().to_string()
                } else {
                    format!("{} {:?}", field.as_str_name(), k.1)
                },
                first: owner.clone(),
                second: plugin.to_string(),
            }),
            Some(_) => Ok(()),
            None => {
                self.owners.insert(k, plugin.to_string());
                Ok(())
            }
        }
    }

    /// Adds the adjustment `plugin` asked for; a conflict leaves `self` unusable (the
    /// creation fails).
    pub fn add(&mut self, plugin: &str, adj: ContainerAdjustment) -> Result<()> {
        for (k, v) in adj.annotations {
            self.claim(Field::Annotations, &k, plugin)?;
            self.adjust.annotations.insert(k, v);
        }
        for m in adj.mounts {
            self.claim(Field::Mounts, &m.destination, plugin)?;
            self.adjust.mounts.push(m);
        }
        for e in adj.env {
            self.claim(Field::Env, &e.key, plugin)?;
            self.adjust.env.push(e);
        }
        if let Some(h) = adj.hooks {
            // Hooks add up; they never conflict.
            let into = self.adjust.hooks.get_or_insert_with(Default::default);
            into.prestart.extend(h.prestart);
            into.create_runtime.extend(h.create_runtime);
            into.create_container.extend(h.create_container);
            into.start_container.extend(h.start_container);
            into.poststart.extend(h.poststart);
            into.poststop.extend(h.poststop);
        }
        for r in adj.rlimits {
            self.claim(Field::Rlimits, &r.r#type, plugin)?;
            self.adjust.rlimits.push(r);
        }
        for d in adj.cdi_devices {
            self.claim(Field::CdiDevices, &d.name, plugin)?;
            self.adjust.cdi_devices.push(d);
        }
        if !adj.args.is_empty() {
            self.claim(Field::Args, "", plugin)?;
            self.adjust.args = adj.args;
        }
        if let Some(l) = adj.linux {
            self.add_linux(plugin, l)?;
        }
        Ok(())
    }

    fn add_linux(&mut self, plugin: &str, l: LinuxContainerAdjustment) -> Result<()> {
        let mut into = self.adjust.linux.take().unwrap_or_default();
        let result = self.add_linux_into(plugin, l, &mut into);
        self.adjust.linux = Some(into);
        result
    }

    fn add_linux_into(
        &mut self,
        plugin: &str,
        l: LinuxContainerAdjustment,
        into: &mut LinuxContainerAdjustment,
    ) -> Result<()> {
        for d in l.devices {
            self.claim(Field::Devices, &d.path, plugin)?;
            into.devices.push(d);
        }
        if let Some(r) = l.resources {
            let res = into.resources.get_or_insert_with(Default::default);
            self.add_resources(plugin, r, res)?;
        }
        macro_rules! simple {
            ($field:ident, $name:ident, $set:expr) => {
                if $set(&l.$name) {
                    self.claim(Field::$field, "", plugin)?;
                    into.$name = l.$name;
                }
            };
        }
        simple!(CgroupsPath, cgroups_path, |v: &String| !v.is_empty());
        simple!(OomScoreAdj, oom_score_adj, Option::is_some);
        simple!(IoPriority, io_priority, Option::is_some);
        simple!(SeccompPolicy, seccomp_policy, Option::is_some);
        simple!(LinuxSched, scheduler, Option::is_some);
        simple!(RdtClosId, rdt, Option::is_some);
        simple!(MemoryPolicy, memory_policy, Option::is_some);
        for ns in l.namespaces {
            self.claim(Field::Namespace, &ns.r#type, plugin)?;
            into.namespaces.push(ns);
        }
        for (k, v) in l.sysctl {
            self.claim(Field::Sysctl, &k, plugin)?;
            into.sysctl.insert(k, v);
        }
        for (k, v) in l.net_devices {
            self.claim(Field::LinuxNetDevices, &k, plugin)?;
            into.net_devices.insert(k, v);
        }
        Ok(())
    }

    fn add_resources(&mut self, plugin: &str, r: LinuxResources, into: &mut LinuxResources) -> Result<()> {
        macro_rules! opt {
            ($field:ident, $src:expr, $dst:expr) => {
                if $src.is_some() {
                    self.claim(Field::$field, "", plugin)?;
                    $dst = $src;
                }
            };
        }
        if let Some(m) = r.memory {
            let d = into.memory.get_or_insert_with(Default::default);
            opt!(MemLimit, m.limit, d.limit);
            opt!(MemReservation, m.reservation, d.reservation);
            opt!(MemSwapLimit, m.swap, d.swap);
            opt!(MemKernelLimit, m.kernel, d.kernel);
            opt!(MemTcpLimit, m.kernel_tcp, d.kernel_tcp);
            opt!(MemSwappiness, m.swappiness, d.swappiness);
            opt!(MemDisableOomKiller, m.disable_oom_killer, d.disable_oom_killer);
            opt!(MemUseHierarchy, m.use_hierarchy, d.use_hierarchy);
        }
        if let Some(c) = r.cpu {
            let d = into.cpu.get_or_insert_with(Default::default);
            opt!(CpuShares, c.shares, d.shares);
            opt!(CpuQuota, c.quota, d.quota);
            opt!(CpuPeriod, c.period, d.period);
            opt!(CpuRealtimeRuntime, c.realtime_runtime, d.realtime_runtime);
            opt!(CpuRealtimePeriod, c.realtime_period, d.realtime_period);
            if !c.cpus.is_empty() {
                self.claim(Field::CpuSetCpUs, "", plugin)?;
                d.cpus = c.cpus;
            }
            if !c.mems.is_empty() {
                self.claim(Field::CpuSetMems, "", plugin)?;
                d.mems = c.mems;
            }
        }
        for h in r.hugepage_limits {
            self.claim(Field::HugepageLimits, &h.page_size, plugin)?;
            into.hugepage_limits.retain(|x| x.page_size != h.page_size);
            into.hugepage_limits.push(h);
        }
        opt!(BlockioClass, r.blockio_class, into.blockio_class);
        opt!(RdtClass, r.rdt_class, into.rdt_class);
        opt!(PidsLimit, r.pids, into.pids);
        for (k, v) in r.unified {
            self.claim(Field::CgroupsUnified, &k, plugin)?;
            into.unified.insert(k, v);
        }
        into.devices.extend(r.devices);
        Ok(())
    }

    /// Who adjusted what, in the form ValidateContainerAdjustment carries.
    pub fn owning_plugins(&self, container_id: &str) -> OwningPlugins {
        let mut f = FieldOwners::default();
        for ((field, key), plugin) in &self.owners {
            if key.is_empty() {
                f.simple.insert(*field as i32, plugin.clone());
            } else {
                f.compound
                    .entry(*field as i32)
                    .or_default()
                    .owners
                    .insert(key.clone(), plugin.clone());
            }
        }
        OwningPlugins {
            owners: [(container_id.to_string(), f)].into(),
        }
    }
}

/// Updates of existing containers asked for by several plugins, merged per container: two
/// plugins setting the same resource of one container conflict.
#[derive(Debug, Default)]
pub struct Updates {
    by_id: Vec<(Merged, ContainerUpdate)>,
}

impl Updates {
    /// Adds the updates `plugin` asked for: all of them, or (on a conflict) none.
    pub fn add(&mut self, plugin: &str, updates: Vec<ContainerUpdate>) -> Result<()> {
        let before = self.by_id.clone();
        let result = self.add_all(plugin, updates);
        if result.is_err() {
            self.by_id = before;
        }
        result
    }

    fn add_all(&mut self, plugin: &str, updates: Vec<ContainerUpdate>) -> Result<()> {
        for u in updates {
            let i = match self.by_id.iter().position(|(_, x)| x.container_id == u.container_id) {
                Some(i) => i,
                None => {
                    let fresh = ContainerUpdate {
                        container_id: u.container_id.clone(),
                        linux: None,
                        ignore_failure: true,
                    };
                    self.by_id.push((Merged::default(), fresh));
                    self.by_id.len() - 1
                }
            };
            let (owners, into) = &mut self.by_id[i];
            // A failure is ignored only when every plugin asking for the update says so.
            into.ignore_failure &= u.ignore_failure;
            if let Some(r) = u.linux.and_then(|l| l.resources) {
                let linux = into.linux.get_or_insert_with(Default::default);
                owners.add_resources(plugin, r, linux.resources.get_or_insert_with(Default::default))?;
            }
        }
        Ok(())
    }

    /// The merged updates, one per container, in the order first asked for.
    pub fn into_vec(self) -> Vec<ContainerUpdate> {
        self.by_id.into_iter().map(|(_, u)| u).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_proto::nri::{KeyValue, LinuxCpu, LinuxMemory, OptionalInt64, OptionalUInt64};

    fn env(k: &str) -> ContainerAdjustment {
        ContainerAdjustment {
            env: vec![KeyValue {
                key: k.into(),
                value: "v".into(),
            }],
            ..Default::default()
        }
    }

    fn resources(limit: Option<i64>, shares: Option<u64>) -> ContainerAdjustment {
        ContainerAdjustment {
            linux: Some(LinuxContainerAdjustment {
                resources: Some(LinuxResources {
                    memory: Some(LinuxMemory {
                        limit: limit.map(|value| OptionalInt64 { value }),
                        ..Default::default()
                    }),
                    cpu: Some(LinuxCpu {
                        shares: shares.map(|value| OptionalUInt64 { value }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn distinct_keys_merge_and_the_same_key_conflicts() {
        let mut m = Merged::default();
        m.add("a", env("A")).expect("a");
        m.add("b", env("B")).expect("b");
        m.add("a", env("-A")).expect("a again, own key");
        let err = m.add("b", env("-A")).expect_err("conflict");
        assert!(
            matches!(&err, NriError::Conflict { first, second, .. } if first == "a" && second == "b"),
            "{err}"
        );
        assert!(err.to_string().contains("Env \"A\""), "{err}");
    }

    #[test]
    fn resource_fields_are_owned_one_by_one() {
        let mut m = Merged::default();
        m.add("a", resources(Some(1 << 20), None)).expect("a");
        m.add("b", resources(None, Some(512))).expect("b");
        let r = m
            .adjust
            .linux
            .as_ref()
            .and_then(|l| l.resources.clone())
            .expect("resources");
        assert_eq!(r.memory.and_then(|m| m.limit).map(|l| l.value), Some(1 << 20));
        assert_eq!(r.cpu.and_then(|c| c.shares).map(|s| s.value), Some(512));
        let err = m.add("c", resources(Some(2 << 20), None)).expect_err("conflict");
        assert!(err.to_string().contains("plugins a and c"), "{err}");
        let owners = m.owning_plugins("ctr");
        assert_eq!(owners.owners["ctr"].simple[&(Field::MemLimit as i32)], "a");
    }

    #[test]
    fn updates_merge_per_container() {
        let upd = |id: &str, adj: ContainerAdjustment, ignore: bool| ContainerUpdate {
            container_id: id.into(),
            linux: adj
                .linux
                .and_then(|l| l.resources)
                .map(|r| berth_proto::nri::LinuxContainerUpdate { resources: Some(r) }),
            ignore_failure: ignore,
        };
        let mut u = Updates::default();
        u.add("a", vec![upd("c1", resources(Some(1), None), true)]).expect("a");
        u.add(
            "b",
            vec![
                upd("c1", resources(None, Some(2)), false),
                upd("c2", resources(Some(3), None), true),
            ],
        )
        .expect("b");
        let err = u
            .add("c", vec![upd("c2", resources(Some(4), None), true)])
            .expect_err("conflict");
        assert!(err.to_string().contains("plugins b and c"), "{err}");
        let v = u.into_vec();
        assert_eq!(v.len(), 2);
        assert!(!v[0].ignore_failure && v[1].ignore_failure);
        let r = v[0].linux.as_ref().and_then(|l| l.resources.as_ref()).expect("res");
        assert_eq!(
            r.memory.as_ref().and_then(|m| m.limit.as_ref()).map(|l| l.value),
            Some(1)
        );
        assert_eq!(r.cpu.as_ref().and_then(|c| c.shares.as_ref()).map(|s| s.value), Some(2));
    }
}
