//! ttrpc, the wire of containerd's shim v2 Task API and of the Events service shims
//! publish to: a client (one call at a time on a connection) and a server loop.
//!
//! A frame is a 10-byte header (payload length u32 BE, stream id u32 BE, type u8, flags
//! u8) and at most 4 MiB of protobuf. A request (type 1) carries [`Request`]; the answer
//! (type 2) on the same stream id carries [`Response`]. Clients use odd stream ids.

use std::fmt;
use std::io;
use std::path::Path;
use std::time::Duration;

use prost::Message;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::UnixStream;

pub const MAX_PAYLOAD: usize = 4 << 20;
const HEADER: usize = 10;
const TYPE_REQUEST: u8 = 1;
const TYPE_RESPONSE: u8 = 2;
/// gRPC status codes the callers tell apart.
pub const CODE_NOT_FOUND: i32 = 5;
pub const CODE_UNIMPLEMENTED: i32 = 12;

#[derive(Clone, PartialEq, Message)]
pub struct Request {
    #[prost(string, tag = "1")]
    pub service: String,
    #[prost(string, tag = "2")]
    pub method: String,
    #[prost(bytes = "vec", tag = "3")]
    pub payload: Vec<u8>,
    #[prost(int64, tag = "4")]
    pub timeout_nano: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct Response {
    #[prost(message, optional, tag = "1")]
    pub status: Option<Status>,
    #[prost(bytes = "vec", tag = "2")]
    pub payload: Vec<u8>,
}

/// `google.rpc.Status` without its details.
#[derive(Clone, PartialEq, Message)]
pub struct Status {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

#[derive(Debug)]
pub enum Error {
    Io(io::Error),
    /// The peer answered with a non-OK status.
    Status {
        code: i32,
        message: String,
    },
    Protocol(String),
    Timeout(Duration),
}

impl Error {
    pub fn code(&self) -> Option<i32> {
        match self {
            Error::Status { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The peer is not there (no socket, refused, or the connection broke).
    pub fn is_gone(&self) -> bool {
        use io::ErrorKind::*;
        matches!(self, Error::Io(e) if matches!(
            e.kind(),
            NotFound | ConnectionRefused | ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof
        ))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "{e}"),
            Error::Status { code, message } => write!(f, "{message} (code {code})"),
            Error::Protocol(m) => write!(f, "protocol error: {m}"),
            Error::Timeout(t) => write!(f, "no answer within {t:?}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

pub struct Frame {
    pub stream: u32,
    pub kind: u8,
    pub payload: Vec<u8>,
}

pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<Frame> {
    let mut h = [0u8; HEADER];
    r.read_exact(&mut h).await?;
    let len = u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as usize;
    if len > MAX_PAYLOAD {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("ttrpc frame of {len} bytes"),
        ));
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).await?;
    Ok(Frame {
        stream: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
        kind: h[8],
        payload,
    })
}

pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, stream: u32, kind: u8, payload: &[u8]) -> io::Result<()> {
    if payload.len() > MAX_PAYLOAD {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("ttrpc payload of {} bytes", payload.len()),
        ));
    }
    let mut frame = Vec::with_capacity(HEADER + payload.len());
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(&stream.to_be_bytes());
    frame.extend_from_slice(&[kind, 0]);
    frame.extend_from_slice(payload);
    w.write_all(&frame).await?;
    w.flush().await
}

/// A client connection; calls on it are made one after the other.
pub struct Client {
    stream: UnixStream,
    next: u32,
}

impl Client {
    /// `path` may carry containerd's `unix://` prefix.
    pub async fn connect(path: &Path) -> Result<Client, Error> {
        let path = path
            .to_str()
            .and_then(|p| p.strip_prefix("unix://"))
            .map_or(path, Path::new);
        Ok(Client {
            stream: UnixStream::connect(path).await?,
            next: 1,
        })
    }

    /// One call; with a timeout the peer is told it too. A late answer to a call that
    /// timed out is skipped by the next call (stream ids differ).
    pub async fn call<Q: Message, A: Message + Default>(
        &mut self,
        service: &str,
        method: &str,
        request: &Q,
        timeout: Option<Duration>,
    ) -> Result<A, Error> {
        let id = self.next;
        self.next = self.next.wrapping_add(2);
        let req = Request {
            service: service.into(),
            method: method.into(),
            payload: request.encode_to_vec(),
            timeout_nano: timeout.map_or(0, |t| t.as_nanos().min(i64::MAX as u128) as i64),
        };
        let stream = &mut self.stream;
        let exchange = async move {
            write_frame(stream, id, TYPE_REQUEST, &req.encode_to_vec()).await?;
            loop {
                let f = read_frame(stream).await?;
                if f.stream != id || f.kind != TYPE_RESPONSE {
                    continue;
                }
                let resp = Response::decode(f.payload.as_slice()).map_err(|e| Error::Protocol(e.to_string()))?;
                if let Some(s) = resp.status.filter(|s| s.code != 0) {
                    return Err(Error::Status {
                        code: s.code,
                        message: s.message,
                    });
                }
                return A::decode(resp.payload.as_slice()).map_err(|e| Error::Protocol(e.to_string()));
            }
        };
        match timeout {
            Some(t) => tokio::time::timeout(t, exchange).await.map_err(|_| Error::Timeout(t))?,
            None => exchange.await,
        }
    }
}

/// Serves one connection until the peer closes it: each request is answered with what
/// `handle(service, method, payload)` returns.
pub async fn serve<S, F>(mut stream: S, mut handle: F) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: FnMut(&str, &str, &[u8]) -> Result<Vec<u8>, Status>,
{
    loop {
        let f = match read_frame(&mut stream).await {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        };
        if f.kind != TYPE_REQUEST {
            continue;
        }
        let resp = match Request::decode(f.payload.as_slice()) {
            Ok(req) => match handle(&req.service, &req.method, &req.payload) {
                Ok(payload) => Response {
                    status: Some(Status::default()),
                    payload,
                },
                Err(status) => Response {
                    status: Some(status),
                    payload: Vec::new(),
                },
            },
            Err(e) => Response {
                status: Some(Status {
                    code: 3,
                    message: format!("bad request: {e}"),
                }),
                payload: Vec::new(),
            },
        };
        write_frame(&mut stream, f.stream, TYPE_RESPONSE, &resp.encode_to_vec()).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, PartialEq, Message)]
    struct Echo {
        #[prost(string, tag = "1")]
        text: String,
    }

    #[tokio::test]
    async fn call_and_serve() {
        let dir = std::env::temp_dir().join(format!("berth-ttrpc-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let sock = dir.join("s");
        let _ = std::fs::remove_file(&sock);
        let listener = tokio::net::UnixListener::bind(&sock).expect("bind");
        let server = tokio::spawn(async move {
            let (s, _) = listener.accept().await.expect("accept");
            serve(s, |service, method, payload| {
                if method != "Echo" {
                    return Err(Status {
                        code: CODE_UNIMPLEMENTED,
                        message: format!("{service}/{method}"),
                    });
                }
                let e = Echo::decode(payload).map_err(|e| Status {
                    code: 3,
                    message: e.to_string(),
                })?;
                Ok(Echo {
                    text: e.text.to_uppercase(),
                }
                .encode_to_vec())
            })
            .await
        });
        let addr = format!("unix://{}", sock.display());
        let mut c = Client::connect(Path::new(&addr)).await.expect("connect");
        let a: Echo = c
            .call("t.S", "Echo", &Echo { text: "hi".into() }, Some(Duration::from_secs(5)))
            .await
            .expect("echo");
        assert_eq!(a.text, "HI");
        let e = c
            .call::<_, Echo>("t.S", "Other", &Echo::default(), None)
            .await
            .expect_err("unimplemented");
        assert_eq!(e.code(), Some(CODE_UNIMPLEMENTED));
        assert!(e.to_string().contains("t.S/Other"), "{e}");
        drop(c);
        server.await.expect("join").expect("served");
        let gone = Client::connect(&dir.join("none")).await.err().expect("no socket");
        assert!(gone.is_gone());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn oversized_frames_are_refused() {
        let mut header = Vec::new();
        header.extend_from_slice(&((MAX_PAYLOAD as u32) + 1).to_be_bytes());
        header.extend_from_slice(&[0, 0, 0, 1, 1, 0]);
        let e = read_frame(&mut header.as_slice()).await.err().expect("refused");
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }
}
