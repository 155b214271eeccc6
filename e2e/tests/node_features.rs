//! Kubernetes node features that pods ask for by field, end to end on runc: image volumes
//! (an image's filesystem mounted read-only, whole or one path of it), recursive read-only
//! mounts, and the features `Status` reports for them.

use std::path::{Path, PathBuf};

use berth_e2e::abuse::pb;
use berth_e2e::cri::v1 as cri;
use berth_e2e::image::{busybox_layer, push_image, Compression, Entry, ImageSpec, Layer};
use berth_e2e::workload::{env, Env};
use pb::runtime_service_client::RuntimeServiceClient;
use tonic::transport::Channel;
use tonic::Code;

/// The stdout lines of a container log in CRI format.
fn stdout_lines(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| {
            let mut parts = l.splitn(4, ' ');
            let (_, stream, _, text) = (parts.next(), parts.next()?, parts.next(), parts.next()?);
            (stream == "stdout").then(|| text.to_string())
        })
        .collect()
}

fn image_volume(path: &str, image: &str, sub_path: &str, readonly: bool) -> pb::Mount {
    pb::Mount {
        container_path: path.into(),
        readonly,
        image: Some(pb::ImageSpec {
            image: image.into(),
            ..Default::default()
        }),
        image_sub_path: sub_path.into(),
        ..Default::default()
    }
}

/// Creates a container with `mounts` through the current CRI (image volumes' fields are
/// newer than the test stubs).
async fn create(
    rt: &mut RuntimeServiceClient<Channel>,
    e: &Env,
    pod: &str,
    name: &str,
    cmd: &[&str],
    mounts: Vec<pb::Mount>,
) -> Result<String, tonic::Status> {
    let config = pb::ContainerConfig {
        metadata: Some(pb::ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(pb::ImageSpec {
            image: e.image.clone(),
            ..Default::default()
        }),
        command: cmd.iter().map(|s| s.to_string()).collect(),
        log_path: format!("{name}.log"),
        linux: Some(pb::LinuxContainerConfig::default()),
        mounts,
        ..Default::default()
    };
    let req = pb::CreateContainerRequest {
        pod_sandbox_id: pod.into(),
        config: Some(config),
        sandbox_config: None,
    };
    Ok(rt.create_container(req).await?.into_inner().container_id)
}

/// Mounts under berthd's root that belong to container `id`.
fn mounts_of(e: &Env, id: &str) -> Vec<String> {
    let root = e.berthd.root().join("containers").join(id);
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| Path::new(p).starts_with(&root))
        .map(String::from)
        .collect()
}

#[tokio::test]
async fn an_image_volume_shows_its_sub_path_read_only_and_keeps_its_image() {
    let mut e = env(None).await;
    // Two layers: the view is a read-only overlay (one layer is a read-only bind).
    let data = ImageSpec {
        layers: vec![
            busybox_layer(Compression::Gzip),
            Layer::new(
                Compression::Gzip,
                vec![
                    Entry::dir("data"),
                    Entry::file("data/message", "from the image volume\n"),
                    Entry::file("data/second", "second layer\n"),
                ],
            ),
        ],
        ..Default::default()
    };
    push_image(&e.registry(), "e2e/data", "1", &data, None)
        .await
        .expect("push");
    let data_ref = format!("{}/e2e/data:1", e.registry());
    let data_id = e.cri.pull(&data_ref, None).await.expect("pull");
    let busybox_id = e.cri.pull(&e.image.clone(), None).await.expect("pull");
    let pod = e.pod("imgvol").await;
    let mut rt = RuntimeServiceClient::new(berth_e2e::abuse::channel(e.berthd.socket()).await.expect("connect"));

    // Refused: writable, a missing path, a path out of the image, an unknown image.
    for (mount, code, says) in [
        (
            image_volume("/mnt/data", &data_id, "", false),
            Code::InvalidArgument,
            "read-only",
        ),
        (
            image_volume("/mnt/data", &data_id, "nope", true),
            Code::InvalidArgument,
            "does not exist",
        ),
        (
            image_volume("/mnt/data", &data_id, "../etc", true),
            Code::InvalidArgument,
            "'..'",
        ),
        (
            image_volume("/mnt/data", "never/pulled:1", "", true),
            Code::NotFound,
            "never/pulled",
        ),
    ] {
        let err = create(&mut rt, &e, &pod.0, "refused", &["true"], vec![mount])
            .await
            .expect_err("refused");
        assert_eq!(err.code(), code, "{}", err.message());
        assert!(err.message().contains(says), "{}", err.message());
    }

    let mounts = vec![
        image_volume("/mnt/data", &data_id, "data", true),
        image_volume("/mnt/busybox", &busybox_id, "", true),
    ];
    let cmd = [
        "sh",
        "-c",
        "cat /mnt/data/message /mnt/data/second; \
             touch /mnt/data/new 2>/dev/null && echo writable || echo read-only; \
             test -e /mnt/data/bin && echo whole || echo sub-path; \
             /mnt/busybox/bin/busybox echo runs from the volume",
    ];
    let id = create(&mut rt, &e, &pod.0, "reader", &cmd, mounts)
        .await
        .expect("create");
    assert!(
        mounts_of(&e, &id).iter().filter(|m| m.contains("/images/")).count() == 2,
        "{:?}",
        mounts_of(&e, &id)
    );
    e.start(&id).await;
    let st = e.wait_exit(&id).await;
    let log = std::fs::read_to_string(Path::new(&pod.1.log_directory).join("reader.log")).unwrap_or_default();
    assert_eq!(
        stdout_lines(&log),
        [
            "from the image volume",
            "second layer",
            "read-only",
            "sub-path",
            "runs from the volume"
        ],
        "exit {}: {log}",
        st.exit_code
    );
    let status = rt
        .container_status(pb::ContainerStatusRequest {
            container_id: id.clone(),
            verbose: false,
        })
        .await
        .expect("status")
        .into_inner()
        .status
        .expect("status");
    let reported: Vec<(String, String, String)> = status
        .mounts
        .iter()
        .map(|m| {
            let image = m.image.clone().unwrap_or_default();
            (m.container_path.clone(), image.image_ref, m.image_sub_path.clone())
        })
        .collect();
    assert_eq!(
        reported,
        [
            ("/mnt/data".to_string(), data_id.clone(), "data".to_string()),
            ("/mnt/busybox".to_string(), busybox_id.clone(), String::new())
        ]
    );

    // The image stays while the container exists; then both go, leaving no mount.
    let err = e.cri.remove(&data_id).await.expect_err("in use");
    assert_eq!(err.code(), Code::FailedPrecondition, "{}", err.message());
    assert!(err.message().contains(&id), "{}", err.message());
    e.cri
        .runtime
        .remove_container(cri::RemoveContainerRequest {
            container_id: id.clone(),
        })
        .await
        .expect("remove container");
    assert!(mounts_of(&e, &id).is_empty(), "{:?}", mounts_of(&e, &id));
    e.cri.remove(&data_id).await.expect("unused now");
    assert!(e.cri.status(&data_id).await.expect("status").is_none());
}

/// A host directory with a tmpfs mounted on `tmpfs/` inside; unmounted and removed on drop.
struct HostWithSubmount {
    dir: tempfile::TempDir,
}

impl HostWithSubmount {
    fn new() -> HostWithSubmount {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("tmpfs")).expect("mkdir");
        let ok = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "e2e-rro",
                &dir.path().join("tmpfs").display().to_string(),
            ])
            .status()
            .expect("mount")
            .success();
        assert!(ok, "mounting a tmpfs");
        HostWithSubmount { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

impl Drop for HostWithSubmount {
    fn drop(&mut self) {
        let _ = berth_e2e::sys::umount_detach(&self.dir.path().join("tmpfs"));
    }
}

#[tokio::test]
async fn a_recursive_read_only_mount_makes_its_submounts_read_only() {
    let mut e = env(None).await;
    assert!(e.default_handler().await.recursive_read_only_mounts, "runc knows rro");
    let status = e.runtime_status().await;
    assert!(status.features.unwrap_or_default().supplemental_groups_policy);

    let host = HostWithSubmount::new();
    let pod = e.pod("rro").await;
    let probe = "touch /mnt/host/top 2>/dev/null && echo top-writable || echo top-read-only; \
                 touch /mnt/host/tmpfs/sub 2>/dev/null && echo sub-writable || echo sub-read-only";
    for (name, rro, expected) in [
        ("plain", false, ["top-read-only", "sub-writable"]),
        ("recursive", true, ["top-read-only", "sub-read-only"]),
    ] {
        let mut c = e.container(name, &["sh", "-c", probe]);
        c.mounts = vec![cri::Mount {
            container_path: "/mnt/host".into(),
            host_path: host.path().display().to_string(),
            readonly: true,
            recursive_read_only: rro,
            ..Default::default()
        }];
        let (code, _, log) = e.run_to_exit(&pod, c).await;
        assert_eq!(stdout_lines(&log), expected, "{name}: exit {code}: {log}");
    }
    for (readonly, propagation) in [
        (false, cri::MountPropagation::PropagationPrivate),
        (true, cri::MountPropagation::PropagationHostToContainer),
        (true, cri::MountPropagation::PropagationBidirectional),
    ] {
        let mut c = e.container("bad", &["true"]);
        c.mounts = vec![cri::Mount {
            container_path: "/mnt/host".into(),
            host_path: host.path().display().to_string(),
            readonly,
            recursive_read_only: true,
            propagation: propagation as i32,
            ..Default::default()
        }];
        let err = e.create(&pod, c).await.expect_err("refused");
        assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());
    }
    assert!(
        !host.path().join("top").exists(),
        "the top of a read-only mount stays unwritten"
    );
    assert!(
        host.path().join("tmpfs/sub").exists(),
        "the plain mount's submount was written"
    );
}
