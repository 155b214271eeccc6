//! The real kubelet (v1.36, standalone) on berthd, as on a fresh node: static pods with
//! resource limits (kubelet sets hugepage limits for every page size), a hostPort, an exec
//! readiness probe, kubelet's own API (logs, stats), a pod whose unsigned image the
//! signature policy refuses (ErrImagePull with the reason); then the manifests are deleted and
//! nothing of the pods may stay: no sandbox, container, cgroup, netns or mount. Alone in its
//! test binary: kubelet owns its cgroup root and ports while it runs.

use std::time::{Duration, Instant};

use berth_e2e::cri::v1 as cri;
use berth_e2e::image::{push_image, ImageSpec};
use berth_e2e::kubelet::Kubelet;
use berth_e2e::pod::count;
use berth_e2e::workload::{env_with, Env};

fn web_pod(image: &str, host_port: u16) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: default
spec:
  containers:
  - name: httpd
    image: {image}
    imagePullPolicy: IfNotPresent
    command: ["/bin/busybox", "sh", "-c", "mkdir -p /www && echo hello-from-berth > /www/index.html && echo serving && exec /bin/busybox httpd -f -p 8080 -h /www"]
    ports:
    - containerPort: 8080
      hostPort: {host_port}
    readinessProbe:
      exec:
        command: ["/bin/busybox", "cat", "/www/index.html"]
      periodSeconds: 2
"#
    )
}

fn limited_pod(image: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: limited
  namespace: default
spec:
  containers:
  - name: sleeper
    image: {image}
    imagePullPolicy: IfNotPresent
    command: ["/bin/busybox", "sleep", "3600"]
    resources:
      requests: {{cpu: 100m, memory: 32Mi}}
      limits: {{cpu: 200m, memory: 64Mi}}
"#
    )
}

/// A pod whose image the signature policy refuses (it is not signed).
fn unsigned_pod(image: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: unsigned
  namespace: default
spec:
  containers:
  - name: app
    image: {image}
    imagePullPolicy: Always
    command: ["/bin/busybox", "sleep", "3600"]
"#
    )
}

/// A signature policy: images under `signed_repo` need a cosign signature by a key made
/// here with openssl; anything else is accepted.
fn write_policy(dir: &std::path::Path, signed_repo: Option<&str>) -> std::path::PathBuf {
    let key = dir.join("cosign.key");
    let public = dir.join("cosign.pub");
    if !public.exists() {
        for args in [
            vec![
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
            ],
            vec!["pkey", "-pubout", "-out"],
        ] {
            let mut cmd = std::process::Command::new("openssl");
            cmd.args(&args);
            if args[0] == "pkey" {
                cmd.arg(&public).arg("-in");
            }
            let status = cmd.arg(&key).status().expect("openssl runs");
            assert!(status.success(), "openssl {args:?}");
        }
    }
    let mut docker = serde_json::Map::new();
    if let Some(repo) = signed_repo {
        docker.insert(
            repo.into(),
            serde_json::json!([{"type": "sigstoreSigned", "keyPath": public}]),
        );
    }
    let policy = serde_json::json!({
        "default": [{"type": "insecureAcceptAnything"}],
        "transports": {"docker": docker},
    });
    let path = dir.join("policy.json");
    std::fs::write(&path, policy.to_string()).expect("policy");
    path
}

/// Containers berthd lists for the pod named `pod` (by kubelet's labels).
async fn containers_of(env: &mut Env, pod: &str) -> Vec<cri::Container> {
    let all = env.containers().await;
    all.into_iter()
        .filter(|c| c.labels.get("io.kubernetes.pod.name").map(String::as_str) == Some(pod))
        .collect()
}

#[tokio::test]
async fn kubelet_runs_static_pods_and_removes_them() {
    let trust = tempfile::tempdir().expect("tempdir");
    let policy = write_policy(trust.path(), None);
    let mut env = env_with(
        None,
        Some(format!("signature_policy = {:?}\n", policy.display().to_string())),
    )
    .await;
    let unsigned = format!("{}/e2e/unsigned:1", env.registry());
    push_image(&env.registry(), "e2e/unsigned", "1", &ImageSpec::busybox(), None)
        .await
        .expect("push the unsigned image");
    write_policy(trust.path(), Some(&format!("{}/e2e/unsigned", env.registry())));
    let mut kubelet = Kubelet::start(&env.berthd.endpoint()).expect("kubelet starts");
    let host_port = berth_e2e::free_port();
    let web_name = format!("web-{}", kubelet.node_name);
    let limited_name = format!("limited-{}", kubelet.node_name);
    std::fs::write(kubelet.manifests().join("web.yaml"), web_pod(&env.image, host_port)).expect("manifest");
    std::fs::write(kubelet.manifests().join("limited.yaml"), limited_pod(&env.image)).expect("manifest");
    std::fs::write(kubelet.manifests().join("unsigned.yaml"), unsigned_pod(&unsigned)).expect("manifest");

    // Both pods' containers run (kubelet creates them only after RunPodSandbox worked).
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let web = containers_of(&mut env, &web_name).await;
        let limited = containers_of(&mut env, &limited_name).await;
        let running = |v: &[cri::Container]| {
            v.iter()
                .any(|c| c.state == cri::ContainerState::ContainerRunning as i32)
        };
        if running(&web) && running(&limited) {
            break;
        }
        assert!(kubelet.is_running(), "kubelet exited:\n{}", kubelet.log_tail(40));
        assert!(
            Instant::now() < deadline,
            "pods did not run in 120 s: web {web:?}, limited {limited:?}\nkubelet:\n{}\nberthd:\n{}",
            kubelet.log_tail(40),
            env.berthd.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The status shows the image the pod names, not the id kubelet sends in CreateContainer.
    let sleeper = containers_of(&mut env, &limited_name).await.remove(0);
    let status = env
        .cri
        .runtime
        .container_status(cri::ContainerStatusRequest {
            container_id: sleeper.id.clone(),
            verbose: false,
        })
        .await
        .expect("status")
        .into_inner()
        .status
        .expect("status");
    let image = status.image.expect("image");
    assert_eq!(image.image, env.image, "ContainerStatus.image is the pod's image");
    assert_eq!(image.user_specified_image, env.image);
    assert!(
        status.image_ref.contains("@sha256:"),
        "image_ref is a digest reference: {}",
        status.image_ref
    );
    assert!(status.image_id.starts_with("sha256:"), "image_id: {}", status.image_id);

    // The memory limit reached the container's cgroup.
    let cg = berth_e2e::kubelet::hierarchies()
        .into_iter()
        .find(|h| h.join("memory.max").exists() || h.ends_with("memory"))
        .expect("a memory hierarchy");
    let limit_files: Vec<_> = kubelet
        .cgroup_dirs()
        .into_iter()
        .filter(|d| d.ends_with(&sleeper.id))
        .map(|d| cg.join(kubelet.cgroup_root.trim_start_matches('/')).join(d))
        .filter_map(|d| {
            std::fs::read_to_string(d.join("memory.limit_in_bytes"))
                .or_else(|_| std::fs::read_to_string(d.join("memory.max")))
                .ok()
        })
        .collect();
    assert_eq!(
        limit_files.iter().map(|s| s.trim()).collect::<Vec<_>>(),
        vec![(64u64 << 20).to_string()],
        "the container's cgroup under kubelet's pod cgroup"
    );

    // hostPort answers from the host's loopback; the exec readiness probe ran through berthd.
    let deadline = Instant::now() + Duration::from_secs(60);
    let body = loop {
        match berth_e2e::http_client()
            .get(format!("http://127.0.0.1:{host_port}/index.html"))
            .timeout(Duration::from_secs(2))
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => break r.text().await.expect("body"),
            other => {
                assert!(
                    Instant::now() < deadline,
                    "hostPort {host_port} did not answer: {other:?}"
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    };
    assert_eq!(body.trim(), "hello-from-berth");

    // kubelet's API: the container's log (from the CRI log file berth's shim writes) and the
    // stats summary (from berthd's CRI stats).
    let https = reqwest::Client::builder()
        .no_proxy()
        .danger_accept_invalid_certs(true)
        .build()
        .expect("client");
    let logs = https
        .get(format!(
            "https://127.0.0.1:{}/containerLogs/default/{web_name}/httpd",
            kubelet.port
        ))
        .send()
        .await
        .expect("containerLogs")
        .text()
        .await
        .expect("log text");
    assert!(logs.contains("serving"), "kubelet's containerLogs: {logs:?}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let summary: serde_json::Value = https
            .get(format!("https://127.0.0.1:{}/stats/summary", kubelet.port))
            .send()
            .await
            .expect("summary")
            .json()
            .await
            .expect("summary json");
        let pods = summary["pods"].as_array().cloned().unwrap_or_default();
        let sleeper_mem = pods
            .iter()
            .filter(|p| p["podRef"]["name"] == limited_name.as_str())
            .flat_map(|p| p["containers"].as_array().cloned().unwrap_or_default())
            .find(|c| c["name"] == "sleeper")
            .and_then(|c| c["memory"]["workingSetBytes"].as_u64());
        if sleeper_mem.is_some_and(|b| b > 0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no stats for the sleeper in kubelet's summary: {summary}"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }

    // The unsigned pod's image was refused: kubelet reports ErrImagePull with the policy's
    // reason, and the pod has no container.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let log = kubelet.log();
        if log.contains("ErrImagePull") && log.contains("refused by signature policy") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "kubelet did not report the refused pull:\n{}",
            kubelet.log_tail(40)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let refused = containers_of(&mut env, &format!("unsigned-{}", kubelet.node_name)).await;
    assert!(refused.is_empty(), "a container from a refused image: {refused:?}");
    assert!(
        env.cri.status(&unsigned).await.expect("status").is_none(),
        "the refused image is not stored"
    );

    // Delete the manifests in creation order; kubelet stops the pods and its garbage
    // collection removes their sandboxes.
    let ids: Vec<String> = env.sandboxes().await.into_iter().map(|s| s.id).collect();
    assert_eq!(ids.len(), 3, "one sandbox per pod: {ids:?}");
    for manifest in ["web.yaml", "limited.yaml", "unsigned.yaml"] {
        std::fs::remove_file(kubelet.manifests().join(manifest)).expect("rm");
    }
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let left = env.sandboxes().await;
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "kubelet did not get the sandboxes removed: {left:?}\nkubelet:\n{}\nberthd:\n{}",
            kubelet.log_tail(60),
            env.berthd.log()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let berthd_log = env.berthd.log();
    for bad in ["RemovePodSandbox failed", "Device or resource busy", "File exists"] {
        assert!(!berthd_log.contains(bad), "berthd logged {bad:?}:\n{berthd_log}");
    }
    // Nothing of the pods stays: no container, netns pin, or cgroup of a sandbox or container.
    let containers = env.containers().await;
    assert!(containers.is_empty(), "containers left: {containers:?}");
    assert_eq!(count(&env.berthd.state().join("netns")), 0, "netns pins left");
    let mounts: Vec<_> = berth_e2e::berthd::mounts_under(env.berthd.dir())
        .into_iter()
        .filter(|m| {
            let m = m.display().to_string();
            ids.iter().any(|id| m.contains(id.as_str())) || m.contains(&sleeper.id)
        })
        .collect();
    assert!(mounts.is_empty(), "mounts of the pods left: {mounts:?}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let dirs = kubelet.cgroup_dirs();
        let left: Vec<&String> = dirs
            .iter()
            .filter(|d| ids.iter().any(|id| d.contains(id.as_str())) || d.ends_with(&sleeper.id))
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "cgroups left behind: {left:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    kubelet.stop();
}
