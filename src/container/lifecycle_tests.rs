//! The container lifecycle against a fake driver: records, states, names, events and
//! clean-up, without root, mounts or processes (the e2e suites run the real driver).
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use super::driver::Driver as _;
use super::error::ContainerError;
use super::lifecycle::{ContainerState, Containers};
use super::model::{ContainerFilter, ContainerSpec};
use super::testing::{Fake, Images, IMAGE};
use crate::config::CgroupDriver;
use crate::events::EventBus;
use crate::sandbox::testing::{kinds, reorder, FakeHost, ORDERS, WHOLE_LIFE};
use crate::sandbox::{SandboxSpec, Sandboxes};
use crate::store::MetaStore;

/// Containers on a fake driver, with a metadata store and one ready sandbox.
pub(super) struct Env {
    _dir: tempfile::TempDir,
    pub(super) meta: Arc<MetaStore>,
    pub(super) fake: Arc<Fake>,
    pub(super) images: Arc<Images>,
    pub(super) sandboxes: Arc<Sandboxes>,
    pub(super) events: Arc<EventBus>,
    pub(super) containers: Arc<Containers>,
    pub(super) sandbox: String,
}

impl Env {
    pub(super) async fn new() -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        let meta = Arc::new(MetaStore::open(&dir.path().join("meta.redb")).expect("store"));
        let events = Arc::new(EventBus::new(64));
        let host = Arc::new(FakeHost::default());
        let sandboxes = Arc::new(Sandboxes::for_tests(dir.path(), meta.clone(), host, events.clone()));
        let sandbox = sandboxes
            .run(SandboxSpec {
                name: "pod".into(),
                uid: "uid".into(),
                namespace: "default".into(),
                ..Default::default()
            })
            .await
            .expect("sandbox");
        let fake = Arc::new(Fake::default());
        let images = Arc::new(Images::default());
        let containers = Env::open(&meta, &fake, &images, &sandboxes, &events);
        Env {
            _dir: dir,
            meta,
            fake,
            images,
            sandboxes,
            events,
            containers,
            sandbox,
        }
    }

    fn open(
        meta: &Arc<MetaStore>,
        fake: &Arc<Fake>,
        images: &Arc<Images>,
        sandboxes: &Arc<Sandboxes>,
        events: &Arc<EventBus>,
    ) -> Arc<Containers> {
        Arc::new(
            Containers::with_driver(
                fake.clone(),
                CgroupDriver::Cgroupfs,
                Arc::new(crate::cdi::Cdi::new(None, false)),
                meta.clone(),
                images.clone(),
                sandboxes.clone(),
                events.clone(),
            )
            .expect("containers"),
        )
    }

    /// The same store and driver, as a restarted berthd finds them.
    pub(super) fn reopen(&self) -> Arc<Containers> {
        Env::open(&self.meta, &self.fake, &self.images, &self.sandboxes, &self.events)
    }

    pub(super) async fn create(&self, name: &str) -> Result<String, ContainerError> {
        self.containers.create(&self.sandbox, spec(name)).await
    }

    fn state(&self, id: &str) -> ContainerState {
        self.containers
            .records(&ContainerFilter::default())
            .into_iter()
            .find(|r| r.id == id)
            .expect("record")
            .state
    }
}

pub(super) fn spec(name: &str) -> ContainerSpec {
    ContainerSpec {
        name: name.into(),
        image: "busybox:latest".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn create_start_stop_remove_walks_every_state_and_cleans_up() {
    let env = Env::new().await;
    let mut events = env.events.subscribe();
    let id = env.create("web").await.expect("create");
    let rec = env.containers.get(&id).await.expect("get");
    assert_eq!(rec.state, ContainerState::Created);
    assert_eq!(rec.image.id, IMAGE);
    assert_eq!(rec.pid, 4242);
    assert_eq!(rec.stop_signal, 3, "the image's SIGQUIT");
    assert!(rec.cgroup.ends_with(&id), "{}", rec.cgroup);
    let oci = env.fake.specs.lock().unwrap()[&id].clone();
    assert_eq!(
        oci.process().as_ref().unwrap().args().as_ref().unwrap(),
        &vec!["sh".to_string()]
    );

    env.containers.start(&id).await.expect("start");
    assert_eq!(env.containers.get(&id).await.unwrap().state, ContainerState::Running);
    env.containers.stop(&id, Duration::from_secs(5)).await.expect("stop");
    let rec = env.containers.get(&id).await.unwrap();
    assert_eq!(rec.state, ContainerState::Exited);
    assert_eq!((rec.exit_code, rec.reason.as_str()), (131, "Error"));
    assert_eq!(env.fake.calls("kill 3"), 1, "the stop signal first");
    assert_eq!(env.fake.calls("kill 9"), 0, "no SIGKILL for a container that stopped");

    env.containers.remove(&id).await.expect("remove");
    assert!(env.containers.get(&id).await.is_err());
    assert!(env.fake.on_disk().is_empty(), "torn down");
    assert_eq!(kinds(&mut events), WHOLE_LIFE);
    // Idempotent, as kubelet expects.
    env.containers.stop(&id, Duration::ZERO).await.expect("stop again");
    env.containers.remove(&id).await.expect("remove again");
}

#[tokio::test]
async fn a_stop_that_is_ignored_ends_in_sigkill() {
    let env = Env::new().await;
    let id = env.create("stubborn").await.unwrap();
    env.containers.start(&id).await.unwrap();
    env.fake.procs.lock().unwrap().get_mut(&id).unwrap().stubborn = true;
    env.containers.stop(&id, Duration::from_millis(10)).await.unwrap();
    let rec = env.containers.get(&id).await.unwrap();
    assert_eq!((rec.state, rec.exit_code), (ContainerState::Exited, 137));
    assert_eq!(env.fake.calls("kill 9"), 1);
}

#[tokio::test]
async fn stopping_a_created_container_finishes_it_without_an_exit_of_its_own() {
    let env = Env::new().await;
    let id = env.create("never-started").await.unwrap();
    env.containers.stop(&id, Duration::from_secs(1)).await.unwrap();
    let rec = env.containers.get(&id).await.unwrap();
    assert_eq!((rec.state, rec.exit_code), (ContainerState::Exited, 137));
    let err = env.containers.start(&id).await.unwrap_err();
    assert!(matches!(err, ContainerError::FailedPrecondition(_)), "{err}");
}

#[tokio::test]
async fn a_failed_create_takes_everything_back_and_frees_the_name() {
    let env = Env::new().await;
    *env.fake.fail_spawn.lock().unwrap() = Some("runc create: boom".into());
    let err = env.create("web").await.unwrap_err();
    assert!(err.to_string().contains("boom"), "{err}");
    assert!(env.containers.records(&ContainerFilter::default()).is_empty());
    assert!(env.fake.on_disk().is_empty(), "prepared, then torn down");
    assert_eq!(env.fake.calls("teardown"), 1);
    env.create("web").await.expect("the name is free again");
}

#[tokio::test]
async fn bad_requests_are_refused_before_anything_is_set_up() {
    let env = Env::new().await;
    let err = env.containers.create("nosuchpod", spec("a")).await.unwrap_err();
    assert!(matches!(err, ContainerError::NotFound(_)), "{err}");
    let err = env
        .containers
        .create(
            &env.sandbox,
            ContainerSpec {
                image: "nosuchimage".into(),
                ..spec("a")
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ContainerError::NotFound(_)), "{err}");
    let err = env.containers.create(&env.sandbox, spec("")).await.unwrap_err();
    assert!(matches!(err, ContainerError::Invalid(_)), "{err}");
    let err = env
        .containers
        .exec_sync("nosuch", vec!["true".into()], None)
        .await
        .unwrap_err();
    assert!(matches!(err, ContainerError::NotFound(_)), "{err}");
    assert!(
        env.fake.calls.lock().unwrap().is_empty(),
        "{:?}",
        env.fake.calls.lock().unwrap()
    );
}

#[tokio::test]
async fn a_recursive_read_only_mount_needs_a_runtime_that_knows_it() {
    let env = Env::new().await;
    let rro = ContainerSpec {
        mounts: vec![super::model::MountSpec {
            container_path: "/mnt".into(),
            host_path: "/tmp".into(),
            readonly: true,
            recursive_read_only: true,
            ..Default::default()
        }],
        ..spec("rro")
    };
    env.fake.plain_runtime.store(true, std::sync::atomic::Ordering::SeqCst);
    let err = env.containers.create(&env.sandbox, rro.clone()).await.unwrap_err();
    assert!(
        matches!(&err, ContainerError::Invalid(m) if m.contains("recursive read-only")),
        "{err}"
    );
    assert!(
        env.fake.calls.lock().unwrap().is_empty(),
        "refused before any side effect"
    );
    env.fake.plain_runtime.store(false, std::sync::atomic::Ordering::SeqCst);
    env.containers
        .create(&env.sandbox, rro)
        .await
        .expect("a runtime with rro");
}

#[tokio::test]
async fn image_volumes_are_leased_mounted_with_their_sub_path_and_released() {
    let env = Env::new().await;
    let image = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(image.path().join("etc")).unwrap();
    std::fs::write(image.path().join("etc/passwd"), "root:x:0:0::/:/bin/sh\n").unwrap();
    *env.fake.image_root.lock().unwrap() = Some(image.path().to_path_buf());
    let with_volume = |sub: &str, readonly: bool| ContainerSpec {
        mounts: vec![super::model::MountSpec {
            container_path: "/mnt/image".into(),
            readonly,
            image: Some(super::model::ImageVolume {
                image: IMAGE.into(),
                sub_path: sub.into(),
                ..Default::default()
            }),
            ..Default::default()
        }],
        ..spec("vol")
    };
    let err = env
        .containers
        .create(&env.sandbox, with_volume("", false))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ContainerError::Invalid(m) if m.contains("read-only")),
        "{err}"
    );
    let err = env
        .containers
        .create(&env.sandbox, with_volume("nope", true))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ContainerError::Invalid(m) if m.contains("does not exist")),
        "{err}"
    );
    assert!(
        env.images.leases.lock().unwrap().is_empty(),
        "a failed create leases nothing"
    );
    assert!(env.fake.on_disk().is_empty(), "and leaves nothing mounted");

    let id = env
        .containers
        .create(&env.sandbox, with_volume("etc", true))
        .await
        .expect("create");
    assert_eq!(
        *env.images.leases.lock().unwrap(),
        vec![id.clone(), id.clone()],
        "image and volume"
    );
    let rec = env.containers.get(&id).await.unwrap();
    assert_eq!(
        rec.spec.mounts[0].image.as_ref().unwrap().id,
        IMAGE,
        "resolved id recorded"
    );
    assert_eq!(rec.spec.mounts[0].host_path, "", "the request is kept as sent");
    let spec = env.fake.specs.lock().unwrap()[&id].clone();
    let mount = spec
        .mounts()
        .iter()
        .flatten()
        .find(|m| m.destination().to_str() == Some("/mnt/image"))
        .expect("mounted")
        .clone();
    assert_eq!(
        mount.source().clone().unwrap(),
        std::fs::canonicalize(image.path().join("etc")).unwrap()
    );
    assert!(mount.options().iter().flatten().any(|o| o == "ro"), "{mount:?}");
    assert!(!mount.options().iter().flatten().any(|o| o == "noexec"), "{mount:?}");

    // A restarted daemon leases the images again for the containers it finds.
    env.images.leases.lock().unwrap().clear();
    let again = env.reopen();
    assert_eq!(env.images.leases.lock().unwrap().len(), 2);
    again.remove(&id).await.expect("remove");
    assert!(env.images.leases.lock().unwrap().is_empty(), "released on removal");
}

#[tokio::test]
async fn concurrent_creates_of_one_name_make_one_container() {
    let env = Arc::new(Env::new().await);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let env = env.clone();
            tokio::spawn(async move { env.create("same").await })
        })
        .collect();
    let mut made = Vec::new();
    let mut taken = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(id) => made.push(id),
            Err(ContainerError::NameTaken { .. }) => taken += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!((made.len(), taken), (1, 7));
    assert_eq!(env.containers.records(&ContainerFilter::default()).len(), 1);
    assert_eq!(env.fake.calls("prepare"), 1, "losers set nothing up");
    env.containers.remove(&made[0]).await.unwrap();
    env.create("same").await.expect("the name is given back on remove");
}

#[tokio::test]
async fn a_pod_removed_while_a_container_joins_it_keeps_nothing_of_it() {
    let env = Env::new().await;
    *env.fake.spawn_delay.lock().unwrap() = Duration::from_millis(300);
    let pods = crate::pod::Pods {
        sandboxes: env.sandboxes.clone(),
        containers: env.containers.clone(),
    };
    let creating = {
        let containers = env.containers.clone();
        let sandbox = env.sandbox.clone();
        tokio::spawn(async move { containers.create(&sandbox, spec("late")).await })
    };
    // The create is inside its (slow) spawn when the pod goes.
    tokio::time::sleep(Duration::from_millis(100)).await;
    pods.remove(&env.sandbox).await.expect("remove pod");
    let created = creating.await.unwrap();
    assert!(
        env.containers.records(&ContainerFilter::default()).is_empty(),
        "a container outlived its pod (create: {created:?})"
    );
    assert!(env.fake.on_disk().is_empty(), "{:?}", env.fake.on_disk());
    assert!(env.fake.procs.lock().unwrap().is_empty());
    assert!(env.sandboxes.get(&env.sandbox).is_err());

    // A create that comes after the removal is refused.
    let err = env.create("later").await.expect_err("no pod");
    assert!(matches!(err, ContainerError::NotFound(_)), "{err}");
}

#[tokio::test]
async fn removal_in_any_order_leaves_nothing() {
    for order in ORDERS {
        let env = Env::new().await;
        let mut ids = Vec::new();
        for i in 0..5 {
            let id = env.create(&format!("c{i}")).await.unwrap();
            if i % 2 == 0 {
                env.containers.start(&id).await.unwrap();
            }
            ids.push(id);
        }
        reorder(&mut ids, order);
        for id in &ids {
            env.containers.remove(id).await.unwrap();
        }
        assert!(
            env.containers.records(&ContainerFilter::default()).is_empty(),
            "{order}"
        );
        assert!(env.fake.on_disk().is_empty(), "{order}");
        assert_eq!(env.containers.live_shims(), 0, "{order}");
    }
}

#[tokio::test]
async fn exits_while_away_are_read_back_from_the_shim_or_its_exit_record() {
    let env = Env::new().await;
    let exited = env.create("exited").await.unwrap();
    let lost = env.create("lost").await.unwrap();
    let running = env.create("running").await.unwrap();
    for id in [&exited, &lost, &running] {
        env.containers.start(id).await.unwrap();
    }
    {
        let mut procs = env.fake.procs.lock().unwrap();
        // Its shim wrote the exit and went away.
        let p = procs.get_mut(&exited).unwrap();
        Fake::end(p, 0);
        p.gone = true;
        // Its shim went away with no word.
        procs.get_mut(&lost).unwrap().gone = true;
    }
    let containers = env.reopen();
    containers.sweep_orphans().await;
    let rec = containers.get(&exited).await.unwrap();
    assert_eq!(
        (rec.state, rec.exit_code, rec.reason.as_str()),
        (ContainerState::Exited, 0, "Completed")
    );
    let rec = containers.get(&lost).await.unwrap();
    assert_eq!((rec.state, rec.reason.as_str()), (ContainerState::Unknown, "ShimGone"));
    assert_eq!(containers.get(&running).await.unwrap().state, ContainerState::Running);
    assert_eq!(env.fake.calls("teardown"), 0, "recorded containers are kept");
}

#[tokio::test]
async fn the_start_up_sweep_takes_down_what_a_crash_left_unrecorded() {
    let env = Env::new().await;
    let kept = env.create("kept").await.unwrap();
    // A create berthd did not finish: on disk, never recorded.
    env.fake.disk.lock().unwrap().push("f".repeat(64));
    env.reopen().sweep_orphans().await;
    assert_eq!(env.fake.on_disk(), vec![kept.clone()]);
    assert_eq!(env.state(&kept), ContainerState::Created);
}

#[tokio::test]
async fn exec_and_update_need_a_live_container() {
    let env = Env::new().await;
    let id = env.create("probe").await.unwrap();
    let err = env
        .containers
        .exec_sync(&id, vec!["true".into()], None)
        .await
        .unwrap_err();
    assert!(matches!(err, ContainerError::FailedPrecondition(_)), "{err}");
    env.containers.start(&id).await.unwrap();
    let out = env
        .containers
        .exec_sync(&id, vec!["echo".into(), "hi".into()], None)
        .await
        .unwrap();
    assert_eq!(out.stdout, b"echo hi");
    let err = env.containers.exec_sync(&id, vec![], None).await.unwrap_err();
    assert!(matches!(err, ContainerError::Invalid(_)), "{err}");

    let r = super::model::Resources {
        cpu_shares: 512,
        memory_limit_in_bytes: 64 << 20,
        ..Default::default()
    };
    env.containers.update_resources(&id, r.clone()).await.unwrap();
    let sent = env.fake.updates.lock().unwrap()[0].clone();
    assert_eq!(sent.cpu().as_ref().unwrap().shares(), Some(512));
    assert_eq!(sent.memory().as_ref().unwrap().limit(), Some(64 << 20));
    assert_eq!(env.containers.get(&id).await.unwrap().spec.resources, r, "recorded");
    let bad = super::model::Resources {
        cpu_shares: -1,
        ..Default::default()
    };
    assert!(env.containers.update_resources(&id, bad).await.is_err());

    env.containers.stop(&id, Duration::ZERO).await.unwrap();
    let err = env.containers.update_resources(&id, r).await.unwrap_err();
    assert!(matches!(err, ContainerError::FailedPrecondition(_)), "{err}");
}
