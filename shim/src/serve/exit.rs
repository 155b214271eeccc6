//! The container's end: its exit status with the OOM kills counted from its memory
//! cgroup (read before any `runc delete`), the output drained, and `exit.json` written.

use super::*;

impl Shim {
    pub(super) async fn on_init_exit(self: Rc<Self>, exited: oneshot::Receiver<i32>, pumps: Vec<JoinHandle<()>>) {
        let exit_code = exited.await.unwrap_or(-1);
        self.init_exited.set(true);
        let finished_at = now_ns();
        // Read now: `runc delete` removes the cgroup.
        let oom_killed = self.oom_file.as_deref().is_some_and(|f| oom_kills(f) > 0);
        let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
            for p in pumps {
                let _ = p.await;
            }
        })
        .await;
        if drained.is_err() {
            log!("output still open {DRAIN_TIMEOUT:?} after the init exited; reporting the exit anyway");
        }
        self.hub.close();
        let record = ExitRecord {
            exit_code,
            finished_at,
            oom_killed,
            started_at: self.started_at.get(),
        };
        if let Err(e) = write_exit(&record) {
            log!("writing {EXIT_FILE}: {e}");
        }
        log!(
            "init {} exited with {exit_code} (oom_killed: {oom_killed})",
            self.init_pid
        );
        self.exit.set(Some(record.exit()));
        self.status.set(Status::Stopped);
        self.stopped.send_replace(true);
        *self.stdin.lock().await = None;
    }
}

/// The bundle's config.json, if it reads and parses.
pub(super) fn read_config() -> Option<Value> {
    serde_json::from_slice(&std::fs::read("config.json").ok()?).ok()
}

/// `linux.cgroupsPath` of a config.json.
pub(super) fn cgroups_path(config: &Value) -> Option<String> {
    Some(
        config
            .get("linux")?
            .get("cgroupsPath")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
    )
}

/// The file whose `oom_kill N` line counts OOM kills in the container's memory cgroup:
/// v1 `memory/<path>/memory.oom_control`, v2 (unified hierarchy) `<path>/memory.events`.
pub(super) fn oom_file(cgroups_path: &str, id: &str, systemd: bool) -> PathBuf {
    let rel = cgroups::container_dir(cgroups_path, id, systemd);
    if cgroups::unified() {
        PathBuf::from(format!("{}/{rel}/memory.events", cgroups::ROOT))
    } else {
        PathBuf::from(format!("{}/memory/{rel}/memory.oom_control", cgroups::ROOT))
    }
}

pub(super) fn oom_kills(file: &Path) -> u64 {
    let Ok(text) = std::fs::read_to_string(file) else {
        return 0;
    };
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill ").and_then(|n| n.trim().parse().ok()))
        .unwrap_or(0)
}

/// `exit.json`, atomically (temporary file, fsync, rename).
pub(super) fn write_exit(record: &ExitRecord) -> io::Result<()> {
    let tmp = format!("{EXIT_FILE}.tmp");
    let data = serde_json::to_vec(record).map_err(io::Error::other)?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(&tmp)?;
    f.write_all(&data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, EXIT_FILE)
}
