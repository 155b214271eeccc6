//! The tree a lazy mount serves, from converted layers and from TOCs a hostile writer made.

use super::tests::{convert, toc_of};
use super::*;

fn tree_of(chunk: u64) -> (Vec<u8>, Tree) {
    let (blob, converted, _) = convert(chunk);
    let toc = toc_of(&blob, &converted);
    let offset = footer_offset(&blob[blob.len() - FOOTER_SIZE..]).expect("test data");
    (blob, Tree::build(&toc, offset).expect("a converted layer builds"))
}

fn node<'t>(tree: &'t Tree, path: &str) -> &'t Node {
    let ino = tree.resolve(path).unwrap_or_else(|| panic!("{path} is in the tree"));
    tree.node(ino).expect("its node")
}

#[test]
fn a_converted_layer_gives_its_files_links_and_metadata() {
    let (blob, tree) = tree_of(1000);
    let hostname = node(&tree, "etc/hostname");
    assert_eq!((hostname.mode, hostname.uid, hostname.gid), (0o644, 1000, 1001));
    assert_eq!(hostname.mtime, 1_600_000_000);
    assert_eq!(hostname.nlink, 2, "etc/hard links to it");
    assert_eq!(tree.resolve("etc/hard"), tree.resolve("etc/hostname"));
    assert_eq!(node(&tree, "etc/link").kind, Kind::Symlink(b"hostname".to_vec()));
    assert_eq!(
        node(&tree, "etc/xattr").xattrs.get(&b"user.k"[..]),
        Some(&b"v\x00w".to_vec())
    );
    assert_eq!(node(&tree, "usr").mode, 0o755, "a parent the layer did not list");
    for hidden in [TOC_NAME, NO_PREFETCH_LANDMARK] {
        assert_eq!(tree.resolve(hidden), None, "{hidden} is not shown");
    }
    // The big file's chunks cover it, each in a member that verifies.
    let Kind::File { size, chunks } = &node(&tree, "usr/lib/big.bin").kind else {
        panic!("not a file");
    };
    assert_eq!(*size, 40_000);
    assert_eq!(chunks.len(), 40);
    let mut data = Vec::new();
    for c in chunks {
        assert!(c.member.start < c.member.end);
        data.extend(inflate(&blob[c.member.start as usize..c.member.end as usize], c, "big").expect("verifies"));
    }
    let want: Vec<u8> = (0..10_000u32).flat_map(|i| i.to_le_bytes()).collect();
    assert_eq!(data, want);
    let Kind::File { size: 0, chunks } = &node(&tree, "etc/empty").kind else {
        panic!("etc/empty is an empty file");
    };
    assert!(chunks.is_empty());
    assert_eq!(
        tree.chunks().len(),
        40 + 3,
        "the big file's, hostname's (etc/hard shares it), etc/xattr's and the long name's"
    );
}

fn entry(name: &str, kind: &str) -> TocEntry {
    TocEntry {
        name: name.into(),
        kind: kind.into(),
        mode: 0o644,
        ..Default::default()
    }
}

fn file(name: &str, offset: u64, size: u64) -> TocEntry {
    TocEntry {
        size,
        offset,
        chunk_digest: format!("sha256:{}", "0".repeat(64)),
        ..entry(name, "reg")
    }
}

fn build(entries: Vec<TocEntry>) -> Result<Tree, TocError> {
    Tree::build(&Toc { version: 1, entries }, 1000)
}

#[test]
fn whiteouts_become_what_overlayfs_reads_and_later_entries_replace() {
    let tree = build(vec![
        entry("gone/.wh..wh..opq", "reg"),
        entry("etc/.wh.passwd", "reg"),
        entry("etc/.wh.kept", "reg"),
        entry("etc/kept", "reg"),
        entry("etc/.wh..wh.plnk", "reg"),
        entry("a", "reg"),
        entry("a/", "dir"),
        entry("a/child", "fifo"),
        TocEntry {
            mode: 0o700,
            ..entry("a", "dir")
        },
        TocEntry {
            mode: 0o711,
            ..entry("gone/", "dir")
        },
        TocEntry {
            xattrs: [
                ("trusted.overlay.redirect".into(), "L2V0Yw==".into()),
                ("user.overlay.metacopy".into(), "".into()),
                ("user.kept".into(), "eQ==".into()),
            ]
            .into(),
            ..entry("forged/", "dir")
        },
    ])
    .expect("builds");
    let gone = node(&tree, "gone");
    assert_eq!(
        gone.xattrs.get(OPAQUE_XATTR),
        Some(&b"y".to_vec()),
        "listed again, still opaque"
    );
    assert_eq!(gone.mode, 0o711);
    let forged: Vec<&[u8]> = node(&tree, "forged").xattrs.keys().map(|k| &k[..]).collect();
    assert_eq!(
        forged,
        [&b"user.kept"[..]],
        "overlay metadata a layer brings is dropped"
    );
    assert_eq!(node(&tree, "etc/passwd").kind, Kind::Char { major: 0, minor: 0 });
    assert!(
        matches!(node(&tree, "etc/kept").kind, Kind::File { .. }),
        "the layer's own file wins"
    );
    assert_eq!(tree.resolve("etc/.wh..wh.plnk"), None);
    assert_eq!(tree.resolve("etc/plnk"), None);
    assert_eq!(
        node(&tree, "a").mode,
        0o700,
        "a directory listed again changes its metadata"
    );
    assert_eq!(node(&tree, "a/child").kind, Kind::Fifo, "and keeps its entries");
}

#[test]
fn hostile_tocs_are_refused() {
    let chunk = |name: &str, offset, chunk_offset, chunk_size| TocEntry {
        offset,
        chunk_offset,
        chunk_size,
        chunk_digest: format!("sha256:{}", "1".repeat(64)),
        ..entry(name, "chunk")
    };
    let cases: Vec<(&str, Vec<TocEntry>)> = vec![
        ("dot-dot", vec![entry("../etc/passwd", "reg")]),
        ("absolute", vec![entry("/etc/passwd", "reg")]),
        (
            "through a symlink",
            vec![
                TocEntry {
                    link_name: "/etc".into(),
                    ..entry("x", "symlink")
                },
                entry("x/passwd", "reg"),
            ],
        ),
        ("through a file", vec![entry("x", "reg"), entry("x/y", "reg")]),
        (
            "missing link target",
            vec![TocEntry {
                link_name: "nope".into(),
                ..entry("l", "hardlink")
            }],
        ),
        (
            "link to a directory",
            vec![
                entry("d/", "dir"),
                TocEntry {
                    link_name: "d".into(),
                    ..entry("l", "hardlink")
                },
            ],
        ),
        ("unknown type", vec![entry("x", "socket")]),
        ("a lone chunk", vec![chunk("x", 10, 0, 5)]),
        ("a chunk of another file", vec![file("x", 10, 8), chunk("y", 20, 4, 0)]),
        (
            "a gap between chunks",
            vec![
                TocEntry {
                    chunk_size: 4,
                    ..file("x", 10, 12)
                },
                chunk("x", 20, 6, 0),
            ],
        ),
        (
            "a file its chunks do not cover",
            vec![TocEntry {
                chunk_size: 4,
                ..file("x", 10, 12)
            }],
        ),
        (
            "a chunk past the file's end",
            vec![TocEntry {
                chunk_size: 40,
                ..file("x", 10, 12)
            }],
        ),
        ("a chunk after the TOC", vec![file("x", 5000, 12)]),
        ("a chunk at the TOC", vec![file("x", 1000, 12)]),
        ("a chunk without an offset", vec![file("x", 0, 12)]),
        (
            "a chunk without a digest",
            vec![TocEntry {
                chunk_digest: String::new(),
                ..file("x", 10, 12)
            }],
        ),
        ("a huge chunk", vec![file("x", 10, MAX_CHUNK + 1)]),
        ("a whiteout of nothing", vec![entry("etc/.wh.", "reg")]),
        ("the root as a file", vec![entry("./", "reg")]),
        (
            "an owner past u32",
            vec![TocEntry {
                uid: 1 << 32,
                ..entry("x", "reg")
            }],
        ),
        (
            "an xattr not in base64",
            vec![TocEntry {
                xattrs: [("user.a".into(), "*".into())].into(),
                ..entry("x", "reg")
            }],
        ),
    ];
    for (what, entries) in cases {
        match build(entries) {
            Err(TocError::Malformed(why)) => assert!(!why.is_empty(), "{what}"),
            other => panic!("{what}: {other:?}"),
        }
    }
}
