//! `stats` (CRI container stats) and `top` (the container's processes, read from its
//! cgroup and /proc on this host).

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context as _};
use berth_proto as pb;
use serde_json::json;

use crate::output::{emit, human_size, print_table, short_id, Format};
use crate::runspec::parse_labels;
use crate::{containers, explain, json as js, resolve, Ctx};

#[derive(Debug, clap::Args)]
pub struct StatsArgs {
    /// Containers (id, id prefix or name); all running ones when left out.
    containers: Vec<String>,
    /// Only containers of this pod (id, id prefix or name).
    #[arg(short, long)]
    pod: Option<String>,
    /// Only containers with this label (KEY=VALUE; repeatable).
    #[arg(long = "label")]
    labels: Vec<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "table")]
    output: Format,
}

#[derive(Debug, clap::Args)]
pub struct TopArgs {
    /// The container (id, id prefix or name).
    container: String,
}

async fn list_stats(ctx: &mut Ctx, filter: &pb::ContainerStatsFilter) -> anyhow::Result<Vec<pb::ContainerStats>> {
    Ok(ctx
        .rt
        .list_container_stats(ctx.req(pb::ListContainerStatsRequest {
            filter: Some(filter.clone()),
        }))
        .await
        .map_err(explain)?
        .into_inner()
        .stats)
}

fn stat_id(s: &pb::ContainerStats) -> String {
    s.attributes.as_ref().map(|a| a.id.clone()).unwrap_or_default()
}

fn cpu_total(s: &pb::ContainerStats) -> Option<(i64, u64)> {
    let c = s.cpu.as_ref()?;
    Some((c.timestamp, c.usage_core_nano_seconds.as_ref()?.value))
}

pub async fn stats(ctx: &mut Ctx, a: StatsArgs) -> anyhow::Result<i32> {
    let pod = match &a.pod {
        Some(q) => resolve::pod(ctx, q).await?.id,
        None => String::new(),
    };
    let mut ids = Vec::new();
    for q in &a.containers {
        ids.push(resolve::container(ctx, q).await?.id);
    }
    let filter = pb::ContainerStatsFilter {
        id: if ids.len() == 1 { ids[0].clone() } else { String::new() },
        pod_sandbox_id: pod,
        label_selector: parse_labels(&a.labels)?,
    };
    let mut list = list_stats(ctx, &filter).await?;
    if !ids.is_empty() {
        list.retain(|s| ids.contains(&stat_id(s)));
    }
    if a.output != Format::Table {
        emit(
            &json!({"stats": list.iter().map(js::container_stats).collect::<Vec<_>>()}),
            a.output,
        )?;
        return Ok(0);
    }
    // CPU % from usageNanoCores, or from two samples a second apart when berthd leaves it out.
    let mut cpu: HashMap<String, f64> = list
        .iter()
        .filter_map(|s| {
            Some((
                stat_id(s),
                s.cpu.as_ref()?.usage_nano_cores.as_ref()?.value as f64 / 1e7,
            ))
        })
        .collect();
    if cpu.len() < list.len() {
        tokio::time::sleep(Duration::from_secs(1)).await;
        for s in list_stats(ctx, &filter).await? {
            let id = stat_id(&s);
            let before = list.iter().find(|b| stat_id(b) == id).and_then(cpu_total);
            if let (Some((t0, u0)), Some((t1, u1))) = (before, cpu_total(&s)) {
                if t1 > t0 {
                    cpu.entry(id)
                        .or_insert(u1.saturating_sub(u0) as f64 * 100.0 / (t1 - t0) as f64);
                }
            }
        }
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|s| {
            let id = stat_id(s);
            let name = s
                .attributes
                .as_ref()
                .and_then(|a| a.metadata.as_ref())
                .map(|m| m.name.clone())
                .unwrap_or_default();
            let mem = s
                .memory
                .as_ref()
                .and_then(|m| m.working_set_bytes.as_ref())
                .map(|m| human_size(m.value))
                .unwrap_or_else(|| "-".into());
            let fs = s.writable_layer.as_ref();
            let disk = fs
                .and_then(|f| f.used_bytes.as_ref())
                .map(|b| human_size(b.value))
                .unwrap_or_else(|| "-".into());
            let inodes = fs
                .and_then(|f| f.inodes_used.as_ref())
                .map(|b| b.value.to_string())
                .unwrap_or_else(|| "-".into());
            let cpu = cpu.get(&id).map(|c| format!("{c:.2}")).unwrap_or_else(|| "-".into());
            vec![short_id(&id, false), name, cpu, mem, disk, inodes]
        })
        .collect();
    print_table(&["CONTAINER", "NAME", "CPU %", "MEM", "DISK", "INODES"], &rows);
    Ok(0)
}

/// Where a process's `cgroup.procs` may be, from its `/proc/PID/cgroup` text: the cgroup v2
/// path (under /sys/fs/cgroup, or /sys/fs/cgroup/unified on hybrid hosts) first, then each
/// v1 controller's.
pub fn procs_candidates(cgroup_text: &str) -> Vec<std::path::PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    let mut v2 = Vec::new();
    let mut v1 = Vec::new();
    for line in cgroup_text.lines() {
        let mut f = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let rel = path.trim_start_matches('/');
        if controllers.is_empty() {
            v2.push(root.join(rel).join("cgroup.procs"));
            v2.push(root.join("unified").join(rel).join("cgroup.procs"));
        } else {
            for c in controllers.split(',') {
                v1.push(root.join(c.trim_start_matches("name=")).join(rel).join("cgroup.procs"));
            }
        }
    }
    v2.extend(v1);
    v2
}

/// The processes in the cgroup of the container whose main process is `pid`.
fn cgroup_pids(pid: u32) -> anyhow::Result<Vec<u32>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .with_context(|| format!("reading /proc/{pid}/cgroup (is berthd on this host?)"))?;
    let candidates = procs_candidates(&text);
    let list = candidates
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .with_context(|| format!("no cgroup.procs found for process {pid} (tried {candidates:?})"))?;
    let mut pids: Vec<u32> = list.lines().filter_map(|l| l.trim().parse().ok()).collect();
    pids.sort_unstable();
    Ok(pids)
}

fn user_names() -> HashMap<u32, String> {
    std::fs::read_to_string("/etc/passwd")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            Some((f.nth(1)?.parse().ok()?, name.to_string()))
        })
        .collect()
}

/// One `top` row: PID, USER, TIME, CMD. `None` when the process is gone.
pub fn proc_row(pid: u32, users: &HashMap<u32, String>) -> Option<Vec<String>> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let uid: u32 = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command: state is field 3, utime 14, stime 15.
    let after = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    let secs = ticks / 100;
    let time = format!("{:02}:{:02}:{:02}", secs / 3600, (secs / 60) % 60, secs % 60);
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let cmd = if cmdline.is_empty() {
        format!("[{}]", &stat[stat.find('(')? + 1..stat.rfind(')')?])
    } else {
        String::from_utf8_lossy(&cmdline)
            .trim_end_matches('\0')
            .replace('\0', " ")
    };
    let user = users.get(&uid).cloned().unwrap_or_else(|| uid.to_string());
    Some(vec![pid.to_string(), user, time, cmd])
}

pub async fn top(ctx: &mut Ctx, a: TopArgs) -> anyhow::Result<i32> {
    let c = resolve::container(ctx, &a.container).await?;
    let r = containers::status(ctx, &c.id, true).await?;
    let info = js::info(&r.info);
    let pid = info.get("pid").and_then(|p| p.as_u64()).unwrap_or(0) as u32;
    if c.state != pb::ContainerState::ContainerRunning as i32 || pid == 0 {
        bail!("container {} is not running", a.container);
    }
    let users = user_names();
    let rows: Vec<Vec<String>> = cgroup_pids(pid)?
        .into_iter()
        .filter_map(|p| proc_row(p, &users))
        .collect();
    print_table(&["PID", "USER", "TIME", "CMD"], &rows);
    Ok(0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn own_process_row() {
        let users = HashMap::from([(rustix::process::getuid().as_raw(), "me".to_string())]);
        let row = proc_row(std::process::id(), &users).unwrap();
        assert_eq!(row[0], std::process::id().to_string());
        assert_eq!(row[1], "me");
        assert!(row[2].len() == 8 && row[2].contains(':'), "{row:?}");
        assert!(row[3].contains("berthctl"), "{row:?}");
        assert!(proc_row(u32::MAX, &users).is_none());
        let c = procs_candidates("0::/berth/x\n4:memory,name=foo:/m\n");
        let want: Vec<std::path::PathBuf> = [
            "/sys/fs/cgroup/berth/x",
            "/sys/fs/cgroup/unified/berth/x",
            "/sys/fs/cgroup/memory/m",
            "/sys/fs/cgroup/foo/m",
        ]
        .iter()
        .map(|p| Path::new(p).join("cgroup.procs"))
        .collect();
        assert_eq!(c, want);
    }
}
