//! A small async client for the shim API (tokio, any runtime flavor).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;

use crate::api::{Request, Response};

#[derive(Debug)]
pub enum ClientError {
    /// No shim listening (socket missing or refused): read `exit.json` instead.
    Gone {
        path: PathBuf,
        source: io::Error,
    },
    Io(io::Error),
    /// The shim closed the connection without answering.
    Closed,
    Timeout(Duration),
    /// A line that is not a response.
    Protocol(String),
    /// The shim answered `{"error": ...}`.
    Shim(String),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Gone { path, source } => write!(f, "shim at {} is gone: {source}", path.display()),
            ClientError::Io(e) => write!(f, "shim connection: {e}"),
            ClientError::Closed => f.write_str("shim closed the connection"),
            ClientError::Timeout(t) => write!(f, "shim call timed out after {t:?}"),
            ClientError::Protocol(m) => write!(f, "bad shim response: {m}"),
            ClientError::Shim(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Gone { source, .. } | ClientError::Io(source) => Some(source),
            _ => None,
        }
    }
}

/// One connection to a shim; calls on it are sequential.
#[derive(Debug)]
pub struct ShimClient {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    line: String,
}

impl ShimClient {
    pub async fn connect(path: impl AsRef<Path>) -> Result<Self, ClientError> {
        let path = path.as_ref();
        let stream = UnixStream::connect(path).await.map_err(|source| ClientError::Gone {
            path: path.to_path_buf(),
            source,
        })?;
        let (r, w) = stream.into_split();
        Ok(ShimClient {
            reader: BufReader::new(r),
            writer: w,
            line: String::new(),
        })
    }

    /// Sends one request and reads its response. `{"error":...}` becomes
    /// [`ClientError::Shim`]. After a timeout the connection should be dropped.
    pub async fn call(&mut self, req: &Request, timeout: Duration) -> Result<Response, ClientError> {
        match tokio::time::timeout(timeout, self.call_inner(req)).await {
            Ok(r) => r,
            Err(_) => Err(ClientError::Timeout(timeout)),
        }
    }

    /// The connection's halves, for a request after which it carries a stream of its own
    /// (attach); the reader keeps whatever the shim sent after its answer.
    pub fn into_parts(self) -> (BufReader<OwnedReadHalf>, OwnedWriteHalf) {
        (self.reader, self.writer)
    }

    async fn call_inner(&mut self, req: &Request) -> Result<Response, ClientError> {
        let mut line = serde_json::to_vec(req).map_err(|e| ClientError::Protocol(e.to_string()))?;
        line.push(b'\n');
        self.writer.write_all(&line).await.map_err(ClientError::Io)?;
        self.line.clear();
        if self.reader.read_line(&mut self.line).await.map_err(ClientError::Io)? == 0 {
            return Err(ClientError::Closed);
        }
        match serde_json::from_str(&self.line) {
            Ok(Response::Error { error }) => Err(ClientError::Shim(error)),
            Ok(r) => Ok(r),
            Err(e) => Err(ClientError::Protocol(format!("{e}: {}", self.line.trim_end()))),
        }
    }
}

/// Connects, makes one call, and disconnects.
pub async fn call(path: impl AsRef<Path>, req: &Request, timeout: Duration) -> Result<Response, ClientError> {
    let connect = async {
        let mut c = ShimClient::connect(path).await?;
        c.call(req, timeout).await
    };
    match tokio::time::timeout(timeout, connect).await {
        Ok(r) => r,
        Err(_) => Err(ClientError::Timeout(timeout)),
    }
}
