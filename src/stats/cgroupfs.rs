//! Reads one cgroup's CPU, memory and pids figures from cgroupfs, v1 or v2.
//! Missing controller files leave their figure `None`; malformed files are `InvalidData` errors.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Limits at or above this value mean "unlimited" in cgroup v1 (the kernel reports 9223372036854771712).
const V1_UNLIMITED: u64 = 1 << 62;

/// Memory figures of one cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Memory {
    /// v1 `memory.usage_in_bytes`; v2 `memory.current`.
    pub usage_bytes: u64,
    /// Usage minus inactive file pages, saturating at 0 (kubelet's definition).
    pub working_set_bytes: u64,
    /// v1 `total_rss`; v2 `anon`.
    pub rss_bytes: u64,
    /// v1 `total_cache`; v2 `file`.
    pub cache_bytes: u64,
    /// v1 `total_pgfault`; v2 `pgfault`.
    pub page_faults: u64,
    /// v1 `total_pgmajfault`; v2 `pgmajfault`.
    pub major_page_faults: u64,
    /// v1 `memory.limit_in_bytes` (None when unlimited); v2 `memory.max` (None for "max").
    pub limit_bytes: Option<u64>,
    /// Limit minus working set (saturating) when there is a limit.
    pub available_bytes: Option<u64>,
}

/// CPU, memory and pids figures of one cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CgroupStats {
    /// Cumulative CPU time in nanoseconds.
    pub cpu_usage_ns: Option<u64>,
    pub memory: Option<Memory>,
    /// Number of processes (pids.current, or the lines of cgroup.procs when that is absent).
    pub pids: Option<u64>,
}

/// The key names of memory.stat that differ between v1 and v2.
struct StatKeys {
    inactive_file: &'static str,
    rss: &'static str,
    cache: &'static str,
    pgfault: &'static str,
    pgmajfault: &'static str,
}

const V1_KEYS: StatKeys = StatKeys {
    inactive_file: "total_inactive_file",
    rss: "total_rss",
    cache: "total_cache",
    pgfault: "total_pgfault",
    pgmajfault: "total_pgmajfault",
};

const V2_KEYS: StatKeys = StatKeys {
    inactive_file: "inactive_file",
    rss: "anon",
    cache: "file",
    pgfault: "pgfault",
    pgmajfault: "pgmajfault",
};

/// cgroup v2: `dir` is the cgroup's directory in the unified tree.
pub fn read_v2(dir: &Path) -> io::Result<CgroupStats> {
    ensure_dir(dir)?;
    Ok(CgroupStats {
        cpu_usage_ns: read_v2_cpu(dir)?,
        memory: read_v2_memory(dir)?,
        pids: read_pids(&[dir.to_path_buf()])?,
    })
}

/// cgroup v1: `dirs` are the cgroup's directory in every mounted v1 hierarchy. Each figure is read from the
/// first dir that has the file (found by presence, not by the mount's name). Dirs that do not exist are skipped.
pub fn read_v1(dirs: &[PathBuf]) -> io::Result<CgroupStats> {
    let dirs: Vec<PathBuf> = dirs.iter().filter(|d| d.is_dir()).cloned().collect();
    if dirs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            "cgroup does not exist in any v1 hierarchy",
        ));
    }
    Ok(CgroupStats {
        cpu_usage_ns: read_v1_cpu(&dirs)?,
        memory: read_v1_memory(&dirs)?,
        pids: read_pids(&dirs)?,
    })
}

fn ensure_dir(dir: &Path) -> io::Result<()> {
    let meta = fs::metadata(dir)?;
    if meta.is_dir() {
        return Ok(());
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: not a cgroup directory", dir.display()),
    ))
}

fn read_v1_cpu(dirs: &[PathBuf]) -> io::Result<Option<u64>> {
    match first_with(dirs, "cpuacct.usage") {
        Some(path) => read_u64_file(&path),
        None => Ok(None),
    }
}

fn read_v2_cpu(dir: &Path) -> io::Result<Option<u64>> {
    let path = dir.join("cpu.stat");
    let Some(text) = read_optional(&path)? else {
        return Ok(None);
    };
    let stat = FlatKeyed::parse(&text);
    let usec = stat.get("usage_usec").map_err(|e| invalid(&path, &e))?;
    Ok(usec.map(|u| u.saturating_mul(1000)))
}

fn read_v1_memory(dirs: &[PathBuf]) -> io::Result<Option<Memory>> {
    let Some(usage_path) = first_with(dirs, "memory.usage_in_bytes") else {
        return Ok(None);
    };
    let Some(usage) = read_u64_file(&usage_path)? else {
        return Ok(None);
    };
    let dir = usage_path.parent().unwrap_or(Path::new("/"));
    let limit = read_u64_file(&dir.join("memory.limit_in_bytes"))?.filter(|&l| l < V1_UNLIMITED);
    let stat = read_memory_stat(&dir.join("memory.stat"), &V1_KEYS)?;
    Ok(Some(build_memory(usage, limit, &stat)))
}

fn read_v2_memory(dir: &Path) -> io::Result<Option<Memory>> {
    let Some(usage) = read_u64_file(&dir.join("memory.current"))? else {
        return Ok(None);
    };
    let limit = read_v2_max(&dir.join("memory.max"))?;
    let stat = read_memory_stat(&dir.join("memory.stat"), &V2_KEYS)?;
    Ok(Some(build_memory(usage, limit, &stat)))
}

/// The memory.stat figures this module uses, with missing keys as 0.
#[derive(Debug, Default, PartialEq, Eq)]
struct MemoryStat {
    inactive_file: u64,
    rss: u64,
    cache: u64,
    pgfault: u64,
    pgmajfault: u64,
}

fn read_memory_stat(path: &Path, keys: &StatKeys) -> io::Result<MemoryStat> {
    match read_optional(path)? {
        Some(text) => parse_memory_stat(&text, keys).map_err(|e| invalid(path, &e)),
        None => Ok(MemoryStat::default()),
    }
}

fn parse_memory_stat(text: &str, keys: &StatKeys) -> Result<MemoryStat, String> {
    let stat = FlatKeyed::parse(text);
    let get = |key: &str| stat.get(key).map(|v| v.unwrap_or(0));
    Ok(MemoryStat {
        inactive_file: get(keys.inactive_file)?,
        rss: get(keys.rss)?,
        cache: get(keys.cache)?,
        pgfault: get(keys.pgfault)?,
        pgmajfault: get(keys.pgmajfault)?,
    })
}

fn build_memory(usage: u64, limit: Option<u64>, stat: &MemoryStat) -> Memory {
    let working_set = usage.saturating_sub(stat.inactive_file);
    Memory {
        usage_bytes: usage,
        working_set_bytes: working_set,
        rss_bytes: stat.rss,
        cache_bytes: stat.cache,
        page_faults: stat.pgfault,
        major_page_faults: stat.pgmajfault,
        limit_bytes: limit,
        available_bytes: limit.map(|l| l.saturating_sub(working_set)),
    }
}

/// Reads a v2 `*.max` file: `max` is None, a number is Some.
fn read_v2_max(path: &Path) -> io::Result<Option<u64>> {
    let Some(text) = read_optional(path)? else {
        return Ok(None);
    };
    parse_max(&text).map_err(|e| invalid(path, &e))
}

fn parse_max(text: &str) -> Result<Option<u64>, String> {
    match text.trim() {
        "max" => Ok(None),
        other => parse_u64(other).map(Some),
    }
}

/// pids.current of the first dir that has it; otherwise the line count of the first cgroup.procs.
fn read_pids(dirs: &[PathBuf]) -> io::Result<Option<u64>> {
    if let Some(path) = first_with(dirs, "pids.current") {
        if let Some(n) = read_u64_file(&path)? {
            return Ok(Some(n));
        }
    }
    let Some(path) = first_with(dirs, "cgroup.procs") else {
        return Ok(None);
    };
    Ok(read_optional(&path)?.map(|text| count_lines(&text)))
}

fn count_lines(text: &str) -> u64 {
    text.lines().filter(|l| !l.trim().is_empty()).count() as u64
}

/// The path of `file` in the first dir that has it.
fn first_with(dirs: &[PathBuf], file: &str) -> Option<PathBuf> {
    dirs.iter().map(|d| d.join(file)).find(|p| p.is_file())
}

/// Reads a file holding one number; None when the file does not exist.
fn read_u64_file(path: &Path) -> io::Result<Option<u64>> {
    let Some(text) = read_optional(path)? else {
        return Ok(None);
    };
    parse_u64(text.trim()).map(Some).map_err(|e| invalid(path, &e))
}

/// Reads a whole file; None when it does not exist (controller not enabled, or cgroup just removed).
fn read_optional(path: &Path) -> io::Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn parse_u64(text: &str) -> Result<u64, String> {
    text.parse::<u64>()
        .map_err(|_| format!("expected a number, found {text:?}"))
}

fn invalid(path: &Path, msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{}: {msg}", path.display()))
}

/// A parsed flat-keyed file (`key value` lines, as memory.stat and cpu.stat). Values are parsed on lookup, so
/// an unexpected non-numeric line only matters when its key is asked for.
#[derive(Debug, Default)]
struct FlatKeyed<'a> {
    values: HashMap<&'a str, &'a str>,
}

impl<'a> FlatKeyed<'a> {
    fn parse(text: &'a str) -> FlatKeyed<'a> {
        let values = text.lines().filter_map(split_key_value).collect();
        FlatKeyed { values }
    }

    /// The value of `key`: None when absent, an error when present but not a number.
    fn get(&self, key: &str) -> Result<Option<u64>, String> {
        match self.values.get(key) {
            Some(v) => parse_u64(v).map(Some).map_err(|e| format!("key {key}: {e}")),
            None => Ok(None),
        }
    }
}

fn split_key_value(line: &str) -> Option<(&str, &str)> {
    let mut fields = line.split_whitespace();
    let key = fields.next()?;
    let value = fields.next().unwrap_or("");
    Some((key, value))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    use crate::stats::testdir::TestDir;

    fn write(dir: &Path, file: &str, text: &str) {
        fs::write(dir.join(file), text).unwrap();
    }

    const V1_STAT: &str = "cache 11\nrss 22\ntotal_cache 4096\ntotal_rss 8192\ntotal_inactive_file 1000\n\
                           total_pgfault 77\ntotal_pgmajfault 3\n";

    /// memory, cpuacct and pids dirs of one fake v1 cgroup.
    fn fake_v1(t: &TestDir, limit: &str, stat: &str) -> Vec<PathBuf> {
        let mem = t.sub("memory/kubepods/c1");
        write(&mem, "memory.usage_in_bytes", "50000\n");
        write(&mem, "memory.limit_in_bytes", limit);
        write(&mem, "memory.stat", stat);
        let cpu = t.sub("cpuacct/kubepods/c1");
        write(&cpu, "cpuacct.usage", "123456789\n");
        let pids = t.sub("pids/kubepods/c1");
        write(&pids, "pids.current", "7\n");
        vec![cpu, mem, pids]
    }

    #[test]
    fn v1_exact_figures() {
        let t = TestDir::new();
        let dirs = fake_v1(&t, "100000\n", V1_STAT);
        let stats = read_v1(&dirs).unwrap();
        let memory = Memory {
            usage_bytes: 50000,
            working_set_bytes: 49000,
            rss_bytes: 8192,
            cache_bytes: 4096,
            page_faults: 77,
            major_page_faults: 3,
            limit_bytes: Some(100000),
            available_bytes: Some(51000),
        };
        let want = CgroupStats {
            cpu_usage_ns: Some(123456789),
            memory: Some(memory),
            pids: Some(7),
        };
        assert_eq!(stats, want);
    }

    #[test]
    fn v1_unlimited_is_none() {
        let t = TestDir::new();
        let dirs = fake_v1(&t, "9223372036854771712\n", V1_STAT);
        let memory = read_v1(&dirs).unwrap().memory.unwrap();
        assert_eq!(memory.limit_bytes, None);
        assert_eq!(memory.available_bytes, None);
    }

    #[test]
    fn v1_working_set_saturates() {
        let t = TestDir::new();
        let dirs = fake_v1(&t, "100000\n", "total_inactive_file 90000\n");
        let memory = read_v1(&dirs).unwrap().memory.unwrap();
        assert_eq!(memory.working_set_bytes, 0);
        assert_eq!(memory.available_bytes, Some(100000));
        assert_eq!(memory.rss_bytes, 0);
    }

    #[test]
    fn v1_missing_dirs_not_found() {
        let t = TestDir::new();
        let dirs = vec![t.path().join("memory/none"), t.path().join("cpuacct/none")];
        assert_eq!(read_v1(&dirs).unwrap_err().kind(), io::ErrorKind::NotFound);
        assert_eq!(read_v1(&[]).unwrap_err().kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn v1_skips_missing_dirs_and_files() {
        let t = TestDir::new();
        let mut dirs = fake_v1(&t, "100000\n", V1_STAT);
        fs::remove_file(dirs[0].join("cpuacct.usage")).unwrap();
        dirs.insert(0, t.path().join("blkio/missing"));
        let stats = read_v1(&dirs).unwrap();
        assert_eq!(stats.cpu_usage_ns, None);
        assert_eq!(stats.memory.unwrap().usage_bytes, 50000);
        assert_eq!(stats.pids, Some(7));
    }

    #[test]
    fn v1_pids_fall_back_to_procs() {
        let t = TestDir::new();
        let dirs = fake_v1(&t, "100000\n", V1_STAT);
        fs::remove_file(dirs[2].join("pids.current")).unwrap();
        write(&dirs[1], "cgroup.procs", "12\n34\n56\n");
        assert_eq!(read_v1(&dirs).unwrap().pids, Some(3));
    }

    #[test]
    fn v1_garbage_is_invalid_data() {
        let t = TestDir::new();
        let dirs = fake_v1(&t, "100000\n", V1_STAT);
        write(&dirs[0], "cpuacct.usage", "lots\n");
        let err = read_v1(&dirs).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("cpuacct.usage"), "{err}");
    }

    #[test]
    fn v1_garbage_stat_is_invalid_data() {
        let t = TestDir::new();
        let dirs = fake_v1(&t, "100000\n", "total_rss many\n");
        let err = read_v1(&dirs).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("memory.stat"), "{err}");
    }

    const V2_STAT: &str = "anon 8192\nfile 4096\nkernel 100\ninactive_file 1000\nactive_file 3000\n\
                           pgfault 55\npgmajfault 2\n";

    fn fake_v2(t: &TestDir, max: &str) -> PathBuf {
        let dir = t.sub("unified/kubepods/c1");
        write(&dir, "cpu.stat", "usage_usec 2500\nuser_usec 2000\nsystem_usec 500\n");
        write(&dir, "memory.current", "50000\n");
        write(&dir, "memory.max", max);
        write(&dir, "memory.stat", V2_STAT);
        write(&dir, "pids.current", "4\n");
        dir
    }

    #[test]
    fn v2_exact_figures() {
        let t = TestDir::new();
        let dir = fake_v2(&t, "80000\n");
        let memory = Memory {
            usage_bytes: 50000,
            working_set_bytes: 49000,
            rss_bytes: 8192,
            cache_bytes: 4096,
            page_faults: 55,
            major_page_faults: 2,
            limit_bytes: Some(80000),
            available_bytes: Some(31000),
        };
        let want = CgroupStats {
            cpu_usage_ns: Some(2_500_000),
            memory: Some(memory),
            pids: Some(4),
        };
        assert_eq!(read_v2(&dir).unwrap(), want);
    }

    #[test]
    fn v2_max_is_none() {
        let t = TestDir::new();
        let dir = fake_v2(&t, "max\n");
        let memory = read_v2(&dir).unwrap().memory.unwrap();
        assert_eq!(memory.limit_bytes, None);
        assert_eq!(memory.available_bytes, None);
    }

    #[test]
    fn v2_missing_dir_not_found() {
        let t = TestDir::new();
        assert_eq!(
            read_v2(&t.path().join("gone")).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }

    #[test]
    fn v2_missing_controller_files_are_none() {
        let t = TestDir::new();
        let dir = fake_v2(&t, "max\n");
        fs::remove_file(dir.join("memory.current")).unwrap();
        fs::remove_file(dir.join("pids.current")).unwrap();
        let stats = read_v2(&dir).unwrap();
        assert_eq!(stats.memory, None);
        assert_eq!(stats.pids, None);
        assert_eq!(stats.cpu_usage_ns, Some(2_500_000));
    }

    #[test]
    fn v2_garbage_is_invalid_data() {
        let t = TestDir::new();
        let dir = fake_v2(&t, "lots\n");
        let err = read_v2(&dir).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("memory.max"), "{err}");
    }

    #[test]
    fn flat_keyed_lookup() {
        let stat = FlatKeyed::parse("a 1\nb  22 \n\nc x\nd\n");
        assert_eq!(stat.get("a"), Ok(Some(1)));
        assert_eq!(stat.get("b"), Ok(Some(22)));
        assert_eq!(stat.get("z"), Ok(None));
        assert!(stat.get("c").is_err());
        assert!(stat.get("d").is_err());
    }

    #[test]
    fn memory_stat_missing_keys_are_zero() {
        let stat = parse_memory_stat("anon 5\n", &V2_KEYS).unwrap();
        assert_eq!(
            stat,
            MemoryStat {
                rss: 5,
                ..MemoryStat::default()
            }
        );
    }

    #[test]
    fn max_parsing() {
        assert_eq!(parse_max("max\n"), Ok(None));
        assert_eq!(parse_max("42\n"), Ok(Some(42)));
        assert!(parse_max("-1").is_err());
    }

    /// Mount points of this host's v1 hierarchies, from /proc/self/mountinfo.
    fn v1_mounts() -> Vec<PathBuf> {
        let text = fs::read_to_string("/proc/self/mountinfo").unwrap();
        text.lines().filter_map(v1_mount_point).collect()
    }

    fn v1_mount_point(line: &str) -> Option<PathBuf> {
        let (left, right) = line.split_once(" - ")?;
        if right.split_whitespace().next()? != "cgroup" {
            return None;
        }
        left.split_whitespace().nth(4).map(PathBuf::from)
    }

    #[test]
    fn host_v1_root() {
        if !Path::new("/sys/fs/cgroup/memory").is_dir() {
            eprintln!("skipping host_v1_root: /sys/fs/cgroup/memory does not exist");
            return;
        }
        let stats = read_v1(&v1_mounts()).unwrap();
        assert!(stats.cpu_usage_ns.is_some(), "{stats:?}");
        assert!(stats.memory.is_some(), "{stats:?}");
    }

    /// A cgroup directory removed (rmdir) on drop.
    struct TestCgroup(PathBuf);

    impl Drop for TestCgroup {
        fn drop(&mut self) {
            let _ = fs::remove_dir(&self.0);
        }
    }

    fn make_cgroup(mount: &Path) -> Option<TestCgroup> {
        let path = mount.join(format!("statsread-test-{}", std::process::id()));
        match fs::create_dir(&path) {
            Ok(()) => Some(TestCgroup(path)),
            Err(e) => {
                eprintln!("skipping host_v1_new_cgroup: cannot create {}: {e}", path.display());
                None
            }
        }
    }

    fn cpuacct_mount() -> Option<PathBuf> {
        v1_mounts().into_iter().find(|m| m.join("cpuacct.usage").is_file())
    }

    #[test]
    fn host_v1_new_cgroup() {
        let memory_mount = Path::new("/sys/fs/cgroup/memory");
        let Some(cpu_mount) = cpuacct_mount().filter(|_| memory_mount.is_dir()) else {
            eprintln!("skipping host_v1_new_cgroup: no v1 memory and cpuacct hierarchies");
            return;
        };
        let Some(mem) = make_cgroup(memory_mount) else { return };
        let Some(cpu) = make_cgroup(&cpu_mount) else { return };
        let stats = read_v1(&[mem.0.clone(), cpu.0.clone()]).unwrap();
        assert_eq!(stats.cpu_usage_ns, Some(0));
        assert_eq!(stats.memory.map(|m| m.usage_bytes), Some(0));
        assert_eq!(stats.pids, Some(0));
    }
}
