//! A minimal ttrpc (containerd's RPC over a byte stream): unary requests and responses.
//!
//! A message is a 10-byte header (length u32, stream id u32, type u8, flags u8; big-endian)
//! and a protobuf payload: a [`Request`] (type 1) or a [`Response`] (type 2). Clients use
//! odd, increasing stream ids (a ttrpc server refuses a re-used or lower one). Each side of
//! an NRI connection is a [`Client`] on one multiplexed connection and a server ([`serve`])
//! on the other.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf as _, BufMut as _, Bytes, BytesMut};
use prost::Message as _;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::host::BoxFuture;
use super::mux::MuxSender;

const HEADER: usize = 10;
const TYPE_REQUEST: u8 = 1;
const TYPE_RESPONSE: u8 = 2;
const FLAG_REMOTE_CLOSED: u8 = 1;
/// Largest ttrpc message payload read or sent (ttrpc's default limit).
pub const MAX_MESSAGE: usize = 4 << 20;

/// gRPC status codes used here.
pub mod code {
    pub const INVALID_ARGUMENT: i32 = 3;
    pub const RESOURCE_EXHAUSTED: i32 = 8;
    pub const UNIMPLEMENTED: i32 = 12;
    pub const INTERNAL: i32 = 13;
}

/// ttrpc's request envelope.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Request {
    #[prost(string, tag = "1")]
    pub service: String,
    #[prost(string, tag = "2")]
    pub method: String,
    #[prost(bytes = "bytes", tag = "3")]
    pub payload: Bytes,
    #[prost(int64, tag = "4")]
    pub timeout_nano: i64,
    #[prost(message, repeated, tag = "5")]
    pub metadata: Vec<KeyValue>,
}

/// A request metadata entry.
#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyValue {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// ttrpc's response envelope.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Response {
    #[prost(message, optional, tag = "1")]
    pub status: Option<Status>,
    #[prost(bytes = "bytes", tag = "2")]
    pub payload: Bytes,
}

/// `google.rpc.Status`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Status {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
    #[prost(message, repeated, tag = "3")]
    pub details: Vec<Any>,
}

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Any {
    #[prost(string, tag = "1")]
    pub type_url: String,
    #[prost(bytes = "bytes", tag = "2")]
    pub value: Bytes,
}

impl Status {
    pub fn new(code: i32, message: impl Into<String>) -> Status {
        Status {
            code,
            message: message.into(),
            details: Vec::new(),
        }
    }
}

/// Why a call failed.
#[derive(Debug, Clone, PartialEq)]
pub enum CallError {
    Timeout,
    Closed(String),
    Status(i32, String),
}

/// One framed ttrpc message.
struct Frame {
    stream: u32,
    typ: u8,
    payload: Bytes,
}

fn encode(stream: u32, typ: u8, payload: &[u8]) -> Bytes {
    // A unary request closes its stream at once (ttrpc's "remote closed" flag, as Go's
    // client sets it); responses carry no flags.
    let flags = if typ == TYPE_REQUEST { FLAG_REMOTE_CLOSED } else { 0 };
    let mut b = BytesMut::with_capacity(HEADER + payload.len());
    b.put_u32(payload.len() as u32);
    b.put_u32(stream);
    b.put_u8(typ);
    b.put_u8(flags);
    b.put_slice(payload);
    b.freeze()
}

/// Reassembles ttrpc messages from the byte chunks of one multiplexed connection.
struct Reader {
    rx: mpsc::UnboundedReceiver<Bytes>,
    buf: BytesMut,
}

impl Reader {
    /// The next message; `Err` when the connection ends or carries garbage.
    async fn next(&mut self) -> Result<Frame, String> {
        loop {
            if self.buf.len() >= HEADER {
                let len = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize;
                if len > MAX_MESSAGE {
                    return Err(format!("ttrpc message of {len} bytes is too large"));
                }
                if self.buf.len() >= HEADER + len {
                    let mut head = self.buf.split_to(HEADER);
                    let _len = head.get_u32();
                    let stream = head.get_u32();
                    let typ = head.get_u8();
                    let payload = self.buf.split_to(len).freeze();
                    return Ok(Frame { stream, typ, payload });
                }
            }
            match self.rx.recv().await {
                Some(chunk) => self.buf.extend_from_slice(&chunk),
                None => return Err("connection closed".into()),
            }
        }
    }
}

type Pending = Arc<Mutex<Option<HashMap<u32, oneshot::Sender<Response>>>>>;

/// The calling side of one connection.
pub struct Client {
    sender: MuxSender,
    conn: u32,
    pending: Pending,
    next: tokio::sync::Mutex<u32>,
    reader: JoinHandle<()>,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Client {
    /// A client sending on `conn` and reading its responses from `rx`.
    pub fn new(sender: MuxSender, conn: u32, rx: mpsc::UnboundedReceiver<Bytes>) -> Client {
        let pending: Pending = Arc::new(Mutex::new(Some(HashMap::new())));
        let p = pending.clone();
        let reader = tokio::spawn(async move {
            let mut reader = Reader {
                rx,
                buf: BytesMut::new(),
            };
            while let Ok(frame) = reader.next().await {
                if frame.typ != TYPE_RESPONSE {
                    continue;
                }
                let Ok(resp) = Response::decode(frame.payload) else {
                    break;
                };
                let waiter = p
                    .lock()
                    .ok()
                    .and_then(|mut m| m.as_mut().and_then(|m| m.remove(&frame.stream)));
                if let Some(w) = waiter {
                    let _ = w.send(resp);
                }
            }
            // Closed: fail the calls in flight and any later one.
            if let Ok(mut m) = p.lock() {
                m.take();
            }
        });
        Client {
            sender,
            conn,
            pending,
            next: tokio::sync::Mutex::new(1),
            reader,
        }
    }

    /// Whether the connection is known to be closed.
    pub fn is_closed(&self) -> bool {
        self.pending.lock().map(|m| m.is_none()).unwrap_or(true)
    }

    /// Calls `service/method` with an encoded request; the encoded response, or why not.
    pub async fn call(
        &self,
        service: &str,
        method: &str,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, CallError> {
        if payload.len() > MAX_MESSAGE {
            return Err(CallError::Status(
                code::RESOURCE_EXHAUSTED,
                format!(
                    "request of {} bytes is over the {MAX_MESSAGE}-byte limit",
                    payload.len()
                ),
            ));
        }
        let req = Request {
            service: service.into(),
            method: method.into(),
            payload,
            timeout_nano: i64::try_from(timeout.as_nanos()).unwrap_or(i64::MAX),
            metadata: Vec::new(),
        }
        .encode_to_vec();
        let (tx, rx) = oneshot::channel();
        let mut stream = None;
        let result = tokio::time::timeout(timeout, async {
            {
                // Stream ids go out in increasing order: allocated and queued under one lock.
                let mut next = self.next.lock().await;
                let id = *next;
                *next = next.wrapping_add(2);
                match self.pending.lock() {
                    Ok(mut m) => match m.as_mut() {
                        Some(m) => m.insert(id, tx),
                        None => return Err(CallError::Closed("connection closed".into())),
                    },
                    Err(_) => return Err(CallError::Closed("poisoned".into())),
                };
                stream = Some(id);
                let msg = encode(id, TYPE_REQUEST, &req);
                self.sender
                    .send(self.conn, msg)
                    .await
                    .map_err(|e| CallError::Closed(e.into()))?;
            }
            rx.await.map_err(|_| CallError::Closed("connection closed".into()))
        })
        .await;
        let resp = match result {
            Ok(r) => r,
            Err(_) => Err(CallError::Timeout),
        };
        if let (Err(_), Some(id)) = (&resp, stream) {
            if let Ok(mut m) = self.pending.lock() {
                if let Some(m) = m.as_mut() {
                    m.remove(&id);
                }
            }
        }
        let resp = resp?;
        match resp.status {
            Some(s) if s.code != 0 => Err(CallError::Status(s.code, s.message)),
            _ => Ok(resp.payload),
        }
    }
}

/// Serves requests: gets `(service, method, payload)`, answers the response payload.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, service: String, method: String, payload: Bytes) -> BoxFuture<'static, Result<Bytes, Status>>;
}

/// Serves the requests that arrive on `conn` (read from `rx`), one task per request, until
/// the connection closes.
pub fn serve(
    sender: MuxSender,
    conn: u32,
    rx: mpsc::UnboundedReceiver<Bytes>,
    handler: Arc<dyn Handler>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut reader = Reader {
            rx,
            buf: BytesMut::new(),
        };
        while let Ok(frame) = reader.next().await {
            if frame.typ != TYPE_REQUEST {
                continue;
            }
            let (sender, handler) = (sender.clone(), handler.clone());
            tokio::spawn(async move {
                let result = match Request::decode(frame.payload) {
                    Ok(req) => handler.handle(req.service, req.method, req.payload).await,
                    Err(e) => Err(Status::new(code::INVALID_ARGUMENT, format!("bad ttrpc request: {e}"))),
                };
                let resp = match result {
                    Ok(payload) if payload.len() > MAX_MESSAGE => Response {
                        status: Some(Status::new(code::RESOURCE_EXHAUSTED, "response over the size limit")),
                        payload: Bytes::new(),
                    },
                    Ok(payload) => Response { status: None, payload },
                    Err(status) => Response {
                        status: Some(status),
                        payload: Bytes::new(),
                    },
                };
                let _ = sender
                    .send(conn, encode(frame.stream, TYPE_RESPONSE, &resp.encode_to_vec()))
                    .await;
            });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::super::mux::{Mux, PLUGIN_CONN};
    use super::*;

    struct Echo;
    impl Handler for Echo {
        fn handle(&self, service: String, method: String, payload: Bytes) -> BoxFuture<'static, Result<Bytes, Status>> {
            Box::pin(async move {
                match method.as_str() {
                    "Echo" => Ok(payload),
                    "Sleep" => {
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        Ok(payload)
                    }
                    _ => Err(Status::new(code::UNIMPLEMENTED, format!("{service}/{method}"))),
                }
            })
        }
    }

    #[tokio::test]
    async fn calls_get_answers_errors_and_timeouts() {
        let (a, b) = tokio::net::UnixStream::pair().expect("pair");
        let ma = Mux::new(a);
        let mb = Mux::new(b);
        let client = Client::new(ma.sender.clone(), PLUGIN_CONN, ma.plugin_rx);
        let _server = serve(mb.sender.clone(), PLUGIN_CONN, mb.plugin_rx, Arc::new(Echo));
        let t = Duration::from_secs(2);
        let big = Bytes::from(vec![1u8; 3 << 20]);
        assert_eq!(client.call("s", "Echo", big.clone(), t).await, Ok(big));
        assert_eq!(
            client.call("s", "Nope", Bytes::new(), t).await,
            Err(CallError::Status(code::UNIMPLEMENTED, "s/Nope".into()))
        );
        let short = Duration::from_millis(100);
        assert_eq!(
            client.call("s", "Sleep", Bytes::new(), short).await,
            Err(CallError::Timeout)
        );
        drop(mb.tasks);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(client.is_closed());
        assert!(matches!(
            client.call("s", "Echo", Bytes::new(), t).await,
            Err(CallError::Closed(_))
        ));
    }

    #[tokio::test]
    async fn concurrent_calls_get_their_own_answers() {
        let (a, b) = tokio::net::UnixStream::pair().expect("pair");
        let ma = Mux::new(a);
        let mb = Mux::new(b);
        let client = Arc::new(Client::new(ma.sender.clone(), PLUGIN_CONN, ma.plugin_rx));
        let _server = serve(mb.sender.clone(), PLUGIN_CONN, mb.plugin_rx, Arc::new(Echo));
        let calls = (0..32u8).map(|i| {
            let client = client.clone();
            async move {
                let payload = Bytes::from(vec![i; 100 + i as usize]);
                let got = client.call("s", "Echo", payload.clone(), Duration::from_secs(5)).await;
                assert_eq!(got, Ok(payload));
            }
        });
        futures_util::future::join_all(calls).await;
    }
}
