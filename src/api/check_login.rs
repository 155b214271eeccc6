use berth_proto::berth::v1 as pb;

use super::convert;
use crate::error::{Error, Result};
use crate::image::Images;

/// `CheckLogin`: tries the credentials against the registry with berthd's own registry
/// configuration (hosts, TLS, CA files). Nothing is stored: `berthctl login` writes the
/// credentials file itself once this succeeds.
pub async fn check_login(images: &Images, req: pb::CheckLoginRequest) -> Result<pb::CheckLoginResponse> {
    let registry = convert::name("registry", &req.registry)?;
    let auth = req
        .auth
        .as_ref()
        .map(convert::auth)
        .ok_or_else(|| Error::InvalidArgument("no credentials given".into()))?;
    let registry = images.check_login(registry, &auth).await?;
    Ok(pb::CheckLoginResponse { registry })
}
