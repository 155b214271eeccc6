//! The sandbox lifecycle against a host that only keeps books: every step taken back on
//! failure and on removal, names, infra deaths, and the start-up sweep after a crash.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use super::testing::{kinds, reorder, FakeHost, ORDERS, WHOLE_LIFE};
use super::{SandboxError, SandboxFilter, SandboxSpec, SandboxState, Sandboxes};
use crate::events::EventBus;
use crate::store::{MetaStore, Table};

struct Env {
    dir: tempfile::TempDir,
    meta: Arc<MetaStore>,
    host: Arc<FakeHost>,
    events: Arc<EventBus>,
    sandboxes: Sandboxes,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        let meta = Arc::new(MetaStore::open(&dir.path().join("meta.redb")).expect("store"));
        let host = Arc::new(FakeHost::default());
        let events = Arc::new(EventBus::new(64));
        let sandboxes = Sandboxes::for_tests(dir.path(), meta.clone(), host.clone(), events.clone());
        Env {
            dir,
            meta,
            host,
            events,
            sandboxes,
        }
    }

    /// The same store and host, as a restarted berthd finds them.
    fn reopen(&self) -> Sandboxes {
        Sandboxes::for_tests(
            self.dir.path(),
            self.meta.clone(),
            self.host.clone(),
            self.events.clone(),
        )
    }

    fn sandbox_dirs(&self) -> usize {
        std::fs::read_dir(self.dir.path().join("state/sandboxes")).map_or(0, |d| d.count())
    }
}

fn spec(name: &str) -> SandboxSpec {
    SandboxSpec {
        name: name.into(),
        uid: format!("uid-{name}"),
        namespace: "default".into(),
        hostname: name.into(),
        cgroup_parent: "/kubepods/test".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn run_stop_remove_sets_up_and_takes_back_everything() {
    let env = Env::new();
    let mut events = env.events.subscribe();
    let id = env.sandboxes.run(spec("web")).await.expect("run");
    let rec = env.sandboxes.get(&id).unwrap();
    assert_eq!(rec.state, SandboxState::Ready);
    assert_eq!(rec.ips, ["10.0.0.2"]);
    assert!(rec.netns.is_some());
    assert_eq!(rec.cgroup, format!("/kubepods/test/{id}"));
    assert_eq!(env.host.running(), 1);
    assert_eq!(env.host.shm.lock().unwrap().len(), 1);
    let files = env.sandboxes.files_dir(&id);
    assert_eq!(std::fs::read_to_string(files.join("hostname")).unwrap(), "web\n");
    assert!(std::fs::read_to_string(files.join("hosts"))
        .unwrap()
        .contains("10.0.0.2"));

    env.sandboxes.stop(&id).await.expect("stop");
    let rec = env.sandboxes.get(&id).unwrap();
    assert_eq!((rec.state, rec.netns.as_ref()), (SandboxState::NotReady, None));
    assert_eq!(env.host.running(), 0);
    assert!(env.host.netns.lock().unwrap().is_empty());
    assert!(env.host.shm.lock().unwrap().is_empty());
    env.sandboxes.stop(&id).await.expect("stop again");

    env.sandboxes.remove(&id).await.expect("remove");
    assert!(matches!(env.sandboxes.get(&id), Err(SandboxError::NotFound(_))));
    assert!(env.host.is_clean());
    assert_eq!(env.sandbox_dirs(), 0);
    env.sandboxes.remove(&id).await.expect("remove again");
    assert_eq!(kinds(&mut events), WHOLE_LIFE);
}

#[tokio::test]
async fn a_failed_run_leaves_nothing_and_frees_the_name() {
    let env = Env::new();
    *env.host.fail_infra.lock().unwrap() = Some("infra: boom".into());
    let err = env.sandboxes.run(spec("web")).await.unwrap_err();
    assert!(err.to_string().contains("boom"), "{err}");
    assert!(env.host.is_clean());
    assert_eq!(env.sandbox_dirs(), 0);
    assert!(env.sandboxes.list(&SandboxFilter::default()).is_empty());
    env.sandboxes.run(spec("web")).await.expect("the name is free again");
}

#[tokio::test]
async fn invalid_specs_are_refused_before_anything_is_set_up() {
    let env = Env::new();
    let err = env.sandboxes.run(spec("")).await.unwrap_err();
    assert!(matches!(err, SandboxError::Invalid(_)), "{err}");
    let bad_parent = SandboxSpec {
        cgroup_parent: "../escape".into(),
        ..spec("web")
    };
    assert!(env.sandboxes.run(bad_parent).await.is_err());
    assert!(env.host.is_clean());
    assert_eq!(env.sandbox_dirs(), 0);
}

#[tokio::test]
async fn concurrent_runs_of_one_pod_make_one_sandbox() {
    let env = Arc::new(Env::new());
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let env = env.clone();
            tokio::spawn(async move { env.sandboxes.run(spec("same")).await })
        })
        .collect();
    let (mut made, mut taken) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => made += 1,
            Err(SandboxError::NameTaken { .. }) => taken += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!((made, taken), (1, 7));
    assert_eq!(env.host.running(), 1, "losers started nothing");
}

#[tokio::test]
async fn removal_in_any_order_leaves_nothing() {
    for order in ORDERS {
        let env = Env::new();
        let mut ids = Vec::new();
        for i in 0..5 {
            let id = env.sandboxes.run(spec(&format!("p{i}"))).await.unwrap();
            if i % 2 == 1 {
                env.sandboxes.stop(&id).await.unwrap();
            }
            ids.push(id);
        }
        reorder(&mut ids, order);
        for id in &ids {
            env.sandboxes.remove(id).await.unwrap();
        }
        assert!(env.host.is_clean(), "{order}: {ids:?}");
        assert_eq!(env.sandbox_dirs(), 0, "{order}");
    }
}

#[tokio::test]
async fn a_dead_infra_process_makes_the_sandbox_not_ready_across_restarts() {
    let env = Env::new();
    let id = env.sandboxes.run(spec("web")).await.unwrap();
    let pid = env.sandboxes.get(&id).unwrap().infra_pid.unwrap();
    env.host.kill(pid);
    assert_eq!(env.sandboxes.get(&id).unwrap().state, SandboxState::NotReady);
    let reopened = env.reopen();
    assert_eq!(reopened.get(&id).unwrap().state, SandboxState::NotReady);
    let stored: Vec<(String, super::SandboxRecord)> = env.meta.load_all(Table::Sandboxes).unwrap();
    assert_eq!(stored[0].1.state, SandboxState::NotReady, "written back at load");
    reopened.remove(&id).await.unwrap();
    assert!(env.host.is_clean());
}

#[tokio::test]
async fn the_start_up_sweep_takes_down_what_a_crash_left_from_its_intent() {
    let env = Env::new();
    let kept = env.sandboxes.run(spec("kept")).await.unwrap();
    // Set up, then berthd died before recording it: only its intent names it.
    let lost = env.sandboxes.run(spec("lost")).await.unwrap();
    env.meta.delete(Table::Sandboxes, &lost).unwrap();
    // Died while writing the intent: half a file, and a netns already pinned.
    let torn = env.sandboxes.run(spec("torn")).await.unwrap();
    let torn_intent = env.sandboxes.files_dir(&torn).join("intent.json");
    let bytes = std::fs::read(&torn_intent).unwrap();
    std::fs::write(&torn_intent, &bytes[..bytes.len() / 2]).unwrap();
    env.meta.delete(Table::Sandboxes, &torn).unwrap();
    let torn_infra = env.sandboxes.get(&torn).unwrap().infra_pid.unwrap();
    env.host.kill(torn_infra);

    let reopened = env.reopen();
    reopened.recover().await;
    assert_eq!(reopened.list(&SandboxFilter::default()).len(), 1);
    assert_eq!(reopened.get(&kept).unwrap().state, SandboxState::Ready);
    assert_eq!(env.host.running(), 1, "the lost sandbox's infra process is stopped");
    assert_eq!(
        env.host.netns.lock().unwrap().len(),
        1,
        "both orphans' netns pins are released"
    );
    assert_eq!(
        env.host.cgroups.lock().unwrap().len(),
        2,
        "the torn intent named no cgroup"
    );
    assert_eq!(env.sandbox_dirs(), 1);
    reopened.remove(&kept).await.unwrap();
    assert_eq!(env.host.cgroups.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_pod_user_namespace_is_pinned_beside_its_netns_and_released_with_it() {
    let env = Env::new();
    let mapping = super::IdMapping {
        container_id: 0,
        host_id: 100_000,
        length: 65_536,
    };
    let userns = |name: &str| SandboxSpec {
        userns: Some(super::UserNsMap {
            uids: mapping,
            gids: mapping,
        }),
        ..spec(name)
    };
    let id = env.sandboxes.run(userns("private")).await.unwrap();
    let rec = env.sandboxes.get(&id).unwrap();
    let pin = rec.userns.clone().expect("user namespace pinned");
    assert!(pin.ends_with(format!("userns/{id}")), "{}", pin.display());
    assert_eq!(env.host.netns.lock().unwrap().len(), 2, "user and network namespaces");
    env.sandboxes.stop(&id).await.unwrap();
    env.sandboxes.remove(&id).await.unwrap();
    assert!(env.host.is_clean());

    // berthd died after pinning both and before recording the pod: the sweep takes both.
    let lost = env.sandboxes.run(userns("lost")).await.unwrap();
    env.meta.delete(Table::Sandboxes, &lost).unwrap();
    env.reopen().recover().await;
    assert!(env.host.is_clean(), "the orphan's pins are released");
}

/// A pod runtime that keeps books and fails its start on request.
#[derive(Default)]
struct FakePodRuntime {
    running: std::sync::Mutex<std::collections::BTreeSet<String>>,
    fail: std::sync::atomic::AtomicBool,
}

impl super::hooks::PodRuntime for FakePodRuntime {
    fn start<'a>(
        &'a self,
        pod: &'a super::SandboxRecord,
        _dir: &'a std::path::Path,
    ) -> futures_util::future::BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            self.running.lock().unwrap().insert(pod.id.clone());
            if self.fail.load(std::sync::atomic::Ordering::Relaxed) {
                return Err("sandbox refused".into());
            }
            Ok(())
        })
    }

    fn stop<'a>(
        &'a self,
        pod: &'a super::SandboxRecord,
        _dir: &'a std::path::Path,
    ) -> futures_util::future::BoxFuture<'a, ()> {
        Box::pin(async move {
            self.running.lock().unwrap().remove(&pod.id);
        })
    }

    fn net_sysctls(&self, _pod: &super::SandboxRecord) -> Vec<(String, String)> {
        vec![
            ("net.ipv4.ip_unprivileged_port_start".into(), "0".into()),
            ("net.ipv4.ping_group_range".into(), "0 0".into()),
        ]
    }
}

#[tokio::test]
async fn a_pod_runtime_runs_with_the_pod_and_is_stopped_on_every_way_out() {
    let env = Env::new();
    let rt = Arc::new(FakePodRuntime::default());
    env.sandboxes.set_pod_runtime(rt.clone());
    let mut own = spec("own");
    own.sysctls.insert("net.ipv4.ping_group_range".into(), "1 1".into());
    let id = env.sandboxes.run(own).await.expect("run");
    assert!(rt.running.lock().unwrap().contains(&id));
    // Its sysctls reach the infra process; the pod's own value wins.
    let given = env.host.infra_sysctls.lock().unwrap().last().cloned().unwrap();
    assert!(
        given.contains(&("net.ipv4.ip_unprivileged_port_start".into(), "0".into())),
        "{given:?}"
    );
    assert!(
        given.contains(&("net.ipv4.ping_group_range".into(), "1 1".into())),
        "{given:?}"
    );
    assert!(
        !given.contains(&("net.ipv4.ping_group_range".into(), "0 0".into())),
        "{given:?}"
    );
    env.sandboxes.stop(&id).await.expect("stop");
    assert!(rt.running.lock().unwrap().is_empty());
    env.sandboxes.remove(&id).await.expect("remove");

    // Never on the node's network.
    let mut host = spec("host");
    host.namespaces.network = super::NsMode::Node;
    let id = env.sandboxes.run(host).await.expect("run on the node's network");
    let given = env.host.infra_sysctls.lock().unwrap().last().cloned().unwrap();
    assert!(given.is_empty(), "{given:?}");
    env.sandboxes.stop(&id).await.expect("stop");
    env.sandboxes.remove(&id).await.expect("remove");

    // A refused start fails the pod and leaves nothing.
    rt.fail.store(true, std::sync::atomic::Ordering::Relaxed);
    let err = env.sandboxes.run(spec("refused")).await.expect_err("refused");
    assert!(err.to_string().contains("sandbox refused"), "{err}");
    assert!(rt.running.lock().unwrap().is_empty());
    assert!(env.host.is_clean());
    assert_eq!(env.sandbox_dirs(), 0);
}
