//! End-to-end: a masked-frame client over `tokio::io::duplex` against `serve`.

use std::time::Duration;

use super::channel::{self, Inbound, Protocol};
use super::frame::{self, Frame, OpCode};
use super::{serve, Message, Options, WsError, WsReader, WsWriter};
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::time::timeout;

const MASK: [u8; 4] = [0x12, 0x34, 0x56, 0x78];
const WAIT: Duration = Duration::from_secs(3);

struct Client {
    io: DuplexStream,
    buf: BytesMut,
}

impl Client {
    async fn send_raw(&mut self, frame: &Frame, mask: Option<[u8; 4]>) {
        let mut b = BytesMut::new();
        frame::encode(frame, mask, &mut b);
        self.io.write_all(&b).await.expect("client write");
    }

    async fn send(&mut self, fin: bool, opcode: OpCode, payload: &[u8]) {
        let f = Frame {
            fin,
            opcode,
            payload: Bytes::copy_from_slice(payload),
        };
        self.send_raw(&f, Some(MASK)).await;
    }

    /// Next server frame, `None` on EOF.
    async fn recv(&mut self) -> Option<Frame> {
        loop {
            if let Some(f) = frame::decode(&mut self.buf, 1 << 24, false).expect("server frame valid") {
                return Some(f);
            }
            let n = timeout(WAIT, self.io.read_buf(&mut self.buf))
                .await
                .expect("server answered")
                .expect("read");
            if n == 0 {
                return None;
            }
        }
    }

    async fn expect_close(&mut self, code: u16) {
        let f = self.recv().await.expect("close frame");
        assert_eq!(f.opcode, OpCode::Close);
        let (got, _) = frame::parse_close(&f.payload)
            .expect("valid close")
            .expect("has a code");
        assert_eq!(got, code);
    }
}

fn setup(opts: Options, pipe: usize) -> (Client, WsReader, WsWriter) {
    let (server_io, client_io) = tokio::io::duplex(pipe);
    let (reader, writer) = serve(server_io, opts);
    (
        Client {
            io: client_io,
            buf: BytesMut::new(),
        },
        reader,
        writer,
    )
}

async fn next(reader: &mut WsReader) -> Option<Result<Message, WsError>> {
    timeout(WAIT, reader.next()).await.expect("reader answered")
}

async fn wait_closed(writer: &WsWriter) {
    timeout(WAIT, async {
        while !writer.is_closed() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("writer task ended");
    assert!(writer.send(Message::Text("late".into())).await.is_err());
}

/// No task of this connection is left on the (per-test) runtime.
async fn no_tasks_left() {
    let metrics = tokio::runtime::Handle::current().metrics();
    timeout(WAIT, async {
        while metrics.num_alive_tasks() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("all tasks ended");
}

#[tokio::test]
async fn messages_ping_and_client_close() {
    let (mut client, mut reader, writer) = setup(Options::default(), 64 * 1024);
    // Fragmented text with a ping between the fragments, then a binary message.
    client.send(false, OpCode::Text, b"Hel").await;
    client.send(true, OpCode::Ping, b"are you there").await;
    client.send(false, OpCode::Continuation, "lo, ".as_bytes()).await;
    client.send(true, OpCode::Continuation, "wörld".as_bytes()).await;
    client.send(true, OpCode::Binary, &[0, 1, 2, 255]).await;

    assert_eq!(
        next(&mut reader).await.expect("msg").expect("ok"),
        Message::Text("Hello, wörld".into())
    );
    let pong = client.recv().await.expect("pong");
    assert_eq!((pong.opcode, &pong.payload[..]), (OpCode::Pong, &b"are you there"[..]));
    assert_eq!(
        next(&mut reader).await.expect("msg").expect("ok"),
        Message::Binary(Bytes::from_static(&[0, 1, 2, 255]))
    );

    // Server sends, unmasked.
    writer.send(Message::Text("out".into())).await.expect("send");
    writer
        .send(Message::Binary(Bytes::from(vec![7u8; 70_000])))
        .await
        .expect("send");
    let f = client.recv().await.expect("text");
    assert_eq!((f.fin, f.opcode, &f.payload[..]), (true, OpCode::Text, &b"out"[..]));
    let f = client.recv().await.expect("binary");
    assert_eq!((f.opcode, f.payload.len()), (OpCode::Binary, 70_000));

    // Client-initiated close: echoed with the same code, reader ends.
    client
        .send(true, OpCode::Close, &frame::close_payload(4001, "bye"))
        .await;
    assert!(next(&mut reader).await.is_none());
    assert!(reader.next().await.is_none());
    client.expect_close(4001).await;
    assert!(client.recv().await.is_none(), "server shut the stream down");
    wait_closed(&writer).await;
    no_tasks_left().await;
}

#[tokio::test]
async fn server_close_handshake_flushes_queued_data() {
    let (mut client, mut reader, writer) = setup(Options::default(), 64 * 1024);
    let p = Protocol::parse("v4.channel.k8s.io").expect("known");
    writer
        .send(channel::encode(&p, channel::STDOUT, b"last words"))
        .await
        .expect("send");
    let status = channel::exit_status(&p, 0).expect("v4 status");
    writer
        .send(channel::encode(&p, channel::ERROR, &status))
        .await
        .expect("send");
    timeout(WAIT, writer.close(1000, "done")).await.expect("close returns");
    assert!(writer.send(Message::Text("after close".into())).await.is_err());

    let f = client.recv().await.expect("stdout");
    assert_eq!(&f.payload[..], b"\x01last words");
    let f = client.recv().await.expect("status");
    assert_eq!(f.payload[0], channel::ERROR);
    client.expect_close(1000).await;
    // The client answers; the reader sees the handshake complete.
    client.send(true, OpCode::Close, &frame::close_payload(1000, "")).await;
    assert!(next(&mut reader).await.is_none());
    wait_closed(&writer).await;
    no_tasks_left().await;
}

#[tokio::test]
async fn v5_channels_over_the_connection() {
    let (mut client, mut reader, writer) = setup(Options::default(), 64 * 1024);
    let p = Protocol::parse(channel::EXEC_PROTOCOLS[0]).expect("known");
    client.send(true, OpCode::Binary, b"\x00ls -l\n").await;
    let mut resize = vec![channel::RESIZE];
    resize.extend_from_slice(br#"{"Width":100,"Height":40}"#);
    client.send(true, OpCode::Binary, &resize).await;
    client.send(true, OpCode::Binary, &[255, 0]).await;
    let m = next(&mut reader).await.expect("msg").expect("ok");
    assert_eq!(
        channel::decode(&p, &m).expect("ok"),
        Inbound::Data {
            channel: 0,
            data: Bytes::from_static(b"ls -l\n")
        }
    );
    let m = next(&mut reader).await.expect("msg").expect("ok");
    match channel::decode(&p, &m).expect("ok") {
        Inbound::Data {
            channel: channel::RESIZE,
            data,
        } => assert_eq!(channel::parse_resize(&data), Some((100, 40))),
        other => panic!("unexpected {other:?}"),
    }
    let m = next(&mut reader).await.expect("msg").expect("ok");
    assert_eq!(
        channel::decode(&p, &m).expect("ok"),
        Inbound::Close {
            channel: channel::STDIN
        }
    );
    writer
        .send(channel::encode(&p, 2, &channel::port_prefix(8080)))
        .await
        .expect("send");
    assert_eq!(&client.recv().await.expect("frame").payload[..], &[2, 0x90, 0x1f]);
}

#[tokio::test]
async fn protocol_errors_close_with_codes() {
    // Unmasked client frame: 1002.
    let (mut client, mut reader, writer) = setup(Options::default(), 4096);
    client.send_raw(&Frame::new(OpCode::Text, "hi"), None).await;
    assert!(matches!(next(&mut reader).await, Some(Err(WsError::Protocol(_)))));
    assert!(reader.next().await.is_none());
    client.expect_close(1002).await;
    wait_closed(&writer).await;

    // Invalid UTF-8 across fragments: 1007.
    let (mut client, mut reader, _writer) = setup(Options::default(), 4096);
    client.send(false, OpCode::Text, &[0xe2, 0x82]).await;
    client.send(true, OpCode::Continuation, &[0x28]).await;
    assert!(matches!(next(&mut reader).await, Some(Err(WsError::InvalidUtf8))));
    client.expect_close(1007).await;

    // Too big, single frame and reassembled: 1009.
    for fragmented in [false, true] {
        let opts = Options {
            max_message: 1000,
            ..Options::default()
        };
        let (mut client, mut reader, _writer) = setup(opts, 4096);
        if fragmented {
            client.send(false, OpCode::Binary, &[1u8; 600]).await;
            client.send(true, OpCode::Continuation, &[1u8; 600]).await;
        } else {
            client.send(true, OpCode::Binary, &[1u8; 1001]).await;
        }
        assert!(matches!(next(&mut reader).await, Some(Err(WsError::TooBig(1000)))));
        client.expect_close(1009).await;
    }

    // Continuation without a message and a bad close code: 1002.
    for bad in [
        Frame::new(OpCode::Continuation, "x"),
        Frame::new(OpCode::Close, Bytes::from_static(&[0x03, 0xed])),
    ] {
        let (mut client, mut reader, _writer) = setup(Options::default(), 4096);
        client.send_raw(&bad, Some(MASK)).await;
        assert!(matches!(next(&mut reader).await, Some(Err(WsError::Protocol(_)))));
        client.expect_close(1002).await;
    }
}

#[tokio::test]
async fn idle_timeout_closes_with_1001() {
    let opts = Options {
        idle_timeout: Some(Duration::from_millis(150)),
        ..Options::default()
    };
    let (mut client, mut reader, writer) = setup(opts, 4096);
    let started = tokio::time::Instant::now();
    let pending = tokio::spawn(async move {
        let r = reader.next().await;
        (r, reader)
    });
    // Traffic keeps it alive while the reader waits.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(80)).await;
        client.send(true, OpCode::Ping, b"").await;
    }
    let (r, mut reader) = timeout(WAIT, pending).await.expect("reader answered").expect("join");
    assert!(matches!(r, Some(Err(WsError::IdleTimeout))));
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    assert!(reader.next().await.is_none());
    for _ in 0..3 {
        assert_eq!(client.recv().await.expect("pong").opcode, OpCode::Pong);
    }
    client.expect_close(1001).await;
    wait_closed(&writer).await;
    no_tasks_left().await;
}

#[tokio::test]
async fn back_pressure_bounds_the_queue() {
    let opts = Options {
        write_buffer: 2,
        ..Options::default()
    };
    let (client, mut reader, writer) = setup(opts, 1024);
    let chunk = Bytes::from(vec![0u8; 64 * 1024]);
    let mut sent = 0;
    // The client never reads: sends complete until the pipe, the writer task
    // and the queue are full, then `send` waits.
    loop {
        let send = writer.send(Message::Binary(chunk.clone()));
        match timeout(Duration::from_millis(200), send).await {
            Ok(r) => {
                r.expect("send");
                sent += 1;
                assert!(sent <= 4, "queue must stay bounded, {sent} sends completed");
            }
            Err(_) => break,
        }
    }
    assert!(sent >= 2, "the queue accepts write_buffer messages, got {sent}");
    // The peer going away releases the blocked sender with an error.
    let blocked = tokio::spawn({
        let writer = writer.clone();
        let chunk = chunk.clone();
        async move { writer.send(Message::Binary(chunk)).await }
    });
    drop(client);
    assert!(next(&mut reader).await.is_none(), "EOF ends the reader");
    let res = timeout(WAIT, blocked)
        .await
        .expect("blocked send released")
        .expect("join");
    assert!(res.is_err());
    wait_closed(&writer).await;
    no_tasks_left().await;
}

#[tokio::test]
async fn dropping_every_handle_ends_the_writer_with_close_1000() {
    let (mut client, reader, writer) = setup(Options::default(), 4096);
    drop(reader);
    drop(writer);
    client.expect_close(1000).await;
    assert!(client.recv().await.is_none());
    no_tasks_left().await;
}
