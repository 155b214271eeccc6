//! Restart of `berthctl run` containers against the fake driver: a new attempt with the
//! same spec and the old writable layer, the old one gone; kubelet's containers refused.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use super::error::ContainerError;
use super::lifecycle::ContainerState;
use super::lifecycle_tests::{spec, Env};
use super::model::{ContainerFilter, ContainerRecord};
use super::policy::RESTART_LABEL;
use super::restart::RUN_LABEL;
use super::testing::Fake;

async fn run_container(env: &Env, name: &str) -> String {
    run_with_policy(env, name, None).await
}

async fn run_with_policy(env: &Env, name: &str, policy: Option<&str>) -> String {
    let mut s = spec(name);
    if let Some(p) = policy {
        s.labels.insert(RESTART_LABEL.into(), p.into());
    }
    s.labels.insert(RUN_LABEL.into(), "1".into());
    s.log_path = format!("{name}.log");
    let id = env.containers.create(&env.sandbox, s).await.unwrap();
    env.containers.start(&id).await.unwrap();
    id
}

#[tokio::test]
async fn a_restart_is_the_next_attempt_with_the_old_layer_and_the_old_one_gone() {
    let env = Env::new().await;
    let old = run_container(&env, "web").await;
    let restarted = env.containers.restart(&old, Duration::from_secs(1)).await.unwrap();
    assert_ne!(restarted.id, old);
    assert_eq!(restarted.attempt, 1);
    assert_eq!(env.fake.calls("kill 3"), 1, "the running one was stopped first");
    assert_eq!(env.fake.calls(&format!("move_layer {old}>{}", restarted.id)), 1);
    let all = env.containers.records(&ContainerFilter::default());
    assert_eq!(all.len(), 1, "only the new attempt is left");
    let rec = &all[0];
    assert_eq!(
        (rec.id.as_str(), rec.state),
        (restarted.id.as_str(), ContainerState::Running)
    );
    assert_eq!((rec.spec.name.as_str(), rec.spec.attempt), ("web", 1));
    assert_eq!(rec.spec.log_path, "web.log", "the log goes on in the same file");
    assert_eq!(rec.spec.image, rec.image.id, "the same image, by id");

    // An exited one too, again and again.
    env.containers.stop(&restarted.id, Duration::ZERO).await.unwrap();
    let again = env.containers.restart(&restarted.id, Duration::ZERO).await.unwrap();
    assert_eq!(again.attempt, 2);
    assert_eq!(
        env.containers.get(&again.id).await.unwrap().state,
        ContainerState::Running
    );
}

#[tokio::test]
async fn a_failed_restart_keeps_the_old_container_and_its_layer() {
    let env = Env::new().await;
    let old = run_container(&env, "web").await;
    env.containers.stop(&old, Duration::ZERO).await.unwrap();
    *env.fake.fail_spawn.lock().unwrap() = Some("runc create: boom".into());
    let err = env.containers.restart(&old, Duration::ZERO).await.unwrap_err();
    assert!(err.to_string().contains("boom"), "{err}");
    assert_eq!(env.fake.calls("move_layer"), 2, "taken over, then given back");
    let all = env.containers.records(&ContainerFilter::default());
    assert_eq!(all.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), [old.as_str()]);
    *env.fake.fail_spawn.lock().unwrap() = None;
    env.containers
        .restart(&old, Duration::ZERO)
        .await
        .expect("works once the fault is gone");
}

#[tokio::test]
async fn kubelets_containers_are_not_restarted_by_berth() {
    let env = Env::new().await;
    let id = env.create("app").await.unwrap();
    env.containers.start(&id).await.unwrap();
    let err = env.containers.restart(&id, Duration::ZERO).await.unwrap_err();
    assert!(matches!(err, ContainerError::FailedPrecondition(_)), "{err}");
    assert_eq!(env.containers.get(&id).await.unwrap().state, ContainerState::Running);
}

#[tokio::test]
async fn concurrent_restarts_make_one_new_attempt() {
    let env = Env::new().await;
    let old = run_container(&env, "web").await;
    env.containers.stop(&old, Duration::ZERO).await.unwrap();
    let (a, b) = tokio::join!(
        env.containers.restart(&old, Duration::ZERO),
        env.containers.restart(&old, Duration::ZERO)
    );
    assert!(a.is_ok() != b.is_ok(), "one wins: {a:?} {b:?}");
    let all = env.containers.records(&ContainerFilter::default());
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0].state, ContainerState::Running);
}

/// Ends the process of the one container named `name` with `code`, and has the exit seen.
async fn exit(env: &Env, name: &str, code: i32) {
    let rec = only(env, name);
    Fake::end(env.fake.procs.lock().unwrap().get_mut(&rec.id).unwrap(), code);
    env.containers.get(&rec.id).await.unwrap();
}

fn only(env: &Env, name: &str) -> ContainerRecord {
    let all = env.containers.records(&ContainerFilter::default());
    let named: Vec<_> = all.into_iter().filter(|r| r.spec.name == name).collect();
    assert_eq!(named.len(), 1, "{named:?}");
    named.into_iter().next().unwrap()
}

/// Waits (up to 5 s) for the container named `name` to be attempt `attempt` in `state`.
async fn settles(env: &Env, name: &str, attempt: u32, state: ContainerState) {
    for _ in 0..100 {
        let all = env.containers.records(&ContainerFilter::default());
        if all
            .iter()
            .any(|r| r.spec.name == name && r.spec.attempt == attempt && r.state == state)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{name} never was attempt {attempt} {state:?}: {:?}", only(env, name));
}

#[tokio::test]
async fn policies_restart_after_exits_but_not_after_a_stop_by_request() {
    let env = Env::new().await;
    env.containers.enforce_restart_policies(&env.events);
    run_with_policy(&env, "always", Some("always")).await;
    run_with_policy(&env, "twice", Some("on-failure:2")).await;
    run_with_policy(&env, "never", None).await;

    exit(&env, "always", 0).await;
    settles(&env, "always", 1, ContainerState::Running).await;
    assert_eq!(only(&env, "always").spec.annotations["io.berth.restart-count"], "1");
    // Stopped by request: it stays stopped.
    env.containers
        .stop(&only(&env, "always").id, Duration::ZERO)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let rec = only(&env, "always");
    assert_eq!((rec.spec.attempt, rec.state), (1, ContainerState::Exited));

    // on-failure:2 restarts failures, twice, then leaves it.
    exit(&env, "twice", 0).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        only(&env, "twice").state,
        ContainerState::Exited,
        "exit 0 is no failure"
    );
    env.containers
        .restart(&only(&env, "twice").id, Duration::ZERO)
        .await
        .unwrap();
    for attempt in 2..=3 {
        exit(&env, "twice", 1).await;
        settles(&env, "twice", attempt, ContainerState::Running).await;
    }
    exit(&env, "twice", 1).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let rec = only(&env, "twice");
    assert_eq!(
        (rec.spec.attempt, rec.state),
        (3, ContainerState::Exited),
        "no third restart"
    );

    exit(&env, "never", 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(only(&env, "never").state, ContainerState::Exited);
}

#[tokio::test]
async fn at_berthds_start_always_comes_back_even_after_a_stop_by_request() {
    let env = Env::new().await;
    for (name, policy) in [("always", "always"), ("unless", "unless-stopped")] {
        let id = run_with_policy(&env, name, Some(policy)).await;
        env.containers.stop(&id, Duration::ZERO).await.unwrap();
    }
    let reopened = env.reopen();
    reopened.enforce_restart_policies(&env.events);
    let mut restarted = false;
    for _ in 0..100 {
        let all = reopened.records(&ContainerFilter::default());
        restarted = all.iter().any(|r| r.spec.name == "always" && r.spec.attempt == 1);
        if restarted {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(restarted, "always was not restarted");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let all = reopened.records(&ContainerFilter::default());
    let unless: Vec<_> = all.iter().filter(|r| r.spec.name == "unless").collect();
    assert_eq!(unless.len(), 1);
    assert_eq!((unless[0].spec.attempt, unless[0].state), (0, ContainerState::Exited));
}
