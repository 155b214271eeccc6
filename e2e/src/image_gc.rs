//! kubelet's image garbage collection through the CRI, shared by
//! `tests/kubelet_image_gc.rs` (which asserts it on Berth) and the `fault-table` program
//! (which reports it for Berth or containerd): with the image filesystem over kubelet's high
//! threshold, kubelet should free space by RemoveImage of the images no container uses,
//! keep the one its pod runs from, and ImageFsInfo should show the space back.

use std::time::{Duration, Instant};

use crate::cri::v1 as cri;
use crate::image::{busybox_layer, push_image, Compression, Entry, ImageSpec, Layer};
use crate::kubelet::Kubelet;
use crate::workload::{env, Env};

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

/// Bytes the image filesystem holds, as the runtime reports it.
pub async fn image_fs_used(cri: &mut crate::cri::Cri) -> u64 {
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

/// What one run saw.
#[derive(Debug)]
pub struct Report {
    /// Seconds until the unused image was gone; `None` if it stayed (7 minutes).
    pub removed_after: Option<f64>,
    pub kept_pod_image: bool,
    pub pod_running: bool,
    /// ImageFsInfo's used bytes before kubelet started and after the removal.
    pub fs_before: u64,
    pub fs_after: u64,
    /// Whether kubelet got the pod's sandbox removed once its manifest went (2 minutes).
    pub pod_removed: bool,
}

/// Pulls an unused 8 MiB image and the pod's, starts kubelet with a 1 % GC threshold and a
/// pod, and watches (up to 7 minutes: kubelet's first GC can fail while its stats warm up,
/// the next is 5 minutes later).
pub async fn run() -> (Report, Env, Kubelet) {
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
    let fs_before = image_fs_used(&mut e.cri).await;

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

    let start = Instant::now();
    let deadline = start + Duration::from_secs(420);
    let mut removed_after = None;
    while Instant::now() < deadline && kubelet.is_running() {
        if e.cri.status(&unused).await.expect("ImageStatus").is_none() {
            removed_after = Some(start.elapsed().as_secs_f64());
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let kept_pod_image = e.cri.status(&image).await.expect("ImageStatus").is_some();
    let pod_running = e.containers().await.into_iter().any(|c| {
        c.labels.get("io.kubernetes.pod.name").map(String::as_str) == Some(keeper.as_str())
            && c.state == cri::ContainerState::ContainerRunning as i32
    });
    // The runtime may report usage from a periodic scan: give it one.
    tokio::time::sleep(Duration::from_secs(if removed_after.is_some() { 12 } else { 0 })).await;
    let fs_after = image_fs_used(&mut e.cri).await;

    std::fs::remove_file(kubelet.manifests().join("keeper.yaml")).expect("rm");
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut pod_removed = false;
    while Instant::now() < deadline {
        if e.sandboxes().await.is_empty() {
            pod_removed = true;
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    kubelet.stop();
    let report = Report {
        removed_after,
        kept_pod_image,
        pod_running,
        fs_before,
        fs_after,
        pod_removed,
    };
    (report, e, kubelet)
}
