//! The pause process's few syscalls. Signal masks and `sigwaitinfo` have no safe wrapper
//! in rustix, so this module holds the crate's only `unsafe`, each block a single libc call.

#![allow(unsafe_code)]

use std::io;
use std::process::ExitCode;

use rustix::thread::{LinkNameSpaceType, UnshareFlags};

fn signal_set() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset only write into the local set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGCHLD] {
            libc::sigaddset(&mut set, sig);
        }
        set
    }
}

/// Blocks SIGTERM, SIGINT and SIGCHLD so they queue for `sigwaitinfo`.
pub fn block_signals() -> io::Result<()> {
    let set = signal_set();
    // SAFETY: a valid set; the old mask is not wanted.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

pub fn join_netns(path: &str) -> io::Result<()> {
    let file = std::fs::File::open(path)?;
    rustix::thread::move_into_link_name_space(std::os::fd::AsFd::as_fd(&file), Some(LinkNameSpaceType::Network))?;
    Ok(())
}

/// Enters the pod's user namespace (owner of its network namespace), so the namespaces
/// made next belong to it.
pub fn join_userns(path: &str) -> io::Result<()> {
    let file = std::fs::File::open(path)?;
    rustix::thread::move_into_link_name_space(std::os::fd::AsFd::as_fd(&file), Some(LinkNameSpaceType::User))?;
    Ok(())
}

pub fn unshare(uts: bool, ipc: bool, pid: bool) -> io::Result<()> {
    let mut flags = UnshareFlags::empty();
    flags.set(UnshareFlags::NEWUTS, uts);
    flags.set(UnshareFlags::NEWIPC, ipc);
    flags.set(UnshareFlags::NEWPID, pid);
    // SAFETY: CLONE_FILES is never among the flags, so no thread can lose its fd table.
    unsafe { rustix::thread::unshare_unsafe(flags) }?;
    Ok(())
}

/// Ends this process when its parent does: the PID namespace's init dies with the process
/// that made it (which berthd stops, or which a crash left for the start-up sweep).
pub fn die_with_parent() -> io::Result<()> {
    rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))?;
    Ok(())
}

/// Closes stdout so the daemon's reader sees EOF after the ready line.
pub fn close_stdout() {
    let devnull = std::fs::OpenOptions::new().write(true).open("/dev/null");
    if let Ok(null) = devnull {
        let _ = rustix::stdio::dup2_stdout(&null);
    }
}

/// Reaps every exited child until SIGTERM or SIGINT arrives. With `child` (the PID 1 of a
/// PID namespace this process created), the signal is passed on to it and its exit ends
/// this process too.
pub fn reap_until_terminated(child: Option<u32>) -> ExitCode {
    let set = signal_set();
    loop {
        // SAFETY: a valid, blocked set; the info struct is not needed.
        let sig = unsafe { libc::sigwaitinfo(&set, std::ptr::null_mut()) };
        match sig {
            libc::SIGCHLD => {
                while let Ok(Some((pid, _))) = rustix::process::waitpid(None, rustix::process::WaitOptions::NOHANG) {
                    if child.is_some_and(|c| pid.as_raw_nonzero().get() as u32 == c) {
                        return ExitCode::SUCCESS;
                    }
                }
            }
            libc::SIGTERM | libc::SIGINT => {
                if let Some(c) = child.and_then(|c| rustix::process::Pid::from_raw(c as i32)) {
                    let _ = rustix::process::kill_process(c, rustix::process::Signal::TERM);
                    continue;
                }
                return ExitCode::SUCCESS;
            }
            _ => {}
        }
    }
}

/// Brings the loopback interface of the current network namespace up (a new namespace
/// starts with `lo` down, and containers of a pod talk to each other over localhost).
pub fn loopback_up() -> io::Result<()> {
    // SAFETY: a plain datagram socket used only for the two ioctls below, closed after.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: ifreq is plain data; zeroed is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: valid fd and ifreq; SIOCGIFFLAGS fills ifru_flags.
    let mut rc = unsafe { libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req) };
    if rc == 0 {
        // SAFETY: the union member written by SIOCGIFFLAGS.
        unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
        // SAFETY: valid fd and ifreq.
        rc = unsafe { libc::ioctl(fd, libc::SIOCSIFFLAGS, &req) };
    }
    let err = io::Error::last_os_error();
    // SAFETY: fd is ours and closed once.
    unsafe { libc::close(fd) };
    if rc != 0 {
        return Err(err);
    }
    Ok(())
}
