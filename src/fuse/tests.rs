//! Replies as bytes: the layouts the kernel reads.

use super::proto::{u32_at, u64_at};
use super::reply;
use super::{Attr, DirEntry};

#[test]
fn headers_carry_length_errno_and_unique() {
    let ok = reply::Reply::data(b"abc".to_vec()).finish(7);
    assert_eq!(
        (u32_at(&ok, 0), u32_at(&ok, 4), u64_at(&ok, 8)),
        (Some(19), Some(0), Some(7))
    );
    let err = reply::Reply::error(libc::ENOENT).finish(9);
    assert_eq!(err.len(), 16);
    assert_eq!(
        i32::from_le_bytes(err[4..8].try_into().expect("4 bytes")),
        -libc::ENOENT
    );
}

#[test]
fn attributes_and_entries_have_the_kernels_layout() {
    let a = Attr {
        ino: 5,
        size: 1000,
        mode: libc::S_IFCHR | 0o640,
        nlink: 1,
        uid: 7,
        gid: 8,
        rdev_major: 1,
        rdev_minor: 259,
        mtime: 99,
    };
    let e = reply::entry(&a).finish(1);
    assert_eq!(e.len(), 16 + 128);
    let attr = &e[16 + 40..];
    assert_eq!(
        (u64_at(attr, 0), u64_at(attr, 8), u64_at(attr, 16)),
        (Some(5), Some(1000), Some(2))
    );
    assert_eq!(u64_at(attr, 32), Some(99));
    assert_eq!(u32_at(attr, 60), Some(libc::S_IFCHR | 0o640));
    assert_eq!((u32_at(attr, 68), u32_at(attr, 72)), (Some(7), Some(8)));
    assert_eq!(u32_at(attr, 76).map(u64::from), Some(libc::makedev(1, 259)));
    assert_eq!(reply::attr(&a).finish(1).len(), 16 + 104);
}

#[test]
fn directory_entries_are_padded_and_stop_where_the_buffer_ends() {
    let entries: Vec<DirEntry> = ["a", "bbbbbbbbbb", "c"]
        .iter()
        .enumerate()
        .map(|(i, n)| DirEntry {
            ino: i as u64 + 2,
            name: n.as_bytes().to_vec(),
            kind: libc::S_IFREG,
        })
        .collect();
    let all = reply::dirents(&entries, 0, 4096).finish(1);
    assert_eq!(all.len(), 16 + 32 + 40 + 32);
    assert_eq!(u64_at(&all, 16 + 8), Some(1), "the next entry's index");
    assert_eq!(u32_at(&all, 16 + 20), Some(8), "DT_REG");
    let from_second = reply::dirents(&entries, 1, 4096).finish(1);
    assert_eq!(u64_at(&from_second, 16), Some(3));
    let one = reply::dirents(&entries, 0, 40).finish(1);
    assert_eq!(one.len(), 16 + 32, "only what fits");
}

#[test]
fn xattr_sizes_and_short_buffers() {
    let size = reply::sized(b"value".to_vec(), 0).expect("size").finish(1);
    assert_eq!(u32_at(&size, 16), Some(5));
    assert_eq!(reply::sized(b"value".to_vec(), 2).err(), Some(libc::ERANGE));
}
