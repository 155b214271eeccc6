use flate2::{Compress, Compression};

use super::header::*;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn dictionary_has_the_spec_length_and_checksum() {
    assert_eq!(SPDY_DICTIONARY.len(), 1423);
    assert_eq!(&SPDY_DICTIONARY[..11], b"\0\0\0\x07options");
    assert!(SPDY_DICTIONARY.ends_with(b",*,enq=0."));
    let mut c = Compress::new(Compression::default(), true);
    assert_eq!(c.set_dictionary(&SPDY_DICTIONARY).unwrap(), 0xe3c6_a7c2);
}

#[test]
fn block_round_trip_with_multi_values() {
    let mut h = Headers::new();
    h.append("StreamType", "stdout");
    h.append("x-multi", "a");
    h.append("X-Multi", "b");
    let parsed = Headers::from_block(&h.to_block()).unwrap();
    assert_eq!(parsed.get("streamtype"), Some("stdout"));
    assert_eq!(parsed.get("STREAMTYPE"), Some("stdout"));
    assert_eq!(parsed.get_all("x-multi").collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(parsed.get("missing"), None);
}

#[test]
fn compressed_blocks_share_one_context() {
    let mut enc = HeaderEncoder::new();
    let mut dec = HeaderDecoder::new();
    for i in 0..5 {
        let mut h = Headers::new();
        h.append("streamType", if i % 2 == 0 { "stdin" } else { "stdout" });
        h.append("n", &i.to_string());
        let block = enc.encode(&h).unwrap();
        if i == 0 {
            assert_eq!(&block[..2], &[0x78, 0xbb], "zlib header must carry FDICT");
            assert_eq!(&block[2..6], &0xe3c6_a7c2u32.to_be_bytes());
        }
        assert!(block.ends_with(&[0, 0, 0xff, 0xff]), "sync flush marker");
        assert_eq!(dec.decode(&block).unwrap(), h);
    }
}

#[test]
fn decodes_blocks_compressed_by_c_zlib() {
    // Produced by C zlib (Python's zlib with zdict = the SPDY/3 dictionary, Z_SYNC_FLUSH), two blocks
    // on one stream.
    let b1 = hex("78f9e3c6a7c202e50e703a2b294a4dcc851625aca9a08006a54d2b2ce914000000ffff");
    let b2 = hex("c2aa0598c853f2c165377b856e6e694e4926b880654802000000ffff");
    let mut dec = HeaderDecoder::new();
    let h1 = dec.decode(&b1).unwrap();
    assert_eq!(h1.get("streamType"), Some("error"));
    assert_eq!(h1.get(":version"), Some("HTTP/1.1"));
    let h2 = dec.decode(&b2).unwrap();
    assert_eq!(h2.get("streamtype"), Some("stdout"));
    assert_eq!(h2.get_all("x-multi").collect::<Vec<_>>(), ["a", "b"]);
}

#[test]
fn oversized_and_garbage_blocks_fail() {
    let mut h = Headers::new();
    h.append("big", &"x".repeat(300 * 1024));
    let block = HeaderEncoder::new().encode(&h).unwrap();
    assert!(matches!(
        HeaderDecoder::new().decode(&block),
        Err(HeaderError::TooLarge(_))
    ));
    assert!(HeaderDecoder::new().decode(b"not zlib at all").is_err());

    let mut raw = 5000u32.to_be_bytes().to_vec();
    raw.extend_from_slice(&[0; 8]);
    assert!(matches!(Headers::from_block(&raw), Err(HeaderError::TooMany(_))));
    assert!(Headers::from_block(&[0, 0, 0, 1, 0, 0, 0, 9, b'a']).is_err());
    assert!(Headers::from_block(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
}
