//! Byte streams over gRPC: a blocking writer whose bytes leave as stream messages (tar
//! archives written on a blocking thread), and a blocking reader over a client stream's
//! chunks (tar archives read on one).

use std::io::{self, Read, Write};

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use crate::cri::BoxStream;
use crate::error::Error;

/// Bytes per streamed message.
pub const CHUNK: usize = 1 << 20;

/// Runs `write` on a blocking thread with a writer whose bytes become messages made by
/// `wrap`; a failure becomes the stream's last item, `what` naming the work.
pub fn stream_from_writer<T: Send + 'static>(
    what: &'static str,
    wrap: fn(Vec<u8>) -> T,
    write: impl FnOnce(&mut ChunkWriter<T>) -> io::Result<()> + Send + 'static,
) -> BoxStream<T> {
    let (tx, rx) = mpsc::channel::<Result<T, Status>>(4);
    tokio::task::spawn_blocking(move || {
        let mut out = ChunkWriter {
            tx: tx.clone(),
            wrap,
            buf: Vec::with_capacity(CHUNK),
        };
        let result = write(&mut out).and_then(|()| out.flush());
        if let Err(e) = result {
            if e.kind() != io::ErrorKind::BrokenPipe {
                let _ = tx.blocking_send(Err(Status::from(Error::Internal(format!("{what}: {e}")))));
            }
        }
    });
    Box::pin(ReceiverStream::new(rx))
}

/// Sends what is written as messages of [`CHUNK`] bytes; a gone client is a broken pipe.
pub struct ChunkWriter<T> {
    tx: mpsc::Sender<Result<T, Status>>,
    wrap: fn(Vec<u8>) -> T,
    buf: Vec<u8>,
}

impl<T> ChunkWriter<T> {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let data = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .blocking_send(Ok((self.wrap)(data)))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

impl<T> Write for ChunkWriter<T> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// Reads, on a blocking thread, the chunks an async task passes in; a closed channel is
/// the end of the data, an `Err` chunk a failed read.
pub struct ChunkReader {
    pub rx: mpsc::Receiver<io::Result<Vec<u8>>>,
    pub buf: Vec<u8>,
    pub pos: usize,
}

impl Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.buf.len() {
            match self.rx.blocking_recv() {
                Some(chunk) => {
                    self.buf = chunk?;
                    self.pos = 0;
                }
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
