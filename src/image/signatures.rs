//! Applying the signature policy during a pull: load the policy (it is read at every pull,
//! so an edit takes effect without a restart), find the requirements for the image, fetch
//! its cosign signatures from the same registry when a requirement asks for them, and let
//! `trust::check` decide. Signatures are read, never stored.

use super::manifest::{DOCKER_MANIFEST, OCI_MANIFEST};
use super::reference::{Digest, Reference};
use super::registry::{read_limited, PullAuth, RegistryError};
use super::service::{ImageError, Images};
use super::trust::{self, cosign, Fetched, Policy, Requirement, Verdict};

impl Images {
    /// The policy's verdict on `reference`, whose top-level manifest is `digest`; None
    /// when no policy is configured. A refused image is [`ImageError::Refused`].
    pub(super) async fn check_trust(
        &self,
        reference: &Reference,
        auth: &PullAuth,
        digest: &Digest,
    ) -> Result<Option<Verdict>, ImageError> {
        let Some(path) = &self.options.signature_policy else {
            return Ok(None);
        };
        let policy = Policy::load(path).map_err(ImageError::Policy)?;
        let (scope, requirements) = policy.requirements_for(reference);
        let rejected = requirements.iter().any(|r| matches!(r, Requirement::Reject));
        let wanted = requirements.iter().any(|r| matches!(r, Requirement::Sigstore { .. }));
        let signatures = if wanted && !rejected {
            self.fetch_signatures(reference, auth, digest).await?
        } else {
            Vec::new()
        };
        let verdict =
            trust::check(&policy, &scope, requirements, reference, digest, &signatures).map_err(ImageError::Refused)?;
        tracing::info!(image = %reference, scope = %verdict.scope, requirements = ?verdict.requirements, "signature policy accepts");
        Ok(Some(verdict))
    }

    async fn fetch_signatures(
        &self,
        reference: &Reference,
        auth: &PullAuth,
        digest: &Digest,
    ) -> Result<Vec<Fetched>, ImageError> {
        let tag = cosign::signature_tag(digest);
        let path = format!("manifests/{tag}");
        let fetched = match self
            .registry
            .get(reference, auth, &path, &[OCI_MANIFEST, DOCKER_MANIFEST], true)
            .await
        {
            Ok(f) => f,
            Err(RegistryError::NotFound(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let body = read_limited(fetched.response, self.options.limits.max_manifest_bytes).await?;
        let layers = cosign::signature_layers(&body)
            .map_err(|e| ImageError::Refused(format!("{reference}: its signatures ({tag}) are unreadable: {e}")))?;
        let mut out = Vec::with_capacity(layers.len());
        for layer in layers {
            let fetched = self
                .registry
                .get(reference, auth, &format!("blobs/{}", layer.digest), &[], false)
                .await?;
            let payload = read_limited(fetched.response, layer.size).await?;
            let actual = Digest::of(&payload);
            if actual != layer.digest || payload.len() as u64 != layer.size {
                return Err(ImageError::Content(super::content::ContentError::DigestMismatch {
                    expected: format!("{} ({reference} signature payload)", layer.digest),
                    actual: actual.to_string(),
                }));
            }
            out.push(Fetched {
                payload,
                signature: layer.signature,
            });
        }
        Ok(out)
    }
}
