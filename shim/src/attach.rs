//! Attach: live copies of the container's output for attached clients, and their input.
//!
//! After `{"op":"attach",...}` is answered `{"ok":true}`, the connection carries frames,
//! `[kind: u8][length: u32 big-endian][payload]`:
//! - shim to berthd: [`STDOUT`], [`STDERR`] (output), then [`EXIT`] once the container has
//!   stopped and its output is drained, and the connection closes. A connection that
//!   closes without [`EXIT`] fell behind (its buffer filled) and was dropped.
//! - berthd to shim: [`STDIN`] data, [`STDIN_CLOSE`], [`RESIZE`] (payload: width and
//!   height, u16 big-endian each).
//!
//! Output is copied to each attacher through a bounded queue: a client that stops reading
//! is cut off instead of growing the shim's memory or slowing the log.

use std::cell::{Cell, RefCell};

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::sync::mpsc;

pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
pub const EXIT: u8 = 3;
pub const RESIZE: u8 = 4;
pub const STDIN_CLOSE: u8 = 5;

/// Largest frame payload accepted from berthd.
pub const MAX_FRAME: usize = 1 << 20;
/// Output chunks queued per attacher before it is cut off.
const QUEUE: usize = 256;

/// An attacher's queue of output chunks, each tagged [`STDOUT`] or [`STDERR`].
pub type Queue = mpsc::Receiver<(u8, Vec<u8>)>;

struct Subscriber {
    id: u64,
    stdout: bool,
    stderr: bool,
    tx: mpsc::Sender<(u8, Vec<u8>)>,
}

/// The attached clients of one container.
#[derive(Default)]
pub struct Hub {
    subs: RefCell<Vec<Subscriber>>,
    next: Cell<u64>,
    closed: Cell<bool>,
}

impl Hub {
    /// A new attacher's queue; `None` once the container's output has ended.
    pub fn subscribe(&self, stdout: bool, stderr: bool) -> Option<(u64, Queue)> {
        if self.closed.get() {
            return None;
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        let id = self.next.get() + 1;
        self.next.set(id);
        self.subs.borrow_mut().push(Subscriber { id, stdout, stderr, tx });
        Some((id, rx))
    }

    pub fn unsubscribe(&self, id: u64) {
        self.subs.borrow_mut().retain(|s| s.id != id);
    }

    /// Copies output to every attacher that wants this stream; full queues are cut off.
    pub fn publish(&self, kind: u8, data: &[u8]) {
        let mut subs = self.subs.borrow_mut();
        if subs.is_empty() {
            return;
        }
        subs.retain(|s| {
            let wants = if kind == STDOUT { s.stdout } else { s.stderr };
            !wants || s.tx.try_send((kind, data.to_vec())).is_ok()
        });
    }

    /// The output has ended: every queue closes after what it holds.
    pub fn close(&self) {
        self.closed.set(true);
        self.subs.borrow_mut().clear();
    }

    /// Whether [`Hub::close`] was called (an ended queue then means the container exited).
    pub fn is_closed(&self) -> bool {
        self.closed.get()
    }
}

pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, kind: u8, payload: &[u8]) -> std::io::Result<()> {
    let mut head = [0u8; 5];
    head[0] = kind;
    head[1..].copy_from_slice(&(payload.len() as u32).to_be_bytes());
    w.write_all(&head).await?;
    w.write_all(payload).await
}

/// The next frame; `None` at a clean end of stream.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<Option<(u8, Vec<u8>)>> {
    let mut head = [0u8; 5];
    match r.read_exact(&mut head).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("attach frame of {len} bytes"),
        ));
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).await?;
    Ok(Some((head[0], payload)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip() {
        let mut buf = Vec::new();
        write_frame(&mut buf, STDOUT, b"hello").await.expect("write");
        write_frame(&mut buf, EXIT, b"").await.expect("write");
        let mut r = &buf[..];
        assert_eq!(
            read_frame(&mut r).await.expect("read"),
            Some((STDOUT, b"hello".to_vec()))
        );
        assert_eq!(read_frame(&mut r).await.expect("read"), Some((EXIT, vec![])));
        assert_eq!(read_frame(&mut r).await.expect("read"), None);
        let huge = [STDIN, 0xff, 0xff, 0xff, 0xff];
        assert!(read_frame(&mut &huge[..]).await.is_err());
    }

    #[tokio::test]
    async fn slow_attachers_are_cut_off_and_others_get_their_streams() {
        let hub = Hub::default();
        let (_, mut only_err) = hub.subscribe(false, true).expect("sub");
        let (_, slow) = hub.subscribe(true, true).expect("sub");
        for _ in 0..QUEUE + 1 {
            hub.publish(STDOUT, b"x");
        }
        hub.publish(STDERR, b"e");
        assert_eq!(hub.subs.borrow().len(), 1, "the full queue was cut off");
        assert_eq!(only_err.recv().await, Some((STDERR, b"e".to_vec())));
        drop(slow);
        hub.close();
        assert_eq!(only_err.recv().await, None);
        assert!(hub.subscribe(true, true).is_none());
    }
}
