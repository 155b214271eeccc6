//! Non-blocking pipes and ptys on the tokio reactor, and spawning children whose exit the
//! reaper reports.

use std::io;
use std::os::fd::OwnedFd;
use std::process::Command;

use rustix::io::Errno;
use rustix::pipe::{pipe_with, PipeFlags};
use tokio::net::unix::pipe::{Receiver, Sender};
use tokio::sync::oneshot;

use crate::reaper::Reaper;

/// A pipe (read end, write end), both close-on-exec.
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(pipe_with(PipeFlags::CLOEXEC)?)
}

/// A read end (pipe or pty master) on the reactor, in non-blocking mode.
pub fn receiver(fd: OwnedFd) -> io::Result<Receiver> {
    rustix::io::ioctl_fionbio(&fd, true)?;
    Receiver::from_owned_fd_unchecked(fd)
}

/// A write end (pipe or pty master) on the reactor, in non-blocking mode.
pub fn sender(fd: OwnedFd) -> io::Result<Sender> {
    rustix::io::ioctl_fionbio(&fd, true)?;
    Sender::from_owned_fd_unchecked(fd)
}

/// One read; 0 at EOF. EIO (a pty master whose slave side is all closed) counts as EOF.
pub async fn read(rx: &Receiver, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        rx.readable().await?;
        match rx.try_read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.raw_os_error() == Some(Errno::IO.raw_os_error()) => return Ok(0),
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => continue,
            Err(e) => return Err(e),
        }
    }
}

pub async fn write_all(tx: &Sender, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        tx.writable().await?;
        match tx.try_write(data) {
            Ok(n) => data = &data[n..],
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads to EOF keeping at most `max` bytes in `out`; the rest is read and dropped.
pub async fn read_capped(rx: &Receiver, max: usize, out: &mut Vec<u8>) -> io::Result<()> {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = read(rx, &mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        let keep = n.min(max.saturating_sub(out.len()));
        out.extend_from_slice(&buf[..keep]);
    }
}

/// Spawns `cmd` and registers its pid with the reaper before anything else can run, so
/// its exit cannot be missed. The `Command` (and the pipe ends it holds) is consumed, so
/// the parent's copies of the child's stdio are closed once this returns.
pub fn spawn(mut cmd: Command, reaper: &Reaper) -> io::Result<(i32, oneshot::Receiver<i32>)> {
    let child = cmd.spawn()?;
    drop(cmd);
    let pid = child.id() as i32;
    // Never `wait` on the Child: the reaper owns every exit status (waitpid(-1)).
    drop(child);
    Ok((pid, reaper.watch(pid)))
}
