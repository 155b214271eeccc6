//! Volumes on a real filesystem (tmpfs and bind volumes really mounted: the tests run as
//! root, as CI does).

use std::sync::Arc;

use super::*;
use crate::container::model::{ContainerSpec, MountSpec};

fn open(dir: &Path) -> Volumes {
    let meta = Arc::new(MetaStore::open(&dir.join("meta.redb")).unwrap());
    Volumes::open(dir.join("volumes"), meta).unwrap()
}

fn user(id: &str, host_path: &Path) -> ContainerRecord {
    ContainerRecord {
        id: id.into(),
        spec: ContainerSpec {
            mounts: vec![MountSpec {
                container_path: "/data".into(),
                host_path: host_path.display().to_string(),
                ..Default::default()
            }],
            ..Default::default()
        },
        ..Default::default()
    }
}

#[tokio::test]
async fn create_list_remove_and_in_use_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let volumes = open(dir.path());
    let mut labels = BTreeMap::new();
    labels.insert("app".to_string(), "db".to_string());
    let v = volumes
        .create(NewVolume {
            name: "dbdata".into(),
            labels: labels.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!((v.driver.as_str(), &v.labels), ("local", &labels));
    assert!(volumes.mountpoint("dbdata").is_dir());
    // Again: the same volume, not a new one.
    let again = volumes
        .create(NewVolume {
            name: "dbdata".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(again, v);
    let anon = volumes
        .create(NewVolume {
            anonymous: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(anon.name.len(), 64);
    assert_eq!(volumes.list().len(), 2);

    std::fs::write(volumes.mountpoint("dbdata").join("f"), "12345").unwrap();
    assert_eq!(volumes.size("dbdata"), 5);
    let users = [user("c1", &volumes.mountpoint("dbdata").join("sub"))];
    let err = volumes.remove("dbdata", &users).await.unwrap_err();
    assert!(
        matches!(&err, VolumeError::InUse { users, .. } if users == "c1"),
        "{err}"
    );
    volumes.remove("dbdata", &[]).await.unwrap();
    assert!(!dir.path().join("volumes/dbdata").exists());
    assert!(matches!(volumes.get("dbdata"), Err(VolumeError::NotFound(_))));

    // Kept across a restart.
    drop(volumes);
    let volumes = open(dir.path());
    assert_eq!(
        volumes.list().iter().map(|v| v.name.as_str()).collect::<Vec<_>>(),
        [anon.name.as_str()]
    );
}

#[tokio::test]
async fn bad_names_and_drivers_are_refused_and_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let volumes = open(dir.path());
    for name in ["-x", "a", "has/slash", "..", "a b"] {
        let err = volumes
            .create(NewVolume {
                name: name.into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert!(matches!(err, VolumeError::Invalid(_)), "{name}: {err}");
    }
    let err = volumes
        .create(NewVolume {
            name: "x1".into(),
            driver: "nfs".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("nfs"), "{err}");
    assert_eq!(std::fs::read_dir(dir.path().join("volumes")).unwrap().count(), 0);
}

#[tokio::test]
async fn tmpfs_and_bind_volumes_are_mounted_and_unmounted() {
    let dir = tempfile::tempdir().unwrap();
    let volumes = open(dir.path());
    let opts = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    volumes
        .create(NewVolume {
            name: "scratch".into(),
            options: opts(&[("type", "tmpfs"), ("device", "tmpfs"), ("o", "size=1m")]),
            ..Default::default()
        })
        .await
        .unwrap();
    let data = volumes.mountpoint("scratch");
    assert!(crate::sys::mount::is_mountpoint(&data));
    let host = dir.path().join("host");
    std::fs::create_dir(&host).unwrap();
    std::fs::write(host.join("seen"), "yes").unwrap();
    let device = host.display().to_string();
    volumes
        .create(NewVolume {
            name: "hostdir".into(),
            options: opts(&[("type", "none"), ("o", "bind"), ("device", &device)]),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(volumes.mountpoint("hostdir").join("seen")).unwrap(),
        "yes"
    );

    // As after a reboot: unmounted, then mounted again when berthd opens them.
    crate::sys::mount::unmount(&data).unwrap();
    drop(volumes);
    let volumes = open(dir.path());
    assert!(crate::sys::mount::is_mountpoint(&data));
    for name in ["scratch", "hostdir"] {
        volumes.remove(name, &[]).await.unwrap();
    }
    assert!(!crate::sys::mount::is_mountpoint(&data));
    assert_eq!(
        std::fs::read_to_string(host.join("seen")).unwrap(),
        "yes",
        "the host's files stay"
    );
}
