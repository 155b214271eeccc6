//! A container that fills the disk under the runtime's root (a 96 MiB tmpfs): the same
//! fault as `tests/disk_pressure.rs`, observed instead of asserted.

use std::path::Path;
use std::time::{Duration, Instant};

use berth_e2e::cri::v1 as cri;
use berth_e2e::workload::env;

use crate::Row;

/// How long one call may take before it counts as hung.
const PATIENCE: Duration = Duration::from_secs(60);

/// `fut`, or a note that it hung, after [`PATIENCE`].
async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> Result<T, String> {
    eprintln!("fault-table: disk: {what}");
    tokio::time::timeout(PATIENCE, fut)
        .await
        .map_err(|_| format!("{what}: no answer in {} s", PATIENCE.as_secs()))
}

pub async fn fill() -> Row {
    let mut outcome = String::new();
    match fill_and_watch(&mut outcome).await {
        Ok(lost) => Row::new(FAULT, outcome, lost),
        Err(hung) => Row::new(
            FAULT,
            format!("{outcome}; then the runtime stopped answering"),
            vec![hung],
        ),
    }
}

const FAULT: &str = "a container fills the disk under the runtime's root";

/// Fills the disk, writing what it sees to `outcome`; what was lost, or the call that hung.
async fn fill_and_watch(outcome: &mut String) -> Result<Vec<String>, String> {
    let mut e = env(None).await;
    let mut lost = Vec::new();
    e.root_on_tmpfs("96m").await;
    let root = e.berthd.root().to_path_buf();
    let image = e.image.clone();

    let pod = within("RunPodSandbox", e.pod("filler")).await?;
    let fill = "dd if=/dev/zero of=/fill bs=1M 2>&1; echo dd-ended; \
                echo more > /more 2>&1 || echo second-write-failed; exec sleep 3600";
    let filler = e.container("filler", &["sh", "-c", fill]);
    let id = within("CreateContainer", e.create(&pod, filler))
        .await?
        .expect("create");
    within("StartContainer", e.start(&id)).await?;
    let log_path = Path::new(&pod.1.log_directory).join("filler.log");
    let deadline = Instant::now() + Duration::from_secs(60);
    let log = loop {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        if log.contains("second-write-failed") || log.contains("dd-ended") || Instant::now() > deadline {
            break log;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    *outcome = if log.contains("No space left on device") {
        "ENOSPC inside the container".to_string()
    } else {
        format!("no ENOSPC inside: {log:?}")
    };
    let (free, total) = berth_e2e::sys::space(&root);
    outcome.push_str(&format!(" ({} of {} KiB free)", free / 1024, total / 1024));

    let fs = within("ImageFsInfo", e.cri.images.image_fs_info(cri::ImageFsInfoRequest {})).await?;
    match fs {
        Ok(fs) => {
            let fs = fs.into_inner();
            let used =
                |v: &[cri::FilesystemUsage]| -> u64 { v.iter().filter_map(|f| f.used_bytes.map(|u| u.value)).sum() };
            outcome.push_str(&format!(
                "; ImageFsInfo: images {} KiB, containers {} KiB",
                used(&fs.image_filesystems) / 1024,
                used(&fs.container_filesystems) / 1024
            ));
        }
        Err(err) => outcome.push_str(&format!("; ImageFsInfo failed: {:?}", err.code())),
    }
    let late = e.container("late", &["true"]);
    match within("CreateContainer on a full disk", e.create(&pod, late)).await? {
        Ok(late) => {
            outcome.push_str("; a new container on the full disk: created");
            let _ = e
                .cri
                .runtime
                .remove_container(cri::RemoveContainerRequest { container_id: late })
                .await;
        }
        Err(err) => outcome.push_str(&format!("; a new container on the full disk: {:?}", err.code())),
    }

    // Removed: the space is back, a container runs, records survive a restart.
    let stop = cri::StopContainerRequest {
        container_id: id.clone(),
        timeout: 1,
    };
    let _ = within("StopContainer", e.cri.runtime.stop_container(stop)).await?;
    let remove = cri::RemoveContainerRequest { container_id: id };
    if let Err(err) = within("RemoveContainer", e.cri.runtime.remove_container(remove)).await? {
        lost.push(format!("the filler could not be removed: {err:?}"));
    }
    let (free, total) = berth_e2e::sys::space(&root);
    if free < total / 2 {
        lost.push(format!("space not back after removal: {free} of {total} bytes free"));
    }
    let after = e.container("after", &["sh", "-c", "echo fine > /f && cat /f"]);
    match within("CreateContainer after the fill", e.create(&pod, after)).await? {
        Ok(c) => {
            within("StartContainer after the fill", e.start(&c)).await?;
            let st = within("the container after the fill", e.wait_exit(&c)).await?;
            if st.exit_code != 0 {
                lost.push(format!("a container after the fill exited {}", st.exit_code));
            }
        }
        Err(err) => lost.push(format!("no container after the fill: {err:?}")),
    }
    within("restart", e.berthd.restart()).await?.expect("restart");
    e.cri = berth_e2e::cri::Cri::connect(e.berthd.socket())
        .await
        .expect("reconnect");
    if !matches!(within("ImageStatus", e.cri.status(&image)).await?, Ok(Some(_))) {
        lost.push("the image record, after a restart".into());
    }
    if within("ListPodSandbox", e.sandboxes()).await?.len() != 1 {
        lost.push("the pod record, after a restart".into());
    }
    within("removing the pod", berth_e2e::pod::stop_remove(&mut e.cri, &pod.0)).await?;
    if lost.is_empty() {
        outcome.push_str("; after removal the space is back and records survive a restart");
    }
    Ok(lost)
}

/// A pull that fills the disk under the runtime's root (a 24 MiB tmpfs, a 40 MiB layer),
/// the fault of `tests/crash.rs`' `full_disk_during_pull_is_a_clean_error`.
pub async fn full_during_pull() -> Row {
    use berth_e2e::image::{push_image, random_layer, Compression, ImageSpec};
    const FAULT: &str = "the disk fills during a pull";
    let reg = berth_e2e::TestRegistry::start(berth_e2e::RegistryOpts::default())
        .await
        .expect("registry");
    let big = ImageSpec {
        layers: vec![random_layer(40 << 20, 11, Compression::Gzip)],
        cmd: vec!["sh".into()],
        ..Default::default()
    };
    let big = push_image(&reg.addr(), "e2e/huge", "1", &big, None)
        .await
        .expect("push big");
    let small = push_image(&reg.addr(), "e2e/small", "1", &ImageSpec::busybox(), None)
        .await
        .expect("push small");
    let (mut d, _, _hosts) = berth_e2e::ctl::berthd_reaching(&reg.addr(), None)
        .await
        .expect("runtime");
    d.stop();
    let root = d.root().to_path_buf();
    let _tmpfs = berth_e2e::tmpfs::Tmpfs::mount(&root, "24m");
    d.restart().await.expect("restart on the tmpfs");
    let mut cri = berth_e2e::cri::Cri::connect(d.socket()).await.expect("connect");
    let before = crate::pulls::files(&root);
    let mut outcome = match within("PullImage", cri.pull(&big.image_ref(&reg.addr()), None)).await {
        Ok(Ok(_)) => "pulled (?)".to_string(),
        Ok(Err(e)) => format!(
            "refused, {:?}: {}",
            e.code(),
            e.message().chars().take(120).collect::<String>()
        ),
        Err(hung) => return Row::new(FAULT, hung, Vec::new()),
    };
    let mut left = crate::pulls::added(&before, &crate::pulls::files(&root));
    match within("a small pull after", cri.pull(&small.image_ref(&reg.addr()), None)).await {
        Ok(Ok(_)) => outcome.push_str("; a small image pulls after"),
        Ok(Err(e)) => left.push(format!("a small image cannot be pulled after: {:?}", e.code())),
        Err(hung) => left.push(hung),
    }
    Row::new(FAULT, outcome, left)
}
