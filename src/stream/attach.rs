//! Attach over a [`Session`]: the container's shim streams its live output and takes the
//! client's input and resizes (see `berth_shim::attach`).

use std::sync::Arc;

use berth_shim::attach as frames;
use bytes::Bytes;

use super::session::{Session, Size};
use super::status::Outcome;
use crate::container::lifecycle::Containers;
use crate::runtime::shim;

/// What an Attach URL attaches to.
#[derive(Debug, Clone)]
pub struct AttachRequest {
    pub container_id: String,
    pub tty: bool,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

pub async fn run(containers: Arc<Containers>, req: AttachRequest, mut s: Session) {
    let outcome = match containers.running_target(&req.container_id).await {
        Err(e) => Outcome::Failed(e.to_string()),
        Ok((rec, _)) => {
            let bundle = containers.bundle_dir(&rec.id);
            let stderr = req.stderr && !req.tty;
            match shim::attach(&bundle, req.stdin, req.stdout, stderr).await {
                Err(e) => Outcome::Failed(format!("attaching to {}: {e}", rec.id)),
                Ok(attached) => match relay(attached, &mut s).await {
                    Some(outcome) => outcome,
                    // The client went away: nothing to report to.
                    None => return,
                },
            }
        }
    };
    s.finish(&outcome).await;
}

/// Copies until the container's output ends (`Some`) or the client goes away (`None`).
pub(super) async fn relay(attached: shim::Attached, s: &mut Session) -> Option<Outcome> {
    let shim::Attached { mut reader, mut writer } = attached;
    let (stdout, stderr) = (s.stdout.clone(), s.stderr.clone());
    let output = async {
        loop {
            match frames::read_frame(&mut reader).await {
                Ok(Some((frames::STDOUT, data))) => {
                    if let Some(o) = &stdout {
                        let _ = o.write(Bytes::from(data)).await;
                    }
                }
                Ok(Some((frames::STDERR, data))) => {
                    if let Some(o) = &stderr {
                        let _ = o.write(Bytes::from(data)).await;
                    }
                }
                // An exec stream's EXIT carries the exit status; an attach's is empty.
                Ok(Some((frames::EXIT, data))) => {
                    return match <[u8; 4]>::try_from(data.as_slice()).map(i32::from_be_bytes) {
                        Ok(code) if code != 0 => Outcome::Exit(code),
                        _ => Outcome::Success,
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => {
                    return Outcome::Failed(
                        "the attach session fell behind the container's output and was cut off".into(),
                    )
                }
            }
        }
    };
    let (input, resize) = (s.stdin.take(), s.resize.take());
    let disconnected = s.disconnected.clone();
    // Stdin and resizes share the shim connection's write half: one writer takes both.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(u8, Vec<u8>)>(16);
    let resize_tx = tx.clone();
    let (flushed_tx, flushed) = tokio::sync::oneshot::channel::<()>();
    let stdin = async move {
        if let Some(mut input) = input {
            while let Some(chunk) = input.read().await {
                for part in chunk.chunks(64 * 1024) {
                    if tx.send((frames::STDIN, part.to_vec())).await.is_err() {
                        return;
                    }
                }
            }
            // A client that went away (detached) leaves stdin open for the next one.
            if !disconnected.load(std::sync::atomic::Ordering::SeqCst) {
                let _ = tx.send((frames::STDIN_CLOSE, Vec::new())).await;
            }
        }
    };
    let sizes = async move {
        if let Some(mut r) = resize {
            while let Some(Size { width, height }) = r.recv().await {
                let mut p = width.to_be_bytes().to_vec();
                p.extend_from_slice(&height.to_be_bytes());
                if resize_tx.send((frames::RESIZE, p)).await.is_err() {
                    return;
                }
            }
        }
    };
    let send = async move {
        while let Some((kind, data)) = rx.recv().await {
            if frames::write_frame(&mut writer, kind, &data).await.is_err() {
                break;
            }
        }
        let _ = flushed_tx.send(());
        // The write half stays open: the shim takes its end as berthd leaving the session,
        // while the container's output must still come through.
        std::future::pending::<()>().await;
        drop(writer);
    };
    let feed = async {
        tokio::join!(stdin, sizes, send);
        std::future::pending::<()>().await
    };
    tokio::pin!(feed);
    let gone = s.gone.recv();
    tokio::select! {
        o = output => Some(o),
        _ = &mut feed => Some(Outcome::Success),
        _ = gone => {
            // What the client sent before leaving still reaches the container.
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
                tokio::select! {
                    _ = &mut feed => {}
                    _ = flushed => {}
                }
            })
            .await;
            None
        }
    }
}
