//! SPDY/3.1 frames (`berth::stream::spdy::frame`) and header blocks
//! (`berth::stream::spdy::header`) over arbitrary bytes, as a kubectl peer could send them.
//! Frames that carry no header block must encode back to frames that decode the same.
#![no_main]

use berth::stream::spdy::frame::{decode_frame, encode_frame, Frame};
use berth::stream::spdy::header::{HeaderDecoder, HeaderEncoder, Headers};
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

const MAX_PAYLOAD: usize = 64 * 1024;

fn has_headers(f: &Frame) -> bool {
    matches!(
        f,
        Frame::SynStream { .. } | Frame::SynReply { .. } | Frame::Headers { .. }
    )
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    if sel & 1 == 1 {
        // An uncompressed header block.
        if let Ok(h) = Headers::from_block(rest) {
            let again = Headers::from_block(&h.to_block()).expect("an encoded block decodes");
            assert_eq!(again.len(), h.len());
        }
        return;
    }
    let mut buf = BytesMut::from(rest);
    let mut dec = HeaderDecoder::new();
    let mut enc = HeaderEncoder::new();
    let mut dec2 = HeaderDecoder::new();
    let mut out = BytesMut::new();
    // One decoder context for the whole connection, as in FrameReader.
    while let Ok(Some(frame)) = decode_frame(&mut buf, &mut dec, MAX_PAYLOAD) {
        out.clear();
        if encode_frame(&frame, &mut enc, &mut out).is_err() {
            continue;
        }
        let again = decode_frame(&mut out, &mut dec2, usize::MAX)
            .expect("an encoded frame decodes")
            .expect("an encoded frame is complete");
        assert!(out.is_empty(), "one frame encodes to exactly one frame");
        if !has_headers(&frame) {
            assert_eq!(again, frame);
        }
    }
});
