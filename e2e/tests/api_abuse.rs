//! Malformed and oversized requests to every CRI RPC (RuntimeService and ImageService, the
//! streaming ones included): missing, empty, 1 MiB, NUL-bearing and `/`-bearing ids and
//! names, `..` in log paths, negative and huge numbers. Each must get InvalidArgument (or
//! NotFound for a well-formed unknown id, or success where CRI wants idempotence), and
//! berthd must answer `Version` after every call and never panic.
//! Container-level fields are in `api_abuse_containers.rs`.

use berth_e2e::abuse::{mib, pb, Abuse, UNKNOWN_ID};
use berth_e2e::{require_root, Berthd, BerthdOpts};
use tonic::Code::{self, InvalidArgument as Inval, NotFound, Ok as Fine};

fn pod_config(edit: impl FnOnce(&mut pb::PodSandboxConfig)) -> Option<pb::PodSandboxConfig> {
    let mut c = pb::PodSandboxConfig {
        metadata: Some(pb::PodSandboxMetadata {
            name: "abuse".into(),
            uid: "uid-abuse".into(),
            namespace: "default".into(),
            attempt: 0,
        }),
        log_directory: "/tmp/berth-abuse-logs".into(),
        ..Default::default()
    };
    edit(&mut c);
    Some(c)
}

fn meta(c: &mut pb::PodSandboxConfig) -> &mut pb::PodSandboxMetadata {
    c.metadata.as_mut().expect("metadata")
}

fn img(name: &str) -> Option<pb::ImageSpec> {
    Some(pb::ImageSpec {
        image: name.into(),
        ..Default::default()
    })
}

/// Ids that are not ids: empty, 1 MiB, NUL, slash, dot-dot.
fn bad_ids() -> Vec<(&'static str, String)> {
    vec![
        ("empty", String::new()),
        ("1MiB", mib()),
        ("nul", "abc\0def".into()),
        ("slash", "../../etc".into()),
    ]
}

#[tokio::test]
async fn every_rpc_refuses_garbage_and_berthd_stays_up() {
    require_root();
    let berthd = Berthd::start(BerthdOpts::default()).await.expect("berthd");
    let mut a = Abuse::connect(&berthd).await;

    let r = a.rt.version(pb::VersionRequest { version: mib() }).await;
    a.check("Version(1MiB)", r, &[Fine, Inval]).await;

    // RunPodSandbox: every way its config can be wrong.
    type Edit = Box<dyn FnOnce(&mut pb::PodSandboxConfig)>;
    let edits: Vec<(&str, Edit)> = vec![
        ("no metadata", Box::new(|c| c.metadata = None)),
        ("name empty", Box::new(|c| meta(c).name.clear())),
        ("name nul", Box::new(|c| meta(c).name = "a\0b".into())),
        ("name slash", Box::new(|c| meta(c).name = "a/b".into())),
        ("name 1MiB", Box::new(|c| meta(c).name = mib())),
        ("namespace empty", Box::new(|c| meta(c).namespace.clear())),
        ("namespace slash", Box::new(|c| meta(c).namespace = "../x".into())),
        ("uid empty", Box::new(|c| meta(c).uid.clear())),
        ("uid 1MiB", Box::new(|c| meta(c).uid = mib())),
        (
            "log dir relative",
            Box::new(|c| c.log_directory = "var/log/pods".into()),
        ),
        (
            "log dir dotdot",
            Box::new(|c| c.log_directory = "/var/log/pods/../../../etc".into()),
        ),
        ("log dir nul", Box::new(|c| c.log_directory = "/var/log/\0x".into())),
        ("hostname 1MiB", Box::new(|c| c.hostname = mib())),
        ("hostname slash", Box::new(|c| c.hostname = "a/b".into())),
        (
            "label key 1MiB",
            Box::new(|c| {
                c.labels.insert(mib(), "v".into());
            }),
        ),
        (
            "port -1",
            Box::new(|c| {
                c.port_mappings.push(pb::PortMapping {
                    container_port: -1,
                    host_port: 80,
                    ..Default::default()
                })
            }),
        ),
        (
            "port 70000",
            Box::new(|c| {
                c.port_mappings.push(pb::PortMapping {
                    container_port: 80,
                    host_port: 70000,
                    ..Default::default()
                })
            }),
        ),
    ];
    let r = a.rt.run_pod_sandbox(pb::RunPodSandboxRequest::default()).await;
    a.check("RunPodSandbox(no config)", r, &[Inval]).await;
    for (what, edit) in edits {
        let r =
            a.rt.run_pod_sandbox(pb::RunPodSandboxRequest {
                config: pod_config(edit),
                runtime_handler: String::new(),
            })
            .await;
        a.check(&format!("RunPodSandbox({what})"), r, &[Inval]).await;
    }
    for handler in [mib(), "nope".into(), "a\0b".into()] {
        let r =
            a.rt.run_pod_sandbox(pb::RunPodSandboxRequest {
                config: pod_config(|_| {}),
                runtime_handler: handler.chars().take(1 << 20).collect(),
            })
            .await;
        a.check("RunPodSandbox(bad runtime handler)", r, &[Inval, NotFound])
            .await;
    }

    // Every RPC taking an id: bad ids are InvalidArgument; an unknown one NotFound, or
    // success where CRI asks for idempotence (stop, remove).
    for (kind, id) in bad_ids().into_iter().chain([("unknown", UNKNOWN_ID.to_string())]) {
        let unknown = kind == "unknown";
        let want = |idempotent: bool| -> &'static [Code] {
            match (unknown, idempotent) {
                (false, _) => &[Inval],
                (true, true) => &[Fine, NotFound],
                (true, false) => &[NotFound],
            }
        };
        let s = || id.clone();
        let r =
            a.rt.stop_pod_sandbox(pb::StopPodSandboxRequest { pod_sandbox_id: s() })
                .await;
        a.check(&format!("StopPodSandbox({kind})"), r, want(true)).await;
        let r =
            a.rt.remove_pod_sandbox(pb::RemovePodSandboxRequest { pod_sandbox_id: s() })
                .await;
        a.check(&format!("RemovePodSandbox({kind})"), r, want(true)).await;
        let r =
            a.rt.pod_sandbox_status(pb::PodSandboxStatusRequest {
                pod_sandbox_id: s(),
                verbose: true,
            })
            .await;
        a.check(&format!("PodSandboxStatus({kind})"), r, want(false)).await;
        let r =
            a.rt.start_container(pb::StartContainerRequest { container_id: s() })
                .await;
        a.check(&format!("StartContainer({kind})"), r, want(false)).await;
        let r =
            a.rt.stop_container(pb::StopContainerRequest {
                container_id: s(),
                timeout: -7,
            })
            .await;
        a.check(&format!("StopContainer({kind})"), r, want(true)).await;
        let r =
            a.rt.remove_container(pb::RemoveContainerRequest { container_id: s() })
                .await;
        a.check(&format!("RemoveContainer({kind})"), r, want(true)).await;
        let r =
            a.rt.container_status(pb::ContainerStatusRequest {
                container_id: s(),
                verbose: true,
            })
            .await;
        a.check(&format!("ContainerStatus({kind})"), r, want(false)).await;
        let r =
            a.rt.update_container_resources(pb::UpdateContainerResourcesRequest {
                container_id: s(),
                ..Default::default()
            })
            .await;
        a.check(&format!("UpdateContainerResources({kind})"), r, want(false))
            .await;
        let r =
            a.rt.reopen_container_log(pb::ReopenContainerLogRequest { container_id: s() })
                .await;
        a.check(&format!("ReopenContainerLog({kind})"), r, want(false)).await;
        let r =
            a.rt.exec_sync(pb::ExecSyncRequest {
                container_id: s(),
                cmd: vec!["true".into()],
                timeout: 1,
            })
            .await;
        a.check(&format!("ExecSync({kind})"), r, want(false)).await;
        let r =
            a.rt.exec(pb::ExecRequest {
                container_id: s(),
                cmd: vec!["true".into()],
                stdout: true,
                ..Default::default()
            })
            .await;
        a.check(&format!("Exec({kind})"), r, want(false)).await;
        let r =
            a.rt.attach(pb::AttachRequest {
                container_id: s(),
                stdout: true,
                ..Default::default()
            })
            .await;
        a.check(&format!("Attach({kind})"), r, want(false)).await;
        let r =
            a.rt.port_forward(pb::PortForwardRequest {
                pod_sandbox_id: s(),
                port: vec![80],
            })
            .await;
        a.check(&format!("PortForward({kind})"), r, want(false)).await;
        let r =
            a.rt.container_stats(pb::ContainerStatsRequest { container_id: s() })
                .await;
        a.check(&format!("ContainerStats({kind})"), r, want(false)).await;
        let r =
            a.rt.pod_sandbox_stats(pb::PodSandboxStatsRequest { pod_sandbox_id: s() })
                .await;
        a.check(&format!("PodSandboxStats({kind})"), r, want(false)).await;
        let r =
            a.rt.checkpoint_container(pb::CheckpointContainerRequest {
                container_id: s(),
                location: "/tmp/../../etc/x".into(),
                timeout: -1,
            })
            .await;
        a.check(
            &format!("CheckpointContainer({kind})"),
            r,
            &[Code::Unimplemented, Inval, NotFound],
        )
        .await;
        let r =
            a.rt.update_pod_sandbox_resources(pb::UpdatePodSandboxResourcesRequest {
                pod_sandbox_id: s(),
                ..Default::default()
            })
            .await;
        a.check(&format!("UpdatePodSandboxResources({kind})"), r, want(false))
            .await;
        // CreateContainer into a pod that is not there.
        let r =
            a.rt.create_container(pb::CreateContainerRequest {
                pod_sandbox_id: s(),
                config: Some(pb::ContainerConfig {
                    metadata: Some(pb::ContainerMetadata {
                        name: "c".into(),
                        attempt: 0,
                    }),
                    image: img("busybox"),
                    log_path: "c.log".into(),
                    ..Default::default()
                }),
                sandbox_config: pod_config(|_| {}),
            })
            .await;
        a.check(&format!("CreateContainer({kind} pod)"), r, want(false)).await;
    }

    // Lists and streams with absurd filters: nothing matches, nothing breaks.
    let big_pod_filter = Some(pb::PodSandboxFilter {
        id: mib(),
        ..Default::default()
    });
    let r =
        a.rt.list_pod_sandbox(pb::ListPodSandboxRequest {
            filter: big_pod_filter.clone(),
        })
        .await;
    a.check("ListPodSandbox(1MiB id)", r, &[Fine, Inval]).await;
    let r =
        a.rt.stream_pod_sandboxes(pb::StreamPodSandboxesRequest { filter: big_pod_filter })
            .await;
    a.check("StreamPodSandboxes(1MiB id)", r, &[Fine, Inval]).await;
    let cfilter = Some(pb::ContainerFilter {
        id: mib(),
        pod_sandbox_id: "a\0b".into(),
        ..Default::default()
    });
    let r =
        a.rt.list_containers(pb::ListContainersRequest {
            filter: cfilter.clone(),
        })
        .await;
    a.check("ListContainers(garbage filter)", r, &[Fine, Inval]).await;
    let r =
        a.rt.stream_containers(pb::StreamContainersRequest { filter: cfilter })
            .await;
    a.check("StreamContainers(garbage filter)", r, &[Fine, Inval]).await;
    let sfilter = Some(pb::ContainerStatsFilter {
        id: mib(),
        ..Default::default()
    });
    let r =
        a.rt.list_container_stats(pb::ListContainerStatsRequest {
            filter: sfilter.clone(),
        })
        .await;
    a.check("ListContainerStats(1MiB id)", r, &[Fine, Inval]).await;
    let r =
        a.rt.stream_container_stats(pb::StreamContainerStatsRequest { filter: sfilter })
            .await;
    a.check("StreamContainerStats(1MiB id)", r, &[Fine, Inval]).await;
    let pfilter = Some(pb::PodSandboxStatsFilter {
        id: mib(),
        ..Default::default()
    });
    let r =
        a.rt.list_pod_sandbox_stats(pb::ListPodSandboxStatsRequest {
            filter: pfilter.clone(),
        })
        .await;
    a.check("ListPodSandboxStats(1MiB id)", r, &[Fine, Inval]).await;
    let r =
        a.rt.stream_pod_sandbox_stats(pb::StreamPodSandboxStatsRequest { filter: pfilter })
            .await;
    a.check("StreamPodSandboxStats(1MiB id)", r, &[Fine, Inval]).await;
    let r = a.rt.list_metric_descriptors(pb::ListMetricDescriptorsRequest {}).await;
    a.check("ListMetricDescriptors", r, &[Fine]).await;
    let r = a.rt.list_pod_sandbox_metrics(pb::ListPodSandboxMetricsRequest {}).await;
    a.check("ListPodSandboxMetrics", r, &[Fine]).await;
    let r =
        a.rt.stream_pod_sandbox_metrics(pb::StreamPodSandboxMetricsRequest {})
            .await;
    a.check("StreamPodSandboxMetrics", r, &[Fine]).await;
    let r = a.rt.get_container_events(pb::GetEventsRequest {}).await;
    a.check("GetContainerEvents", r, &[Fine]).await;
    let r = a.rt.status(pb::StatusRequest { verbose: true }).await;
    a.check("Status(verbose)", r, &[Fine]).await;
    let r = a.rt.runtime_config(pb::RuntimeConfigRequest {}).await;
    a.check("RuntimeConfig", r, &[Fine]).await;
    for cidr in [mib(), "not-a-cidr".into(), "10.0.0.0/99".into()] {
        let r =
            a.rt.update_runtime_config(pb::UpdateRuntimeConfigRequest {
                runtime_config: Some(pb::RuntimeConfig {
                    network_config: Some(pb::NetworkConfig { pod_cidr: cidr }),
                }),
            })
            .await;
        a.check("UpdateRuntimeConfig(bad pod cidr)", r, &[Inval]).await;
    }
    let r =
        a.rt.update_runtime_config(pb::UpdateRuntimeConfigRequest { runtime_config: None })
            .await;
    a.check("UpdateRuntimeConfig(none)", r, &[Fine]).await;

    // ImageService.
    let r =
        a.im.list_images(pb::ListImagesRequest {
            filter: Some(pb::ImageFilter { image: img(&mib()) }),
        })
        .await;
    a.check("ListImages(1MiB filter)", r, &[Fine, Inval]).await;
    let r =
        a.im.stream_images(pb::StreamImagesRequest {
            filter: Some(pb::ImageFilter { image: img("a\0b") }),
        })
        .await;
    a.check("StreamImages(nul filter)", r, &[Fine, Inval]).await;
    let r = a.im.image_fs_info(pb::ImageFsInfoRequest {}).await;
    a.check("ImageFsInfo", r, &[Fine]).await;
    let names = [
        ("none", None),
        ("empty", img("")),
        ("1MiB", img(&mib())),
        ("nul", img("busybox\0:1")),
        ("upper", img("Not/A:Name")),
        ("dotdot", img("../../etc/passwd")),
        ("bad digest", img("busybox@sha256:xyz")),
    ];
    for (what, spec) in names {
        let r =
            a.im.image_status(pb::ImageStatusRequest {
                image: spec.clone(),
                verbose: true,
            })
            .await;
        a.check(&format!("ImageStatus({what})"), r, &[Inval]).await;
        let r =
            a.im.pull_image(pb::PullImageRequest {
                image: spec.clone(),
                ..Default::default()
            })
            .await;
        a.check(&format!("PullImage({what})"), r, &[Inval]).await;
        let r = a.im.remove_image(pb::RemoveImageRequest { image: spec }).await;
        a.check(&format!("RemoveImage({what})"), r, &[Inval]).await;
    }
    let r =
        a.im.image_status(pb::ImageStatusRequest {
            image: img("never/pulled:1"),
            verbose: false,
        })
        .await;
    a.check("ImageStatus(unknown)", r, &[Fine]).await;
    let r =
        a.im.remove_image(pb::RemoveImageRequest {
            image: img("never/pulled:1"),
        })
        .await;
    a.check("RemoveImage(unknown)", r, &[Fine]).await;

    a.assert_all_expected();
    assert!(!berthd.log().contains("panicked"), "berthd panicked");
}
