//! eStargz pieces as a registry's range responses bring them (`berth::image::estargz`):
//! the footer, the TOC's member (parsed once its digest is the one expected), the file
//! tree a lazy mount builds from it, and chunks.
#![no_main]

use berth::digest::Digest;
use berth::image::estargz::{self, TocError, Tree, FOOTER_SIZE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() >= FOOTER_SIZE {
        let _ = estargz::footer_offset(&data[data.len() - FOOTER_SIZE..]);
    }
    // The TOC digest the manifest would carry: the one of whatever the member holds.
    let expected = match estargz::read_toc(data, &Digest::of(b"")) {
        Err(TocError::TocDigest { actual, .. }) => Digest::parse(&actual).expect("a digest it made"),
        _ => return,
    };
    let Ok(toc) = estargz::read_toc(data, &expected) else {
        return;
    };
    for entry in toc.entries.iter().take(64) {
        let at = usize::try_from(entry.offset).unwrap_or(usize::MAX).min(data.len());
        if let Ok(chunk) = estargz::chunk(&data[at..], entry, entry.size) {
            assert_eq!(Digest::of(&chunk).as_str(), entry.chunk_digest);
        }
    }
    // The tree, taking the whole input as the blob before the TOC.
    let Ok(tree) = Tree::build(&toc, data.len() as u64) else {
        return;
    };
    for (ino, chunk) in tree.chunks().into_iter().take(64) {
        assert!(tree.node(ino).is_some());
        assert!(chunk.member.start < chunk.member.end && chunk.member.end <= data.len() as u64);
        let member = &data[chunk.member.start as usize..chunk.member.end as usize];
        if let Ok(bytes) = estargz::inflate(member, chunk, "fuzz") {
            assert_eq!(Digest::of(&bytes).as_str(), chunk.digest);
        }
    }
});
