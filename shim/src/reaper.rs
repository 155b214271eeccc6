//! The shim is a child subreaper: every child and orphaned descendant (the container's
//! init after `runc create` exits, stray exec processes) ends up being reaped here, by
//! `waitpid(-1, WNOHANG)` on each SIGCHLD. Interested code registers a pid first.

use std::cell::RefCell;
use std::collections::HashMap;

use rustix::process::{wait, WaitOptions, WaitStatus};
use tokio::signal::unix::Signal;
use tokio::sync::oneshot;

#[derive(Debug, Default)]
pub struct Reaper {
    waiters: RefCell<HashMap<i32, oneshot::Sender<i32>>>,
    /// Exits nobody had registered for yet (kept few: only a pid read from a pid file
    /// after its process was already reaped can need one).
    unclaimed: RefCell<HashMap<i32, i32>>,
}

/// Exit status, or 128 + signal number.
pub fn exit_code(status: WaitStatus) -> i32 {
    match (status.exit_status(), status.terminating_signal()) {
        (Some(code), _) => code,
        (None, Some(sig)) => 128 + sig,
        _ => -1,
    }
}

impl Reaper {
    /// The exit code of `pid` once it has been reaped.
    pub fn watch(&self, pid: i32) -> oneshot::Receiver<i32> {
        let (tx, rx) = oneshot::channel();
        match self.unclaimed.borrow_mut().remove(&pid) {
            Some(code) => {
                let _ = tx.send(code);
            }
            None => {
                self.waiters.borrow_mut().insert(pid, tx);
            }
        }
        rx
    }

    /// Whether `pid` is registered and not reaped yet: its pid cannot have been reused.
    pub fn awaits(&self, pid: i32) -> bool {
        self.waiters.borrow().contains_key(&pid)
    }

    pub fn reap(&self) {
        // Ok(None): children remain, none exited; Err(ECHILD): no children at all.
        while let Ok(Some((pid, status))) = wait(WaitOptions::NOHANG) {
            let (pid, code) = (pid.as_raw_nonzero().get(), exit_code(status));
            match self.waiters.borrow_mut().remove(&pid) {
                Some(tx) => {
                    let _ = tx.send(code);
                }
                None => {
                    let mut unclaimed = self.unclaimed.borrow_mut();
                    if unclaimed.len() >= 64 {
                        unclaimed.clear();
                    }
                    unclaimed.insert(pid, code);
                }
            }
        }
    }

    pub async fn run(&self, mut sigchld: Signal) {
        loop {
            self.reap();
            if sigchld.recv().await.is_none() {
                return;
            }
        }
    }
}
