//! Async frame reader and writer over a byte stream, each owning one header compression context.

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::frame::{decode_frame, encode_frame, Frame, FrameError, DEFAULT_MAX_PAYLOAD};
use super::header::{HeaderDecoder, HeaderEncoder};

/// Reads frames from a byte stream; owns the peer-to-us header decompression context.
pub struct FrameReader<R> {
    io: R,
    buf: BytesMut,
    decoder: HeaderDecoder,
    max_payload: usize,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub fn new(io: R) -> Self {
        Self::with_max_payload(io, DEFAULT_MAX_PAYLOAD)
    }

    pub fn with_max_payload(io: R, max_payload: usize) -> Self {
        Self {
            io,
            buf: BytesMut::with_capacity(16 * 1024),
            decoder: HeaderDecoder::new(),
            max_payload,
        }
    }

    /// Next frame, or `Ok(None)` on a clean end of stream between frames.
    /// Cancel-safe: a dropped call loses no bytes.
    pub async fn read_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        loop {
            if let Some(frame) = decode_frame(&mut self.buf, &mut self.decoder, self.max_payload)? {
                return Ok(Some(frame));
            }
            if self.buf.capacity() - self.buf.len() < 4096 {
                self.buf.reserve(16 * 1024);
            }
            if self.io.read_buf(&mut self.buf).await? == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(FrameError::UnexpectedEof)
                };
            }
        }
    }

    pub fn into_inner(self) -> R {
        self.io
    }
}

/// Writes frames to a byte stream; owns the us-to-peer header compression context.
pub struct FrameWriter<W> {
    io: W,
    buf: BytesMut,
    encoder: HeaderEncoder,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    pub fn new(io: W) -> Self {
        Self {
            io,
            buf: BytesMut::with_capacity(16 * 1024),
            encoder: HeaderEncoder::new(),
        }
    }

    /// Encodes into the internal buffer without writing; see [`FrameWriter::flush`].
    pub fn encode(&mut self, frame: &Frame) -> Result<(), FrameError> {
        encode_frame(frame, &mut self.encoder, &mut self.buf)
    }

    /// Bytes encoded but not yet written.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Writes everything buffered and flushes the underlying stream.
    pub async fn flush(&mut self) -> Result<(), FrameError> {
        self.io.write_all_buf(&mut self.buf).await?;
        self.io.flush().await?;
        Ok(())
    }

    pub async fn write_frame(&mut self, frame: &Frame) -> Result<(), FrameError> {
        self.encode(frame)?;
        self.flush().await
    }

    /// Flushes, then shuts the write side down.
    pub async fn shutdown(&mut self) -> Result<(), FrameError> {
        self.flush().await?;
        self.io.shutdown().await?;
        Ok(())
    }

    pub fn into_inner(self) -> W {
        self.io
    }
}
