use std::io::Read;

use flate2::read::MultiGzDecoder;

use super::*;
use crate::digest::Digest;

/// A header dated 2020-09-13, owned by 1000:1001.
pub(crate) fn header(kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(1_600_000_000);
    h.set_uid(1000);
    h.set_gid(1001);
    h
}

/// Pseudo-random bytes (xorshift): contents gzip cannot shrink, so chunks are as big as
/// they say.
pub(crate) fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A layer with a directory, files of several sizes, links, a long name and an xattr.
fn layer() -> (Vec<u8>, Files) {
    let mut b = tar::Builder::new(Vec::new());
    b.append_data(&mut header(tar::EntryType::Directory, 0, 0o755), "etc/", &[][..])
        .expect("test data");
    let big: Vec<u8> = (0..10_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let long = format!("usr/share/{}/file.txt", "d".repeat(150));
    let files = vec![
        ("etc/hostname".to_string(), b"berth\n".to_vec()),
        ("etc/empty".to_string(), Vec::new()),
        ("usr/lib/big.bin".to_string(), big),
        (long, b"long name\n".to_vec()),
    ];
    for (name, data) in &files {
        b.append_data(
            &mut header(tar::EntryType::Regular, data.len() as u64, 0o644),
            name,
            &data[..],
        )
        .expect("test data");
    }
    b.append_pax_extensions([("SCHILY.xattr.user.k", &b"v\x00w"[..])])
        .expect("test data");
    b.append_data(&mut header(tar::EntryType::Regular, 3, 0o600), "etc/xattr", &b"abc"[..])
        .expect("test data");
    let mut h = header(tar::EntryType::Symlink, 0, 0o777);
    b.append_link(&mut h, "etc/link", "hostname").expect("test data");
    let mut h = header(tar::EntryType::Link, 0, 0o644);
    b.append_link(&mut h, "etc/hard", "etc/hostname").expect("test data");
    (b.into_inner().expect("test data"), files)
}

pub(super) type Files = Vec<(String, Vec<u8>)>;

/// The blob, what was written, and the files of the layer.
pub(super) fn convert(chunk: u64) -> (Vec<u8>, Converted, Files) {
    let (tar, files) = layer();
    let (blob, converted) = write(&tar[..], Vec::new(), chunk).expect("test data");
    (blob, converted, files)
}

pub(super) fn toc_of(blob: &[u8], converted: &Converted) -> Toc {
    let offset = footer_offset(&blob[blob.len() - FOOTER_SIZE..]).expect("test data") as usize;
    read_toc(&blob[offset..blob.len() - FOOTER_SIZE], &converted.toc_digest).expect("test data")
}

#[test]
fn the_blob_is_a_gzip_tar_of_the_same_entries_and_the_diff_id_is_its_digest() {
    let (blob, converted, files) = convert(1000);
    let mut tar = Vec::new();
    MultiGzDecoder::new(&blob[..]).read_to_end(&mut tar).expect("test data");
    assert_eq!(Digest::of(&tar), converted.diff_id);
    assert_eq!(tar.len() as u64, converted.uncompressed_size);
    assert_eq!(Digest::of(&blob), converted.digest);
    assert_eq!(blob.len() as u64, converted.size);
    let mut names = Vec::new();
    let mut archive = tar::Archive::new(&tar[..]);
    for entry in archive.entries().expect("test data") {
        let mut entry = entry.expect("test data");
        let name = entry.path().expect("test data").to_string_lossy().into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).expect("test data");
        if let Some((_, want)) = files.iter().find(|(n, _)| *n == name) {
            assert_eq!(&data, want, "{name}");
        }
        if name == "etc/xattr" {
            let pax: Vec<_> = entry
                .pax_extensions()
                .expect("test data")
                .expect("test data")
                .map(|e| e.expect("test data").key().expect("test data").to_string())
                .collect();
            assert_eq!(pax, ["SCHILY.xattr.user.k"]);
        }
        names.push(name);
    }
    assert_eq!(names.first().map(String::as_str), Some(NO_PREFETCH_LANDMARK));
    assert_eq!(names.last().map(String::as_str), Some(TOC_NAME));
    for (n, _) in &files {
        assert!(names.contains(n), "{n} in {names:?}");
    }
    assert!(names.contains(&"etc/link".to_string()) && names.contains(&"etc/hard".to_string()));
}

#[test]
fn every_chunk_is_its_own_member_and_verifies_against_the_toc() {
    let (blob, converted, files) = convert(1000);
    let toc = toc_of(&blob, &converted);
    assert_eq!(toc.entries[0].name, NO_PREFETCH_LANDMARK);
    for (name, want) in &files {
        let parts: Vec<&TocEntry> = toc.entries.iter().filter(|e| e.name == *name).collect();
        let first = parts[0];
        assert_eq!(first.kind, "reg", "{name}");
        assert_eq!(
            (first.uid, first.gid, first.modtime.as_str()),
            (1000, 1001, "2020-09-13T12:26:40Z")
        );
        assert_eq!(first.size, want.len() as u64);
        if want.is_empty() {
            assert_eq!(parts.len(), 1);
            assert!(first.chunk_digest.is_empty() && first.offset == 0);
            continue;
        }
        assert_eq!(first.digest, Digest::of(want).to_string(), "{name}");
        assert_eq!(parts.len(), want.len().div_ceil(1000), "{name}");
        let mut got = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            assert_eq!(part.kind, if i == 0 { "reg" } else { "chunk" });
            assert_eq!(&blob[part.offset as usize..part.offset as usize + 2], [0x1f, 0x8b]);
            assert_eq!(part.chunk_offset, got.len() as u64);
            got.extend(chunk(&blob[part.offset as usize..], part, first.size).expect("test data"));
        }
        assert_eq!(&got, want, "{name}");
        assert_eq!(parts.last().expect("test data").chunk_size, 0);
    }
    let x = toc.entries.iter().find(|e| e.name == "etc/xattr").expect("test data");
    assert_eq!(x.xattrs.get("user.k").map(String::as_str), Some("dgB3"));
    let link = toc.entries.iter().find(|e| e.name == "etc/link").expect("test data");
    assert_eq!((link.kind.as_str(), link.link_name.as_str()), ("symlink", "hostname"));
    let hard = toc.entries.iter().find(|e| e.name == "etc/hard").expect("test data");
    assert_eq!(
        (hard.kind.as_str(), hard.link_name.as_str()),
        ("hardlink", "etc/hostname")
    );
    assert!(toc
        .entries
        .iter()
        .any(|e| e.name.ends_with("/file.txt") && e.name.len() > 150));
    assert!(toc.entries.iter().all(|e| e.name != TOC_NAME));
}

#[test]
fn a_wrong_toc_digest_and_changed_chunks_are_refused() {
    let (blob, converted, _) = convert(1000);
    let offset = footer_offset(&blob[blob.len() - FOOTER_SIZE..]).expect("test data") as usize;
    let other = Digest::of(b"another toc");
    assert!(matches!(
        read_toc(&blob[offset..blob.len() - FOOTER_SIZE], &other),
        Err(TocError::TocDigest { .. })
    ));
    let toc = toc_of(&blob, &converted);
    let big = toc
        .entries
        .iter()
        .find(|e| e.name == "usr/lib/big.bin")
        .expect("test data");
    // The TOC's digest for the chunk differs from its bytes.
    let mut lying = big.clone();
    lying.chunk_digest = Digest::of(b"other bytes").to_string();
    assert!(matches!(
        chunk(&blob[big.offset as usize..], &lying, big.size),
        Err(TocError::ChunkDigest { .. })
    ));
    // The chunk's bytes changed in the blob: refused either way (bad deflate data or digest).
    let second = toc
        .entries
        .iter()
        .find(|e| e.name == "usr/lib/big.bin" && e.kind == "chunk")
        .expect("test data");
    let mut changed = blob.clone();
    for b in &mut changed[second.offset as usize + 20..second.offset as usize + 60] {
        *b ^= 0x55;
    }
    assert!(chunk(&changed[second.offset as usize..], second, big.size).is_err());
    assert!(chunk(&blob[second.offset as usize..], second, big.size).is_ok());
}

#[test]
fn footers_round_trip_and_other_blobs_are_not_estargz() {
    let f = write::footer(0x1234_5678_9abc);
    assert_eq!(footer_offset(&f), Ok(0x1234_5678_9abc));
    // An empty gzip member: gzip tools read the footer as one.
    let mut out = Vec::new();
    MultiGzDecoder::new(&f[..]).read_to_end(&mut out).expect("test data");
    assert!(out.is_empty());
    let mut plain = f;
    plain[12] = b'X';
    assert!(matches!(footer_offset(&plain), Err(TocError::NotEstargz(_))));
    assert!(footer_offset(&f[..50]).is_err());
}

#[test]
fn sparse_entries_are_refused() {
    let mut b = tar::Builder::new(Vec::new());
    b.append_data(&mut header(tar::EntryType::GNUSparse, 0, 0o644), "sparse", &[][..])
        .expect("test data");
    let tar = b.into_inner().expect("test data");
    let err = write(&tar[..], Vec::new(), 0).expect_err("a sparse entry");
    assert!(err.to_string().contains("cannot be written as eStargz"), "{err}");
}
