//! A container that fills the disk: its writes fail with ENOSPC inside, berthd keeps
//! answering and keeps its records, `ImageFsInfo` reports the filled writable layers, and
//! once the container is removed the space is back and everything works again, also after
//! a restart. berthd's root is a small tmpfs so the disk really fills.

use std::path::Path;
use std::time::{Duration, Instant};

use berth_e2e::cri::v1 as cri;
use berth_e2e::workload::env;

#[tokio::test]
async fn a_container_filling_the_disk_fails_alone_and_berthd_carries_on() {
    let mut e = env(None).await;
    // berthd's root on a 96 MiB tmpfs (the image is pulled again into it).
    e.root_on_tmpfs("96m").await;
    let root = e.berthd.root().to_path_buf();
    let image = e.image.clone();

    let pod = e.pod("filler").await;
    let fill = "dd if=/dev/zero of=/fill bs=1M 2>&1; echo dd-ended; \
                echo more > /more 2>&1 || echo second-write-failed; exec sleep 3600";
    let id = e
        .create(&pod, e.container("filler", &["sh", "-c", fill]))
        .await
        .expect("create");
    e.start(&id).await;
    let log_path = Path::new(&pod.1.log_directory).join("filler.log");
    let deadline = Instant::now() + Duration::from_secs(60);
    let log = loop {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        if log.contains("second-write-failed") || log.contains("dd-ended") && log.contains("No space") {
            break log;
        }
        assert!(Instant::now() < deadline, "the container did not fill the disk: {log}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        log.contains("No space left on device"),
        "ENOSPC inside the container: {log}"
    );
    let (free, total) = berth_e2e::sys::space(&root);
    assert!(free < total / 20, "the disk is full: {free} of {total} bytes free");

    // berthd answers and its records hold: status, lists, a new container (which may be
    // refused for want of space, with a clear code, but must not break anything).
    let st = e.status(&id).await;
    assert_eq!(st.state, cri::ContainerState::ContainerRunning as i32);
    assert_eq!(e.containers().await.len(), 1);
    let fs = e
        .cri
        .images
        .image_fs_info(cri::ImageFsInfoRequest {})
        .await
        .expect("ImageFsInfo")
        .into_inner();
    let layers_used: u64 = fs
        .container_filesystems
        .iter()
        .map(|f| f.used_bytes.as_ref().map_or(0, |u| u.value))
        .sum();
    assert!(layers_used > total / 2, "ImageFsInfo sees the filled layer: {fs:?}");
    match e.create(&pod, e.container("late", &["true"])).await {
        Ok(late) => {
            e.cri
                .runtime
                .remove_container(cri::RemoveContainerRequest { container_id: late })
                .await
                .expect("remove the late container");
        }
        Err(err) => assert!(
            matches!(err.code(), tonic::Code::ResourceExhausted),
            "a full disk is ResourceExhausted: {err:?}"
        ),
    }

    // Removed: the space is back and everything works, also after a restart.
    e.cri
        .runtime
        .stop_container(cri::StopContainerRequest {
            container_id: id.clone(),
            timeout: 1,
        })
        .await
        .expect("stop");
    e.cri
        .runtime
        .remove_container(cri::RemoveContainerRequest {
            container_id: id.clone(),
        })
        .await
        .expect("remove");
    let (free, total) = berth_e2e::sys::space(&root);
    assert!(free > total / 2, "the space is back: {free} of {total}");
    let (code, _, log) = e
        .run_to_exit(&pod, e.container("after", &["sh", "-c", "echo fine > /f && cat /f"]))
        .await;
    assert_eq!(code, 0, "{log}");
    e.berthd.restart().await.expect("restart");
    e.cri = berth_e2e::cri::Cri::connect(e.berthd.socket())
        .await
        .expect("reconnect");
    assert!(
        e.cri.status(&image).await.expect("status").is_some(),
        "the image record survived"
    );
    let pods = e
        .cri
        .runtime
        .list_pod_sandbox(cri::ListPodSandboxRequest::default())
        .await
        .expect("list")
        .into_inner()
        .items;
    assert_eq!(pods.len(), 1, "the pod record survived");
    berth_e2e::pod::stop_remove(&mut e.cri, &pod.0).await;
}
