use berth_proto as pb;

use crate::daemon::Daemon;
use crate::error::Result;

/// The CRI API version Berth speaks.
pub const CRI_API_VERSION: &str = "v1";

/// `Version`: Berth's name and version and the CRI API version (`v1`).
pub async fn version(_d: &Daemon, _req: pb::VersionRequest) -> Result<pb::VersionResponse> {
    Ok(pb::VersionResponse {
        version: "0.1.0".into(),
        runtime_name: "berth".into(),
        runtime_version: env!("CARGO_PKG_VERSION").into(),
        runtime_api_version: CRI_API_VERSION.into(),
    })
}
