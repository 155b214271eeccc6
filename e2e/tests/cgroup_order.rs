//! Pod cgroups on a fresh tree, the way kubelet uses them: pods under a QoS parent that
//! does not exist yet, made concurrently, removed in creation order, in reverse, at random
//! and all at once. Berth owns only the leaf cgroup of each sandbox: every removal works
//! while other pods still live beside it, and the shared parents are left to their owner.

use std::path::PathBuf;

use berth_e2e::kubelet::{berth_hierarchies as hierarchies, remove_tree};
use berth_e2e::pod::{berthd, pod_config, run, stop_remove, TestNet};

/// A cgroup root no one has made yet, removed (with all under it) when dropped.
struct FreshRoot(String);

impl FreshRoot {
    fn new(tag: &str) -> FreshRoot {
        let root = format!("/berth-e2e-fresh-{}-{tag}", std::process::id());
        for h in hierarchies() {
            assert!(!h.join(&root[1..]).exists(), "{root} is not fresh");
        }
        FreshRoot(root)
    }

    /// The directories of `rel` (under this root) in every hierarchy.
    fn dirs(&self, rel: &str) -> Vec<PathBuf> {
        hierarchies()
            .into_iter()
            .map(|h| h.join(&self.0[1..]).join(rel))
            .collect()
    }
}

impl Drop for FreshRoot {
    fn drop(&mut self) {
        for h in hierarchies() {
            remove_tree(&h.join(&self.0[1..]));
        }
    }
}

/// Five pods made at once under `<root>/besteffort/pod<i>`, then removed in `order` (indexes;
/// `None`: all at once).
async fn pods_removed_in(order: Option<Vec<usize>>, tag: &str) {
    // Made first so it is dropped last: after berthd's own drop has removed any pods a
    // failing test left, the tree can go.
    let root = FreshRoot::new(tag);
    let net = TestNet::new();
    let (berthd, cri) = berthd(&net).await;
    let mut tasks = Vec::new();
    for i in 0..5 {
        let mut cri = cri.clone();
        let mut config = pod_config(&format!("{tag}-{i}"));
        config.linux.as_mut().expect("linux").cgroup_parent = format!("{}/besteffort/pod{i}", root.0);
        tasks.push(tokio::spawn(async move { run(&mut cri, config).await }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(
            t.await
                .expect("task")
                .expect("RunPodSandbox on a fresh tree, concurrently"),
        );
    }
    // The shared QoS parent is made once, by whichever pod came first; each pod has its leaf.
    for (i, id) in ids.iter().enumerate() {
        for d in root.dirs(&format!("besteffort/pod{i}/{id}")) {
            assert!(d.is_dir(), "{} missing", d.display());
        }
    }
    match order {
        Some(order) => {
            for i in order {
                let mut cri = cri.clone();
                stop_remove(&mut cri, &ids[i]).await;
                for d in root.dirs(&format!("besteffort/pod{i}/{}", ids[i])) {
                    assert!(!d.exists(), "{} stayed after its pod was removed", d.display());
                }
            }
        }
        None => {
            let tasks: Vec<_> = ids
                .iter()
                .map(|id| {
                    let (mut cri, id) = (cri.clone(), id.clone());
                    tokio::spawn(async move { stop_remove(&mut cri, &id).await })
                })
                .collect();
            for t in tasks {
                t.await.expect("concurrent stop and remove");
            }
        }
    }
    // Nothing of Berth's stays; the parents it did not own are still there for their owner.
    for (i, id) in ids.iter().enumerate() {
        for d in root.dirs(&format!("besteffort/pod{i}/{id}")) {
            assert!(!d.exists(), "{} stayed", d.display());
        }
        for d in root.dirs(&format!("besteffort/pod{i}")) {
            assert!(d.is_dir(), "{} (the pod's parent) was removed by Berth", d.display());
        }
    }
    let log = berthd.log();
    assert!(!log.contains("resource busy") && !log.contains("File exists"), "{log}");
}

#[tokio::test]
async fn removal_in_creation_order() {
    pods_removed_in(Some(vec![0, 1, 2, 3, 4]), "fwd").await;
}

#[tokio::test]
async fn removal_in_reverse_order() {
    pods_removed_in(Some(vec![4, 3, 2, 1, 0]), "rev").await;
}

#[tokio::test]
async fn removal_in_random_order() {
    // A fixed shuffle derived from the pid: different runs try different orders.
    let mut order: Vec<usize> = (0..5).collect();
    let mut x = u64::from(std::process::id()) | 1;
    for i in (1..order.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        order.swap(i, (x % (i as u64 + 1)) as usize);
    }
    eprintln!("removal order {order:?}");
    pods_removed_in(Some(order), "rnd").await;
}

#[tokio::test]
async fn removal_all_at_once() {
    pods_removed_in(None, "all").await;
}

/// Pods without a cgroup parent share Berth's default parent (`/berth`): removing the first
/// one while the others live works, and the parent stays.
#[tokio::test]
async fn default_parent_is_shared() {
    let net = TestNet::new();
    let (_berthd, mut cri) = berthd(&net).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(run(&mut cri, pod_config(&format!("dflt-{i}"))).await.expect("run"));
    }
    for id in &ids {
        stop_remove(&mut cri, id).await;
        for h in hierarchies() {
            assert!(!h.join("berth").join(id).exists(), "{id}'s cgroup stayed");
            assert!(h.join("berth").is_dir(), "the shared /berth parent was removed");
        }
    }
}
