//! CRI v1 (`runtime.v1`) wire types and tonic stubs, generated at build time from the
//! vendored `proto/api.proto` (k8s.io/cri-api v0.36.3, see README.md).
//!
//! Only the edge of berthd (`src/cri/`) and the clients use these types; the rest of Berth
//! works on its own domain types.

#[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
pub mod v1 {
    tonic::include_proto!("runtime.v1");

    /// The proto marks `password`, `auth`, `identity_token` and `registry_token` with
    /// `debug_redact`, which prost ignores: this impl keeps them out of logs by hand.
    impl std::fmt::Debug for AuthConfig {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            fn redacted(s: &str) -> &'static str {
                if s.is_empty() {
                    ""
                } else {
                    "<redacted>"
                }
            }
            f.debug_struct("AuthConfig")
                .field("username", &self.username)
                .field("password", &redacted(&self.password))
                .field("auth", &redacted(&self.auth))
                .field("server_address", &self.server_address)
                .field("identity_token", &redacted(&self.identity_token))
                .field("registry_token", &redacted(&self.registry_token))
                .finish()
        }
    }
}

pub use v1::*;

/// Berth's own image API (`berth.v1`), served on the same socket as the CRI.
#[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
pub mod berth {
    pub mod v1 {
        tonic::include_proto!("berth.v1");

        /// Keeps the secrets of [`Auth`] out of logs, like [`crate::v1::AuthConfig`].
        impl std::fmt::Debug for Auth {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                let redacted = |s: &str| if s.is_empty() { "" } else { "<redacted>" };
                f.debug_struct("Auth")
                    .field("username", &self.username)
                    .field("password", &redacted(&self.password))
                    .field("auth", &redacted(&self.auth))
                    .field("server_address", &self.server_address)
                    .field("identity_token", &redacted(&self.identity_token))
                    .field("registry_token", &redacted(&self.registry_token))
                    .finish()
            }
        }
    }
}

/// The cri-api release the vendored proto comes from.
pub const CRI_API_RELEASE: &str = "v0.36.3";

/// NRI (Node Resource Interface) plugin API messages (`nri.pkg.api.v1alpha1`), generated
/// from the vendored `proto/nri/api.proto` (containerd/nri, see README.md). Messages only:
/// the ttrpc transport is written by hand in Berth's `src/nri/`.
#[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
pub mod nri {
    include!(concat!(env!("OUT_DIR"), "/nri.pkg.api.v1alpha1.rs"));
}

/// The containerd/nri release the vendored NRI proto comes from.
pub const NRI_RELEASE: &str = "v0.12.1";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_config_debug_hides_secrets() {
        let auth = AuthConfig {
            username: "alice".into(),
            password: "hunter2".into(),
            auth: "YWxpY2U6aHVudGVyMg==".into(),
            server_address: "registry.example".into(),
            identity_token: "id-secret".into(),
            registry_token: "reg-secret".into(),
        };
        let dbg = format!("{auth:?}");
        for secret in ["hunter2", "YWxpY2U6aHVudGVyMg==", "id-secret", "reg-secret"] {
            assert!(!dbg.contains(secret), "{secret} leaked into {dbg}");
        }
        assert!(dbg.contains("alice"));
        // Nested in a request, the secret stays hidden too.
        let req = PullImageRequest {
            auth: Some(auth),
            ..Default::default()
        };
        assert!(!format!("{req:?}").contains("hunter2"));
    }

    #[test]
    fn berth_auth_debug_hides_secrets() {
        let auth = berth::v1::Auth {
            username: "alice".into(),
            password: "hunter2".into(),
            auth: "YWxpY2U6aHVudGVyMg==".into(),
            ..Default::default()
        };
        let req = berth::v1::PullImageRequest {
            image: "x".into(),
            auth: Some(auth),
        };
        let dbg = format!("{req:?}");
        assert!(
            !dbg.contains("hunter2") && !dbg.contains("YWxpY2U6aHVudGVyMg=="),
            "{dbg}"
        );
        assert!(dbg.contains("alice"));
    }
}
