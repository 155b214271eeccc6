//! Pseudo-terminals for exec with a tty: berthd keeps the master, the OCI runtime gets the
//! slave as its stdio (and builds the container's own console from it).

#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;

use rustix::fs::{Mode, OFlags};
use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
use rustix::termios::{tcgetattr, tcsetattr, tcsetwinsize, OptionalActions, Winsize};

/// A pty pair: `master` for berthd, `slave` for the child's stdio.
pub struct Pty {
    pub master: OwnedFd,
    pub slave: File,
}

/// Opens a new pty pair with the slave in raw mode (bytes pass through untouched: the
/// container's own console does the line discipline).
pub fn open() -> io::Result<Pty> {
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
    grantpt(&master)?;
    unlockpt(&master)?;
    let name = ptsname(&master, Vec::new())?;
    let slave = rustix::fs::open(
        name.as_c_str(),
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut attrs = tcgetattr(&slave)?;
    attrs.make_raw();
    tcsetattr(&slave, OptionalActions::Now, &attrs)?;
    Ok(Pty {
        master,
        slave: File::from(slave),
    })
}

/// Sets the window size seen through the pty (the kernel signals SIGWINCH to the slave's
/// foreground process group, if it has one).
pub fn resize(fd: &impl std::os::fd::AsFd, width: u16, height: u16) -> io::Result<()> {
    tcsetwinsize(
        fd,
        Winsize {
            ws_row: height,
            ws_col: width,
            ws_xpixel: 0,
            ws_ypixel: 0,
        },
    )?;
    Ok(())
}

/// A pty master in non-blocking mode, driven by tokio.
pub struct AsyncPty {
    fd: tokio::io::unix::AsyncFd<OwnedFd>,
}

impl AsyncPty {
    pub fn new(fd: OwnedFd) -> io::Result<AsyncPty> {
        let flags = rustix::fs::fcntl_getfl(&fd)?;
        rustix::fs::fcntl_setfl(&fd, flags | OFlags::NONBLOCK)?;
        // SAFETY: the OwnedFd is moved into the AsyncFd, which deregisters it before the
        // fd is closed on drop; nothing else holds or closes this fd meanwhile.
        let fd = unsafe { tokio::io::unix::AsyncFd::register(fd) }?;
        Ok(AsyncPty { fd })
    }

    pub fn resize(&self, width: u16, height: u16) -> io::Result<()> {
        resize(self.fd.get_ref(), width, height)
    }
}

/// Reads the pty's output; end of file once every slave fd is closed (EIO).
pub struct PtyReader(pub std::sync::Arc<AsyncPty>);
/// Writes the pty's input.
pub struct PtyWriter(pub std::sync::Arc<AsyncPty>);

impl tokio::io::AsyncRead for PtyReader {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        use std::task::Poll;
        loop {
            let mut guard = std::task::ready!(self.0.fd.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match guard.try_io(|fd| rustix::io::read(fd.get_ref(), &mut *unfilled).map_err(io::Error::from)) {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) if e.raw_os_error() == Some(rustix::io::Errno::IO.raw_os_error()) => {
                    return Poll::Ready(Ok(()))
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl tokio::io::AsyncWrite for PtyWriter {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        loop {
            let mut guard = std::task::ready!(self.0.fd.poll_write_ready(cx))?;
            match guard.try_io(|fd| rustix::io::write(fd.get_ref(), data).map_err(io::Error::from)) {
                Ok(r) => return std::task::Poll::Ready(r),
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_flush(self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn raw_pty_passes_bytes_and_sizes() {
        let pty = open().expect("openpty");
        resize(&pty.master, 120, 40).expect("resize");
        let size = rustix::termios::tcgetwinsize(&pty.slave).expect("size");
        assert_eq!((size.ws_col, size.ws_row), (120, 40));
        let mut master = File::from(pty.master);
        master.write_all(b"a\rb\n").expect("write");
        let mut slave = pty.slave;
        let mut buf = [0u8; 16];
        let n = slave.read(&mut buf).expect("read");
        // Raw mode: no CR-to-NL translation, no line buffering.
        assert_eq!(&buf[..n], b"a\rb\n");
    }
}
