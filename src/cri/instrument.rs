//! The one layer every CRI call passes through: a tracing span named after the RPC, the
//! call's duration, and the mapping of Berth's errors to gRPC statuses.

use std::future::Future;
use std::time::Instant;

use tonic::{Code, Response, Status};
use tracing::Instrument as _;

use crate::error::Error;

/// Runs one RPC handler inside its span and turns its result into a gRPC answer.
pub async fn call<T>(
    rpc: &'static str,
    handler: impl Future<Output = Result<T, Error>>,
) -> Result<Response<T>, Status> {
    let span = tracing::info_span!("cri", rpc, id = tracing::field::Empty);
    let started = Instant::now();
    let result = handler.instrument(span.clone()).await;
    let seconds = started.elapsed().as_secs_f64();
    let ms = seconds * 1000.0;
    let _entered = span.enter();
    let code = result.as_ref().map_or_else(|e| e.code(), |_| Code::Ok);
    crate::metrics::global().cri_request(rpc, code, seconds);
    match result {
        Ok(value) => {
            tracing::debug!(ms, "ok");
            Ok(Response::new(value))
        }
        Err(e) => {
            let status = Status::from(e);
            match status.code() {
                Code::Internal | Code::Unknown | Code::DataLoss => {
                    tracing::error!(ms, code = ?status.code(), error = status.message(), "failed")
                }
                Code::NotFound | Code::Unimplemented => {
                    tracing::debug!(ms, code = ?status.code(), error = status.message(), "failed")
                }
                _ => tracing::warn!(ms, code = ?status.code(), error = status.message(), "failed"),
            }
            Err(status)
        }
    }
}

/// Records the object id an RPC works on into the current span.
pub fn record_id(id: &str) {
    tracing::Span::current().record("id", id);
}
