//! A stand-in for berthd used by the harness's own tests: takes berthd's command line, prints
//! its arguments, listens on the `--listen unix://PATH` socket and accepts connections until
//! killed. `--fail-start` makes it exit 3 at once.

use std::os::unix::net::UnixListener;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    eprintln!("fake-berthd starting: {}", args.join(" "));
    if args.iter().any(|a| a == "--fail-start") {
        eprintln!("fake-berthd: failing on purpose");
        std::process::exit(3);
    }
    let listen = args
        .iter()
        .position(|a| a == "--listen")
        .and_then(|i| args.get(i + 1))
        .and_then(|l| l.strip_prefix("unix://"))
        .expect("--listen unix://PATH");
    let _ = std::fs::remove_file(listen);
    let listener = UnixListener::bind(listen).expect("bind the socket");
    eprintln!("fake-berthd listening on {listen}");
    for conn in listener.incoming() {
        drop(conn);
    }
}
