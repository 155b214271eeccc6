//! `berth-shim start`: runs `serve` detached and relays its first line.

use std::fs::OpenOptions;
use std::io::{BufRead as _, BufReader};
use std::os::unix::fs::OpenOptionsExt as _;
use std::process::{Command, Stdio};

use crate::args::Args;

fn fail(msg: impl std::fmt::Display) -> i32 {
    eprintln!("error {msg}");
    1
}

pub fn run(args: &Args) -> i32 {
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => return fail(format_args!("finding berth-shim itself: {e}")),
    };
    if !args.bundle.is_dir() {
        return fail(format_args!("bundle {} is not a directory", args.bundle.display()));
    }
    let log_path = args.bundle.join("shim.log");
    let log = match OpenOptions::new().create(true).append(true).mode(0o600).open(&log_path) {
        Ok(f) => f,
        Err(e) => return fail(format_args!("{}: {e}", log_path.display())),
    };
    let mut child = match Command::new(&exe)
        .arg("serve")
        .args(args.to_argv())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return fail(format_args!("{}: {e}", exe.display())),
    };
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        let _ = BufReader::new(out).read_line(&mut line);
    }
    let line = line.trim_end();
    if let Some(pid) = line.strip_prefix("ok ") {
        // Not waited for: `serve` lives on, reparented once this process exits.
        println!("ok {pid}");
        return 0;
    }
    let status = child.wait();
    match line.strip_prefix("error ") {
        Some(msg) => fail(msg),
        None => fail(format_args!(
            "berth-shim serve ended ({}) before reporting; see {}",
            status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string()),
            log_path.display()
        )),
    }
}
