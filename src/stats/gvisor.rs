//! Figures of containers in a gVisor sandbox. Their processes run inside the Sentry, whose
//! memory and CPU are charged to the pod's cgroup as a whole, so a container's own cgroup
//! reads nothing; runsc reports each container from inside the sandbox instead
//! (`runsc events --stats ID`, one JSON line).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use berth_shim::oci::OciRuntime;

use super::cgroupfs::{CgroupStats, Memory};
use crate::runtime::features::stdout_within;
use crate::runtime::handler::{runtime_root, HandlerKind, Runtime};

/// How long one `runsc events --stats` may take before the container reads as unknown.
const TIMEOUT: Duration = Duration::from_secs(5);

/// The gVisor runtime handlers by name, and how to ask their runsc.
#[derive(Debug, Default)]
pub struct Runsc(BTreeMap<String, OciRuntime>);

impl Runsc {
    /// The handlers of kind `gvisor` among `runtimes`, with their state roots under `state_dir`.
    pub fn for_handlers(runtimes: &BTreeMap<String, Runtime>, state_dir: &Path) -> Runsc {
        Runsc(
            runtimes
                .iter()
                .filter(|(_, r)| r.kind == HandlerKind::Gvisor)
                .map(|(name, r)| {
                    let rt = OciRuntime {
                        bin: r.binary.clone(),
                        root: runtime_root(state_dir, name),
                        systemd_cgroup: false,
                        log: "/dev/null".into(),
                        args: r.args.clone(),
                    };
                    (name.clone(), rt)
                })
                .collect(),
        )
    }

    /// Whether containers of `handler` run in a gVisor sandbox.
    pub fn handles(&self, handler: &str) -> bool {
        self.0.contains_key(handler)
    }

    /// Container `id`'s figures from its sandbox; None when runsc does not answer in time or
    /// does not know it (blocking: called off the async threads).
    pub fn read(&self, handler: &str, id: &str) -> Option<CgroupStats> {
        let mut cmd = self.0.get(handler)?.command();
        cmd.args(["events", "--stats", id]);
        parse(&stdout_within(cmd, TIMEOUT)?)
    }
}

/// Reads runsc's stats event: CPU time, memory in use (gVisor counts no reclaimable page
/// cache in it, so it is the working set), its limit, processes.
pub fn parse(json: &[u8]) -> Option<CgroupStats> {
    let line = json.split(|b| *b == b'\n').find(|l| !l.is_empty())?;
    let v: serde_json::Value = serde_json::from_slice(line).ok()?;
    let data = v.get("data").filter(|_| v["type"] == "stats")?;
    let memory = data["memory"]["usage"]["usage"].as_u64().map(|usage| {
        let limit = data["memory"]["usage"]["limit"]
            .as_u64()
            .filter(|l| *l > 0 && *l < 1 << 62);
        Memory {
            usage_bytes: usage,
            working_set_bytes: usage,
            limit_bytes: limit,
            available_bytes: limit.map(|l| l.saturating_sub(usage)),
            ..Memory::default()
        }
    });
    Some(CgroupStats {
        cpu_usage_ns: data["cpu"]["usage"]["total"].as_u64(),
        memory,
        pids: data["pids"]["current"].as_u64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_stats_event() {
        let line = br#"{"type":"stats","id":"c1","data":{"cpu":{"usage":{"total":168354042}},"memory":{"usage":{"limit":0,"usage":2027520,"failcnt":0},"swap":{"limit":0,"failcnt":0}},"pids":{"current":1}}}
"#;
        let s = parse(line).expect("parsed");
        assert_eq!(s.cpu_usage_ns, Some(168_354_042));
        assert_eq!(s.pids, Some(1));
        let m = s.memory.expect("memory");
        assert_eq!(
            (m.usage_bytes, m.working_set_bytes, m.limit_bytes),
            (2_027_520, 2_027_520, None)
        );
        let limited = br#"{"type":"stats","data":{"memory":{"usage":{"limit":4194304,"usage":1048576}}}}"#;
        let m = parse(limited).and_then(|s| s.memory).expect("memory");
        assert_eq!((m.limit_bytes, m.available_bytes), (Some(4_194_304), Some(3_145_728)));
        assert_eq!(parse(br#"{"type":"oom","id":"c1"}"#), None);
        assert_eq!(parse(b"not json"), None);
        assert_eq!(parse(b""), None);
    }

    #[test]
    fn only_gvisor_handlers_are_asked() {
        let rt = |kind| Runtime {
            binary: "/usr/bin/runsc".into(),
            args: vec!["--platform=ptrace".into()],
            kind,
            features_from: None,
        };
        let runtimes = [
            ("runsc".to_string(), rt(HandlerKind::Gvisor)),
            ("runc".to_string(), rt(HandlerKind::Oci)),
        ]
        .into();
        let r = Runsc::for_handlers(&runtimes, Path::new("/run/berth"));
        assert!(r.handles("runsc") && !r.handles("runc") && !r.handles(""));
        let args: Vec<String> = r.0["runsc"]
            .command()
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(args.contains(&"/run/berth/runtimes/runsc".to_string()), "{args:?}");
        assert!(args.contains(&"--platform=ptrace".to_string()), "{args:?}");
        assert_eq!(r.read("runc", "c1"), None);
    }
}
