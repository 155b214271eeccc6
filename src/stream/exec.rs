//! Runs an interactive exec over a [`Session`]: the process's stdio is copied to and from
//! the client's streams; when the process exits its status goes on the error stream. A
//! client that goes away kills the process.

use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

use super::session::{Input, Output, Session, Size};
use super::status::Outcome;
use crate::container::lifecycle::Containers;
use crate::runtime::exec::{self, ExecIo, ExecOptions, ProcessOverrides};
use crate::sys::pty;

/// What an Exec URL runs.
#[derive(Debug, Clone)]
pub struct ExecRequest {
    pub container_id: String,
    pub cmd: Vec<String>,
    pub tty: bool,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    /// Settings changed from the container's process (none for the CRI's Exec).
    pub overrides: ProcessOverrides,
}

const CHUNK: usize = 32 * 1024;

impl ExecRequest {
    /// What to run (stderr merges into the terminal with one).
    fn options(&self) -> ExecOptions {
        ExecOptions {
            args: self.cmd.clone(),
            tty: self.tty,
            stdin: self.stdin,
            stdout: self.stdout,
            stderr: self.stderr && !self.tty,
            overrides: self.overrides.clone(),
        }
    }
}

pub async fn run(containers: Arc<Containers>, req: ExecRequest, mut s: Session) {
    let outcome = match containers.running_target(&req.container_id).await {
        Err(e) => Outcome::Failed(e.to_string()),
        Ok((_, target)) if target.shim_v2 => match through_shim(&target, &req, &mut s).await {
            Some(outcome) => outcome,
            None => return,
        },
        Ok((_, target)) => {
            let opts = req.options();
            match exec::spawn(&target, &opts) {
                Err(e) => Outcome::Failed(format!("starting the exec: {e}")),
                Ok((mut process, io)) => {
                    let (input, resize) = (s.stdin.take(), s.resize.take());
                    let (stdout, stderr) = (s.stdout.clone(), s.stderr.clone());
                    let winch = process.winch();
                    // Input never ends the session: it is dropped once the process has
                    // exited and its output is drained.
                    let (feed, drain): (BoxFuture, BoxFuture) = match io {
                        ExecIo::Tty(master) => match pty::AsyncPty::new(master) {
                            Ok(m) => {
                                let m = Arc::new(m);
                                let feed = Box::pin(tty_input(input, resize, m.clone(), winch));
                                (feed, Box::pin(pump_out(Some(pty::PtyReader(m)), stdout)))
                            }
                            Err(_) => (Box::pin(std::future::pending()), Box::pin(async {})),
                        },
                        ExecIo::Pipes {
                            stdin,
                            stdout: out,
                            stderr: err,
                        } => {
                            let feed = Box::pin(async move {
                                pump_in(input, stdin, false).await;
                                std::future::pending::<()>().await
                            });
                            let drain = Box::pin(async move {
                                tokio::join!(pump_out(out, stdout), pump_out(err, stderr));
                            });
                            (feed, drain)
                        }
                    };
                    let mut gone = std::mem::replace(&mut s.gone, tokio::sync::mpsc::channel(1).1);
                    tokio::select! {
                        (_, status) = async { tokio::join!(drain, process.wait()) } => match status {
                            Ok(0) => Outcome::Success,
                            Ok(code) => Outcome::Exit(code),
                            Err(e) => Outcome::Failed(format!("waiting for the exec: {e}")),
                        },
                        _ = feed => Outcome::Failed("input ended the session".into()),
                        _ = gone.recv() => {
                            // The client is gone: dropping the process kills it.
                            tracing::debug!(container = %req.container_id, "exec client went away");
                            return;
                        }
                    }
                }
            }
        }
    };
    s.finish(&outcome).await;
}

/// An exec in a shim v2's container, run by its berth-shim and relayed as an attach is;
/// `None` when the client went away.
async fn through_shim(target: &exec::RuntimeTarget, req: &ExecRequest, s: &mut Session) -> Option<Outcome> {
    let opts = req.options();
    let process = match exec::process_for(target, &opts) {
        Ok(p) => p,
        Err(e) => return Some(Outcome::Failed(format!("starting the exec: {e}"))),
    };
    let request = berth_shim::api::ExecStreamRequest {
        process,
        tty: opts.tty,
        stdin: opts.stdin,
        stdout: opts.stdout,
        stderr: opts.stderr,
    };
    match crate::runtime::shim::exec_stream(&target.bundle, request).await {
        Err(e) => Some(Outcome::Failed(format!("starting the exec: {e}"))),
        Ok(attached) => super::attach::relay(attached, s).await,
    }
}

/// Client input to the process's stdin; its end closes stdin (a pty gets ^D instead).
async fn pump_in<W: AsyncWrite + Unpin>(input: Option<Input>, sink: Option<W>, tty: bool) {
    let (Some(mut input), Some(mut sink)) = (input, sink) else {
        return;
    };
    while let Some(chunk) = input.read().await {
        if sink.write_all(&chunk).await.is_err() {
            return;
        }
    }
    if tty {
        let _ = sink.write_all(b"\x04").await;
    }
    let _ = sink.shutdown().await;
}

/// The process's output to the client until EOF (a pty reports EIO once its slave closed).
async fn pump_out<R: AsyncRead + Unpin>(source: Option<R>, out: Option<Output>) {
    let Some(mut source) = source else { return };
    let mut buf = vec![0u8; CHUNK];
    loop {
        match source.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if let Some(out) = &out {
                    if out.write(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                        // Keep draining so the process never blocks on a dead client.
                        continue;
                    }
                }
            }
        }
    }
}

type BoxFuture = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Client input and resizes to the pty; never returns (dropped when the exec ends).
async fn tty_input(
    input: Option<Input>,
    resize: Option<tokio::sync::mpsc::Receiver<Size>>,
    master: Arc<pty::AsyncPty>,
    winch: exec::Winch,
) {
    let resizes = async {
        if let Some(mut rx) = resize {
            while let Some(Size { width, height }) = rx.recv().await {
                if master.resize(width, height).is_ok() {
                    winch.send();
                }
            }
        }
    };
    tokio::join!(pump_in(input, Some(pty::PtyWriter(master.clone())), true), resizes);
    std::future::pending::<()>().await
}
