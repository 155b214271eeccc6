//! berthd's side of the shim v2 Events service (`Forward` of
//! `containerd.services.events.ttrpc.v1.Events` over ttrpc), where the shims v2 of
//! `shim-v2` runtime handlers publish their task events. A container's exit and OOM kills
//! reach berthd through its berth-shim, so these events are only logged.

use std::path::{Path, PathBuf};

use berth_shim::task::{ForwardRequest, EVENTS_SERVICE};
use berth_shim::ttrpc::{self, Status, CODE_UNIMPLEMENTED};
use prost::Message as _;

/// The longest path a unix socket address holds.
const MAX_SOCKET_PATH: usize = 107;

/// Serves the Events service on `path` (replacing a stale socket); the address, or None
/// when it cannot be served (the shims then publish to nobody, which they tolerate).
pub fn serve(path: &Path) -> Option<PathBuf> {
    if path.as_os_str().len() > MAX_SOCKET_PATH {
        tracing::warn!(path = %path.display(), "shim v2 events socket path too long; events not served");
        return None;
    }
    let _ = std::fs::remove_file(path);
    let listener = match tokio::net::UnixListener::bind(path) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "shim v2 events socket");
            return None;
        }
    };
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(async move {
                        if let Err(e) = ttrpc::serve(stream, handle).await {
                            tracing::debug!(error = %e, "shim v2 events connection");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accepting on the shim v2 events socket");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    });
    Some(path.to_path_buf())
}

fn handle(service: &str, method: &str, payload: &[u8]) -> Result<Vec<u8>, Status> {
    if service != EVENTS_SERVICE || method != "Forward" {
        return Err(Status {
            code: CODE_UNIMPLEMENTED,
            message: format!("{service}/{method} is not served here"),
        });
    }
    let req = ForwardRequest::decode(payload).map_err(|e| Status {
        code: 3,
        message: format!("bad ForwardRequest: {e}"),
    })?;
    if let Some(env) = req.envelope {
        tracing::debug!(topic = %env.topic, namespace = %env.namespace, "shim v2 event");
    }
    Ok(Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_shim::task::Envelope;

    #[test]
    fn forward_is_answered_and_nothing_else() {
        let req = ForwardRequest {
            envelope: Some(Envelope {
                topic: "/tasks/exit".into(),
                namespace: "berth".into(),
                ..Default::default()
            }),
        };
        assert_eq!(handle(EVENTS_SERVICE, "Forward", &req.encode_to_vec()), Ok(Vec::new()));
        let e = handle(EVENTS_SERVICE, "Subscribe", &[]).expect_err("not served");
        assert_eq!(e.code, CODE_UNIMPLEMENTED);
        assert_eq!(handle(EVENTS_SERVICE, "Forward", &[0xff]).expect_err("bad").code, 3);
    }
}
