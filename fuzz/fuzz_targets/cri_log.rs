//! CRI container logs, both ends, built from their own source files (they live in binaries):
//! - the shim's writer (`shim/src/logs.rs`, `Splitter`, 16 KiB records, `\r\n` handling) and
//!   its timestamps (`shim/src/timefmt.rs`);
//! - berthctl's reader (`src/bin/berthctl/logline.rs`: `parse_entry`, `Joiner`, `lines`) and
//!   its time parsing (`src/bin/berthctl/output.rs`: `parse_rfc3339`, `parse_duration`).
//!
//! Any bytes are parsed as a log file; and container output cut by the shim, written as
//! records and read back by berthctl gives back the output's lines.
#![no_main]
#![allow(dead_code, unused_imports)]

#[path = "../../shim/src/timefmt.rs"]
mod timefmt;

#[path = "../../shim/src/logs.rs"]
mod shim_logs;

#[path = "../../src/bin/berthctl/logline.rs"]
mod logline;

#[path = "../../src/bin/berthctl/output.rs"]
mod output;

/// What `shim_logs` reports through (the shim's `crate::log`).
fn log(_: std::fmt::Arguments) {}

use libfuzzer_sys::fuzz_target;
use shim_logs::{Splitter, Tag};

/// A record as `LogFile::write` lays it out.
fn record(out: &mut Vec<u8>, ns: i64, stream: &str, tag: Tag, content: &[u8]) {
    timefmt::push_rfc3339_nano(ns, out);
    out.push(b' ');
    out.extend_from_slice(stream.as_bytes());
    out.push(b' ');
    out.extend_from_slice(tag.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(content);
    out.push(b'\n');
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    // 1. Arbitrary bytes as a log file, and its time fields.
    let mut joiner = logline::Joiner::default();
    let mut found = Vec::new();
    let used = logline::lines(body, &mut joiner, &mut found);
    assert!(used <= body.len());
    for l in &found {
        let _ = output::parse_rfc3339(&l.time);
    }
    if let Ok(text) = std::str::from_utf8(body) {
        let _ = output::parse_rfc3339(text);
        let _ = output::parse_duration(text);
    }

    // 2. Round trip: the bytes as container output on one stream, in chunks.
    if body.contains(&b'\r') {
        return; // `\r\n` is folded to `\n` by the shim: not a plain round trip.
    }
    let max = 1 + usize::from(sel & 0x3f);
    let chunk = 1 + usize::from(sel >> 6) * 7;
    let mut file = Vec::new();
    let mut ns = 1_700_000_000_000_000_000i64;
    let mut splitter = Splitter::new(max);
    let mut emit = |tag: Tag, content: &[u8]| {
        assert!(content.len() <= max, "record over the line limit");
        ns += 1;
        record(&mut file, ns, "stdout", tag, content);
    };
    for c in body.chunks(chunk) {
        splitter.push(c, &mut emit);
    }
    splitter.finish(&mut emit);
    let mut joiner = logline::Joiner::default();
    let mut read = Vec::new();
    let used = logline::lines(&file, &mut joiner, &mut read);
    assert_eq!(used, file.len(), "every record ends in a newline");
    let want: Vec<&[u8]> = match body.strip_suffix(b"\n") {
        Some(b) => b.split(|c| *c == b'\n').collect(),
        None => {
            // The tail without a newline stays pending (partial) in the joiner.
            let mut v: Vec<&[u8]> = body.split(|c| *c == b'\n').collect();
            v.pop();
            v
        }
    };
    let got: Vec<&[u8]> = read.iter().map(|l| l.text.as_slice()).collect();
    assert_eq!(got, want);
    for l in &read {
        assert!(output::parse_rfc3339(&l.time).is_some(), "{:?}", l.time);
    }
});
