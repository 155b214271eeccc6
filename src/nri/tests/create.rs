//! CreateContainer: adjustments of several plugins merged, conflicts, validation.

use super::*;

#[tokio::test]
async fn adjustments_of_two_plugins_merge_and_apply_to_the_spec() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nri = start(dir.path(), Arc::default()).await;
    let order = Shared::default();
    let mut a = probe("a", &[Event::CreateContainer], &order);
    let mut adj = env_adj("INJECTED", "yes");
    adj.annotations.insert("nri.example/by".into(), "a".into());
    a.adjust = Some(adj);
    let mut b = probe("b", &[Event::CreateContainer], &order);
    b.adjust = Some(ContainerAdjustment {
        mounts: vec![Mount {
            destination: "/data".into(),
            r#type: "bind".into(),
            source: "/srv/data".into(),
            options: vec!["rbind".into(), "ro".into()],
        }],
        ..Default::default()
    });
    let _a = connect(&nri, dir.path(), "a", "10", a).await;
    let _b = connect(&nri, dir.path(), "b", "20", b).await;
    let result = nri.create_container(&pod(), &ctr()).await.expect("create");
    let mut spec = oci_spec::runtime::Spec::default();
    apply_adjustment(&mut spec, &result.adjust).expect("apply");
    let env = spec
        .process()
        .as_ref()
        .and_then(|p| p.env().clone())
        .unwrap_or_default();
    assert!(env.contains(&"INJECTED=yes".to_string()), "{env:?}");
    let mounts = spec.mounts().clone().unwrap_or_default();
    let data = mounts
        .iter()
        .find(|m| m.destination() == Path::new("/data"))
        .expect("mount");
    assert_eq!(data.source().as_deref(), Some(Path::new("/srv/data")));
    let annotations = spec.annotations().clone().unwrap_or_default();
    assert_eq!(annotations.get("nri.example/by").map(String::as_str), Some("a"));
}

#[tokio::test]
async fn two_plugins_setting_the_same_env_conflict_naming_both() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nri = start(dir.path(), Arc::default()).await;
    let order = Shared::default();
    let mut a = probe("first", &[Event::CreateContainer], &order);
    a.adjust = Some(env_adj("X", "1"));
    let mut b = probe("second", &[Event::CreateContainer], &order);
    b.adjust = Some(env_adj("X", "2"));
    let _a = connect(&nri, dir.path(), "first", "10", a).await;
    let _b = connect(&nri, dir.path(), "second", "20", b).await;
    let err = nri.create_container(&pod(), &ctr()).await.expect_err("conflict");
    let msg = err.to_string();
    assert!(msg.contains("first") && msg.contains("second"), "{msg}");
    assert!(matches!(err, NriError::Conflict { .. }), "{err:?}");
    assert_eq!(nri.plugins().len(), 2, "a conflict drops nobody");
}

#[tokio::test]
async fn a_validator_can_reject_the_merged_adjustment() {
    struct Validator;
    impl TestPlugin for Validator {
        fn events(&self) -> u32 {
            mask(&[Event::ValidateContainerAdjustment])
        }
        fn validate(&self, req: ValidateContainerAdjustmentRequest) -> Reply<ValidateContainerAdjustmentResponse> {
            let owners = req.owners.unwrap_or_default();
            let by = owners
                .owners
                .get("ctr1")
                .and_then(|f| f.compound.get(&(berth_proto::nri::Field::Env as i32)));
            let owner = by.and_then(|c| c.owners.get("X")).cloned().unwrap_or_default();
            Box::pin(async move {
                Ok(ValidateContainerAdjustmentResponse {
                    reject: true,
                    reason: format!("X set by {owner}"),
                })
            })
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let nri = start(dir.path(), Arc::default()).await;
    let mut a = probe("setter", &[Event::CreateContainer], &Shared::default());
    a.adjust = Some(env_adj("X", "1"));
    let _a = connect(&nri, dir.path(), "setter", "10", a).await;
    let _v = connect(&nri, dir.path(), "policy", "90", Validator).await;
    let err = nri.create_container(&pod(), &ctr()).await.expect_err("rejected");
    assert_eq!(err.plugin(), Some("policy"));
    assert!(err.to_string().contains("X set by setter"), "{err}");
}
