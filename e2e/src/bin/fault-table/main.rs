//! `fault-table`: the faults of the suite's fault tests, run against one CRI runtime (Berth,
//! or Debian's containerd in its place: `E2E_RUNTIME=containerd`) through the same code, and
//! reported rather than asserted: one JSON line per fault with what the runtime answered
//! and what it left on the host. `e2e/faults-vs-containerd.sh` runs it for both runtimes
//! and prints the README's table; the suite's own tests assert Berth's column.
//!
//! `fault-table [pulls] [disk] [imagegc] [chaos]` (all when none is named); `CHAOS_SECS`/`CHAOS_PODS`
//! as in `tests/kubelet_chaos.rs`.

mod disk;
mod pulls;

use berth_e2e::containerd::Runtime;
use serde_json::json;

/// One fault's row.
pub struct Row {
    pub fault: &'static str,
    /// What the runtime did, in a few words.
    pub outcome: String,
    /// What stayed behind that should not have.
    pub left: Vec<String>,
}

impl Row {
    pub fn new(fault: &'static str, outcome: impl Into<String>, left: Vec<String>) -> Row {
        Row {
            fault,
            outcome: outcome.into(),
            left,
        }
    }

    fn print(&self, runtime: Runtime) {
        let line = json!({"runtime": runtime.name(), "fault": self.fault, "outcome": self.outcome, "left": self.left});
        println!("{line}");
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

async fn chaos() -> Row {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    let (pods, secs) = (env_or("CHAOS_PODS", 5), env_or("CHAOS_SECS", 75));
    let (r, _env, _kubelet) = berth_e2e::chaos::run(env_or("CHAOS_SEED", seed), pods, secs).await;
    let mut outcome = format!(
        "{pods} pods, {secs} s: {} daemon kills, {} shim kills, {} pods replaced; ",
        r.daemon_kills, r.shim_kills, r.churns
    );
    match (r.converged_after, &r.not_converged) {
        (Some(s), _) => outcome.push_str(&format!("converged {s:.0} s after the faults")),
        (None, why) => outcome.push_str(&format!("not converged in 180 s: {}", why.as_deref().unwrap_or("?"))),
    }
    let mut left = r.leftovers;
    left.extend(r.not_removed.into_iter().map(|o| format!("still listed: {o}")));
    Row::new(
        "runtime SIGKILL, CNI ADD failures, shim kills under kubelet",
        outcome,
        left,
    )
}

async fn image_gc() -> Row {
    let (r, _env, _kubelet) = berth_e2e::image_gc::run().await;
    let mib = |b: u64| b as f64 / f64::from(1 << 20);
    let mut outcome = match r.removed_after {
        Some(s) => format!("kubelet removed the unused image after {s:.0} s"),
        None => "the unused image stayed for 7 minutes".to_string(),
    };
    outcome.push_str(&format!(
        "; ImageFsInfo {:.1} MiB before, {:.1} MiB after",
        mib(r.fs_before),
        mib(r.fs_after)
    ));
    let mut left = Vec::new();
    if !r.kept_pod_image {
        left.push("the running pod's image was removed".to_string());
    }
    if !r.pod_running {
        left.push("the pod's container is not running".to_string());
    }
    if !r.pod_removed {
        left.push("the pod's sandbox was not removed".to_string());
    }
    Row::new(
        "the image filesystem is over kubelet's image GC threshold",
        outcome,
        left,
    )
}

#[tokio::main]
async fn main() {
    berth_e2e::require_root();
    let runtime = Runtime::from_env();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let wants = |group: &str| args.is_empty() || args.iter().any(|a| a == group);
    if wants("pulls") {
        pulls::all(|row| row.print(runtime)).await;
    }
    if wants("disk") {
        disk::full_during_pull().await.print(runtime);
        disk::fill().await.print(runtime);
    }
    if wants("imagegc") {
        image_gc().await.print(runtime);
    }
    if wants("chaos") {
        chaos().await.print(runtime);
    }
}
