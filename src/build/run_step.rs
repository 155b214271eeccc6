//! RUN: the command runs in a step container made from the stage's image so far (its
//! environment, user and working directory), its output is streamed as it comes, and a
//! zero exit makes its writable layer the step's layer.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::Duration;

use tokio::sync::mpsc;

use super::error::BuildError;
use super::pod::Workspace;
use super::Progress;
use crate::container::lifecycle::Containers;
use crate::container::model::ContainerState;

/// What a finished RUN container left: its exit code.
pub(super) async fn run_to_exit(
    containers: &std::sync::Arc<Containers>,
    ws: &Workspace,
    id: &str,
    name: &str,
    progress: &mpsc::Sender<Progress>,
) -> Result<i32, BuildError> {
    containers.start(id).await?;
    let log = ws.logs().join(format!("{name}.log"));
    let mut tail = LogTail::default();
    loop {
        let rec = containers.get(id).await?;
        let exited = rec.state == ContainerState::Exited;
        // Read after the state: everything the process wrote before it exited is there.
        for chunk in tail.read(&log) {
            if progress.send(Progress::Output(chunk)).await.is_err() {
                return Err(BuildError::Cancelled);
            }
        }
        if exited {
            return Ok(rec.exit_code);
        }
        if progress.is_closed() {
            return Err(BuildError::Cancelled);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Reads a CRI-format log file as it grows and gives back the content of whole records:
/// `TIME STREAM TAG CONTENT`, a `P` tag for a partial line (no newline), `F` for a full one.
#[derive(Default)]
pub(super) struct LogTail {
    offset: u64,
    rest: Vec<u8>,
}

impl LogTail {
    pub fn read(&mut self, path: &Path) -> Vec<Vec<u8>> {
        let Ok(mut file) = std::fs::File::open(path) else {
            return Vec::new();
        };
        if file.seek(SeekFrom::Start(self.offset)).is_err() {
            return Vec::new();
        }
        let mut buf = Vec::new();
        if file.read_to_end(&mut buf).is_err() {
            return Vec::new();
        }
        self.offset += buf.len() as u64;
        self.rest.extend_from_slice(&buf);
        let mut out = Vec::new();
        while let Some(end) = self.rest.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.rest.drain(..=end).collect();
            if let Some(content) = record_content(&line[..line.len() - 1]) {
                out.push(content);
            }
        }
        out
    }
}

fn record_content(line: &[u8]) -> Option<Vec<u8>> {
    let mut parts = line.splitn(4, |&b| b == b' ');
    let (_time, _stream, tag) = (parts.next()?, parts.next()?, parts.next()?);
    let mut content = parts.next().unwrap_or_default().to_vec();
    if tag.first() != Some(&b'P') {
        content.push(b'\n');
    }
    Some(content)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_become_output() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("step.log");
        std::fs::write(
            &path,
            b"2026-01-01T00:00:00Z stdout F hello\n2026-01-01T00:00:00Z stderr P par",
        )
        .expect("write");
        let mut tail = LogTail::default();
        assert_eq!(tail.read(&path), vec![b"hello\n".to_vec()]);
        let mut f = std::fs::OpenOptions::new().append(true).open(&path).expect("open");
        std::io::Write::write_all(&mut f, b"t\n2026-01-01T00:00:00Z stdout F \n").expect("append");
        assert_eq!(tail.read(&path), vec![b"part".to_vec(), b"\n".to_vec()]);
        assert!(tail.read(&path).is_empty());
    }
}
