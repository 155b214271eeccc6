//! Black-box test harness for berthd.
//!
//! - [`registry`]: a real `docker-registry` (distribution v2.8) on a free loopback port, with
//!   optional htpasswd auth.
//! - [`image`]: deterministic OCI / Docker images built in memory and pushed over the
//!   registry HTTP API v2, plus raw blob / manifest helpers for hand-made malformed content.
//! - [`proxy`]: HTTP proxies in front of a registry that tamper with blobs, demand Bearer
//!   tokens, redirect blob downloads to another host, or just record what they see.
//! - [`scripted`]: a fake registry answering each path exactly as scripted (lying registries).
//! - [`abuse`]: abusive CRI calls through berth-proto stubs, checked for their codes.
//! - [`berthd`]: runs the berthd binary in a throw-away root / state dir and cleans up after it.
//! - [`containerd`]: Debian's containerd run in berthd's place, for the same fault tests.
//! - [`ctl`]: runs the `berthctl` built beside it.
//!
//! The suite needs root (real mounts, namespaces): tests call [`require_root`] and fail,
//! never skip, without it.

pub mod abuse;
pub mod apiserver;
pub mod berthd;
pub mod canary;
pub mod chaos;
pub mod containerd;
pub mod cri;
pub mod ctl;
pub mod forged;
pub mod image;
pub mod image_gc;
pub mod kubelet;
pub mod pod;
pub mod probe;
pub mod proxy;
pub mod registry;
pub mod scripted;
pub mod sys;
pub mod tmpfs;
pub mod workload;

pub use berthd::{wait_for_socket, Berthd, BerthdOpts};
pub use image::{
    busybox_layer, push_image, push_index, put_blob, put_manifest, random_layer, BuiltLayer, Compression, Entry,
    ImageSpec, Layer, Pushed, RawKind,
};
pub use proxy::{RecordingProxy, RedirectProxy, SlowProxy, Tamper, TamperProxy, TokenAuthProxy};
pub use registry::{RegistryOpts, TestRegistry};

use sha2::{Digest, Sha256};

/// A loopback TCP port that was free a moment ago: bound on port 0, then released.
/// (Another process may grab it in between; that race is accepted in tests.)
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0 to find a free port")
}

/// Panics with a clear message unless running as root. The suite never skips for want of root.
pub fn require_root() {
    assert!(
        sys::is_root(),
        "the berth e2e tests need root (real mounts, namespaces, chown): run them as root, e.g. `sudo -E cargo test`"
    );
}

/// `sha256:<hex>` of `data`.
pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// A reqwest client for loopback test traffic: no system proxy, no automatic redirects.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("build reqwest client")
}
