//! Connection lifecycle: idle timeout, shutdown, GOAWAY, peer errors, end of connection.

use std::time::Duration;

use bytes::Bytes;
use tokio::time::timeout;

use super::conn::Options;
use super::conn_tests::{accept, reply, setup, Client, T};
use super::frame::*;

#[tokio::test]
async fn idle_timeout_ends_an_unused_connection() {
    let opts = Options {
        idle_timeout: Some(Duration::from_millis(100)),
        ..Options::default()
    };
    let (mut c, handle, mut streams) = setup(opts, 64 * 1024);
    timeout(T, handle.closed())
        .await
        .expect("idle connection was not closed");
    assert_eq!(
        c.next().await,
        Some(Frame::GoAway {
            last_good_stream_id: 0,
            status: GOAWAY_OK
        })
    );
    assert_eq!(c.next().await, None);
    assert!(streams.recv().await.is_none());
}

#[tokio::test]
async fn open_stream_holds_off_idle_timeout() {
    let opts = Options {
        idle_timeout: Some(Duration::from_millis(100)),
        ..Options::default()
    };
    let (mut c, handle, mut streams) = setup(opts, 64 * 1024);
    c.open(1, "stdout").await;
    assert_eq!(c.next().await, reply(1));
    let s = accept(&mut streams).await;
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(!handle.is_closed());
    s.writer.close().await;
    c.data(1, b"", true).await;
    timeout(T, handle.closed())
        .await
        .expect("connection did not go idle after the last stream");
}

#[tokio::test]
async fn connection_end_ends_readers_and_writers() {
    let (mut c, handle, mut streams) = setup(Options::default(), 64 * 1024);
    c.open(1, "stdin").await;
    c.open(3, "stdout").await;
    c.data(1, b"last words", false).await;
    let mut s1 = accept(&mut streams).await;
    let mut s3 = accept(&mut streams).await;
    drop(c);
    timeout(T, handle.closed()).await.unwrap();
    assert_eq!(s1.reader.read().await.as_deref(), Some(&b"last words"[..]));
    assert_eq!(s1.reader.read().await, None);
    assert_eq!(s3.reader.read().await, None);
    assert!(s3.writer.write(Bytes::from_static(b"x")).await.is_err());
    assert!(streams.recv().await.is_none());
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        tokio::runtime::Handle::current().metrics().num_alive_tasks(),
        0,
        "a task outlived its connection"
    );
}

#[tokio::test]
async fn shutdown_flushes_then_sends_goaway() {
    let (mut c, handle, mut streams) = setup(Options::default(), 256 * 1024);
    c.open(1, "stdout").await;
    assert_eq!(c.next().await, reply(1));
    let s = accept(&mut streams).await;
    s.writer.write(Bytes::from_static(b"bye")).await.unwrap();
    timeout(T, handle.shutdown()).await.unwrap();
    assert_eq!(
        c.next().await,
        Some(Frame::Data {
            stream_id: 1,
            fin: false,
            data: Bytes::from_static(b"bye")
        })
    );
    assert_eq!(
        c.next().await,
        Some(Frame::GoAway {
            last_good_stream_id: 1,
            status: GOAWAY_OK
        })
    );
    assert_eq!(c.next().await, None);
}

#[tokio::test]
async fn goaway_lets_current_streams_finish() {
    let (mut c, handle, mut streams) = setup(Options::default(), 256 * 1024);
    c.open(1, "stdout").await;
    assert_eq!(c.next().await, reply(1));
    let s = accept(&mut streams).await;
    handle.goaway().await;
    assert_eq!(
        c.next().await,
        Some(Frame::GoAway {
            last_good_stream_id: 1,
            status: GOAWAY_OK
        })
    );
    c.open(3, "stdin").await;
    assert_eq!(
        c.next().await,
        Some(Frame::RstStream {
            stream_id: 3,
            status: RST_REFUSED_STREAM
        })
    );
    assert!(!handle.is_closed());
    s.writer.write(Bytes::from_static(b"still here")).await.unwrap();
    s.writer.close().await;
    assert_eq!(c.read_until_fin(1).await, b"still here");
    c.data(1, b"", true).await;
    timeout(T, handle.closed()).await.unwrap();
}

#[tokio::test]
async fn peer_goaway_and_garbage_end_the_connection() {
    let (mut c, handle, mut streams) = setup(Options::default(), 64 * 1024);
    c.open(1, "stdout").await;
    assert_eq!(c.next().await, reply(1));
    let s = accept(&mut streams).await;
    c.send(Frame::GoAway {
        last_good_stream_id: 0,
        status: GOAWAY_OK,
    })
    .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!handle.is_closed());
    drop(s); // FIN for our side
    c.data(1, b"", true).await;
    timeout(T, handle.closed()).await.unwrap();

    let (c, handle, _streams) = setup(Options::default(), 64 * 1024);
    let Client { mut r, w } = c;
    let mut raw = w.into_inner();
    use tokio::io::AsyncWriteExt;
    raw.write_all(b"\x80\x02\x00\x06\x00\x00\x00\x04\x00\x00\x00\x01")
        .await
        .unwrap();
    timeout(T, handle.closed()).await.unwrap();
    let goaway = Frame::GoAway {
        last_good_stream_id: 0,
        status: GOAWAY_PROTOCOL_ERROR,
    };
    assert_eq!(r.read_frame().await.unwrap(), Some(goaway));
    assert_eq!(r.read_frame().await.unwrap(), None);
}
