//! Applying adjustments to an OCI spec.

use berth_proto::nri::{ContainerAdjustment, LinuxContainerAdjustment, LinuxDevice, LinuxResources};
use berth_proto::nri::{
    KeyValue, LinuxCpu, LinuxMemory, Mount, OptionalInt, OptionalInt64, OptionalString, OptionalUInt64, PosixRlimit,
};
use oci_spec::runtime::Spec;
use serde_json::json;

use super::super::adjust::*;

fn base() -> Spec {
    let mut spec: Spec = serde_json::from_value(json!({
        "ociVersion": "1.0.2",
        "process": {"cwd": "/", "user": {"uid": 0, "gid": 0}, "env": ["PATH=/bin", "DROP=1"], "args": ["sh"]},
        "mounts": [{"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}, {"destination": "/old", "source": "/x", "type": "bind"}],
        "annotations": {"keep": "1", "gone": "2"},
        "linux": {"resources": {"memory": {"limit": 100}}}
    }))
    .expect("spec");
    spec.set_hostname(Some("h".into()));
    spec
}

#[test]
fn removals_then_additions() {
    let mut spec = base();
    let adj = ContainerAdjustment {
        annotations: [
            ("-gone".to_string(), String::new()),
            ("new".to_string(), "v".to_string()),
        ]
        .into(),
        env: vec![
            KeyValue {
                key: "-DROP".into(),
                value: String::new(),
            },
            KeyValue {
                key: "PATH".into(),
                value: "/usr/bin".into(),
            },
        ],
        mounts: vec![
            Mount {
                destination: "-/old".into(),
                ..Default::default()
            },
            Mount {
                destination: "/a/b".into(),
                r#type: "bind".into(),
                source: "/s".into(),
                options: vec!["ro".into()],
            },
            Mount {
                destination: "/a".into(),
                r#type: "bind".into(),
                source: "/t".into(),
                options: vec![],
            },
        ],
        rlimits: vec![PosixRlimit {
            r#type: "RLIMIT_NOFILE".into(),
            hard: 10,
            soft: 5,
        }],
        args: vec!["sleep".into(), "1".into()],
        linux: Some(LinuxContainerAdjustment {
            oom_score_adj: Some(OptionalInt { value: 500 }),
            devices: vec![LinuxDevice {
                path: "/dev/fuse".into(),
                r#type: "c".into(),
                major: 10,
                minor: 229,
                ..Default::default()
            }],
            ..Default::default()
        }),
        cdi_devices: vec![berth_proto::nri::CdiDevice {
            name: "vendor.com/gpu=0".into(),
        }],
        ..Default::default()
    };
    let applied = apply_adjustment(&mut spec, &adj).expect("apply");
    assert_eq!(applied.cdi_devices, ["vendor.com/gpu=0"]);
    let v = serde_json::to_value(&spec).expect("json");
    assert_eq!(v["annotations"], json!({"keep": "1", "new": "v"}));
    assert_eq!(v["process"]["env"], json!(["PATH=/usr/bin"]));
    assert_eq!(v["process"]["args"], json!(["sleep", "1"]));
    assert_eq!(v["process"]["oomScoreAdj"], json!(500));
    assert_eq!(v["process"]["rlimits"][0]["type"], json!("RLIMIT_NOFILE"));
    let dests: Vec<&str> = v["mounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .filter_map(|m| m["destination"].as_str())
        .collect();
    assert_eq!(dests, ["/tmp", "/a", "/a/b"]);
    assert_eq!(v["linux"]["devices"][0]["path"], json!("/dev/fuse"));
    assert_eq!(v["linux"]["resources"]["devices"][0]["access"], json!("rwm"));
    assert_eq!(v["linux"]["resources"]["memory"]["limit"], json!(100), "untouched");
    assert_eq!(v["hostname"], json!("h"));
}

#[test]
fn resources_replace_only_what_is_set() {
    let mut r: oci_spec::runtime::LinuxResources =
        serde_json::from_value(json!({"memory": {"limit": 100, "swap": 200}, "cpu": {"shares": 2}})).expect("res");
    let nri = LinuxResources {
        memory: Some(LinuxMemory {
            limit: Some(OptionalInt64 { value: 300 }),
            ..Default::default()
        }),
        cpu: Some(LinuxCpu {
            shares: Some(OptionalUInt64 { value: 1024 }),
            cpus: "0-1".into(),
            ..Default::default()
        }),
        blockio_class: Some(OptionalString { value: "slow".into() }),
        unified: [("memory.high".to_string(), "1M".to_string())].into(),
        ..Default::default()
    };
    assert_eq!(apply_resources(&mut r, &nri).expect("apply"), Some("slow".into()));
    let v = serde_json::to_value(&r).expect("json");
    assert_eq!(v["memory"], json!({"limit": 300, "swap": 200}));
    assert_eq!(v["cpu"], json!({"shares": 1024, "cpus": "0-1"}));
    assert_eq!(v["unified"], json!({"memory.high": "1M"}));
}

#[test]
fn a_bad_value_leaves_the_spec_alone() {
    let mut spec = base();
    let before = spec.clone();
    let adj = ContainerAdjustment {
        rlimits: vec![PosixRlimit {
            r#type: "RLIMIT_BOGUS".into(),
            hard: 1,
            soft: 1,
        }],
        ..Default::default()
    };
    assert!(apply_adjustment(&mut spec, &adj).is_err());
    assert_eq!(spec, before);
}

#[test]
fn hooks_namespaces_sysctl_and_rdt() {
    use berth_proto::nri::{Hook, Hooks, LinuxNamespace, LinuxRdt, OptionalBool};
    let mut spec = base();
    let adj = ContainerAdjustment {
        hooks: Some(Hooks {
            prestart: vec![Hook {
                path: "/bin/true".into(),
                args: vec!["true".into()],
                timeout: Some(OptionalInt { value: 5 }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        linux: Some(LinuxContainerAdjustment {
            namespaces: vec![LinuxNamespace {
                r#type: "network".into(),
                path: "/var/run/netns/x".into(),
            }],
            sysctl: [("net.core.somaxconn".to_string(), "1024".to_string())].into(),
            rdt: Some(LinuxRdt {
                clos_id: Some(OptionalString { value: "gold".into() }),
                enable_monitoring: Some(OptionalBool { value: true }),
                ..Default::default()
            }),
            io_priority: Some(Default::default()),
            ..Default::default()
        }),
        ..Default::default()
    };
    apply_adjustment(&mut spec, &adj).expect("apply");
    let v = serde_json::to_value(&spec).expect("json");
    assert_eq!(
        v["hooks"]["prestart"][0],
        json!({"path": "/bin/true", "args": ["true"], "timeout": 5})
    );
    assert_eq!(
        v["linux"]["namespaces"],
        json!([{"type": "network", "path": "/var/run/netns/x"}])
    );
    assert_eq!(v["linux"]["sysctl"]["net.core.somaxconn"], json!("1024"));
    assert_eq!(v["linux"]["intelRdt"]["closID"], json!("gold"));
    assert!(v["process"].get("ioPriority").is_none(), "class NONE sets nothing");
}
