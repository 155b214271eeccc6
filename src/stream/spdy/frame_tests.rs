use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWriteExt;

use super::codec::{FrameReader, FrameWriter};
use super::frame::*;
use super::header::{HeaderDecoder, HeaderEncoder, Headers};

fn headers(pairs: &[(&str, &str)]) -> Headers {
    let mut h = Headers::new();
    for (n, v) in pairs {
        h.append(n, v);
    }
    h
}

fn all_frames() -> Vec<Frame> {
    vec![
        Frame::SynStream {
            stream_id: 1,
            associated_to: 0,
            priority: 7,
            fin: false,
            unidirectional: false,
            headers: headers(&[("streamtype", "error"), ("port", "8080")]),
        },
        Frame::SynStream {
            stream_id: 3,
            associated_to: 1,
            priority: 0,
            fin: true,
            unidirectional: true,
            headers: headers(&[("streamtype", "stdout")]),
        },
        Frame::SynReply {
            stream_id: 1,
            fin: false,
            headers: Headers::new(),
        },
        Frame::SynReply {
            stream_id: 3,
            fin: true,
            headers: headers(&[("x", "1"), ("x", "2")]),
        },
        Frame::RstStream {
            stream_id: 5,
            status: RST_REFUSED_STREAM,
        },
        Frame::Settings {
            entries: vec![(1, 7, 65536), (0, 4, 100)],
            clear: true,
        },
        Frame::Settings {
            entries: vec![],
            clear: false,
        },
        Frame::Ping { id: 0xdead_beef },
        Frame::GoAway {
            last_good_stream_id: 7,
            status: GOAWAY_PROTOCOL_ERROR,
        },
        Frame::Headers {
            stream_id: 1,
            fin: true,
            headers: headers(&[("trailer", "yes")]),
        },
        Frame::WindowUpdate {
            stream_id: 1,
            delta: 0x7fff_ffff,
        },
        Frame::Data {
            stream_id: 1,
            fin: false,
            data: Bytes::from_static(b"hello"),
        },
        Frame::Data {
            stream_id: 0x7fff_ffff,
            fin: true,
            data: Bytes::new(),
        },
    ]
}

#[test]
fn every_frame_type_round_trips_on_shared_compression_contexts() {
    let mut enc = HeaderEncoder::new();
    let mut dec = HeaderDecoder::new();
    let mut buf = BytesMut::new();
    // Twice, so later header blocks depend on the compression history of earlier ones.
    for _ in 0..2 {
        for f in all_frames() {
            encode_frame(&f, &mut enc, &mut buf).unwrap();
        }
    }
    for f in all_frames().into_iter().chain(all_frames()) {
        assert_eq!(decode_frame(&mut buf, &mut dec, DEFAULT_MAX_PAYLOAD).unwrap(), Some(f));
    }
    assert!(buf.is_empty());
    assert_eq!(decode_frame(&mut buf, &mut dec, DEFAULT_MAX_PAYLOAD).unwrap(), None);
}

#[test]
fn control_frame_header_bytes() {
    let mut buf = BytesMut::new();
    encode_frame(
        &Frame::RstStream {
            stream_id: 0x0102_0304,
            status: 3,
        },
        &mut HeaderEncoder::new(),
        &mut buf,
    )
    .unwrap();
    let expected: &[u8] = &[
        0x80, 0x03, // control bit + version 3
        0x00, 0x03, // type RST_STREAM
        0x00, // flags
        0x00, 0x00, 0x08, // length 8
        0x01, 0x02, 0x03, 0x04, // stream id
        0x00, 0x00, 0x00, 0x03, // status REFUSED_STREAM
    ];
    assert_eq!(&buf[..], expected);
    let frame = decode_frame(&mut buf, &mut HeaderDecoder::new(), 1024).unwrap();
    assert_eq!(
        frame,
        Some(Frame::RstStream {
            stream_id: 0x0102_0304,
            status: 3
        })
    );

    let mut buf = BytesMut::new();
    encode_frame(&Frame::Ping { id: 0x0a0b_0c0d }, &mut HeaderEncoder::new(), &mut buf).unwrap();
    assert_eq!(
        &buf[..],
        &[0x80, 0x03, 0x00, 0x06, 0x00, 0x00, 0x00, 0x04, 0x0a, 0x0b, 0x0c, 0x0d]
    );
}

#[test]
fn data_frame_header_bytes() {
    let mut buf = BytesMut::new();
    let f = Frame::Data {
        stream_id: 5,
        fin: true,
        data: Bytes::from_static(b"abc"),
    };
    encode_frame(&f, &mut HeaderEncoder::new(), &mut buf).unwrap();
    let expected: &[u8] = &[
        0x00, 0x00, 0x00, 0x05, // control bit 0 + stream id 5
        0x01, // FLAG_FIN
        0x00, 0x00, 0x03, // length 3
        b'a', b'b', b'c',
    ];
    assert_eq!(&buf[..], expected);
    assert_eq!(
        decode_frame(&mut buf, &mut HeaderDecoder::new(), 1024).unwrap(),
        Some(f)
    );
}

#[test]
fn syn_stream_compressed_by_c_zlib_decodes() {
    // Header block from C zlib (Python zlib, zdict = SPDY/3 dictionary, Z_SYNC_FLUSH).
    let block = "78f9e3c6a7c202e50e703a2b294a4dcc851625aca9a08006a54d2b2ce914000000ffff";
    let block: Vec<u8> = (0..block.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&block[i..i + 2], 16).unwrap())
        .collect();
    let mut raw = vec![0x80, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00, (10 + block.len()) as u8];
    raw.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x60, 0]);
    raw.extend_from_slice(&block);
    let mut buf = BytesMut::from(&raw[..]);
    match decode_frame(&mut buf, &mut HeaderDecoder::new(), 1024).unwrap() {
        Some(Frame::SynStream {
            stream_id: 1,
            associated_to: 0,
            priority: 3,
            fin: false,
            headers,
            ..
        }) => {
            assert_eq!(headers.get("streamType"), Some("error"));
            assert_eq!(headers.get(":version"), Some("HTTP/1.1"));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn partial_input_waits_and_unknown_control_frames_are_skipped() {
    let mut enc = HeaderEncoder::new();
    let mut dec = HeaderDecoder::new();
    let mut full = BytesMut::new();
    full.extend_from_slice(&[0x80, 0x03, 0x00, 0x0a, 0x00, 0x00, 0x00, 0x02, 0xaa, 0xbb]); // CREDENTIAL-ish
    encode_frame(&Frame::Ping { id: 1 }, &mut enc, &mut full).unwrap();
    let mut buf = BytesMut::new();
    for (i, b) in full.iter().enumerate() {
        buf.extend_from_slice(&[*b]);
        let got = decode_frame(&mut buf, &mut dec, 1024).unwrap();
        if i + 1 < full.len() {
            assert_eq!(got, None, "byte {i}");
        } else {
            assert_eq!(got, Some(Frame::Ping { id: 1 }));
        }
    }
}

#[test]
fn garbage_and_oversized_input_fail() {
    let mut dec = HeaderDecoder::new();
    let bad = |bytes: &[u8], dec: &mut HeaderDecoder| decode_frame(&mut BytesMut::from(bytes), dec, 1024).unwrap_err();
    assert!(matches!(
        bad(&[0x80, 0x02, 0x00, 0x06, 0, 0, 0, 4, 0, 0, 0, 1], &mut dec),
        FrameError::UnsupportedVersion(2)
    ));
    assert!(matches!(
        bad(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", &mut dec),
        FrameError::TooLarge { .. }
    ));
    assert!(matches!(
        bad(&[0, 0, 0, 1, 0, 0x10, 0, 0], &mut dec),
        FrameError::TooLarge {
            len: 0x100000,
            max: 1024
        }
    ));
    assert!(matches!(
        bad(&[0, 0, 0, 0, 0, 0, 0, 1, 9], &mut dec),
        FrameError::Invalid { .. }
    ));
    assert!(matches!(
        bad(&[0x80, 3, 0, 6, 0, 0, 0, 5, 0, 0, 0, 1, 2], &mut dec),
        FrameError::Invalid { .. }
    ));
    assert!(matches!(
        bad(&[0x80, 3, 0, 4, 0, 0, 0, 4, 0, 0, 0, 9], &mut dec),
        FrameError::Invalid { .. }
    ));
    let syn = [
        0x80, 3, 0, 1, 0, 0, 0, 14, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, b'j', b'u', b'n', b'k',
    ];
    assert!(matches!(bad(&syn, &mut HeaderDecoder::new()), FrameError::Header(_)));
    let big = Frame::Data {
        stream_id: 1,
        fin: false,
        data: Bytes::from(vec![0; MAX_LENGTH_FIELD + 1]),
    };
    assert!(encode_frame(&big, &mut HeaderEncoder::new(), &mut BytesMut::new()).is_err());
}

#[tokio::test]
async fn reader_and_writer_over_a_byte_stream() {
    let (a, b) = tokio::io::duplex(64);
    let mut w = FrameWriter::new(a);
    let mut r = FrameReader::with_max_payload(b, 4096);
    let writing = tokio::spawn(async move {
        for f in all_frames() {
            w.write_frame(&f).await.unwrap();
        }
        w.shutdown().await.unwrap();
    });
    for f in all_frames() {
        assert_eq!(r.read_frame().await.unwrap(), Some(f));
    }
    assert_eq!(r.read_frame().await.unwrap(), None);
    writing.await.unwrap();

    let (mut a, b) = tokio::io::duplex(64);
    let mut r = FrameReader::new(b);
    a.write_all(&[0, 0, 0, 1, 0, 0, 0, 10, 1, 2]).await.unwrap();
    drop(a);
    assert!(matches!(r.read_frame().await, Err(FrameError::UnexpectedEof)));
}
