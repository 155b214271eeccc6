//! kubelet's image garbage collection on berthd: with the image filesystem over kubelet's
//! high threshold, kubelet frees space by RemoveImage of the images no container uses, keeps
//! the one its pod runs from, and berthd's ImageFsInfo shows the space back (see
//! [`berth_e2e::image_gc`]). Alone in its test binary: kubelet owns its cgroup root and
//! ports while it runs.

#[tokio::test]
async fn kubelet_image_gc_removes_unused_images_through_berthd() {
    let (r, e, kubelet) = berth_e2e::image_gc::run().await;
    println!("image GC: {r:?}");
    assert!(
        r.removed_after.is_some(),
        "kubelet's image GC did not remove the unused image:\nkubelet:\n{}\nberthd:\n{}",
        kubelet.log_tail(60),
        e.berthd.log()
    );
    assert!(
        r.kept_pod_image,
        "kubelet's GC removed the image its pod runs from:\n{}",
        kubelet.log_tail(60)
    );
    assert!(r.pod_running, "the pod's container runs:\n{}", kubelet.log_tail(40));
    assert!(
        r.fs_after + (7 << 20) < r.fs_before,
        "ImageFsInfo shows the space back: {} bytes before, {} after",
        r.fs_before,
        r.fs_after
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
    assert!(
        r.pod_removed,
        "kubelet did not get the sandbox removed:\n{}",
        kubelet.log_tail(40)
    );
}
