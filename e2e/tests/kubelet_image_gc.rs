//! kubelet's image garbage collection on berthd: with the image filesystem over kubelet's
//! high threshold, kubelet frees space by RemoveImage of the images no container uses, keeps
//! the one its pod runs from, and berthd's ImageFsInfo shows the space back. Alone in its
//! test binary: kubelet owns its cgroup root and ports while it runs.

use std::time::{Duration, Instant};

use berth_e2e::cri::v1 as cri;
use berth_e2e::image::{busybox_layer, push_image, Compression, Entry, ImageSpec, Layer};
use berth_e2e::kubelet::Kubelet;
use berth_e2e::workload::env;

/// 8 MiB that do not compress (xorshift), so the unused image really holds space.
fn noise() -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..(8usize << 20) / 8)
        .flat_map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()
        })
        .collect()
}

fn sleeper_pod(image: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: keeper
  namespace: default
spec:
  containers:
  - name: sleeper
    image: {image}
    imagePullPolicy: IfNotPresent
    command: ["/bin/busybox", "sleep", "3600"]
"#
    )
}

/// Bytes the image filesystem holds, as berthd reports it.
async fn image_fs_used(cri: &mut berth_e2e::cri::Cri) -> u64 {
    let fs = cri
        .images
        .image_fs_info(cri::ImageFsInfoRequest {})
        .await
        .expect("ImageFsInfo")
        .into_inner();
    fs.image_filesystems
        .iter()
        .map(|f| f.used_bytes.as_ref().map_or(0, |u| u.value))
        .sum()
}

#[tokio::test]
async fn kubelet_image_gc_removes_unused_images_through_berthd() {
    let mut e = env(None).await;
    let unused = format!("{}/e2e/gc-unused:1", e.registry());
    let spec = ImageSpec {
        layers: vec![
            busybox_layer(Compression::Gzip),
            Layer::new(Compression::Gzip, vec![Entry::file("noise", noise())]),
        ],
        cmd: vec!["/bin/sh".into()],
        ..ImageSpec::default()
    };
    push_image(&e.registry(), "e2e/gc-unused", "1", &spec, None)
        .await
        .expect("push the unused image");
    e.cri.pull(&unused, None).await.expect("pull the unused image");
    let image = e.image.clone();
    e.cri.pull(&image, None).await.expect("pull the pod's image");
    let before = image_fs_used(&mut e.cri).await;

    // Any use of the disk is over a 1 % high threshold: kubelet's image GC (it runs at start,
    // then every 5 minutes) frees everything it may.
    let mut kubelet = Kubelet::start_with(
        &e.berthd.endpoint(),
        &[
            ("imageGCHighThresholdPercent", "1"),
            ("imageGCLowThresholdPercent", "0"),
            ("imageMinimumGCAge", "0s"),
        ],
    )
    .expect("kubelet starts");
    std::fs::write(kubelet.manifests().join("keeper.yaml"), sleeper_pod(&image)).expect("manifest");
    let keeper = format!("keeper-{}", kubelet.node_name);

    // The unused image goes (kubelet's first GC can fail while its stats warm up; the next
    // run is 5 minutes later), the pod's image stays while its container runs.
    let deadline = Instant::now() + Duration::from_secs(420);
    loop {
        let gone = e.cri.status(&unused).await.expect("ImageStatus").is_none();
        if gone {
            break;
        }
        assert!(kubelet.is_running(), "kubelet exited:\n{}", kubelet.log_tail(40));
        assert!(
            Instant::now() < deadline,
            "kubelet's image GC did not remove {unused}:\nkubelet:\n{}\nberthd:\n{}",
            kubelet.log_tail(60),
            e.berthd.log()
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    assert!(
        e.cri.status(&image).await.expect("ImageStatus").is_some(),
        "kubelet's GC removed the image its pod runs from:\n{}",
        kubelet.log_tail(60)
    );
    let running = e.containers().await.into_iter().any(|c| {
        c.labels.get("io.kubernetes.pod.name").map(String::as_str) == Some(keeper.as_str())
            && c.state == cri::ContainerState::ContainerRunning as i32
    });
    assert!(running, "the pod's container runs:\n{}", kubelet.log_tail(40));
    let after = image_fs_used(&mut e.cri).await;
    assert!(
        after + (7 << 20) < before,
        "ImageFsInfo shows the space back: {before} bytes before, {after} after"
    );
    let berthd_log = e.berthd.log();
    let refused: Vec<&str> = berthd_log
        .lines()
        .filter(|l| l.contains("RemoveImage") && l.contains("failed"))
        .collect();
    assert!(
        refused.is_empty(),
        "berthd refused a RemoveImage of kubelet's GC: {refused:?}"
    );

    std::fs::remove_file(kubelet.manifests().join("keeper.yaml")).expect("rm");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let left = e.sandboxes().await;
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "kubelet did not get the sandbox removed: {left:?}\n{}",
            kubelet.log_tail(40)
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    kubelet.stop();
}
