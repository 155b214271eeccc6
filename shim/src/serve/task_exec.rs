//! Exec in a shim v2's container: ExecSync (output captured from FIFOs, killed at its
//! timeout) and interactive exec streams (attach frames relayed to and from the exec
//! process's FIFOs, resizes as ResizePty, the exit status in the EXIT frame).

use berth_shim::api::ExecStreamRequest;
use berth_shim::task::{Any, ExecProcessRequest, PROCESS_TYPE_URL};

use super::exec::{self, exec_process};
use super::task::{mkfifo, OutputFifo, Task};
use super::*;
use rustix::fs::{Mode, OFlags};

impl Shim {
    /// ExecSync as an exec process of the shim v2, its output read from FIFOs.
    pub(super) async fn exec_task(&self, task: &Task, req: &ExecRequest, n: u64) -> Result<Response, String> {
        let exec_id = format!("exec-{n}");
        let process = serde_json::to_vec(&exec_process(req)?).map_err(|e| e.to_string())?;
        let out = OutputFifo::new(task.dir.join(format!("{exec_id}-stdout")))?;
        let err = OutputFifo::new(task.dir.join(format!("{exec_id}-stderr")))?;
        let paths = [out.path.clone(), err.path.clone()];
        let r = self.exec_task_run(task, req, &exec_id, process, out, err).await;
        for p in paths {
            let _ = std::fs::remove_file(p);
        }
        r
    }

    async fn exec_task_run(
        &self,
        task: &Task,
        req: &ExecRequest,
        exec_id: &str,
        process: Vec<u8>,
        out: OutputFifo,
        err: OutputFifo,
    ) -> Result<Response, String> {
        let mut c = task.client().await?;
        let exec = ExecProcessRequest {
            id: self.id.clone(),
            exec_id: exec_id.into(),
            terminal: false,
            stdin: String::new(),
            stdout: out.path(),
            stderr: err.path(),
            spec: Some(Any {
                type_url: PROCESS_TYPE_URL.into(),
                value: process,
            }),
        };
        c.exec(&exec).await.map_err(|e| format!("shim v2 exec: {e}"))?;
        let mut waiter = task.client().await?;
        if let Err(e) = c.start(&self.id, exec_id).await {
            let _ = c.delete(&self.id, exec_id).await;
            return Err(format!("shim v2 exec start: {e}"));
        }
        let (out_rx, err_rx) = (out.rx, err.rx);
        drop((out.hold, err.hold));
        let exited = async { waiter.wait(&self.id, exec_id).await.ok().map(|s| s as i32) };
        let kill = async {
            let _ = c.kill(&self.id, exec_id, 9, false).await;
        };
        let r = exec::capture(req, &out_rx, &err_rx, exited, kill).await;
        let _ = c.delete(&self.id, exec_id).await;
        Ok(r)
    }

    /// One interactive exec stream (see [`berth_shim::api::Request::ExecStream`]).
    pub(super) async fn exec_stream(
        self: Rc<Self>,
        r: BufReader<OwnedReadHalf>,
        mut w: OwnedWriteHalf,
        req: ExecStreamRequest,
    ) {
        let refuse = |e: String| serde_json::to_vec(&Response::error(e)).unwrap_or_default();
        let Some(task) = self.task.as_ref() else {
            let mut line = refuse("interactive exec through the shim is for containers of a shim v2".into());
            line.push(b'\n');
            let _ = w.write_all(&line).await;
            return;
        };
        if self.init_exited.get() {
            let _ = w.write_all(b"{\"error\":\"container is not running\"}\n").await;
            return;
        }
        let n = self.exec_seq.get() + 1;
        self.exec_seq.set(n);
        let exec_id = format!("stream-{n}");
        let mut files = Vec::new();
        let started = self.exec_stream_start(task, &req, &exec_id, &mut files).await;
        let (outputs, stdin) = match started {
            Ok(s) => s,
            Err(e) => {
                for f in files {
                    let _ = std::fs::remove_file(f);
                }
                let mut line = refuse(e);
                line.push(b'\n');
                let _ = w.write_all(&line).await;
                return;
            }
        };
        if w.write_all(b"{\"ok\":true}\n").await.is_ok() {
            self.exec_stream_relay(task, &exec_id, req.tty, r, w, outputs, stdin)
                .await;
        } else if let Ok(mut c) = task.client().await {
            let _ = c.kill(&self.id, &exec_id, 9, false).await;
        }
        if let Ok(mut c) = task.client().await {
            let _ = c.delete(&self.id, &exec_id).await;
        }
        for f in files {
            let _ = std::fs::remove_file(f);
        }
    }

    /// Exec and Start of the process with FIFOs for the streams it has: its outputs (read
    /// ends, frame kinds) and its stdin.
    async fn exec_stream_start(
        &self,
        task: &Task,
        req: &ExecStreamRequest,
        exec_id: &str,
        files: &mut Vec<PathBuf>,
    ) -> Result<(Vec<(u8, Receiver)>, Option<Sender>), String> {
        let fifo = |name: &str| task.dir.join(format!("{exec_id}-{name}"));
        let out = if req.stdout {
            Some(OutputFifo::new(fifo("stdout"))?)
        } else {
            None
        };
        files.extend(out.as_ref().map(|o| o.path.clone()));
        let err = if req.stderr && !req.tty {
            Some(OutputFifo::new(fifo("stderr"))?)
        } else {
            None
        };
        files.extend(err.as_ref().map(|o| o.path.clone()));
        let stdin = if req.stdin {
            let path = fifo("stdin");
            mkfifo(&path)?;
            files.push(path.clone());
            let fd = rustix::fs::open(&path, OFlags::RDWR | OFlags::NONBLOCK | OFlags::CLOEXEC, Mode::empty())
                .map_err(|e| format!("{}: {e}", path.display()))?;
            Some((path, fdio::sender(fd).map_err(|e| format!("stdin: {e}"))?))
        } else {
            None
        };
        let path_of = |o: &Option<OutputFifo>| o.as_ref().map(OutputFifo::path).unwrap_or_default();
        let exec = ExecProcessRequest {
            id: self.id.clone(),
            exec_id: exec_id.into(),
            terminal: req.tty,
            stdin: stdin
                .as_ref()
                .map(|(p, _)| p.to_string_lossy().into_owned())
                .unwrap_or_default(),
            stdout: path_of(&out),
            stderr: path_of(&err),
            spec: Some(Any {
                type_url: PROCESS_TYPE_URL.into(),
                value: serde_json::to_vec(&req.process).map_err(|e| e.to_string())?,
            }),
        };
        let mut c = task.client().await?;
        c.exec(&exec).await.map_err(|e| format!("shim v2 exec: {e}"))?;
        if let Err(e) = c.start(&self.id, exec_id).await {
            let _ = c.delete(&self.id, exec_id).await;
            return Err(format!("shim v2 exec start: {e}"));
        }
        let outputs = [(attach::STDOUT, out), (attach::STDERR, err)]
            .into_iter()
            .filter_map(|(kind, o)| o.map(|o| (kind, o.rx)))
            .collect();
        Ok((outputs, stdin.map(|(_, tx)| tx)))
    }

    /// Output frames out, input frames in, until the process has exited and its output is
    /// drained (then EXIT with its status), or berthd leaves (then the process is killed).
    #[allow(clippy::too_many_arguments)]
    async fn exec_stream_relay(
        &self,
        task: &Task,
        exec_id: &str,
        tty: bool,
        mut r: BufReader<OwnedReadHalf>,
        mut w: OwnedWriteHalf,
        outputs: Vec<(u8, Receiver)>,
        stdin: Option<Sender>,
    ) {
        let Ok(mut waiter) = task.client().await else { return };
        let (tx, mut rx) = tokio::sync::mpsc::channel::<(u8, Vec<u8>)>(64);
        let pumps = outputs.into_iter().map(|(kind, fifo)| {
            let tx = tx.clone();
            async move {
                let mut buf = vec![0u8; 32 * 1024];
                while let Ok(n) = fdio::read(&fifo, &mut buf).await {
                    if n == 0 || tx.send((kind, buf[..n].to_vec())).await.is_err() {
                        break;
                    }
                }
            }
        });
        let pumps = futures_join_all(pumps.collect());
        drop(tx);
        let output = async {
            let (_, status, _) = tokio::join!(pumps, waiter.wait(&self.id, exec_id), async {
                while let Some((kind, data)) = rx.recv().await {
                    if attach::write_frame(&mut w, kind, &data).await.is_err() {
                        // berthd left: keep draining so the process never blocks.
                        while rx.recv().await.is_some() {}
                    }
                }
            });
            status
        };
        let id = self.id.clone();
        let input = async {
            let mut stdin = stdin;
            while let Ok(Some((kind, data))) = attach::read_frame(&mut r).await {
                match kind {
                    attach::STDIN => {
                        if let Some(s) = &stdin {
                            let _ = fdio::write_all(s, &data).await;
                        }
                    }
                    attach::STDIN_CLOSE => {
                        if let Some(s) = stdin.take() {
                            if tty {
                                let _ = fdio::write_all(&s, b"\x04").await;
                            }
                            drop(s);
                            if let Ok(mut c) = task.client().await {
                                if let Err(e) = c.close_stdin(&id, exec_id).await {
                                    log!("exec {exec_id}: closing stdin: {e}");
                                }
                            }
                        }
                    }
                    attach::RESIZE if data.len() == 4 => {
                        let (width, height) = (
                            u16::from_be_bytes([data[0], data[1]]),
                            u16::from_be_bytes([data[2], data[3]]),
                        );
                        if let Ok(mut c) = task.client().await {
                            let _ = c.resize(&id, exec_id, width.into(), height.into()).await;
                        }
                    }
                    _ => {}
                }
            }
        };
        let mut output = Box::pin(output);
        let status = tokio::select! {
            status = &mut output => status,
            _ = input => {
                // berthd left before the end: the process goes too.
                if let Ok(mut c) = task.client().await {
                    let _ = c.kill(&self.id, exec_id, 9, false).await;
                }
                let _ = tokio::time::timeout(Duration::from_secs(5), &mut output).await;
                return;
            }
        };
        drop(output);
        let code = match status {
            Ok(s) => s as i32,
            Err(e) => {
                log!("exec {exec_id}: waiting through the shim v2: {e}");
                255
            }
        };
        let _ = attach::write_frame(&mut w, attach::EXIT, &code.to_be_bytes()).await;
        let _ = w.shutdown().await;
    }
}

/// Runs every future to its end (one task, no spawning).
async fn futures_join_all<F: std::future::Future<Output = ()>>(futures: Vec<F>) {
    let mut futures: Vec<_> = futures.into_iter().map(Box::pin).collect();
    std::future::poll_fn(move |cx| {
        futures.retain_mut(|f| f.as_mut().poll(cx).is_pending());
        if futures.is_empty() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await
}
