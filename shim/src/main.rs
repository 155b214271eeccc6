//! `berth-shim`: the per-container shim of Berth.
//!
//! - `berth-shim start ARGS`: spawns `berth-shim serve ARGS` (stdin null, stdout a pipe,
//!   stderr `<bundle>/shim.log`), waits for its first line, and prints `ok <init pid>`
//!   (exit 0) or writes `error <message>` to stderr (exit 1).
//! - `berth-shim serve ARGS`: the shim proper (see `serve`).
//!
//! ARGS: `--id ID --bundle DIR --runtime PATH --runtime-root DIR --log-path FILE
//! [--stdin] [--stdin-once] [--tty] [--systemd-cgroup]`.

mod args;
mod fdio;
mod logs;
mod reaper;
mod runc;
mod serve;
mod start;

use std::fmt;

use berth_shim::timefmt;

use args::{Args, USAGE};

/// A line on the shim's stderr (`<bundle>/shim.log` once serving).
pub fn log(msg: fmt::Arguments<'_>) {
    let mut ts = Vec::with_capacity(32);
    timefmt::push_rfc3339_nano(timefmt::now_ns(), &mut ts);
    eprintln!("{} {msg}", String::from_utf8_lossy(&ts));
}

fn main() {
    let mut argv = std::env::args_os().skip(1);
    let sub = argv.next();
    let code = match sub.as_ref().and_then(|s| s.to_str()) {
        Some(cmd @ ("start" | "serve")) => match Args::parse(argv) {
            Ok(a) if cmd == "start" => start::run(&a),
            Ok(a) => serve::run(a),
            Err(e) => {
                eprintln!("error {e}; {USAGE}");
                2
            }
        },
        Some("--version") => {
            println!("berth-shim {}", env!("CARGO_PKG_VERSION"));
            0
        }
        _ => {
            eprintln!("{USAGE}");
            2
        }
    };
    std::process::exit(code);
}
