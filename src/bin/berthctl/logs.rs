//! `logs`: a container's output from its CRI log file (`<RFC3339Nano> <stream> <F|P> <text>`
//! lines), partial lines joined, stdout to stdout and stderr to stderr. `-f` follows the
//! file across rotation until the container exits.

use std::io::{Read as _, Seek as _, Write as _};
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context as _};
use berth_proto as pb;

use crate::output::{now_ns, parse_duration, parse_rfc3339};
// The pure parser lives apart (std only) so that fuzz/ can build it on its own.
pub use crate::logline::*;
use crate::{containers, resolve, Ctx};

#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// The container (id, id prefix or name).
    container: String,
    /// Keep printing new output until the container exits.
    #[arg(short, long)]
    follow: bool,
    /// Only the last N lines (-n is Docker's short form).
    #[arg(short = 'n', long, value_name = "N")]
    tail: Option<usize>,
    /// Prefix each line with its time (RFC 3339).
    #[arg(short = 't', long)]
    timestamps: bool,
    /// Only lines since a time (RFC 3339) or a duration ago (10s, 5m, 2h).
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
}

fn print(lines: &[Line], timestamps: bool) -> anyhow::Result<()> {
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
    for l in lines {
        let w: &mut dyn std::io::Write = if l.stderr { &mut err } else { &mut out };
        if timestamps {
            w.write_all(l.time.as_bytes())?;
            w.write_all(b" ")?;
        }
        w.write_all(&l.text)?;
        w.write_all(b"\n")?;
    }
    out.flush()?;
    err.flush()?;
    Ok(())
}

fn since_ns(since: &str, now: i64) -> anyhow::Result<i64> {
    if let Some(t) = parse_rfc3339(since) {
        return Ok(t);
    }
    match parse_duration(since) {
        Some(d) => Ok(now - d),
        None => bail!("--since {since:?}: give an RFC 3339 time or a duration like 10s, 5m, 2h"),
    }
}

/// Reads what is new in a log file: from `offset` when it is still the file with `inode`
/// and no shorter; else (rotated or truncated) from its start. (bytes, inode, restarted).
fn read_new(path: &Path, offset: u64, inode: u64) -> std::io::Result<(Vec<u8>, u64, bool)> {
    let mut f = std::fs::File::open(path)?;
    let meta = f.metadata()?;
    let restart = meta.ino() != inode || meta.len() < offset;
    f.seek(std::io::SeekFrom::Start(if restart { 0 } else { offset }))?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)?;
    Ok((buf, meta.ino(), restart))
}

pub async fn logs(ctx: &mut Ctx, a: LogsArgs) -> anyhow::Result<i32> {
    let c = resolve::container(ctx, &a.container).await?;
    let status = containers::status(ctx, &c.id, false).await?.status.unwrap_or_default();
    if status.log_path.is_empty() {
        bail!(
            "container {} has no log file (its pod has no log directory)",
            a.container
        );
    }
    let path = std::path::PathBuf::from(&status.log_path);
    let since = a.since.as_deref().map(|s| since_ns(s, now_ns())).transpose()?;
    let keep = |l: &Line| since.is_none_or(|s| parse_rfc3339(&l.time).is_none_or(|t| t >= s));
    let mut joiner = Joiner::default();
    let (buf, mut inode) = match read_new(&path, 0, 0) {
        Ok((b, ino, _)) => (b, ino),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && a.follow => (Vec::new(), 0),
        Err(e) => return Err(e).with_context(|| format!("reading the log {}", path.display())),
    };
    let mut found = Vec::new();
    let mut offset = lines(&buf, &mut joiner, &mut found) as u64;
    found.retain(keep);
    if let Some(n) = a.tail {
        let skip = found.len().saturating_sub(n);
        found.drain(..skip);
    }
    print(&found, a.timestamps)?;
    if !a.follow {
        return Ok(0);
    }
    loop {
        // Read the state first: output written before the exit is then always read below.
        let exited = match containers::status(ctx, &c.id, false).await {
            Ok(r) => r
                .status
                .is_none_or(|s| s.state == pb::ContainerState::ContainerExited as i32),
            Err(_) => true,
        };
        match read_new(&path, offset, inode) {
            Ok((buf, ino, restarted)) => {
                if restarted {
                    inode = ino;
                    offset = 0;
                    joiner = Joiner::default();
                }
                let mut out = Vec::new();
                offset += lines(&buf, &mut joiner, &mut out) as u64;
                out.retain(keep);
                print(&out, a.timestamps)?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("reading the log {}", path.display())),
        }
        if exited {
            return Ok(0);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn entries_and_joining() {
        let e = parse_entry(b"2026-01-01T00:00:00.1Z stdout F hello world").unwrap();
        assert_eq!(
            (e.time, e.stderr, e.partial, e.text),
            ("2026-01-01T00:00:00.1Z", false, false, &b"hello world"[..])
        );
        assert!(parse_entry(b"2026-01-01T00:00:00.1Z stderr P ").unwrap().partial);
        assert_eq!(parse_entry(b"2026 stdout F").unwrap().text, b"");
        assert_eq!(parse_entry(b"garbage"), None);
        assert_eq!(parse_entry(b"t other F x"), None);
        assert_eq!(parse_entry(b"t stdout X x"), None);

        let log =
            b"t1 stdout P hel\nt2 stderr F oops\nt3 stdout P lo \nt4 stdout F world\nt5 stdout F tail-without-newline";
        let mut j = Joiner::default();
        let mut out = Vec::new();
        let used = lines(log, &mut j, &mut out);
        assert_eq!(used, log.len() - "t5 stdout F tail-without-newline".len());
        assert_eq!(
            out,
            vec![
                Line {
                    time: "t2".into(),
                    stderr: true,
                    text: b"oops".to_vec()
                },
                Line {
                    time: "t1".into(),
                    stderr: false,
                    text: b"hello world".to_vec()
                },
            ]
        );
    }

    #[test]
    fn since_forms() {
        let now = 10_000 * 1_000_000_000;
        assert_eq!(since_ns("10s", now).unwrap(), now - 10_000_000_000);
        assert_eq!(since_ns("1970-01-01T00:00:05Z", now).unwrap(), 5_000_000_000);
        assert!(since_ns("last tuesday", now).is_err());
    }
}
