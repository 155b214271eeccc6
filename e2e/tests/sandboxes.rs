//! Pod sandboxes end to end: real namespaces, Debian's CNI plugins (bridge, host-local,
//! portmap), real iptables, a real berthd driven through the CRI.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use berth_e2e::cri::{v1 as cri, Cri};
use berth_e2e::pod::{
    berthd, count, in_netns, mounts, output, pod_config, run, status, stop_remove, Listener, TestNet,
};
use berth_e2e::{require_root, Berthd, BerthdOpts};
use tonic::Code;

#[tokio::test]
async fn two_pods_get_distinct_ips_and_reach_each_other() {
    let net = TestNet::new();
    let (berthd, mut cri) = berthd(&net).await;
    let a = run(&mut cri, pod_config("pod-a")).await.expect("run a");
    let b = run(&mut cri, pod_config("pod-b")).await.expect("run b");
    let (sa, ia) = status(&mut cri, &a).await.expect("status a");
    let (sb, ib) = status(&mut cri, &b).await.expect("status b");
    assert_eq!(sa.state, cri::PodSandboxState::SandboxReady as i32);
    let (ipa, ipb) = (sa.network.expect("net").ip, sb.network.expect("net").ip);
    assert!(
        ipa.starts_with(&net.subnet_prefix) && ipb.starts_with(&net.subnet_prefix),
        "{ipa} {ipb}"
    );
    assert_ne!(ipa, ipb);
    let (nsa, nsb) = (
        ia["netns"].as_str().expect("netns a"),
        ib["netns"].as_str().expect("netns b"),
    );

    // The pod's own eth0 carries its address, and its hostname is the pod's.
    assert!(output(in_netns(nsa, &["ip", "-4", "addr", "show", "eth0"])).contains(&ipa));
    assert!(
        output(in_netns(nsa, &["ip", "link", "show", "lo"])).contains(",UP"),
        "lo is up in the pod"
    );
    let pid = ia["infra_pid"].as_u64().expect("infra pid");
    let host = output({
        let mut c = Command::new("nsenter");
        c.args(["-t", &pid.to_string(), "-u", "hostname"]);
        c
    });
    assert_eq!(host.trim(), "pod-a");

    // A process in pod b reaches a listener in pod a.
    let _l = Listener::start(nsa, 7777, "hello-from-a");
    let got = output(in_netns(nsb, &["busybox", "nc", "-w", "3", &ipa, "7777"]));
    assert!(got.contains("hello-from-a"), "pod b got {got:?}");

    // Filtering by label and by state.
    let filter = cri::PodSandboxFilter {
        label_selector: HashMap::from([("app".into(), "pod-b".into())]),
        ..Default::default()
    };
    let list = cri
        .runtime
        .list_pod_sandbox(cri::ListPodSandboxRequest { filter: Some(filter) })
        .await
        .expect("list")
        .into_inner();
    assert_eq!(
        list.items.iter().map(|s| s.id.clone()).collect::<Vec<_>>(),
        vec![b.clone()]
    );

    stop_remove(&mut cri, &a).await;
    stop_remove(&mut cri, &b).await;
    assert!(
        !Path::new(nsa).exists() && !Path::new(nsb).exists(),
        "netns pins removed"
    );
    drop(berthd);
}

#[tokio::test]
async fn host_port_reaches_the_pod() {
    let net = TestNet::new();
    let (_berthd, mut cri) = berthd(&net).await;
    let mut config = pod_config("web");
    let host_port = 18000 + (std::process::id() % 1000) as i32;
    config.port_mappings = vec![cri::PortMapping {
        protocol: 0,
        container_port: 80,
        host_port,
        host_ip: String::new(),
    }];
    let id = run(&mut cri, config).await.expect("run");
    let (st, info) = status(&mut cri, &id).await.expect("status");
    let netns = info["netns"].as_str().expect("netns").to_string();
    let _l = Listener::start(&netns, 80, "hello-from-pod");
    let rules = output({
        let mut c = Command::new("iptables-save");
        c.args(["-t", "nat"]);
        c
    });
    assert!(rules.contains(&format!("--dport {host_port}")), "portmap rules present");
    // Through the host's address on the pod bridge (what another node would use).
    let gw = format!("{}.1", net.subnet_prefix);
    let got = output({
        let mut c = Command::new("busybox");
        c.args(["nc", "-w", "3", &gw, &host_port.to_string()]);
        c
    });
    assert!(
        got.contains("hello-from-pod"),
        "host port {host_port} -> pod {:?}: got {got:?}",
        st.network
    );
    stop_remove(&mut cri, &id).await;
    let rules = output({
        let mut c = Command::new("iptables-save");
        c.args(["-t", "nat"]);
        c
    });
    assert!(
        !rules.contains(&format!("--dport {host_port}")),
        "portmap rules removed"
    );
}

#[tokio::test]
async fn host_network_pod_sees_host_interfaces() {
    let net = TestNet::new();
    let (_berthd, mut cri) = berthd(&net).await;
    let mut config = pod_config("hostnet");
    if let Some(ns) = config
        .linux
        .as_mut()
        .and_then(|l| l.security_context.as_mut())
        .and_then(|s| s.namespace_options.as_mut())
    {
        ns.network = cri::NamespaceMode::Node as i32;
    }
    let id = run(&mut cri, config).await.expect("run");
    let (st, info) = status(&mut cri, &id).await.expect("status");
    assert!(info["netns"].is_null(), "no netns of its own");
    assert_eq!(st.network.expect("net").ip, "", "no pod IP on the host network");
    let pid = info["infra_pid"].as_u64().expect("pid");
    let theirs = std::fs::read_link(format!("/proc/{pid}/ns/net")).expect("ns");
    let ours = std::fs::read_link("/proc/self/ns/net").expect("ns");
    assert_eq!(theirs, ours);
    stop_remove(&mut cri, &id).await;
}

#[tokio::test]
async fn bad_input_and_idempotence() {
    let net = TestNet::new();
    let (_berthd, mut cri) = berthd(&net).await;
    let mut no_name = pod_config("x");
    no_name.metadata.as_mut().expect("meta").name.clear();
    assert_eq!(
        run(&mut cri, no_name).await.expect_err("no name").code(),
        Code::InvalidArgument
    );
    let mut no_meta = pod_config("x");
    no_meta.metadata = None;
    assert_eq!(
        run(&mut cri, no_meta).await.expect_err("no metadata").code(),
        Code::InvalidArgument
    );
    let mut bad_sysctl = pod_config("x");
    bad_sysctl
        .linux
        .as_mut()
        .expect("linux")
        .sysctls
        .insert("kernel.hostname".into(), "x".into());
    assert_eq!(
        run(&mut cri, bad_sysctl).await.expect_err("host sysctl").code(),
        Code::InvalidArgument
    );
    let err = status(&mut cri, "0123456789abcdef").await.expect_err("unknown");
    assert_eq!(err.code(), Code::NotFound);
    cri.runtime
        .stop_pod_sandbox(cri::StopPodSandboxRequest {
            pod_sandbox_id: "0123456789abcdef".into(),
        })
        .await
        .expect("stop unknown");
    cri.runtime
        .remove_pod_sandbox(cri::RemovePodSandboxRequest {
            pod_sandbox_id: "0123456789abcdef".into(),
        })
        .await
        .expect("remove unknown");

    let id = run(&mut cri, pod_config("dup")).await.expect("first");
    assert_eq!(
        run(&mut cri, pod_config("dup")).await.expect_err("same name").code(),
        Code::AlreadyExists
    );
    cri.runtime
        .stop_pod_sandbox(cri::StopPodSandboxRequest {
            pod_sandbox_id: id.clone(),
        })
        .await
        .expect("stop");
    cri.runtime
        .stop_pod_sandbox(cri::StopPodSandboxRequest {
            pod_sandbox_id: id.clone(),
        })
        .await
        .expect("stop again");
    let (st, _) = status(&mut cri, &id).await.expect("status");
    assert_eq!(st.state, cri::PodSandboxState::SandboxNotready as i32);
    cri.runtime
        .remove_pod_sandbox(cri::RemovePodSandboxRequest {
            pod_sandbox_id: id.clone(),
        })
        .await
        .expect("remove");
    cri.runtime
        .remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: id })
        .await
        .expect("remove again");
    run(&mut cri, pod_config("dup")).await.expect("the name is free again");
}

#[tokio::test]
async fn failing_cni_plugin_leaves_nothing_behind_and_status_reports_network() {
    require_root();
    let conf = tempfile::tempdir().expect("tempdir");
    let bin = tempfile::tempdir().expect("tempdir");
    let plugin = bin.path().join("failing");
    std::fs::write(
        &plugin,
        "#!/bin/sh\necho '{\"cniVersion\":\"1.0.0\",\"code\":11,\"msg\":\"no addresses left in test pool\"}'\nexit 1\n",
    )
    .expect("plugin");
    std::fs::set_permissions(&plugin, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let berthd = Berthd::start(BerthdOpts {
        extra_args: vec![
            "--cni-conf-dir".into(),
            conf.path().display().to_string(),
            "--cni-bin-dir".into(),
            bin.path().display().to_string(),
        ],
        ..Default::default()
    })
    .await
    .expect("berthd");
    let mut cri = Cri::connect(berthd.socket()).await.expect("connect");
    let network_ready = |s: &cri::StatusResponse| {
        s.status
            .as_ref()
            .expect("status")
            .conditions
            .iter()
            .find(|c| c.r#type == "NetworkReady")
            .map(|c| c.status)
    };
    let st = cri
        .runtime
        .status(cri::StatusRequest { verbose: false })
        .await
        .expect("status")
        .into_inner();
    assert_eq!(network_ready(&st), Some(false), "no CNI config yet");
    std::fs::write(
        conf.path().join("10-bad.conflist"),
        r#"{"cniVersion":"1.0.0","name":"bad","plugins":[{"type":"failing"}]}"#,
    )
    .expect("conf");
    let st = cri
        .runtime
        .status(cri::StatusRequest { verbose: false })
        .await
        .expect("status")
        .into_inner();
    assert_eq!(network_ready(&st), Some(true));

    let netns_before = count(&berthd.state().join("netns"));
    let err = run(&mut cri, pod_config("doomed")).await.expect_err("plugin fails");
    assert!(err.message().contains("no addresses left in test pool"), "{err:?}");
    assert_eq!(count(&berthd.state().join("netns")), netns_before, "no netns left");
    assert_eq!(count(&berthd.state().join("sandboxes")), 0, "no sandbox dir left");
    let list = cri
        .runtime
        .list_pod_sandbox(cri::ListPodSandboxRequest { filter: None })
        .await
        .expect("list")
        .into_inner();
    assert!(list.items.is_empty());
    assert!(
        !mounts().iter().any(|m| m.starts_with(berthd.state())),
        "no mount left under the state dir"
    );
}

#[tokio::test]
async fn sandboxes_survive_a_berthd_restart() {
    let net = TestNet::new();
    let (mut berthd, mut cri) = berthd(&net).await;
    let id = run(&mut cri, pod_config("survivor")).await.expect("run");
    let (before, _) = status(&mut cri, &id).await.expect("status");
    berthd.kill9();
    berthd.restart().await.expect("restart");
    let mut cri = Cri::connect(berthd.socket()).await.expect("reconnect");
    let (after, _) = status(&mut cri, &id).await.expect("status after restart");
    assert_eq!(
        after.state,
        cri::PodSandboxState::SandboxReady as i32,
        "infra kept running"
    );
    assert_eq!(after.network, before.network, "same IP");
    stop_remove(&mut cri, &id).await;
}
