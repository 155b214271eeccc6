//! Cosign's key-based signatures as stored in a registry: for an image whose manifest
//! digest is `sha256:<hex>`, the tag `sha256-<hex>.sig` in the same repository holds an
//! OCI manifest whose layers are simple-signing payloads, each with its base64 signature
//! in the `dev.cosignproject.cosign/signature` annotation. A payload names the image's
//! manifest digest and the identity (`docker-reference`) it was signed as.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::Deserialize;

use crate::image::reference::Digest;

pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
const PAYLOAD_TYPE: &str = "cosign container image signature";
/// Most signatures read for one image.
pub const MAX_SIGNATURES: usize = 32;
/// Largest payload read, in bytes.
pub const MAX_PAYLOAD_BYTES: u64 = 64 * 1024;

/// The tag holding the signatures of the image whose manifest digest is `digest`.
pub fn signature_tag(digest: &Digest) -> String {
    digest.as_str().replacen(':', "-", 1) + ".sig"
}

/// One signature layer: the payload blob to fetch and the signature over it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureLayer {
    pub digest: Digest,
    pub size: u64,
    pub signature: Vec<u8>,
}

#[derive(Deserialize)]
struct RawManifest {
    #[serde(default)]
    layers: Vec<RawLayer>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawLayer {
    media_type: String,
    digest: String,
    size: i64,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

/// The signature layers of a signature manifest (other layers are skipped).
pub fn signature_layers(manifest: &[u8]) -> Result<Vec<SignatureLayer>, String> {
    let raw: RawManifest =
        serde_json::from_slice(manifest).map_err(|e| format!("the signature manifest is not valid: {e}"))?;
    let mut out = Vec::new();
    for layer in raw.layers.into_iter().filter(|l| l.media_type == SIMPLE_SIGNING) {
        if out.len() == MAX_SIGNATURES {
            return Err(format!("more than {MAX_SIGNATURES} signatures"));
        }
        let digest = Digest::parse(&layer.digest).map_err(|e| format!("signature layer: {e}"))?;
        if layer.size < 0 || layer.size as u64 > MAX_PAYLOAD_BYTES {
            return Err(format!(
                "signature payload {digest} declares {} bytes (at most {MAX_PAYLOAD_BYTES})",
                layer.size
            ));
        }
        let Some(b64) = layer.annotations.get(SIGNATURE_ANNOTATION) else {
            return Err(format!(
                "signature layer {digest} has no {SIGNATURE_ANNOTATION} annotation"
            ));
        };
        let signature = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|e| format!("signature of {digest} is not base64: {e}"))?;
        out.push(SignatureLayer {
            digest,
            size: layer.size as u64,
            signature,
        });
    }
    Ok(out)
}

/// What a verified payload claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    pub docker_reference: String,
    pub manifest_digest: String,
}

#[derive(Deserialize)]
struct RawPayload {
    critical: Critical,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Critical {
    identity: Identity,
    image: ImagePart,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Identity {
    #[serde(rename = "docker-reference")]
    docker_reference: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImagePart {
    #[serde(rename = "docker-manifest-digest")]
    docker_manifest_digest: String,
}

/// Reads a simple-signing payload (only after its signature was checked).
pub fn parse_payload(bytes: &[u8]) -> Result<Payload, String> {
    let raw: RawPayload = serde_json::from_slice(bytes).map_err(|e| format!("payload is not valid: {e}"))?;
    if raw.critical.kind != PAYLOAD_TYPE {
        return Err(format!("payload type is {:?}, not {PAYLOAD_TYPE:?}", raw.critical.kind));
    }
    Ok(Payload {
        docker_reference: raw.critical.identity.docker_reference,
        manifest_digest: raw.critical.image.docker_manifest_digest,
    })
}

/// A payload as cosign writes it (for tests and for `berthctl`-made signatures).
pub fn payload(docker_reference: &str, manifest_digest: &str) -> Vec<u8> {
    serde_json::json!({
        "critical": {
            "identity": {"docker-reference": docker_reference},
            "image": {"docker-manifest-digest": manifest_digest},
            "type": PAYLOAD_TYPE,
        },
        "optional": null,
    })
    .to_string()
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn tag_layers_and_payloads() {
        let d = Digest::parse(&format!("sha256:{}", "c".repeat(64))).expect("digest");
        assert_eq!(signature_tag(&d), format!("sha256-{}.sig", "c".repeat(64)));
        let manifest = json!({
            "schemaVersion": 2,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": d.as_str(), "size": 2},
            "layers": [
                {"mediaType": SIMPLE_SIGNING, "digest": d.as_str(), "size": 200,
                 "annotations": {SIGNATURE_ANNOTATION: "c2lnbmF0dXJl"}},
                {"mediaType": "application/octet-stream", "digest": d.as_str(), "size": 1},
            ],
        });
        let layers = signature_layers(manifest.to_string().as_bytes()).expect("layers");
        assert_eq!(layers.len(), 1);
        assert_eq!(layers[0].signature, b"signature");
        let p = parse_payload(&payload("reg/app", d.as_str())).expect("payload");
        assert_eq!(p.docker_reference, "reg/app");
        assert_eq!(p.manifest_digest, d.as_str());
    }

    #[test]
    fn malformed_signatures_are_refused() {
        let d = format!("sha256:{}", "c".repeat(64));
        let layer = |size: i64, ann: serde_json::Value| {
            json!({"layers": [{"mediaType": SIMPLE_SIGNING, "digest": d, "size": size, "annotations": ann}]})
                .to_string()
        };
        assert!(signature_layers(layer(10, json!({})).as_bytes())
            .expect_err("no annotation")
            .contains("no dev.cosignproject.cosign/signature"));
        assert!(
            signature_layers(layer(1 << 30, json!({SIGNATURE_ANNOTATION: "AA=="})).as_bytes())
                .expect_err("too big")
                .contains("declares")
        );
        assert!(
            signature_layers(layer(10, json!({SIGNATURE_ANNOTATION: "%%"})).as_bytes())
                .expect_err("bad base64")
                .contains("base64")
        );
        let wrong_type = json!({"critical": {"identity": {"docker-reference": "a"},
            "image": {"docker-manifest-digest": d}, "type": "something else"}});
        assert!(parse_payload(wrong_type.to_string().as_bytes())
            .expect_err("type")
            .contains("payload type"));
        let extra = json!({"critical": {"identity": {"docker-reference": "a"},
            "image": {"docker-manifest-digest": d}, "type": PAYLOAD_TYPE, "extra": 1}});
        assert!(parse_payload(extra.to_string().as_bytes()).is_err());
    }
}
