//! The finer cgroup figures behind the cAdvisor-named metrics (throttling, user/system
//! time, kernel memory, swap, OOM kills, threads, open files and sockets, block I/O). Read
//! only for `ListPodSandboxMetrics`, never on the hot stats path. Anything the kernel does
//! not offer stays `None`.

use std::fs;
use std::path::{Path, PathBuf};

/// Bytes and operations one cgroup did on one block device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeviceIo {
    pub major: u64,
    pub minor: u64,
    pub read_bytes: u64,
    pub write_bytes: u64,
    pub reads: u64,
    pub writes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Detail {
    pub cfs_periods: Option<u64>,
    pub cfs_throttled_periods: Option<u64>,
    pub cfs_throttled_ns: Option<u64>,
    pub user_ns: Option<u64>,
    pub system_ns: Option<u64>,
    pub memory_failcnt: Option<u64>,
    pub memory_kernel: Option<u64>,
    pub memory_mapped_file: Option<u64>,
    pub memory_max_usage: Option<u64>,
    pub memory_swap: Option<u64>,
    pub oom_kills: Option<u64>,
    pub processes: Option<u64>,
    pub threads: Option<u64>,
    /// None: no limit.
    pub threads_max: Option<u64>,
    pub file_descriptors: Option<u64>,
    pub sockets: Option<u64>,
    pub io: Vec<DeviceIo>,
}

/// `key value` lines.
fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

fn read(dir: &Path, file: &str) -> Option<String> {
    fs::read_to_string(dir.join(file)).ok()
}

fn number(dir: &Path, file: &str) -> Option<u64> {
    read(dir, file)?.trim().parse().ok()
}

/// The first directory that has `file`.
fn with<'a>(dirs: &'a [PathBuf], file: &str) -> Option<&'a Path> {
    dirs.iter().map(PathBuf::as_path).find(|d| d.join(file).exists())
}

/// Clock ticks (USER_HZ, 100 on Linux) to nanoseconds.
const NS_PER_TICK: u64 = 10_000_000;

/// cgroup v1: the cgroup's directory in every hierarchy.
pub fn read_v1(dirs: &[PathBuf]) -> Detail {
    let mut d = Detail::default();
    if let Some(stat) = with(dirs, "cpu.stat").and_then(|p| read(p, "cpu.stat")) {
        d.cfs_periods = keyed(&stat, "nr_periods");
        d.cfs_throttled_periods = keyed(&stat, "nr_throttled");
        d.cfs_throttled_ns = keyed(&stat, "throttled_time");
    }
    if let Some(stat) = with(dirs, "cpuacct.stat").and_then(|p| read(p, "cpuacct.stat")) {
        d.user_ns = keyed(&stat, "user").map(|t| t * NS_PER_TICK);
        d.system_ns = keyed(&stat, "system").map(|t| t * NS_PER_TICK);
    }
    if let Some(mem) = with(dirs, "memory.usage_in_bytes") {
        d.memory_failcnt = number(mem, "memory.failcnt");
        d.memory_kernel = number(mem, "memory.kmem.usage_in_bytes");
        d.memory_max_usage = number(mem, "memory.max_usage_in_bytes");
        let stat = read(mem, "memory.stat").unwrap_or_default();
        d.memory_mapped_file = keyed(&stat, "total_mapped_file");
        d.memory_swap = match (
            number(mem, "memory.memsw.usage_in_bytes"),
            number(mem, "memory.usage_in_bytes"),
        ) {
            (Some(both), Some(ram)) => Some(both.saturating_sub(ram)),
            _ => Some(keyed(&stat, "total_swap").unwrap_or(0)),
        };
        d.oom_kills = read(mem, "memory.oom_control").and_then(|t| keyed(&t, "oom_kill"));
    }
    tasks(&mut d, dirs);
    if let Some(blk) = with(dirs, "blkio.throttle.io_service_bytes_recursive") {
        d.io = blkio_v1(
            &read(blk, "blkio.throttle.io_service_bytes_recursive").unwrap_or_default(),
            &read(blk, "blkio.throttle.io_serviced_recursive").unwrap_or_default(),
        );
    }
    d
}

/// cgroup v2: the cgroup's directory.
pub fn read_v2(dir: &Path) -> Detail {
    let mut d = Detail::default();
    if let Some(stat) = read(dir, "cpu.stat") {
        d.cfs_periods = keyed(&stat, "nr_periods");
        d.cfs_throttled_periods = keyed(&stat, "nr_throttled");
        d.cfs_throttled_ns = keyed(&stat, "throttled_usec").map(|u| u * 1000);
        d.user_ns = keyed(&stat, "user_usec").map(|u| u * 1000);
        d.system_ns = keyed(&stat, "system_usec").map(|u| u * 1000);
    }
    if let Some(stat) = read(dir, "memory.stat") {
        d.memory_kernel = keyed(&stat, "kernel").or_else(|| {
            ["slab", "kernel_stack", "pagetables", "sock", "vmalloc"]
                .iter()
                .map(|k| keyed(&stat, k))
                .sum()
        });
        d.memory_mapped_file = keyed(&stat, "file_mapped");
        let events = read(dir, "memory.events").unwrap_or_default();
        d.memory_failcnt = keyed(&events, "max");
        d.oom_kills = keyed(&events, "oom_kill");
        d.memory_max_usage = number(dir, "memory.peak").or_else(|| number(dir, "memory.current"));
        d.memory_swap = Some(number(dir, "memory.swap.current").unwrap_or(0));
    }
    tasks(&mut d, std::slice::from_ref(&dir.to_path_buf()));
    if let Some(stat) = read(dir, "io.stat") {
        d.io = io_stat_v2(&stat);
    }
    d
}

/// Processes, threads, the thread limit, open files and sockets of the cgroup's members.
fn tasks(d: &mut Detail, dirs: &[PathBuf]) {
    let Some(procs) = with(dirs, "cgroup.procs").and_then(|p| read(p, "cgroup.procs")) else {
        return;
    };
    let pids: Vec<&str> = procs.lines().filter(|l| !l.trim().is_empty()).collect();
    d.processes = Some(pids.len() as u64);
    d.threads = with(dirs, "pids.current")
        .and_then(|p| number(p, "pids.current"))
        .or_else(|| {
            with(dirs, "tasks")
                .and_then(|p| read(p, "tasks"))
                .map(|t| t.lines().count() as u64)
        });
    // "max" (no limit) is 0, as cAdvisor reports it.
    d.threads_max = with(dirs, "pids.max")
        .and_then(|p| read(p, "pids.max"))
        .map(|t| t.trim().parse().unwrap_or(0));
    let (mut fds, mut sockets) = (0, 0);
    for pid in pids {
        let Ok(entries) = fs::read_dir(format!("/proc/{}/fd", pid.trim())) else {
            continue;
        };
        for e in entries.flatten() {
            fds += 1;
            if fs::read_link(e.path()).is_ok_and(|t| t.to_string_lossy().starts_with("socket:")) {
                sockets += 1;
            }
        }
    }
    d.file_descriptors = Some(fds);
    d.sockets = Some(sockets);
}

fn device_entry(io: &mut Vec<DeviceIo>, dev: &str) -> Option<usize> {
    let (major, minor) = dev.split_once(':')?;
    let (major, minor) = (major.parse().ok()?, minor.parse().ok()?);
    if let Some(i) = io.iter().position(|d| d.major == major && d.minor == minor) {
        return Some(i);
    }
    io.push(DeviceIo {
        major,
        minor,
        ..Default::default()
    });
    Some(io.len() - 1)
}

/// v1 `blkio.throttle.io_service_bytes_recursive` and `..._io_serviced_recursive`:
/// lines `MAJ:MIN Read|Write|Sync|Async|Discard|Total N`.
fn blkio_v1(bytes: &str, ops: &str) -> Vec<DeviceIo> {
    let mut io = Vec::new();
    for (text, is_bytes) in [(bytes, true), (ops, false)] {
        for line in text.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            let [dev, op, n] = f[..] else { continue };
            let (Some(i), Ok(n)) = (device_entry(&mut io, dev), n.parse::<u64>()) else {
                continue;
            };
            match (op, is_bytes) {
                ("Read", true) => io[i].read_bytes = n,
                ("Write", true) => io[i].write_bytes = n,
                ("Read", false) => io[i].reads = n,
                ("Write", false) => io[i].writes = n,
                _ => {}
            }
        }
    }
    io
}

/// v2 `io.stat`: lines `MAJ:MIN rbytes=N wbytes=N rios=N wios=N ...`.
fn io_stat_v2(text: &str) -> Vec<DeviceIo> {
    let mut io = Vec::new();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let Some(i) = f.next().and_then(|dev| device_entry(&mut io, dev)) else {
            continue;
        };
        for kv in f {
            let Some((k, v)) = kv.split_once('=') else { continue };
            let Ok(v) = v.parse::<u64>() else { continue };
            match k {
                "rbytes" => io[i].read_bytes = v,
                "wbytes" => io[i].write_bytes = v,
                "rios" => io[i].reads = v,
                "wios" => io[i].writes = v,
                _ => {}
            }
        }
    }
    io
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::stats::testdir::TestDir;

    #[test]
    fn block_io_of_both_versions() {
        let v1 = blkio_v1(
            "8:0 Read 4096\n8:0 Write 8192\n8:0 Total 12288\nTotal 12288\n",
            "8:0 Read 1\n8:0 Write 2\n",
        );
        assert_eq!(
            v1,
            vec![DeviceIo {
                major: 8,
                minor: 0,
                read_bytes: 4096,
                write_bytes: 8192,
                reads: 1,
                writes: 2
            }]
        );
        let v2 = io_stat_v2("259:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n");
        assert_eq!((v2[0].major, v2[0].read_bytes, v2[0].writes), (259, 10, 2));
    }

    #[test]
    fn fake_v1_cgroup() {
        let t = TestDir::new();
        let cpu = t.sub("cpu");
        let cpuacct = t.sub("cpuacct");
        let mem = t.sub("memory");
        std::fs::write(
            cpu.join("cpu.stat"),
            "nr_periods 10\nnr_throttled 3\nthrottled_time 5000\n",
        )
        .unwrap();
        std::fs::write(cpuacct.join("cpuacct.stat"), "user 7\nsystem 2\n").unwrap();
        for (f, v) in [
            ("memory.usage_in_bytes", "1000\n"),
            ("memory.memsw.usage_in_bytes", "1500\n"),
            ("memory.failcnt", "4\n"),
            ("memory.max_usage_in_bytes", "2000\n"),
            ("memory.stat", "total_mapped_file 300\n"),
            ("memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n"),
            ("cgroup.procs", format!("{}\n", std::process::id()).as_str()),
        ] {
            std::fs::write(mem.join(f), v).unwrap();
        }
        let d = read_v1(&[cpu, cpuacct, mem]);
        assert_eq!(
            (d.cfs_periods, d.cfs_throttled_periods, d.cfs_throttled_ns),
            (Some(10), Some(3), Some(5000))
        );
        assert_eq!((d.user_ns, d.system_ns), (Some(70_000_000), Some(20_000_000)));
        assert_eq!(
            (d.memory_swap, d.memory_failcnt, d.oom_kills),
            (Some(500), Some(4), Some(1))
        );
        assert_eq!(d.memory_mapped_file, Some(300));
        assert_eq!(d.processes, Some(1));
        // This test process has stdin/stdout/stderr at least.
        assert!(d.file_descriptors.unwrap() >= 3);
    }
}
