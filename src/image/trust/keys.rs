//! Public keys for signature checks: PEM `PUBLIC KEY` blocks (SubjectPublicKeyInfo, what
//! `cosign generate-key-pair` and `openssl pkey -pubout` write) for ECDSA P-256 and P-384,
//! RSA (PKCS#1 v1.5, SHA-256) and Ed25519. Parsing reads just enough DER to find the
//! algorithm and the key bits; the checks themselves are ring's.

use base64::Engine as _;
use ring::signature::{self, VerificationAlgorithm};
use sha2::{Digest as _, Sha256};

const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
const RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const ED25519: &[u8] = &[0x2b, 0x65, 0x70];

/// One public key a policy trusts.
#[derive(Clone)]
pub struct PublicKey {
    algorithm: &'static dyn VerificationAlgorithm,
    kind: &'static str,
    bits: Vec<u8>,
    /// `sha256:<hex>` of the DER SubjectPublicKeyInfo: how records and messages name it.
    fingerprint: String,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({} {})", self.kind, self.fingerprint)
    }
}

impl PublicKey {
    /// Every `PUBLIC KEY` block in `pem` (at least one).
    pub fn from_pem(pem: &str) -> Result<Vec<PublicKey>, String> {
        let mut keys = Vec::new();
        let mut rest = pem;
        while let Some(start) = rest.find("-----BEGIN ") {
            let after = &rest[start + 11..];
            let label_end = after.find("-----").ok_or("unterminated PEM header")?;
            let label = &after[..label_end];
            let body_start = &after[label_end + 5..];
            let end_marker = format!("-----END {label}-----");
            let end = body_start
                .find(&end_marker)
                .ok_or_else(|| format!("PEM block {label:?} has no end line"))?;
            if label != "PUBLIC KEY" {
                return Err(format!(
                    "a {label:?} PEM block is not a public key (expected \"PUBLIC KEY\")"
                ));
            }
            let b64: String = body_start[..end].split_whitespace().collect();
            let der = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| format!("PEM body is not base64: {e}"))?;
            keys.push(PublicKey::from_spki(&der)?);
            rest = &body_start[end + end_marker.len()..];
        }
        if keys.is_empty() {
            return Err("no \"-----BEGIN PUBLIC KEY-----\" block".into());
        }
        Ok(keys)
    }

    /// A DER SubjectPublicKeyInfo.
    pub fn from_spki(der: &[u8]) -> Result<PublicKey, String> {
        let mut outer = Der::new(der);
        let mut spki = Der::new(outer.take(0x30)?);
        if !outer.is_empty() {
            return Err("trailing bytes after the key".into());
        }
        let mut alg = Der::new(spki.take(0x30)?);
        let oid = alg.take(0x06)?;
        let param = if alg.is_empty() { None } else { Some(alg.peek_tag()) };
        let curve = match param {
            Some(0x06) => Some(alg.take(0x06)?),
            _ => None,
        };
        let bit_string = spki.take(0x03)?;
        let (&unused, bits) = bit_string.split_first().ok_or("empty key bits")?;
        if unused != 0 {
            return Err("key bits are not whole bytes".into());
        }
        let (algorithm, kind): (&'static dyn VerificationAlgorithm, &'static str) = match (oid, curve) {
            (EC_PUBLIC_KEY, Some(P256)) => (&signature::ECDSA_P256_SHA256_ASN1, "ecdsa-p256"),
            (EC_PUBLIC_KEY, Some(P384)) => (&signature::ECDSA_P384_SHA384_ASN1, "ecdsa-p384"),
            (EC_PUBLIC_KEY, _) => return Err("unsupported elliptic curve (P-256 and P-384 are)".into()),
            (RSA, _) => (&signature::RSA_PKCS1_2048_8192_SHA256, "rsa"),
            (ED25519, _) => (&signature::ED25519, "ed25519"),
            _ => return Err("unsupported key algorithm (ECDSA, RSA and Ed25519 are)".into()),
        };
        Ok(PublicKey {
            algorithm,
            kind,
            bits: bits.to_vec(),
            fingerprint: format!("sha256:{}", hex::encode(Sha256::digest(der))),
        })
    }

    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// Whether `signature` over `message` was made with this key's private half.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        signature::UnparsedPublicKey::new(self.algorithm, &self.bits)
            .verify(message, signature)
            .is_ok()
    }
}

/// A reader over DER TLVs: enough for SubjectPublicKeyInfo.
struct Der<'a> {
    rest: &'a [u8],
}

impl<'a> Der<'a> {
    fn new(bytes: &'a [u8]) -> Der<'a> {
        Der { rest: bytes }
    }

    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    fn peek_tag(&self) -> u8 {
        self.rest.first().copied().unwrap_or(0)
    }

    /// The contents of the next element, which must have tag `tag`.
    fn take(&mut self, tag: u8) -> Result<&'a [u8], String> {
        let malformed = || "malformed DER in the public key".to_string();
        let (&t, rest) = self.rest.split_first().ok_or_else(malformed)?;
        if t != tag {
            return Err(format!(
                "unexpected DER tag {t:#04x} in the public key (wanted {tag:#04x})"
            ));
        }
        let (&first, mut rest) = rest.split_first().ok_or_else(malformed)?;
        let len = if first < 0x80 {
            first as usize
        } else {
            let n = (first & 0x7f) as usize;
            if n == 0 || n > 4 || rest.len() < n {
                return Err(malformed());
            }
            let len = rest[..n].iter().fold(0usize, |acc, b| (acc << 8) | *b as usize);
            rest = &rest[n..];
            len
        };
        if rest.len() < len {
            return Err(malformed());
        }
        let (contents, after) = rest.split_at(len);
        self.rest = after;
        Ok(contents)
    }
}

/// Test keys: made with ring, written as SubjectPublicKeyInfo PEM.
#[cfg(test)]
pub(crate) mod test_keys {
    use base64::Engine as _;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, ECDSA_P256_SHA256_ASN1_SIGNING};

    /// A P-256 key pair: (PEM public key, signer).
    pub fn p256() -> (String, impl Fn(&[u8]) -> Vec<u8>) {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).expect("generate");
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng).expect("key pair");
        let mut spki = hex::decode("3059301306072a8648ce3d020106082a8648ce3d030107034200").expect("hex");
        spki.extend_from_slice(pair.public_key().as_ref());
        let sign = move |msg: &[u8]| pair.sign(&SystemRandom::new(), msg).expect("sign").as_ref().to_vec();
        (pem(&spki), sign)
    }

    /// An Ed25519 key pair: (PEM public key, signer).
    pub fn ed25519() -> (String, impl Fn(&[u8]) -> Vec<u8>) {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("generate");
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("key pair");
        let mut spki = hex::decode("302a300506032b6570032100").expect("hex");
        spki.extend_from_slice(pair.public_key().as_ref());
        (pem(&spki), move |msg: &[u8]| pair.sign(msg).as_ref().to_vec())
    }

    fn pem(der: &[u8]) -> String {
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap_or(""))
            .collect();
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            lines.join("\n")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p256_and_ed25519_keys_verify_their_own_signatures_only() {
        let (pem_a, sign_a) = test_keys::p256();
        let (pem_b, sign_b) = test_keys::ed25519();
        let a = &PublicKey::from_pem(&pem_a).expect("p256 pem")[0];
        let b = &PublicKey::from_pem(&pem_b).expect("ed25519 pem")[0];
        assert_eq!((a.kind(), b.kind()), ("ecdsa-p256", "ed25519"));
        let msg = b"payload";
        assert!(a.verifies(msg, &sign_a(msg)));
        assert!(b.verifies(msg, &sign_b(msg)));
        assert!(!a.verifies(b"other payload", &sign_a(msg)));
        assert!(!a.verifies(msg, &sign_b(msg)));
        assert!(!b.verifies(msg, &sign_a(msg)));
        assert_ne!(a.fingerprint(), b.fingerprint());
    }

    #[test]
    fn several_blocks_and_bad_pem() {
        let (one, _) = test_keys::p256();
        let (two, _) = test_keys::p256();
        assert_eq!(PublicKey::from_pem(&format!("{one}\n{two}")).expect("two").len(), 2);
        assert!(PublicKey::from_pem("").expect_err("empty").contains("no"));
        let private = "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n";
        assert!(PublicKey::from_pem(private)
            .expect_err("private key")
            .contains("not a public key"));
        let garbage = "-----BEGIN PUBLIC KEY-----\nMAMCAQA=\n-----END PUBLIC KEY-----\n";
        assert!(PublicKey::from_pem(garbage).is_err());
        let truncated = &one[..one.len() / 2];
        assert!(PublicKey::from_pem(truncated).is_err());
    }
}
