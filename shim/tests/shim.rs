//! End-to-end tests of `berth-shim` against runc. They need root, runc at /usr/sbin/runc
//! (or `BERTH_RUNC`) and a static busybox at /bin/busybox. `BERTH_SHIM_BIN` picks the shim
//! binary (e.g. a release build for the memory figures); default: this build's.
//!
//! The tests run one at a time (they share the `/berth-shim-test` cgroup parent) and
//! clean up on drop, failures included: shim SIGKILLed by pid, `runc delete -f`, cgroups
//! and directories removed.

use std::io::Read as _;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use berth_shim::api::{
    ExecRequest, ExecResponse, ExitRecord, Request, Response, StateResponse, Status, WaitResponse, EXIT_FILE, PID_FILE,
    SOCKET,
};
use berth_shim::b64;
use berth_shim::client::{ClientError, ShimClient};
use serde_json::json;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
const CGROUP_PARENT: &str = "berth-shim-test";
const T: Duration = Duration::from_secs(20);

fn shim_bin() -> PathBuf {
    std::env::var_os("BERTH_SHIM_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_berth-shim").into())
}

fn runc_bin() -> PathBuf {
    std::env::var_os("BERTH_RUNC")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/usr/sbin/runc".into())
}

/// A bundle (rootfs: busybox) in its own directory, with a runc root and a log path.
struct Ctr {
    id: String,
    dir: PathBuf,
    bundle: PathBuf,
    root: PathBuf,
    log: PathBuf,
}

impl Ctr {
    fn new(name: &str, args: &[&str], tty: bool) -> Ctr {
        let id = format!("bst-{name}-{}", std::process::id());
        let dir = std::env::temp_dir().join(&id);
        let _ = std::fs::remove_dir_all(&dir);
        let c = Ctr {
            bundle: dir.join("bundle"),
            root: dir.join("runc"),
            log: dir.join("logs/sub/ctr.log"),
            dir,
            id,
        };
        let bin = c.bundle.join("rootfs/bin");
        std::fs::create_dir_all(&bin).expect("rootfs");
        std::fs::create_dir_all(&c.root).expect("runc root");
        std::fs::copy("/bin/busybox", bin.join("busybox")).expect("busybox");
        for tool in ["sh", "echo", "sleep", "cat", "yes", "head", "tr", "true"] {
            symlink("busybox", bin.join(tool)).expect("symlink");
        }
        let caps = json!(["CAP_KILL", "CAP_CHOWN", "CAP_SETUID", "CAP_SETGID"]);
        let config = json!({
            "ociVersion": "1.0.2",
            "process": {
                "terminal": tty,
                "user": {"uid": 0, "gid": 0},
                "args": args,
                "env": ["PATH=/bin", "TERM=xterm"],
                "cwd": "/",
                "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
                "noNewPrivileges": true
            },
            "root": {"path": "rootfs", "readonly": false},
            "hostname": "shim-test",
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
                 "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
                {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
                 "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]}
            ],
            "linux": {
                "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
                "cgroupsPath": format!("/{CGROUP_PARENT}/{}", c.id)
            }
        });
        std::fs::write(
            c.bundle.join("config.json"),
            serde_json::to_vec_pretty(&config).expect("json"),
        )
        .expect("config");
        c
    }

    fn edit_config(&self, edit: impl FnOnce(&mut serde_json::Value)) {
        let path = self.bundle.join("config.json");
        let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).expect("config")).expect("json");
        edit(&mut v);
        std::fs::write(&path, serde_json::to_vec_pretty(&v).expect("json")).expect("config");
    }

    /// `berth-shim start`: Ok(init pid) or Err(stderr).
    fn start(&self, flags: &[&str]) -> Result<u32, String> {
        let out = Command::new(shim_bin())
            .arg("start")
            .arg("--id")
            .arg(&self.id)
            .arg("--bundle")
            .arg(&self.bundle)
            .arg("--runtime")
            .arg(runc_bin())
            .arg("--runtime-root")
            .arg(&self.root)
            .arg("--log-path")
            .arg(&self.log)
            .args(flags)
            .output()
            .expect("running berth-shim start");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            let pid = stdout
                .trim()
                .strip_prefix("ok ")
                .unwrap_or_else(|| panic!("start printed {stdout:?}"));
            Ok(pid.parse().expect("pid"))
        } else {
            assert!(stderr.starts_with("error "), "stderr {stderr:?}");
            Err(stderr.into_owned())
        }
    }

    fn sock(&self) -> PathBuf {
        self.bundle.join(SOCKET)
    }

    fn shim_pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.bundle.join(PID_FILE))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    async fn call(&self, req: Request) -> Result<Response, ClientError> {
        let mut c = ShimClient::connect(self.sock()).await?;
        c.call(&req, T).await
    }

    async fn ok(&self, req: Request) {
        match self.call(req.clone()).await {
            Ok(Response::Ok { ok: true }) => {}
            other => panic!("{req:?}: {other:?}"),
        }
    }

    async fn state(&self) -> StateResponse {
        match self.call(Request::State).await {
            Ok(Response::State(s)) => s,
            other => panic!("state: {other:?}"),
        }
    }

    async fn wait(&self, timeout_ms: u64) -> WaitResponse {
        match self.call(Request::Wait { timeout_ms }).await {
            Ok(Response::Wait(w)) => w,
            other => panic!("wait: {other:?}"),
        }
    }

    async fn exec(&self, args: &[&str], timeout_ms: u64, max_output: usize) -> ExecResponse {
        let req = ExecRequest {
            args: args.iter().map(|s| s.to_string()).collect(),
            env: vec!["PATH=/bin".into()],
            cwd: "/".into(),
            user: Some(Default::default()),
            tty: false,
            timeout_ms,
            max_output,
        };
        match self.call(Request::Exec(req)).await {
            Ok(Response::Exec(e)) => e,
            other => panic!("exec: {other:?}"),
        }
    }

    fn records(&self) -> Vec<Record> {
        records(&self.log)
    }

    async fn wait_for_log(&self, what: impl Fn(&[Record]) -> bool) -> Vec<Record> {
        let deadline = Instant::now() + T;
        loop {
            let recs = self.records();
            if what(&recs) {
                return recs;
            }
            assert!(Instant::now() < deadline, "log never matched: {recs:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kill 9, wait, delete through the API; the shim must then be gone.
    async fn finish(&self) {
        let shim = self.shim_pid().expect("shim pid");
        self.ok(Request::Kill { signal: 9, all: true }).await;
        assert!(!self.wait(10_000).await.timed_out);
        self.ok(Request::Delete).await;
        assert!(!self.sock().exists(), "socket left behind");
        let deadline = Instant::now() + Duration::from_secs(5);
        while alive(shim) {
            assert!(Instant::now() < deadline, "shim {shim} still running after delete");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            runc_state(&self.root, &self.id).is_none(),
            "runc still knows {}",
            self.id
        );
    }
}

impl Drop for Ctr {
    fn drop(&mut self) {
        if let Some(pid) = self.shim_pid() {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline);
            if cmdline.contains("serve") && cmdline.contains(&self.id) {
                if let Some(p) = rustix::process::Pid::from_raw(pid) {
                    let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
                }
            }
        }
        let _ = Command::new(runc_bin())
            .arg("--root")
            .arg(&self.root)
            .args(["delete", "-f", &self.id])
            .output();
        for h in std::fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten() {
            let parent = h.path().join(CGROUP_PARENT);
            let _ = std::fs::remove_dir(parent.join(&self.id));
            let _ = std::fs::remove_dir(parent);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[derive(Debug, Clone)]
struct Record {
    ts: String,
    stream: String,
    tag: String,
    content: String,
}

fn records(path: &Path) -> Vec<Record> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .map(|l| {
            let l = &l[..l.len() - 1];
            let mut parts = l.splitn(4, ' ');
            let mut next = || parts.next().unwrap_or_else(|| panic!("bad record {l:?}")).to_string();
            Record {
                ts: next(),
                stream: next(),
                tag: next(),
                content: next(),
            }
        })
        .collect()
}

/// `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`, near now.
fn check_ts(ts: &str) {
    let b = ts.as_bytes();
    assert_eq!(b.len(), 30, "{ts}");
    for (i, &c) in b.iter().enumerate() {
        let want = match i {
            4 | 7 => b'-',
            10 => b'T',
            13 | 16 => b':',
            19 => b'.',
            29 => b'Z',
            _ => 0,
        };
        if want == 0 {
            assert!(c.is_ascii_digit(), "{ts}");
        } else {
            assert_eq!(c, want, "{ts}");
        }
    }
    let now = Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H"])
        .output()
        .expect("date")
        .stdout;
    let now = String::from_utf8_lossy(&now);
    assert_eq!(&ts[..10], &now.trim()[..10], "timestamp {ts} is not today");
}

fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

fn ppid(pid: i32) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let rest = stat.rsplit_once(')').expect("stat").1;
    rest.split_whitespace().nth(1).expect("ppid").parse().expect("ppid")
}

fn sid(pid: i32) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let rest = stat.rsplit_once(')').expect("stat").1;
    rest.split_whitespace().nth(3).expect("sid").parse().expect("sid")
}

fn runc_state(root: &Path, id: &str) -> Option<String> {
    let out = Command::new(runc_bin())
        .arg("--root")
        .arg(root)
        .args(["state", id])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Processes whose command line is exactly `args`.
fn processes_running(args: &[&str]) -> Vec<i32> {
    let want: Vec<u8> = args.iter().flat_map(|a| a.bytes().chain([0])).collect();
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == want) && alive(*pid))
        .collect()
}

fn smaps_rollup(pid: i32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).expect("smaps_rollup");
    let field = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().strip_suffix("kB")?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in {text}"))
    };
    (field("Rss:"), field("Pss:"))
}

#[tokio::test]
async fn a_output_exit_code_and_exit_record() {
    let _g = SERIAL.lock().await;
    let c = Ctr::new("exit", &["sh", "-c", "echo hello; echo err >&2; exit 3"], false);
    let pid = c.start(&[]).expect("start");
    let s = c.state().await;
    assert_eq!((s.status, s.pid, s.started_at, s.exit), (Status::Created, pid, 0, None));
    assert!(c.records().is_empty(), "output before start");
    c.ok(Request::Start).await;
    let w = c.wait(10_000).await;
    assert!(!w.timed_out);
    assert_eq!(w.exit.expect("exit").exit_code, 3);
    let s = c.state().await;
    assert_eq!(s.status, Status::Stopped);
    let exit = s.exit.expect("exit");
    assert_eq!(exit.exit_code, 3);
    assert!(!exit.oom_killed);
    assert!(s.started_at > 0 && exit.finished_at >= s.started_at);
    let rec: ExitRecord =
        serde_json::from_slice(&std::fs::read(c.bundle.join(EXIT_FILE)).expect("exit.json")).expect("exit.json");
    assert_eq!(
        rec,
        ExitRecord {
            exit_code: 3,
            finished_at: exit.finished_at,
            oom_killed: false,
            started_at: s.started_at
        }
    );
    // The exit is final only after the output was drained.
    let recs = c.records();
    let lines: Vec<String> = recs
        .iter()
        .map(|r| format!("{} {} {}", r.stream, r.tag, r.content))
        .collect();
    assert!(lines.contains(&"stdout F hello".to_string()), "{lines:?}");
    assert!(lines.contains(&"stderr F err".to_string()), "{lines:?}");
    assert_eq!(lines.len(), 2, "{lines:?}");
    recs.iter().for_each(|r| check_ts(&r.ts));
    // Starting twice is an error; the shim stays usable.
    assert!(matches!(c.call(Request::Start).await, Err(ClientError::Shim(_))));
    c.ok(Request::Kill { signal: 15, all: false }).await;
    c.finish().await;
}

#[tokio::test]
async fn b_kill_term_and_kill_9() {
    let _g = SERIAL.lock().await;
    // A pid-namespace init only gets signals it handles: sh traps TERM.
    let c = Ctr::new("term", &["sh", "-c", "trap 'exit 143' TERM; sleep 1000 & wait"], false);
    c.start(&[]).expect("start");
    c.ok(Request::Start).await;
    assert_eq!(c.state().await.status, Status::Running);
    let w = c.wait(300).await;
    assert!(w.timed_out && w.exit.is_none());
    tokio::time::sleep(Duration::from_millis(300)).await; // let sh install its trap
    c.ok(Request::Kill { signal: 15, all: false }).await;
    let w = c.wait(10_000).await;
    assert_eq!(w.exit.expect("exit").exit_code, 143);
    c.finish().await;
    drop(c);

    let c = Ctr::new("kill9", &["sleep", "1000"], false);
    c.start(&[]).expect("start");
    c.ok(Request::Start).await;
    let waiter = {
        let sock = c.sock();
        tokio::spawn(async move {
            let mut cl = ShimClient::connect(sock).await.expect("connect");
            cl.call(&Request::Wait { timeout_ms: 0 }, T).await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    c.ok(Request::Kill { signal: 9, all: false }).await;
    match waiter.await.expect("join") {
        Ok(Response::Wait(w)) => assert_eq!(w.exit.expect("exit").exit_code, 137),
        other => panic!("{other:?}"),
    }
    // A stopped container answers kill with ok.
    c.ok(Request::Kill { signal: 15, all: false }).await;
    // Delete before stop is refused; after it, the shim exits.
    c.finish().await;
}

#[tokio::test]
async fn c_long_line_partial_records() {
    let _g = SERIAL.lock().await;
    let script = "yes abcdefghijklmnopqrstuvwxyz | tr -d '\\n' | head -c 40960; echo; printf tail";
    let c = Ctr::new("long", &["sh", "-c", script], false);
    c.start(&[]).expect("start");
    c.ok(Request::Start).await;
    assert!(!c.wait(10_000).await.timed_out);
    let recs = c.records();
    let tags: Vec<&str> = recs.iter().map(|r| r.tag.as_str()).collect();
    assert_eq!(tags, ["P", "P", "F", "P"], "{recs:?}");
    let expect: String = "abcdefghijklmnopqrstuvwxyz".repeat(2000)[..40960].to_string();
    let joined: String = recs[..3].iter().map(|r| r.content.as_str()).collect();
    assert_eq!(joined, expect);
    assert_eq!(recs[0].content.len(), 16 * 1024);
    // A last line without newline is written as a partial record at EOF (containerd).
    assert_eq!(recs[3].content, "tail");
    c.finish().await;
}

#[tokio::test]
async fn d_exec() {
    let _g = SERIAL.lock().await;
    let c = Ctr::new("exec", &["sleep", "1000"], false);
    c.start(&[]).expect("start");
    c.ok(Request::Start).await;

    let e = c
        .exec(&["sh", "-c", "echo exec-out; echo exec-err >&2; exit 7"], 10_000, 0)
        .await;
    assert_eq!(e.exit_code, 7);
    assert!(!e.timed_out);
    assert_eq!(b64::decode(&e.stdout).expect("b64"), b"exec-out\n");
    assert_eq!(b64::decode(&e.stderr).expect("b64"), b"exec-err\n");

    let t0 = Instant::now();
    let e = c.exec(&["sleep", "100"], 500, 0).await;
    let took = t0.elapsed();
    assert!(e.timed_out, "{e:?}");
    assert!(took < Duration::from_millis(2500), "exec timeout took {took:?}");
    assert!(
        processes_running(&["sleep", "100"]).is_empty(),
        "exec'd sleep left running"
    );

    let e = c.exec(&["sh", "-c", "yes | head -c 2097152"], 30_000, 1 << 20).await;
    assert_eq!(e.exit_code, 0);
    let out = b64::decode(&e.stdout).expect("b64");
    assert_eq!(out.len(), 1 << 20);
    assert!(out.chunks(2).all(|c| c == b"y\n"));

    // Failed exec: runc's error arrives as stderr with a non-zero code.
    let e = c.exec(&["/nonexistent"], 10_000, 0).await;
    assert_ne!(e.exit_code, 0);
    // Exec files are cleaned up.
    let left: Vec<_> = std::fs::read_dir(&c.bundle)
        .expect("bundle")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("exec-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(c.state().await.status, Status::Running);
    c.finish().await;
    assert!(matches!(
        ShimClient::connect(c.sock()).await,
        Err(ClientError::Gone { .. })
    ));
}

#[tokio::test]
async fn e_shim_outlives_its_parent_and_ignores_sigterm() {
    let _g = SERIAL.lock().await;
    let c = Ctr::new("orphan", &["sleep", "1000"], false);
    c.start(&[]).expect("start");
    let shim = c.shim_pid().expect("shim.pid");
    let me = std::process::id() as i32;
    assert_ne!(ppid(shim), me, "serve is still the test's child");
    assert_eq!(sid(shim), shim, "serve is not a session leader");
    assert_ne!(sid(shim), sid(me));
    for sig in [
        rustix::process::Signal::TERM,
        rustix::process::Signal::INT,
        rustix::process::Signal::HUP,
    ] {
        rustix::process::kill_process(rustix::process::Pid::from_raw(shim).expect("pid"), sig).expect("kill");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(alive(shim));
    assert_eq!(c.state().await.status, Status::Created);
    c.ok(Request::Start).await;
    assert_eq!(c.state().await.status, Status::Running);
    c.finish().await;
}

#[tokio::test]
async fn f_reopen_log_and_stdin() {
    let _g = SERIAL.lock().await;
    let c = Ctr::new("reopen", &["sh", "-c", "echo one; read x; echo two $x"], false);
    c.start(&["--stdin"]).expect("start");
    c.ok(Request::Start).await;
    c.wait_for_log(|r| r.iter().any(|r| r.content == "one")).await;
    let rotated = c.log.with_extension("log.1");
    std::fs::rename(&c.log, &rotated).expect("rename");
    c.ok(Request::ReopenLog).await;
    c.ok(Request::Stdin {
        data: b64::encode(b"go\n"),
        close: false,
    })
    .await;
    assert!(!c.wait(10_000).await.timed_out);
    let old: Vec<String> = records(&rotated).into_iter().map(|r| r.content).collect();
    let new: Vec<String> = c.records().into_iter().map(|r| r.content).collect();
    assert_eq!(old, ["one"]);
    assert_eq!(new, ["two go"]);
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&c.log).expect("log").permissions());
    assert_eq!(mode & 0o777, 0o640);
    c.finish().await;
}

#[tokio::test]
async fn g_memory_of_the_serving_shim() {
    let _g = SERIAL.lock().await;
    let c = Ctr::new(
        "mem",
        &["sh", "-c", "while true; do echo tick; sleep 0.05; done"],
        false,
    );
    c.start(&[]).expect("start");
    c.ok(Request::Start).await;
    c.wait_for_log(|r| r.len() >= 10).await;
    let e = c.exec(&["echo", "hi"], 10_000, 0).await;
    assert_eq!(e.exit_code, 0);
    let shim = c.shim_pid().expect("shim pid");
    let (rss, pss) = smaps_rollup(shim);
    let mut exe = String::new();
    if let Ok(mut f) = std::fs::File::open(format!("/proc/{shim}/cmdline")) {
        let _ = f.read_to_string(&mut exe);
    }
    let exe = exe.split('\0').next().unwrap_or_default().to_string();
    let status = std::fs::read_to_string(format!("/proc/{shim}/status")).expect("status");
    let threads = status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .map(str::trim)
        .unwrap_or("?")
        .to_string();
    let rollup = std::fs::read_to_string(format!("/proc/{shim}/smaps_rollup")).expect("smaps_rollup");
    eprintln!("berth-shim serve ({exe}): Rss {rss} kB, Pss {pss} kB, threads {threads}\n{rollup}");
    assert_eq!(threads, "1", "the shim runs one thread");
    // Generous bounds that also hold for a debug build; see the report for release figures.
    assert!(rss < 16 * 1024, "Rss {rss} kB");
    c.finish().await;
}

#[tokio::test]
async fn h_stdin_once_close_and_tty() {
    let _g = SERIAL.lock().await;
    let c = Ctr::new("cat", &["cat"], false);
    c.start(&["--stdin", "--stdin-once"]).expect("start");
    c.ok(Request::Start).await;
    c.ok(Request::Stdin {
        data: b64::encode(b"abc\ndef"),
        close: true,
    })
    .await;
    let w = c.wait(10_000).await;
    assert_eq!(w.exit.expect("exit").exit_code, 0);
    let recs: Vec<(String, String)> = c.records().into_iter().map(|r| (r.tag, r.content)).collect();
    assert_eq!(
        recs,
        [
            ("F".to_string(), "abc".to_string()),
            ("P".to_string(), "def".to_string())
        ]
    );
    assert!(c
        .call(Request::Stdin {
            data: b64::encode(b"x"),
            close: false
        })
        .await
        .is_err());
    c.finish().await;
    drop(c);

    let c = Ctr::new(
        "tty",
        &["sh", "-c", "echo tty-out; echo tty-err >&2; read x; echo got $x"],
        true,
    );
    c.start(&["--tty", "--stdin"]).expect("start");
    c.ok(Request::Start).await;
    c.wait_for_log(|r| r.iter().any(|r| r.content == "tty-err")).await;
    c.ok(Request::Stdin {
        data: b64::encode(b"line\n"),
        close: false,
    })
    .await;
    let w = c.wait(10_000).await;
    assert_eq!(w.exit.expect("exit").exit_code, 0);
    let recs = c.records();
    assert!(recs.iter().all(|r| r.stream == "stdout" && r.tag == "F"), "{recs:?}");
    let contents: Vec<&str> = recs.iter().map(|r| r.content.as_str()).collect();
    // The pty echoes input back.
    assert_eq!(contents, ["tty-out", "tty-err", "line", "got line"]);
    assert!(!c.bundle.join("console.sock").exists());
    c.finish().await;
}

#[tokio::test]
async fn i_failed_create_leaves_nothing() {
    let _g = SERIAL.lock().await;
    let c = Ctr::new("fail", &["/no/such/binary"], false);
    let err = c.start(&[]).expect_err("start should fail");
    assert!(err.contains("no/such/binary"), "{err}");
    assert!(runc_state(&c.root, &c.id).is_none());
    assert!(!c.sock().exists());
    assert!(!c.bundle.join(PID_FILE).exists());
    assert!(!Path::new("/sys/fs/cgroup/memory")
        .join(CGROUP_PARENT)
        .join(&c.id)
        .exists());
    assert!(c.records().is_empty(), "{:?}", c.records());
}

#[tokio::test]
async fn j_oom_kill_is_recorded() {
    let _g = SERIAL.lock().await;
    // The shell (the init) reads 64 MiB into a variable under a 16 MiB limit.
    let c = Ctr::new(
        "oom",
        &[
            "sh",
            "-c",
            "x=$(head -c 67108864 /dev/zero | tr '\\0' a); echo survived",
        ],
        false,
    );
    c.edit_config(|v| {
        v["linux"]["resources"] = json!({"memory": {"limit": 16 << 20, "swap": 16 << 20}});
    });
    c.start(&[]).expect("start");
    c.ok(Request::Start).await;
    let exit = c.wait(30_000).await.exit.expect("exit");
    assert!(exit.oom_killed, "{exit:?}");
    let rec: ExitRecord =
        serde_json::from_slice(&std::fs::read(c.bundle.join(EXIT_FILE)).expect("exit.json")).expect("exit.json");
    assert!(rec.oom_killed);
    c.finish().await;
}
