//! The kernel's side of the conversation: a request is a 40-byte header (length, opcode,
//! unique id, node id, caller's uid/gid/pid) and an opcode's arguments; each reply starts
//! with a 16-byte header (length, negative errno, the unique id). Little-endian throughout,
//! as the kernel writes on every architecture Berth builds for.

use std::os::fd::OwnedFd;

use super::reply::{self, Reply};
use super::{Errno, Filesystem};
use crate::sys::fuse::{self as channel, Received};

/// The protocol version answered to INIT: 7.31 (kernel 5.4 and later speak it).
const MAJOR: u32 = 7;
const MINOR: u32 = 31;
/// Largest write the kernel may send; nothing is written here, so the least it allows.
const MAX_WRITE: u32 = 4096;
/// Big enough for any request once INIT set `MAX_WRITE` (the kernel wants 8 KiB at least).
const BUFFER: usize = 64 << 10;

const ASYNC_READ: u32 = 1 << 0;
const PARALLEL_DIROPS: u32 = 1 << 18;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
enum Opcode {
    Lookup = 1,
    Forget = 2,
    Getattr = 3,
    Readlink = 5,
    Open = 14,
    Read = 15,
    Statfs = 17,
    Release = 18,
    Getxattr = 22,
    Listxattr = 23,
    Flush = 25,
    Init = 26,
    Opendir = 27,
    Readdir = 28,
    Releasedir = 29,
    Access = 34,
    Interrupt = 36,
    Destroy = 38,
    BatchForget = 42,
}

impl Opcode {
    fn of(v: u32) -> Option<Opcode> {
        use Opcode::*;
        [
            Lookup,
            Forget,
            Getattr,
            Readlink,
            Open,
            Read,
            Statfs,
            Release,
            Getxattr,
            Listxattr,
            Flush,
            Init,
            Opendir,
            Readdir,
            Releasedir,
            Access,
            Interrupt,
            Destroy,
            BatchForget,
        ]
        .into_iter()
        .find(|o| *o as u32 == v)
    }
}

/// Opcodes that would change the filesystem.
const WRITES: &[u32] = &[
    4,  // SETATTR
    6,  // SYMLINK
    8,  // MKNOD
    9,  // MKDIR
    10, // UNLINK
    11, // RMDIR
    12, // RENAME
    13, // LINK
    16, // WRITE
    21, // SETXATTR
    24, // REMOVEXATTR
    35, // CREATE
    43, // FALLOCATE
    45, // RENAME2
];

/// A request's header and arguments.
pub(super) struct Request<'b> {
    pub opcode: u32,
    pub unique: u64,
    pub node: u64,
    pub args: &'b [u8],
}

pub(super) fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

pub(super) fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

impl<'b> Request<'b> {
    fn parse(b: &'b [u8]) -> Option<Request<'b>> {
        let len = u32_at(b, 0)? as usize;
        let body = b.get(40..len)?;
        Some(Request {
            opcode: u32_at(b, 4)?,
            unique: u64_at(b, 8)?,
            node: u64_at(b, 16)?,
            args: body,
        })
    }

    /// The NUL-terminated name at the start of the arguments from `at`.
    fn name(&self, at: usize) -> Option<&'b [u8]> {
        let rest = self.args.get(at..)?;
        let end = rest.iter().position(|b| *b == 0)?;
        Some(&rest[..end])
    }
}

/// Answers requests on `fd` until the filesystem is unmounted.
pub(super) fn session(fd: &OwnedFd, fs: &dyn Filesystem) -> std::io::Result<()> {
    let mut buf = vec![0u8; BUFFER];
    loop {
        let n = match channel::receive(fd, &mut buf)? {
            Received::Request(n) => n,
            Received::Unmounted => return Ok(()),
        };
        let Some(req) = Request::parse(&buf[..n]) else {
            tracing::warn!(bytes = n, "a FUSE request too short to parse");
            continue;
        };
        let destroy = req.opcode == Opcode::Destroy as u32;
        // A handler that panics answers EIO: a request left unanswered would hang its
        // caller (and, in this process, keep the process from ever exiting).
        let answered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| answer(&req, fs)));
        let answered = answered.unwrap_or_else(|_| {
            tracing::error!(opcode = req.opcode, "a FUSE request handler panicked; answering EIO");
            Some(Reply::error(libc::EIO))
        });
        if let Some(out) = answered {
            channel::reply(fd, &out.finish(req.unique))?;
        }
        if destroy {
            return Ok(());
        }
    }
}

fn answer(req: &Request, fs: &dyn Filesystem) -> Option<Reply> {
    let Some(op) = Opcode::of(req.opcode) else {
        let errno = if WRITES.contains(&req.opcode) {
            libc::EROFS
        } else {
            libc::ENOSYS
        };
        return Some(Reply::error(errno));
    };
    let result: Result<Reply, Errno> = match op {
        Opcode::Forget | Opcode::BatchForget | Opcode::Interrupt => return None,
        Opcode::Init => Ok(init(req)),
        Opcode::Destroy | Opcode::Release | Opcode::Releasedir | Opcode::Flush | Opcode::Access => Ok(Reply::empty()),
        Opcode::Lookup => match req.name(0) {
            Some(name) => fs.lookup(req.node, name).map(|a| reply::entry(&a)),
            None => Err(libc::EINVAL),
        },
        Opcode::Getattr => fs.getattr(req.node).map(|a| reply::attr(&a)),
        Opcode::Readlink => fs.readlink(req.node).map(Reply::data),
        Opcode::Open | Opcode::Opendir => {
            let flags = u32_at(req.args, 0).unwrap_or(0);
            if flags & libc::O_ACCMODE as u32 != libc::O_RDONLY as u32 {
                Err(libc::EROFS)
            } else {
                fs.getattr(req.node).map(|_| reply::open())
            }
        }
        Opcode::Read => match (u64_at(req.args, 8), u32_at(req.args, 16)) {
            (Some(offset), Some(size)) => fs.read(req.node, offset, size).map(Reply::data),
            _ => Err(libc::EINVAL),
        },
        Opcode::Readdir => match (u64_at(req.args, 8), u32_at(req.args, 16)) {
            (Some(offset), Some(size)) => fs.readdir(req.node).map(|e| reply::dirents(&e, offset, size)),
            _ => Err(libc::EINVAL),
        },
        Opcode::Getxattr => match (u32_at(req.args, 0), req.name(8)) {
            (Some(size), Some(name)) => fs.getxattr(req.node, name).and_then(|v| reply::sized(v, size)),
            _ => Err(libc::EINVAL),
        },
        Opcode::Listxattr => match u32_at(req.args, 0) {
            Some(size) => fs.listxattr(req.node).and_then(|v| reply::sized(v, size)),
            None => Err(libc::EINVAL),
        },
        Opcode::Statfs => Ok(reply::statfs()),
    };
    Some(result.unwrap_or_else(Reply::error))
}

fn init(req: &Request) -> Reply {
    let major = u32_at(req.args, 0).unwrap_or(0);
    let offered = u32_at(req.args, 12).unwrap_or(0);
    if major < MAJOR {
        return Reply::error(libc::EPROTO);
    }
    let max_readahead = u32_at(req.args, 8).unwrap_or(128 << 10);
    reply::init(
        MAJOR,
        MINOR,
        max_readahead,
        offered & (ASYNC_READ | PARALLEL_DIROPS),
        MAX_WRITE,
    )
}
