//! Memory of the processes a runtime keeps per pod, read from /proc: the daemon, its
//! per-container (Berth) or per-pod (containerd) shims, a sandboxing runtime's own processes
//! (gVisor's) and each pod's infra process (`berth-pause`, a child of berthd; containerd's
//! `pause`, a child of its shim).

use std::collections::HashSet;

#[derive(Debug, Clone)]
pub struct Proc {
    pub pid: u32,
    pub ppid: u32,
    pub comm: String,
    pub cmdline: String,
}

/// Every process visible in /proc (those that vanish while being read are skipped).
pub fn all() -> Vec<Proc> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(read)
        .collect()
}

fn read(pid: u32) -> Option<Proc> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm is in parentheses and may hold spaces; the fields after the last ')' are fixed.
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat[open + 1..close].to_string();
    let ppid = stat[close + 2..].split_whitespace().nth(1)?.parse().ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    Some(Proc {
        pid,
        ppid,
        comm,
        cmdline,
    })
}

/// Rss and Pss of one process in KiB, from smaps_rollup (0 when it is gone).
pub fn mem_kb(pid: u32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("Rss:"), field("Pss:"))
}

/// The runtime's shims: `berth-shim` or `containerd-shim*` processes whose command line
/// names `marker` (the runtime's state dir or socket, so another runtime's are not counted).
pub fn shims(procs: &[Proc], marker: &str) -> Vec<u32> {
    procs
        .iter()
        .filter(|p| p.comm.starts_with("berth-shim") || p.comm.starts_with("containerd-shim"))
        .filter(|p| p.cmdline.contains(marker))
        .map(|p| p.pid)
        .collect()
}

/// A sandboxing runtime's own processes (gVisor: `runsc-sandbox`, `runsc-gofer`, the
/// `runsc wait` a shim keeps per container) whose command line names `marker`.
pub fn sandboxes(procs: &[Proc], marker: &str) -> Vec<u32> {
    procs
        .iter()
        .filter(|p| {
            let program = p.cmdline.split(' ').next().unwrap_or("");
            program.rsplit('/').next().is_some_and(|name| name.starts_with("runsc"))
        })
        .filter(|p| p.cmdline.contains(marker))
        .map(|p| p.pid)
        .collect()
}

/// Each pod's infra process: `berth-pause` children of the daemon, or `pause` children of
/// the shims.
pub fn infra(procs: &[Proc], daemon: u32, shims: &[u32]) -> Vec<u32> {
    let shims: HashSet<u32> = shims.iter().copied().collect();
    procs
        .iter()
        .filter(|p| (p.comm == "berth-pause" && p.ppid == daemon) || (p.comm == "pause" && shims.contains(&p.ppid)))
        .map(|p| p.pid)
        .collect()
}

/// Sum of Rss and Pss over `pids`, as JSON with the count and the per-process mean (KiB).
pub fn summary(pids: &[u32]) -> serde_json::Value {
    let (rss, pss) = pids.iter().fold((0, 0), |(r, p), pid| {
        let (r2, p2) = mem_kb(*pid);
        (r + r2, p + p2)
    });
    let n = pids.len().max(1) as f64;
    serde_json::json!({
        "count": pids.len(),
        "rss_kb": rss,
        "pss_kb": pss,
        "rss_kb_each": rss as f64 / n,
        "pss_kb_each": pss as f64 / n,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let me = read(std::process::id()).unwrap();
        assert_eq!(me.ppid, std::os::unix::process::parent_id());
        let (rss, pss) = mem_kb(std::process::id());
        assert!(rss > 0 && pss > 0 && pss <= rss, "rss {rss} pss {pss}");
    }

    #[test]
    fn shims_and_infra_are_matched_by_marker_and_parent() {
        let p = |pid, ppid, comm: &str, cmdline: &str| Proc {
            pid,
            ppid,
            comm: comm.into(),
            cmdline: cmdline.into(),
        };
        let procs = vec![
            p(10, 1, "berthd", "berthd --state /w/berth/state"),
            p(11, 1, "berth-shim", "berth-shim start --bundle /w/berth/state/c/1"),
            p(12, 1, "berth-shim", "berth-shim start --bundle /other/state/c/2"),
            p(13, 10, "berth-pause", "berth-pause --netns x"),
            p(14, 99, "berth-pause", "berth-pause"),
            p(
                20,
                1,
                "containerd-shim",
                "containerd-shim-runc-v2 -address /w/ctrd/c.sock",
            ),
            p(21, 20, "pause", "/pause"),
            p(22, 20, "sleep", "sleep 3600"),
        ];
        assert_eq!(shims(&procs, "/w/berth/"), vec![11]);
        assert_eq!(infra(&procs, 10, &[11]), vec![13]);
        assert_eq!(shims(&procs, "/w/ctrd/"), vec![20]);
        assert_eq!(infra(&procs, 5, &[20]), vec![21]);
        assert_eq!(summary(&[]).get("count").unwrap(), 0);
        let gvisor = vec![
            p(30, 1, "exe", "runsc-sandbox --root=/w/berth/state/runtimes/runsc boot"),
            p(31, 1, "exe", "runsc-gofer --root=/w/berth/state/runtimes/runsc gofer"),
            p(
                32,
                11,
                "runsc",
                "/usr/bin/runsc --root /w/berth/state/runtimes/runsc wait c1",
            ),
            p(33, 1, "exe", "runsc-sandbox --root=/other/state/runtimes/runsc boot"),
            p(
                34,
                1,
                "berth-shim",
                "berth-shim serve --runtime /usr/bin/runsc --bundle /w/berth/state/c",
            ),
        ];
        assert_eq!(sandboxes(&gvisor, "/w/berth/"), vec![30, 31, 32]);
    }
}
