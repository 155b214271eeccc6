use std::time::Duration;

use bytes::Bytes;
use tokio::io::{DuplexStream, ReadHalf, WriteHalf};
use tokio::sync::mpsc;
use tokio::time::timeout;

use super::codec::{FrameReader, FrameWriter};
use super::conn::{serve, ConnHandle, Options};
use super::frame::*;
use super::header::Headers;
use super::stream::Stream;

pub(super) const T: Duration = Duration::from_secs(5);

pub(super) struct Client {
    pub(super) r: FrameReader<ReadHalf<DuplexStream>>,
    pub(super) w: FrameWriter<WriteHalf<DuplexStream>>,
}

impl Client {
    pub(super) async fn send(&mut self, f: Frame) {
        self.w.write_frame(&f).await.unwrap();
    }

    pub(super) async fn next(&mut self) -> Option<Frame> {
        timeout(T, self.r.read_frame())
            .await
            .expect("client read timed out")
            .unwrap()
    }

    pub(super) async fn open(&mut self, id: u32, stream_type: &str) {
        let mut headers = Headers::new();
        headers.append("streamType", stream_type);
        let f = Frame::SynStream {
            stream_id: id,
            associated_to: 0,
            priority: 0,
            fin: false,
            unidirectional: false,
            headers,
        };
        self.send(f).await;
    }

    pub(super) async fn data(&mut self, id: u32, data: &[u8], fin: bool) {
        self.send(Frame::Data {
            stream_id: id,
            fin,
            data: Bytes::copy_from_slice(data),
        })
        .await;
    }

    /// Reads DATA for `id` (skipping other frames) until FIN; returns the bytes.
    pub(super) async fn read_until_fin(&mut self, id: u32) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            match self.next().await {
                Some(Frame::Data { stream_id, fin, data }) if stream_id == id => {
                    assert!(data.len() <= 32 * 1024);
                    out.extend_from_slice(&data);
                    if fin {
                        return out;
                    }
                }
                Some(_) => {}
                None => panic!("EOF before FIN"),
            }
        }
    }
}

pub(super) fn setup(opts: Options, pipe: usize) -> (Client, ConnHandle, mpsc::Receiver<Stream>) {
    let (a, b) = tokio::io::duplex(pipe);
    let (handle, streams) = serve(b, opts);
    let (r, w) = tokio::io::split(a);
    (
        Client {
            r: FrameReader::new(r),
            w: FrameWriter::new(w),
        },
        handle,
        streams,
    )
}

pub(super) async fn accept(streams: &mut mpsc::Receiver<Stream>) -> Stream {
    timeout(T, streams.recv())
        .await
        .expect("accept timed out")
        .expect("no stream")
}

pub(super) fn reply(id: u32) -> Option<Frame> {
    Some(Frame::SynReply {
        stream_id: id,
        fin: false,
        headers: Headers::new(),
    })
}

#[tokio::test]
async fn exec_like_session_with_three_streams() {
    let (mut c, handle, mut streams) = setup(Options::default(), 256 * 1024);
    for (id, ty) in [(1, "error"), (3, "stdout"), (5, "stdin")] {
        c.open(id, ty).await;
        assert_eq!(c.next().await, reply(id));
    }
    let err = accept(&mut streams).await;
    let out = accept(&mut streams).await;
    let mut inp = accept(&mut streams).await;
    assert_eq!((err.id, out.id, inp.id), (1, 3, 5));
    assert_eq!(err.headers.get("streamtype"), Some("error"));
    assert_eq!(out.headers.get("StreamType"), Some("stdout"));
    assert_eq!(inp.headers.get("streamType"), Some("stdin"));
    assert_eq!(handle.open_streams(), 3);

    c.data(5, b"hello", false).await;
    c.data(5, b"", true).await;
    assert_eq!(inp.reader.read().await.as_deref(), Some(&b"hello"[..]));
    assert_eq!(inp.reader.read().await, None);

    let payload: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
    out.writer.write(Bytes::from(payload.clone())).await.unwrap();
    out.writer.close().await;
    out.writer.close().await; // only one FIN
    assert!(out.writer.write(Bytes::from_static(b"late")).await.is_err());
    assert_eq!(c.read_until_fin(3).await, payload);

    drop(inp); // the dropped writer sends FIN for stream 5
    assert_eq!(c.read_until_fin(5).await, b"");
    err.writer.close().await;
    assert_eq!(c.read_until_fin(1).await, b"");
    c.data(1, b"", true).await;
    c.data(3, b"", true).await;
    timeout(T, async {
        while handle.open_streams() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn ping_is_echoed_and_window_updates_follow_consumption() {
    let (mut c, _handle, mut streams) = setup(Options::default(), 256 * 1024);
    c.send(Frame::Ping { id: 2 }).await; // even: an answer to a ping we never sent, ignored
    c.send(Frame::Ping { id: 7 }).await;
    assert_eq!(c.next().await, Some(Frame::Ping { id: 7 }));

    c.send(Frame::Settings {
        entries: vec![(0, 7, 65536)],
        clear: false,
    })
    .await;
    c.send(Frame::WindowUpdate {
        stream_id: 0,
        delta: 1000,
    })
    .await;
    c.open(1, "stdin").await;
    assert_eq!(c.next().await, reply(1));
    let mut s = accept(&mut streams).await;
    c.data(1, &[7; 40 * 1024], false).await;
    let mut got = 0;
    while got < 40 * 1024 {
        got += s.reader.read().await.unwrap().len();
    }
    assert_eq!(
        c.next().await,
        Some(Frame::WindowUpdate {
            stream_id: 1,
            delta: 40 * 1024
        })
    );
}

#[tokio::test]
async fn bad_ids_and_excess_streams_are_reset() {
    let opts = Options {
        max_streams: 1,
        ..Options::default()
    };
    let (mut c, handle, mut streams) = setup(opts, 256 * 1024);
    c.open(1, "stdout").await;
    assert_eq!(c.next().await, reply(1));
    let mut s1 = accept(&mut streams).await;
    c.open(3, "stdin").await;
    assert_eq!(
        c.next().await,
        Some(Frame::RstStream {
            stream_id: 3,
            status: RST_REFUSED_STREAM
        })
    );
    c.open(4, "stdin").await;
    assert_eq!(
        c.next().await,
        Some(Frame::RstStream {
            stream_id: 4,
            status: RST_PROTOCOL_ERROR
        })
    );
    c.open(1, "stdout").await;
    assert_eq!(
        c.next().await,
        Some(Frame::RstStream {
            stream_id: 1,
            status: RST_PROTOCOL_ERROR
        })
    );
    assert_eq!(timeout(T, s1.reader.read()).await.unwrap(), None);
    assert!(s1.writer.write(Bytes::from_static(b"x")).await.is_err());
    assert_eq!(handle.open_streams(), 0);
    c.open(7, "stdout").await;
    assert_eq!(c.next().await, reply(7));
    assert_eq!(accept(&mut streams).await.id, 7);
}

#[tokio::test]
async fn peer_reset_ends_reader_and_fails_writes() {
    let (mut c, _handle, mut streams) = setup(Options::default(), 256 * 1024);
    c.open(1, "stdout").await;
    assert_eq!(c.next().await, reply(1));
    let mut s = accept(&mut streams).await;
    c.send(Frame::RstStream {
        stream_id: 1,
        status: RST_CANCEL,
    })
    .await;
    assert_eq!(timeout(T, s.reader.read()).await.unwrap(), None);
    let err = s.writer.write(Bytes::from_static(b"x")).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
    s.writer.reset(RST_CANCEL).await; // no second RST goes out
    c.send(Frame::Ping { id: 1 }).await;
    assert_eq!(c.next().await, Some(Frame::Ping { id: 1 }));
}

#[tokio::test]
async fn writes_wait_when_the_peer_stops_reading() {
    let (mut c, _handle, mut streams) = setup(Options::default(), 16 * 1024);
    c.open(1, "stdout").await;
    let s = accept(&mut streams).await;
    let chunk = Bytes::from(vec![1u8; 32 * 1024]);
    let mut written = 0usize;
    let blocked = timeout(Duration::from_millis(500), async {
        for _ in 0..320 {
            s.writer.write(chunk.clone()).await.unwrap();
            written += chunk.len();
        }
    })
    .await;
    assert!(blocked.is_err(), "10 MiB were accepted although the peer reads nothing");
    assert!(
        written <= 2 * 1024 * 1024,
        "{written} bytes queued without back-pressure"
    );

    // Once the peer reads, the remaining writes go through.
    let total = written + 4 * chunk.len();
    let reading = tokio::spawn(async move {
        assert_eq!(c.next().await, reply(1));
        c.read_until_fin(1).await.len()
    });
    for _ in 0..4 {
        timeout(T, s.writer.write(chunk.clone())).await.unwrap().unwrap();
    }
    s.writer.close().await;
    // The write that timed out was cut mid-way; at most one chunk of it may also have gone out.
    let got = timeout(T, reading).await.unwrap().unwrap();
    assert!(
        got == total || got == total + chunk.len(),
        "got {got}, expected {total}"
    );
}

#[tokio::test]
async fn dropped_reader_discards_data_without_stalling() {
    let (mut c, _handle, mut streams) = setup(
        Options {
            stream_buffer: 1,
            ..Options::default()
        },
        256 * 1024,
    );
    c.open(1, "stdin").await;
    assert_eq!(c.next().await, reply(1));
    let Stream { reader, writer, .. } = accept(&mut streams).await;
    drop(reader);
    for _ in 0..4 {
        c.data(1, &[0; 16 * 1024], false).await;
    }
    assert_eq!(
        c.next().await,
        Some(Frame::WindowUpdate {
            stream_id: 1,
            delta: 32 * 1024
        })
    );
    assert_eq!(
        c.next().await,
        Some(Frame::WindowUpdate {
            stream_id: 1,
            delta: 32 * 1024
        })
    );
    c.send(Frame::Ping { id: 9 }).await;
    assert_eq!(c.next().await, Some(Frame::Ping { id: 9 }));
    writer.write(Bytes::from_static(b"ok")).await.unwrap();
    assert_eq!(
        c.next().await,
        Some(Frame::Data {
            stream_id: 1,
            fin: false,
            data: Bytes::from_static(b"ok")
        })
    );
}
