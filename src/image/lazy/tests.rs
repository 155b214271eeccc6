//! A layer read through the registry client from a loopback HTTP server that serves its
//! blob by ranges, honestly or not.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::digest::Digest;
use crate::image::auth::Credentials;
use crate::image::estargz::tests::noise;
use crate::image::estargz::{self, Converted, Kind, TocError, Tree};
use crate::image::hosts::HostsConfig;
use crate::image::reference::Reference;
use crate::image::registry::{PullAuth, RegistryClient, RegistryError};

#[derive(Clone, Copy)]
enum Answer {
    Ranges,
    /// 200 with the whole blob, as a server without range support does.
    Whole,
    /// 206 naming the range one byte further on.
    Shifted,
    /// Ranges, with the byte at this offset of the blob flipped.
    Flip(u64),
}

fn layer() -> (Vec<u8>, Converted, Vec<u8>) {
    let big = noise(9 << 20, 0x9e37_79b9_7f4a_7c15);
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(6);
    b.append_data(&mut h.clone(), "etc/hostname", &b"berth\n"[..])
        .expect("test data");
    h.set_size(big.len() as u64);
    h.set_mode(0o755);
    b.append_data(&mut h, "usr/bin/big", &big[..]).expect("test data");
    let tar = b.into_inner().expect("test data");
    let (blob, converted) = estargz::write(&tar[..], Vec::new(), estargz::DEFAULT_CHUNK_SIZE).expect("test data");
    (blob, converted, big)
}

struct Server {
    port: u16,
    served: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(blob: Arc<Vec<u8>>, answer: Answer) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("loopback");
    let port = listener.local_addr().expect("bound").port();
    let served = Arc::new(AtomicU64::new(0));
    let counter = served.clone();
    let task = tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            tokio::spawn(connection(sock, blob.clone(), answer, counter.clone()));
        }
    });
    Server { port, served, task }
}

async fn connection(mut sock: TcpStream, blob: Arc<Vec<u8>>, answer: Answer, served: Arc<AtomicU64>) {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    loop {
        let end = loop {
            if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            match sock.read(&mut tmp).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        buf.drain(..end);
        let range = head.lines().find_map(|l| {
            let (a, b) = l.strip_prefix("range: bytes=")?.trim().split_once('-')?;
            Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?))
        });
        let len = blob.len();
        let (status, extra, mut body) = match (answer, range) {
            (Answer::Whole, _) | (_, None) => ("200 OK", String::new(), blob.to_vec()),
            (Answer::Shifted, Some((a, b))) => (
                "206 Partial Content",
                format!("content-range: bytes {}-{}/{len}\r\n", a + 1, b + 1),
                blob[a..=b].to_vec(),
            ),
            (Answer::Ranges | Answer::Flip(_), Some((a, b))) => (
                "206 Partial Content",
                format!("content-range: bytes {a}-{b}/{len}\r\n"),
                blob[a..=b.min(len - 1)].to_vec(),
            ),
        };
        if let (Answer::Flip(at), Some((a, _))) = (answer, range) {
            if let Some(byte) = (at as usize).checked_sub(a).and_then(|i| body.get_mut(i)) {
                *byte ^= 0x55;
            }
        }
        served.fetch_add(body.len() as u64, Ordering::Relaxed);
        let reply = format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\n{extra}\r\n", body.len());
        if sock.write_all(reply.as_bytes()).await.is_err() || sock.write_all(&body).await.is_err() {
            return;
        }
    }
}

async fn open(server: &Server, blob: &[u8], toc_digest: &Digest) -> Result<RemoteLayer, LazyError> {
    let host = format!("127.0.0.1:{}", server.port);
    let hosts = HostsConfig {
        insecure: vec![host.clone()],
        ..Default::default()
    };
    let client = Arc::new(RegistryClient::new(hosts, Duration::from_secs(10)));
    let reference = Reference::parse(&format!("{host}/lazy/layer:1")).expect("test data");
    let auth = PullAuth {
        registry: host,
        credentials: Credentials::Anonymous,
    };
    RemoteLayer::open(client, reference, auth, Digest::of(blob), blob.len() as u64, toc_digest).await
}

/// The whole file at `path`, chunk by chunk.
async fn read_file(layer: &RemoteLayer, path: &str) -> Result<Vec<u8>, LazyError> {
    let tree: &Tree = layer.tree();
    let ino = tree.resolve(path).expect("the file is in the tree");
    let Kind::File { chunks, .. } = &tree.node(ino).expect("its node").kind else {
        panic!("{path} is not a regular file");
    };
    let mut out = Vec::new();
    for c in chunks {
        out.extend(layer.read(c, path).await?);
    }
    Ok(out)
}

#[tokio::test]
async fn files_are_read_by_ranges_and_verified() {
    let (blob, converted, big) = layer();
    let blob = Arc::new(blob);
    let server = serve(blob.clone(), Answer::Ranges).await;
    let layer = open(&server, &blob, &converted.toc_digest).await.expect("opens");
    let opened = server.served.load(Ordering::Relaxed);
    assert!(opened < 64 << 10, "opening fetched {opened} bytes");
    assert_eq!(read_file(&layer, "etc/hostname").await.expect("reads"), b"berth\n");
    let small = server.served.load(Ordering::Relaxed) - opened;
    assert!(small < 128 << 10, "a 6-byte file fetched {small} bytes");
    assert_eq!(read_file(&layer, "usr/bin/big").await.expect("reads"), big);
    let total = server.served.load(Ordering::Relaxed);
    assert!(
        total < blob.len() as u64 + (256 << 10),
        "{total} bytes for a {}-byte blob",
        blob.len()
    );
    assert_eq!(
        layer.tree().chunks().len(),
        4,
        "3 chunks of the big file and the small file"
    );
}

#[tokio::test]
async fn a_registry_without_ranges_is_refused() {
    let (blob, converted, _) = layer();
    let blob = Arc::new(blob);
    for answer in [Answer::Whole, Answer::Shifted] {
        let server = serve(blob.clone(), answer).await;
        let err = open(&server, &blob, &converted.toc_digest).await.err();
        match (answer, err) {
            (Answer::Whole, Some(LazyError::Registry(RegistryError::NoRanges(_)))) => {}
            (Answer::Shifted, Some(LazyError::Registry(RegistryError::Protocol(_)))) => {}
            (_, other) => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn a_wrong_toc_or_a_changed_chunk_is_refused() {
    let (blob, converted, _) = layer();
    let blob = Arc::new(blob);
    let server = serve(blob.clone(), Answer::Ranges).await;
    let err = open(&server, &blob, &Digest::of(b"another TOC"))
        .await
        .err()
        .expect("refused");
    assert!(
        matches!(
            err,
            LazyError::Toc {
                source: TocError::TocDigest { .. },
                ..
            }
        ),
        "{err}"
    );
    // A byte in the middle of the big file's second chunk changes on the way.
    let honest = open(&server, &blob, &converted.toc_digest).await.expect("opens");
    let ino = honest.tree().resolve("usr/bin/big").expect("in the tree");
    let Kind::File { chunks, .. } = &honest.tree().node(ino).expect("node").kind else {
        panic!("not a file");
    };
    let second = chunks[1].member.clone();
    let server = serve(blob.clone(), Answer::Flip((second.start + second.end) / 2)).await;
    let layer = open(&server, &blob, &converted.toc_digest).await.expect("opens");
    assert!(
        layer.read(&chunks[0], "big").await.is_ok(),
        "the first chunk is untouched"
    );
    let err = layer.read(&chunks[1], "big").await.expect_err("refused");
    assert!(matches!(err, LazyError::Toc { .. }), "{err}");
}
