//! runc-class escapes with real containers: host descriptors leaking in (CVE-2024-21626),
//! the runtime binary rewritten through `/proc/<pid>/exe` (CVE-2019-5736), and bind mount
//! destinations that climb out of the rootfs through image symlinks.

use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_e2e::cri::v1 as cri;
use berth_e2e::image::{busybox_layer, push_image, Compression, Entry, ImageSpec, Layer};
use berth_e2e::workload::env;
use berth_e2e::{require_root, Berthd, BerthdOpts};
use sha2::{Digest, Sha256};
use tonic::Code;

fn lines_after<'a>(log: &'a str, marker: &str) -> Vec<&'a str> {
    // CRI log lines: "<ts> stdout F <text>".
    let text: Vec<&str> = log.lines().filter_map(|l| l.splitn(4, ' ').nth(3)).collect();
    let start = text.iter().position(|l| *l == marker).map_or(text.len(), |i| i + 1);
    text[start..]
        .iter()
        .take_while(|l| !l.starts_with("--"))
        .copied()
        .collect()
}

#[tokio::test]
async fn no_host_descriptor_or_directory_leaks_into_a_container() {
    let mut e = env(None).await;
    let pod = e.pod("fds").await;
    let mut c = e.container(
        "fds",
        &[
            "sh",
            "-c",
            "echo --init; ls /proc/1/fd; echo --self; ls /proc/self/fd; echo --targets; \
             ls -l /proc/1/fd | grep -o -- '-> .*'; echo --cwd; readlink /proc/1/cwd; echo --end",
        ],
    );
    c.working_dir = "/tmp".into();
    let (code, _, log) = e.run_to_exit(&pod, c).await;
    assert_eq!(code, 0, "{log}");
    assert_eq!(
        lines_after(&log, "--init"),
        ["0", "1", "2"],
        "init's descriptors: {log}"
    );
    assert_eq!(
        lines_after(&log, "--self"),
        ["0", "1", "2", "3"],
        "ls's descriptors: {log}"
    );
    for t in lines_after(&log, "--targets") {
        let t = t.trim_start_matches("-> ");
        assert!(
            t == "/dev/null" || t.starts_with("pipe:[") || t.starts_with("socket:["),
            "init holds {t:?}: {log}"
        );
    }
    assert_eq!(lines_after(&log, "--cwd"), ["/tmp"], "{log}");

    // An exec'd process (runc exec) too.
    let id = e
        .create(&pod, e.container("sleeper", &["sleep", "60"]))
        .await
        .expect("create");
    e.start(&id).await;
    let out = e
        .exec(&id, &["sh", "-c", "ls /proc/self/fd; readlink /proc/self/cwd"], 10)
        .await
        .expect("exec");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        ["0", "1", "2", "3", "/"],
        "{stdout}"
    );

    // CVE-2024-21626's door: a working directory in /proc/self/fd is refused, from the CRI
    // config and from the image config.
    for n in [3, 5, 7, 8] {
        let mut c = e.container(&format!("cwd{n}"), &["true"]);
        c.working_dir = format!("/proc/self/fd/{n}");
        let err = e.create(&pod, c).await.expect_err("cwd in /proc");
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        assert!(err.message().contains("/proc"), "{err:?}");
    }
    let spec = ImageSpec {
        layers: vec![busybox_layer(Compression::Gzip)],
        working_dir: Some("/proc/self/fd/7".into()),
        ..Default::default()
    };
    push_image(&e.registry(), "e2e/cwd", "1", &spec, None)
        .await
        .expect("push");
    let image = format!("{}/e2e/cwd:1", e.registry());
    e.cri.pull(&image, None).await.expect("pull");
    let mut c = e.container("imgcwd", &["true"]);
    c.image = Some(berth_e2e::cri::spec(&image));
    let err = e.create(&pod, c).await.expect_err("image cwd in /proc");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
}

fn sha256_file(p: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(p).expect("read runtime binary")))
}

fn host_runc() -> PathBuf {
    let out = std::process::Command::new("sh")
        .args(["-c", "command -v runc"])
        .output()
        .expect("sh");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// Restores the runtime binary if a test changed it, even when the test panics.
struct RestoreBinary(PathBuf, Vec<u8>);

impl Drop for RestoreBinary {
    fn drop(&mut self) {
        if std::fs::read(&self.0).ok().as_deref() != Some(self.1.as_slice()) {
            let tmp = self.0.with_extension("berth-e2e-restore");
            if std::fs::write(&tmp, &self.1).is_ok() {
                let _ = std::fs::rename(&tmp, &self.0);
            }
        }
    }
}

#[tokio::test]
async fn the_runtime_binary_cannot_be_rewritten_from_a_container() {
    let runc = host_runc();
    require_root();
    let before = sha256_file(&runc);
    let _restore = RestoreBinary(runc.clone(), std::fs::read(&runc).expect("read runc"));
    let mut e = env(None).await;
    let pod = e.pod("exe").await;
    // Every process it can see, runc's `init` during the execs below included, gets its
    // /proc/<pid>/exe opened for appending, again and again.
    // It stops when told to (or after a minute), and reports how often it looped.
    let attack = "i=0; while [ ! -e /tmp/stop ] && [ $i -lt 100000 ]; do for p in /proc/[0-9]*; do \
                  [ \"$p\" = /proc/$$ ] && continue; \
                  (echo pwned >> $p/exe) 2>/dev/null && echo WROTE $p; done; i=$((i+1)); done; echo finished $i";
    let id = e
        .create(&pod, e.container("attacker", &["sh", "-c", attack]))
        .await
        .expect("create");
    e.start(&id).await;
    for _ in 0..8 {
        let out = e
            .exec(
                &id,
                &[
                    "sh",
                    "-c",
                    "echo x >> /proc/self/exe; for p in /proc/[0-9]*; do echo x >> $p/exe; done; true",
                ],
                10,
            )
            .await
            .expect("exec");
        assert_eq!(out.exit_code, 0);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    e.exec(&id, &["touch", "/tmp/stop"], 10).await.expect("stop");
    let st = e.wait_exit(&id).await;
    let log = std::fs::read_to_string(Path::new(&pod.1.log_directory).join("attacker.log")).unwrap_or_default();
    assert_eq!(st.exit_code, 0, "{log}");
    assert!(log.contains("finished"), "{log}");
    assert!(!log.contains("WROTE"), "a process's executable was writable: {log}");
    assert_eq!(sha256_file(&runc), before, "the host's runc changed");
    let busybox = std::fs::read("/bin/busybox").expect("busybox");
    assert!(!busybox.ends_with(b"pwned\n"), "the host's busybox changed");
}

#[tokio::test]
async fn a_replaceable_runtime_binary_is_warned_about() {
    require_root();
    let dir = tempfile::tempdir().expect("tempdir");
    let loose = dir.path().join("runc-loose");
    std::fs::copy(host_runc(), &loose).expect("copy runc");
    std::fs::set_permissions(&loose, std::os::unix::fs::PermissionsExt::from_mode(0o777)).expect("chmod");
    let berthd = Berthd::start(BerthdOpts {
        config_toml: Some(format!("[runtime_handlers]\nloose = \"{}\"\n", loose.display())),
        ..Default::default()
    })
    .await
    .expect("berthd");
    let log = berthd.log();
    let warned: Vec<&str> = log.lines().filter(|l| l.contains("could be replaced")).collect();
    assert_eq!(warned.len(), 1, "one warning, for the loose binary only: {warned:?}");
    assert!(
        warned[0].contains("runc-loose") && warned[0].contains("777"),
        "{warned:?}"
    );
}

#[tokio::test]
async fn mount_destinations_through_image_symlinks_stay_in_the_rootfs() {
    let mut e = env(None).await;
    let tag = std::process::id();
    let (via_abs, via_rel) = (format!("berth-esc-abs-{tag}"), format!("berth-esc-rel-{tag}"));
    let spec = ImageSpec {
        layers: vec![
            busybox_layer(Compression::Gzip),
            Layer::new(
                Compression::Gzip,
                vec![Entry::symlink("data", "/etc"), Entry::symlink("up", "../../../")],
            ),
        ],
        ..Default::default()
    };
    push_image(&e.registry(), "e2e/links", "1", &spec, None)
        .await
        .expect("push");
    let image = format!("{}/e2e/links:1", e.registry());
    e.cri.pull(&image, None).await.expect("pull");
    let src = tempfile::tempdir().expect("src");
    std::fs::write(src.path().join("marker"), b"inside\n").expect("marker");
    let host_targets = [Path::new("/etc").join(&via_abs), Path::new("/").join(&via_rel)];
    let pod = e.pod("links").await;
    let mut c = e.container(
        "links",
        &["sh", "-c", &format!("cat /etc/{via_abs}/marker /{via_rel}/marker")],
    );
    c.image = Some(berth_e2e::cri::spec(&image));
    c.mounts = [format!("/data/{via_abs}"), format!("/up/{via_rel}")]
        .into_iter()
        .map(|container_path| cri::Mount {
            container_path,
            host_path: src.path().display().to_string(),
            readonly: true,
            ..Default::default()
        })
        .collect();
    let (code, _, log) = e.run_to_exit(&pod, c).await;
    let leaked: Vec<&PathBuf> = host_targets.iter().filter(|p| p.exists()).collect();
    for p in &leaked {
        let _ = std::fs::remove_dir(p);
    }
    assert!(leaked.is_empty(), "bind targets created on the host: {leaked:?}");
    assert_eq!(code, 0, "{log}");
    assert_eq!(
        log.matches("inside").count(),
        2,
        "both binds landed inside the rootfs: {log}"
    );
}
