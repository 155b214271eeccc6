//! File descriptors passed to a child process by number: NRI starts a plugin with its
//! connection as an inherited fd named in `NRI_PLUGIN_SOCKET`; the plugin side takes it
//! over here.

#![allow(unsafe_code)]

use std::io;
use std::os::fd::{FromRawFd as _, OwnedFd, RawFd};

/// Takes ownership of the inherited descriptor `fd` (3 or above), after checking that it
/// is open. It must not be owned by anything else in this process (it was inherited, and
/// is taken once).
pub fn take_inherited(fd: RawFd) -> io::Result<OwnedFd> {
    if fd < 3 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("fd {fd} is not an inherited descriptor"),
        ));
    }
    // SAFETY: F_GETFD only reads the descriptor flags of `fd`; no memory is involved.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is open (checked above) and, by this function's contract, owned by
    // nothing else in this process.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
