//! RuntimeClasses through the real kubelet (v1.36) and Kubernetes' API server (the kit's
//! embedded etcd + kube-apiserver): RuntimeClass objects as the Helm chart ships them
//! (`gvisor` → handler `runsc`, `berth-runc-shim-v2` → handler `runc-shim-v2`), pods bound to
//! the node that name them, and one without a class. kubelet resolves each class and asks
//! berthd for its handler: each pod serves through its hostPort, passes an exec readiness
//! probe, and runs where its class says (gVisor's own kernel, a containerd shim v2 process
//! for the shim's pod). A class whose handler berthd lacks fails the pod's sandbox with an
//! event that names it. Deleting the pods through the API leaves nothing of them. Alone in
//! its test binary: kubelet owns its cgroup root and ports while it runs.

use std::time::{Duration, Instant};

use berth_e2e::apiserver::ApiServer;
use berth_e2e::cri::v1 as cri;
use berth_e2e::kubelet::Kubelet;
use berth_e2e::probe::processes_with;
use berth_e2e::workload::{env, Env};

/// (pod, RuntimeClass or "", the handler berthd must be asked for).
const PODS: [(&str, &str, &str); 3] = [
    ("web-default", "", ""),
    ("web-gvisor", "gvisor", "runsc"),
    ("web-shim-v2", "berth-runc-shim-v2", "runc-shim-v2"),
];

const CLASSES: &str = r#"apiVersion: node.k8s.io/v1
kind: RuntimeClass
metadata: {name: gvisor}
handler: runsc
---
apiVersion: node.k8s.io/v1
kind: RuntimeClass
metadata: {name: berth-runc-shim-v2}
handler: runc-shim-v2
---
apiVersion: node.k8s.io/v1
kind: RuntimeClass
metadata: {name: unconfigured}
handler: no-such-handler
"#;

fn web_pod(name: &str, class: &str, node: &str, image: &str, host_port: u16) -> String {
    let class = if class.is_empty() {
        String::new()
    } else {
        format!("  runtimeClassName: {class}\n")
    };
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: default
spec:
  nodeName: {node}
{class}  containers:
  - name: httpd
    image: {image}
    imagePullPolicy: IfNotPresent
    command: ["/bin/busybox", "sh", "-c", "mkdir -p /www && echo {name} > /www/index.html && exec /bin/busybox httpd -f -p 8080 -h /www"]
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

/// Waits up to `secs` for `done`, failing with `what` and kubelet's log tail.
async fn wait_for(kubelet: &Kubelet, secs: u64, what: &str, mut done: impl FnMut() -> Option<String>) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let Some(state) = done() else { return };
        assert!(
            Instant::now() < deadline,
            "{what} within {secs} s; last: {state}\nkubelet:\n{}",
            kubelet.log_tail(40)
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The sandbox berthd runs for API pod `name`.
async fn sandbox_of(env: &mut Env, name: &str) -> cri::PodSandbox {
    let all = env.sandboxes().await;
    all.into_iter()
        .find(|s| {
            s.metadata
                .as_ref()
                .is_some_and(|m| m.name == name && m.namespace == "default")
        })
        .unwrap_or_else(|| panic!("no sandbox for pod {name}"))
}

#[tokio::test]
async fn kubelet_runs_pods_by_runtime_class() {
    for (bin, package) in [("runsc", "runsc"), ("containerd-shim-runc-v2", "containerd")] {
        let found = std::process::Command::new("sh")
            .args(["-c", &format!("command -v {bin}")])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(found, "{bin} is not installed (e2e/run.sh installs Debian's {package})");
    }
    let mut env = env(None).await;
    let api = ApiServer::start().expect("the API server starts");
    let mut kubelet = Kubelet::start_on(&env.berthd.endpoint(), &api).expect("kubelet starts");
    let node = kubelet.node_name.clone();
    let ready = r#"-o=jsonpath={.status.conditions[?(@.type=="Ready")].status}"#;
    wait_for(&kubelet, 120, "the node registered and Ready", || {
        match api.kubectl(&["get", "node", &node, ready]) {
            Ok(s) if s.trim() == "True" => None,
            other => Some(format!("{other:?}")),
        }
    })
    .await;

    api.apply(CLASSES).expect("RuntimeClasses");
    let mut ports = Vec::new();
    for (name, class, _) in PODS {
        let port = berth_e2e::free_port();
        api.apply(&web_pod(name, class, &node, &env.image, port)).expect("pod");
        ports.push(port);
    }
    api.apply(&web_pod(
        "unconfigured",
        "unconfigured",
        &node,
        &env.image,
        berth_e2e::free_port(),
    ))
    .expect("pod of the unconfigured class");

    // Every pod turns Ready: its exec readiness probe ran through berthd in its runtime.
    for (name, _, _) in PODS {
        wait_for(&kubelet, 180, &format!("pod {name} Ready"), || {
            match api.kubectl(&["get", "pod", name, ready]) {
                Ok(s) if s.trim() == "True" => None,
                other => Some(format!("{other:?}")),
            }
        })
        .await;
    }

    // Each pod runs on the handler its class names, where that handler runs it.
    let host_kernel = std::fs::read_to_string("/proc/version").expect("/proc/version");
    for ((name, class, handler), port) in PODS.into_iter().zip(&ports) {
        let sandbox = sandbox_of(&mut env, name).await;
        assert_eq!(sandbox.runtime_handler, handler, "pod {name} (class {class:?})");
        let containers = env.containers().await;
        let httpd = containers
            .iter()
            .find(|c| c.pod_sandbox_id == sandbox.id)
            .unwrap_or_else(|| panic!("no container in pod {name}: {containers:?}"));
        let r = env.exec(&httpd.id, &["cat", "/proc/version"], 10).await.expect("exec");
        let kernel = String::from_utf8_lossy(&r.stdout).to_string();
        assert_eq!(
            kernel == host_kernel,
            handler != "runsc",
            "pod {name}: the container's kernel {kernel:?} (host: {host_kernel:?})"
        );
        let body = berth_e2e::probe::wait_http("127.0.0.1", *port, "/index.html").await;
        assert_eq!(body.trim(), name, "pod {name} through hostPort {port}");
    }
    let events = env.berthd.state().join("shim-events.sock").display().to_string();
    let shims = || -> Vec<(u32, String)> {
        processes_with("containerd-shim-runc-v2")
            .into_iter()
            .filter(|(_, cmd)| {
                cmd.split(' ')
                    .next()
                    .is_some_and(|p| p.ends_with("containerd-shim-runc-v2"))
            })
            .filter(|(_, cmd)| cmd.contains(&events))
            .collect()
    };
    assert_eq!(shims().len(), 1, "one shim v2 for the shim's pod: {:?}", shims());

    // The class whose handler berthd lacks: no sandbox, and kubelet's event names it.
    let unconfigured =
        r#"-o=jsonpath={range .items[?(@.involvedObject.name=="unconfigured")]}{.reason}: {.message}{"\n"}{end}"#;
    wait_for(&kubelet, 60, "an event for the unconfigured handler", || {
        match api.kubectl(&["get", "events", unconfigured]) {
            Ok(s) if s.contains("FailedCreatePodSandBox") && s.contains("no-such-handler") => None,
            other => Some(format!("{other:?}")),
        }
    })
    .await;
    let sandboxes = env.sandboxes().await;
    assert!(
        sandboxes
            .iter()
            .all(|s| s.metadata.as_ref().is_some_and(|m| m.name != "unconfigured")),
        "a sandbox for the unconfigured handler: {sandboxes:?}"
    );

    // Deleted through the API (in creation order): kubelet stops them and removes their
    // sandboxes; no container, gVisor sandbox or shim v2 stays.
    api.kubectl(&[
        "delete",
        "pod",
        "web-default",
        "web-gvisor",
        "web-shim-v2",
        "unconfigured",
        "--wait=false",
    ])
    .expect("delete pods");
    let mut left = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(180);
    while Instant::now() < deadline {
        left = env.sandboxes().await;
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(
        left.is_empty(),
        "kubelet did not get the sandboxes removed: {left:?}\nkubelet:\n{}\nberthd:\n{}",
        kubelet.log_tail(60),
        env.berthd.log()
    );
    assert!(env.containers().await.is_empty(), "containers left");
    wait_for(&kubelet, 30, "the shim v2 gone", || {
        let left = shims();
        (!left.is_empty()).then(|| format!("{left:?}"))
    })
    .await;
    let root = env.berthd.state().join("runtimes/runsc");
    let runsc = processes_with("runsc")
        .into_iter()
        .filter(|(_, cmd)| cmd.contains(&root.display().to_string()))
        .collect::<Vec<_>>();
    assert!(runsc.is_empty(), "gVisor processes left: {runsc:?}");
    let pods = api.kubectl(&["get", "pods", "-o=name"]).expect("pods");
    assert!(pods.trim().is_empty(), "pods left in the API: {pods}");
    kubelet.stop();
}
