//! `runc create` with the container's stdio: pipes, or a terminal received over the
//! console socket; runc's own error when it fails.

use super::*;

pub(super) async fn create(args: &Args, runc: &Runc, reaper: &Reaper) -> Result<Container, String> {
    let io_err = |what: &str, e: io::Error| format!("{what}: {e}");
    let spawn_err = |e: io::Error| format!("{}: {e}", runc.bin.display());
    let mut cmd = runc.command();
    cmd.arg("create")
        .arg("--bundle")
        .arg(&args.bundle)
        .arg("--pid-file")
        .arg(args.bundle.join(INIT_PID_FILE));
    // runc's stderr: the container's stderr without a tty, only runc's errors with one.
    let (err_r, err_w) = fdio::pipe().map_err(|e| io_err("pipe", e))?;
    let err_rx = fdio::receiver(err_r).map_err(|e| io_err("pipe", e))?;
    let (outputs, stdin, console) = if args.tty {
        let console = UnixListener::bind(CONSOLE_SOCKET).map_err(|e| io_err(CONSOLE_SOCKET, e))?;
        // Relative: runc resolves it in the bundle directory, where it also runs; this
        // keeps long bundle paths clear of the 108-byte socket path limit.
        cmd.arg("--console-socket").arg(CONSOLE_SOCKET).arg(&args.id);
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(err_w);
        let (_, mut exited) = fdio::spawn(cmd, reaper).map_err(spawn_err)?;
        let (master, code) = {
            let recv = async {
                let (stream, _) = console.accept().await?;
                recv_fd(&stream).await
            };
            tokio::pin!(recv);
            tokio::select! {
                m = &mut recv => (Some(m), (&mut exited).await),
                c = &mut exited => (tokio::time::timeout(Duration::from_secs(1), &mut recv).await.ok(), c),
            }
        };
        drop(console);
        let _ = std::fs::remove_file(CONSOLE_SOCKET);
        let code = code.unwrap_or(-1);
        if code != 0 {
            return Err(create_error(&err_rx, code).await);
        }
        let master = match master {
            Some(Ok(fd)) => fd,
            Some(Err(e)) => return Err(format!("receiving the console from runc: {e}")),
            None => return Err("runc create sent no console".into()),
        };
        let console = rustix::io::fcntl_dupfd_cloexec(&master, 3).map_err(|e| io_err("dup", e.into()))?;
        let stdin = if args.stdin {
            let dup = rustix::io::fcntl_dupfd_cloexec(&master, 3).map_err(|e| io_err("dup", e.into()))?;
            Some(StdinSink {
                tx: fdio::sender(dup).map_err(|e| io_err("console", e))?,
                pty: true,
            })
        } else {
            None
        };
        (
            vec![("stdout", fdio::receiver(master).map_err(|e| io_err("console", e))?)],
            stdin,
            Some(console),
        )
    } else {
        let (out_r, out_w) = fdio::pipe().map_err(|e| io_err("pipe", e))?;
        let (stdin_keep, stdin_child) = if args.stdin {
            let (r, w) = fdio::pipe().map_err(|e| io_err("pipe", e))?;
            (Some(w), Stdio::from(r))
        } else {
            (None, Stdio::null())
        };
        cmd.arg(&args.id).stdin(stdin_child).stdout(out_w).stderr(err_w);
        let (_, exited) = fdio::spawn(cmd, reaper).map_err(spawn_err)?;
        let code = exited.await.unwrap_or(-1);
        if code != 0 {
            return Err(create_error(&err_rx, code).await);
        }
        let out_rx = fdio::receiver(out_r).map_err(|e| io_err("pipe", e))?;
        let stdin = match stdin_keep {
            Some(w) => Some(StdinSink {
                tx: fdio::sender(w).map_err(|e| io_err("pipe", e))?,
                pty: false,
            }),
            None => None,
        };
        (vec![("stdout", out_rx), ("stderr", err_rx)], stdin, None)
    };
    let init_pid = read_pid(INIT_PID_FILE).ok_or_else(|| format!("runc create left no readable {INIT_PID_FILE}"))?;
    // Registered before any await: an init that already died is in the reaper's
    // unclaimed list and is reported at once.
    let init_exit = reaper.watch(init_pid);
    Ok(Container {
        init_pid,
        init_exit,
        outputs,
        stdin,
        console,
    })
}

/// What runc printed on a failed create (it exits, so its stderr reaches EOF).
pub(super) async fn create_error(err_rx: &Receiver, code: i32) -> String {
    let mut stderr = Vec::new();
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, fdio::read_capped(err_rx, 16 * 1024, &mut stderr)).await;
    error_text(&stderr, &format!("runc create exited with {code}"))
}

/// The pty master runc sends over the console socket (SCM_RIGHTS).
pub(super) async fn recv_fd(stream: &UnixStream) -> io::Result<OwnedFd> {
    loop {
        stream.readable().await?;
        let got = stream.try_io(Interest::READABLE, || {
            let mut name = [0u8; 4096];
            let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
            let mut control = RecvAncillaryBuffer::new(&mut space);
            let msg = recvmsg(
                stream,
                &mut [IoSliceMut::new(&mut name)],
                &mut control,
                RecvFlags::CMSG_CLOEXEC,
            )?;
            let mut fd = None;
            for m in control.drain() {
                if let RecvAncillaryMessage::ScmRights(mut fds) = m {
                    fd = fd.or_else(|| fds.next());
                }
            }
            match fd {
                Some(fd) => Ok(fd),
                None if msg.bytes == 0 => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "console socket closed")),
                None => Err(io::Error::other("no file descriptor in the console message")),
            }
        });
        match got {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            other => return other,
        }
    }
}
