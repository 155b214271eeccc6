//! User namespaces for pods and idmapped mounts.
//!
//! A process with threads cannot unshare a user namespace, so a forked child does it (with
//! a network namespace when asked, which the new user namespace then owns); the parent
//! writes the ID maps and keeps both namespaces by file descriptor before ending the child.
//! Idmapped mounts are `open_tree(OPEN_TREE_CLONE)`, `mount_setattr(MOUNT_ATTR_IDMAP)` with
//! a user namespace, then `move_mount` onto the target; rustix has no `mount_setattr`.

#![allow(unsafe_code)]

use std::fs::File;
use std::io::{self, Read as _};
use std::os::fd::{AsFd as _, AsRawFd as _};
use std::path::Path;

use rustix::fs::CWD;
use rustix::mount::{move_mount, open_tree, MoveMountFlags, OpenTreeFlags};

/// A user namespace made by [`create`], and the network namespace it owns when asked for.
#[derive(Debug)]
pub struct NewUserNs {
    pub user: File,
    pub net: Option<File>,
}

/// Creates a user namespace whose maps are `uid_map` and `gid_map` (the text of
/// `/proc/PID/uid_map`: `inside outside length` lines) and, with `net`, a network
/// namespace owned by it.
pub fn create(uid_map: &str, gid_map: &str, net: bool) -> io::Result<NewUserNs> {
    let (mut reader, writer) = io::pipe()?;
    let flags = libc::CLONE_NEWUSER | if net { libc::CLONE_NEWNET } else { 0 };
    let report = writer.as_raw_fd();
    // SAFETY: the child of a threaded process runs only `child`, which makes
    // async-signal-safe syscalls and never returns.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        child(flags, report);
    }
    drop(writer);
    let result = (|| {
        let mut ok = [0u8; 1];
        reader.read_exact(&mut ok)?;
        if ok[0] != 1 {
            return Err(io::Error::other(
                "the helper process could not unshare a user namespace",
            ));
        }
        std::fs::write(format!("/proc/{pid}/uid_map"), uid_map)?;
        std::fs::write(format!("/proc/{pid}/gid_map"), gid_map)?;
        let user = File::open(format!("/proc/{pid}/ns/user"))?;
        let net = if net {
            Some(File::open(format!("/proc/{pid}/ns/net"))?)
        } else {
            None
        };
        Ok(NewUserNs { user, net })
    })();
    // SAFETY: `pid` is the child forked above and not yet reaped.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let mut status = 0;
    // SAFETY: reaps that same child; `status` is a valid out-pointer.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    result
}

/// The forked helper: dies with its parent, unshares, reports, then waits to be killed.
fn child(flags: libc::c_int, report: libc::c_int) -> ! {
    // SAFETY: prctl with constant arguments.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    // SAFETY: unshare of namespace flags only (no CLONE_FILES/VM).
    let ok: u8 = u8::from(unsafe { libc::unshare(flags) } == 0);
    // SAFETY: writes one byte from a local to the pipe fd inherited from the parent.
    unsafe { libc::write(report, (&ok as *const u8).cast(), 1) };
    loop {
        // SAFETY: pause takes no arguments; the parent ends this process with SIGKILL.
        unsafe { libc::pause() };
    }
}

/// Pins the namespace behind `ns` at `pin` (a new file): it lives until unpinned.
pub fn pin(ns: &File, pin: &Path) -> io::Result<()> {
    if let Some(parent) = pin.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::OpenOptions::new().write(true).create_new(true).open(pin)?;
    let source = format!("/proc/self/fd/{}", ns.as_raw_fd());
    if let Err(e) = rustix::mount::mount_bind(source.as_str(), pin) {
        let _ = std::fs::remove_file(pin);
        return Err(e.into());
    }
    Ok(())
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

/// Mounts `source` at `target` (which must exist: a directory for a directory, a file for
/// a file) with its owners shifted by the maps of user namespace `userns`: what is owned
/// by N on disk shows as owned by N inside that namespace. `recursive` takes submounts
/// along (each must support idmapping too).
pub fn idmapped_bind(source: &Path, target: &Path, userns: &File, recursive: bool) -> io::Result<()> {
    let mut flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
    if recursive {
        flags |= OpenTreeFlags::AT_RECURSIVE;
    }
    let tree = open_tree(CWD, source, flags)?;
    set_idmap(&tree, userns, recursive)?;
    move_mount(tree.as_fd(), "", CWD, target, MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH)?;
    Ok(())
}

/// Whether idmapped mounts work on the filesystem of `dir` (kernel and filesystem both
/// support them): a throwaway user namespace and a detached tree, nothing attached.
pub fn idmap_supported(dir: &Path) -> bool {
    let Ok(ns) = create("0 100000 65536\n", "0 100000 65536\n", false) else {
        return false;
    };
    let Ok(tree) = open_tree(
        CWD,
        dir,
        OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
    ) else {
        return false;
    };
    set_idmap(&tree, &ns.user, false).is_ok()
}

/// `mount_setattr(MOUNT_ATTR_IDMAP)` on a detached tree.
fn set_idmap(tree: &std::os::fd::OwnedFd, userns: &File, recursive: bool) -> io::Result<()> {
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    let at_flags = libc::AT_EMPTY_PATH | if recursive { libc::AT_RECURSIVE } else { 0 };
    // SAFETY: mount_setattr(2) on a tree fd we own, an empty C path, and a pointer to a
    // live, correctly sized `struct mount_attr`.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            at_flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
