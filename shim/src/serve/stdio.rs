//! The container's stdio after create: stdin writes, attach sessions, terminal resizes,
//! and the pumps that copy its output into the log and to attached clients.

use super::*;

impl Shim {
    pub(super) async fn stdin(&self, data: &str, close: bool) -> Response {
        let data = match b64::decode(data) {
            Ok(d) => d,
            Err(e) => return Response::error(format!("stdin data: {e}")),
        };
        match self.write_stdin(&data, close).await {
            Ok(()) => Response::ok(),
            Err(e) => Response::error(e),
        }
    }

    pub(super) async fn write_stdin(&self, data: &[u8], close: bool) -> Result<(), String> {
        if !self.has_stdin {
            return Err("the container was created without stdin".into());
        }
        let mut sink = self.stdin.lock().await;
        let Some(s) = sink.as_ref() else {
            return if data.is_empty() {
                Ok(())
            } else {
                Err("stdin is closed".into())
            };
        };
        fdio::write_all(&s.tx, data)
            .await
            .map_err(|e| format!("writing stdin: {e}"))?;
        if close && self.stdin_once {
            if s.pty {
                // A pty has no write end to close: send the EOF character (^D).
                let _ = fdio::write_all(&s.tx, b"\x04").await;
            }
            *sink = None;
            if let Some(t) = &self.task {
                t.close_stdin(&self.id).await;
            }
        }
        Ok(())
    }

    /// One attach session: output frames out, input frames in, until the container's
    /// output ends or berthd closes the connection.
    pub(super) async fn attach(self: Rc<Self>, r: BufReader<OwnedReadHalf>, mut w: OwnedWriteHalf, f: AttachFlags) {
        if f.stdin && !self.has_stdin {
            let _ = w
                .write_all(b"{\"error\":\"the container was created without stdin\"}\n")
                .await;
            return;
        }
        let sub = if f.stdout || f.stderr {
            self.hub.subscribe(f.stdout, f.stderr)
        } else {
            None
        };
        if w.write_all(b"{\"ok\":true}\n").await.is_err() {
            if let Some((id, _)) = sub {
                self.hub.unsubscribe(id);
            }
            return;
        }
        let hub = self.hub.clone();
        let mut stopped = self.stopped.subscribe();
        let sub_id = sub.as_ref().map(|(id, _)| *id);
        let output = async move {
            if let Some((_, mut rx)) = sub {
                while let Some((kind, data)) = rx.recv().await {
                    if attach::write_frame(&mut w, kind, &data).await.is_err() {
                        return;
                    }
                }
            } else {
                // Input only: the session still ends when the container does.
                let _ = stopped.wait_for(|s| *s).await;
            }
            if hub.is_closed() {
                let _ = attach::write_frame(&mut w, attach::EXIT, &[]).await;
            }
            let _ = w.shutdown().await;
        };
        let shim = self.clone();
        let input = async move {
            let mut r = r;
            while let Ok(Some((kind, data))) = attach::read_frame(&mut r).await {
                match kind {
                    attach::STDIN if f.stdin => {
                        if let Err(e) = shim.write_stdin(&data, false).await {
                            log!("attach: {e}");
                        }
                    }
                    attach::STDIN_CLOSE if f.stdin => {
                        let _ = shim.write_stdin(&[], true).await;
                    }
                    attach::RESIZE if data.len() == 4 => shim.resize(&data),
                    _ => {}
                }
            }
        };
        tokio::select! {
            _ = output => {}
            _ = input => {}
        }
        if let Some(id) = sub_id {
            self.hub.unsubscribe(id);
        }
        // CRI's StdinOnce: the first attach session with stdin, however it ended (a client
        // that detached or went away included), closes the container's stdin.
        if self.stdin_once && f.stdin {
            let _ = self.write_stdin(&[], true).await;
        }
    }

    pub(super) fn resize(&self, data: &[u8]) {
        let (width, height) = (
            u16::from_be_bytes([data[0], data[1]]),
            u16::from_be_bytes([data[2], data[3]]),
        );
        if let Some(t) = &self.task {
            self.resize_task(t, width, height);
        }
        if let Some(console) = self.console.borrow().as_ref() {
            let size = rustix::termios::Winsize {
                ws_row: height,
                ws_col: width,
                ws_xpixel: 0,
                ws_ypixel: 0,
            };
            if let Err(e) = rustix::termios::tcsetwinsize(console, size) {
                log!("resizing the console: {e}");
            }
        }
    }
}

/// Copies one output stream into the log until EOF.
pub(super) fn spawn_pump(
    rx: Receiver,
    stream: &'static str,
    log: Rc<RefCell<LogFile>>,
    hub: Rc<Hub>,
) -> JoinHandle<()> {
    let kind = if stream == "stderr" {
        attach::STDERR
    } else {
        attach::STDOUT
    };
    spawn_local(async move {
        let mut buf = vec![0u8; 8 * 1024];
        let mut splitter = Splitter::new(MAX_LINE);
        loop {
            let n = match fdio::read(&rx, &mut buf).await {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    log!("reading {stream}: {e}");
                    break;
                }
            };
            hub.publish(kind, &buf[..n]);
            let mut log = log.borrow_mut();
            splitter.push(&buf[..n], &mut |tag, content| log.write(stream, tag, content));
        }
        let mut log = log.borrow_mut();
        splitter.finish(&mut |tag, content| log.write(stream, tag, content));
    })
}
