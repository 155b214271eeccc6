//! Deterministic OCI / Docker images built in memory, and a push over the registry HTTP API v2
//! (monolithic blob uploads, HTTP Basic auth when given).
//!
//! Layers are tar archives with fixed mtimes, owners and compression settings, so the same
//! [`Layer`] always yields the same digest. Entries are written exactly as listed: parent
//! directories are not added implicitly, and [`Entry::RawName`] writes header bytes directly so
//! that hostile names (`../evil`, `/abs`) that `tar::Builder` refuses can be produced.

use std::io::Write;

use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value};

use crate::{http_client, sha256_digest};

/// The mtime of every tar entry, and the `created` time of every image config.
pub const MTIME: u64 = 1_700_000_000;
const CREATED: &str = "2023-11-14T22:13:20Z";

/// OCI media types.
pub mod media {
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
    pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
    pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
}

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// The layer media type; Docker has no zstd type, so zstd is always the OCI one.
    pub fn media_type(self, docker: bool) -> &'static str {
        match (self, docker) {
            (Compression::None, false) => media::OCI_LAYER,
            (Compression::Gzip, false) => media::OCI_LAYER_GZIP,
            (Compression::None, true) => media::DOCKER_LAYER,
            (Compression::Gzip, true) => media::DOCKER_LAYER_GZIP,
            (Compression::Zstd, _) => media::OCI_LAYER_ZSTD,
        }
    }
}

/// What a [`Entry::RawName`] entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawKind {
    /// A regular file with this content.
    File(Vec<u8>),
    /// A symlink to these raw target bytes.
    Symlink(Vec<u8>),
    /// A hard link to these raw target bytes.
    Hardlink(Vec<u8>),
}

/// One tar entry. Paths are relative to the layer root (no leading `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Dir {
        path: String,
        mode: u32,
    },
    File {
        path: String,
        mode: u32,
        uid: u64,
        gid: u64,
        data: Vec<u8>,
    },
    Symlink {
        path: String,
        target: String,
    },
    Hardlink {
        path: String,
        target: String,
    },
    /// Deletes `path` from lower layers: writes an empty `<parent>/.wh.<name>`.
    Whiteout {
        path: String,
    },
    /// Hides everything lower layers put in `dir`: writes `<dir>/.wh..wh..opq`.
    Opaque {
        dir: String,
    },
    /// A header whose name (and link name) bytes are written as given, unchecked; for
    /// hostile names such as `../evil` or `/abs`. Name and link target must fit in 100 bytes.
    RawName {
        name: Vec<u8>,
        kind: RawKind,
    },
}

impl Entry {
    /// A directory, mode 0755.
    pub fn dir(path: &str) -> Entry {
        Entry::Dir {
            path: path.into(),
            mode: 0o755,
        }
    }

    /// A root-owned regular file, mode 0644.
    pub fn file(path: &str, data: impl Into<Vec<u8>>) -> Entry {
        Entry::File {
            path: path.into(),
            mode: 0o644,
            uid: 0,
            gid: 0,
            data: data.into(),
        }
    }

    /// A symlink `path -> target`.
    pub fn symlink(path: &str, target: &str) -> Entry {
        Entry::Symlink {
            path: path.into(),
            target: target.into(),
        }
    }
}

/// A layer to build: its entries in order, and its compression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    pub entries: Vec<Entry>,
    pub compression: Compression,
}

/// A built layer blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltLayer {
    /// The (compressed) blob as pushed.
    pub blob: Vec<u8>,
    /// The OCI media type (see [`Compression::media_type`] for the Docker one).
    pub media_type: &'static str,
    /// `sha256:` of `blob`.
    pub digest: String,
    /// `sha256:` of the uncompressed tar.
    pub diff_id: String,
    /// `blob.len()`.
    pub size: u64,
}

impl Layer {
    /// A layer with these entries.
    pub fn new(compression: Compression, entries: Vec<Entry>) -> Layer {
        Layer { entries, compression }
    }

    /// The uncompressed tar archive. Panics on entries that cannot be encoded (a raw name over
    /// 100 bytes, a NUL in a path): those are mistakes in the test.
    pub fn tar(&self) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for e in &self.entries {
            append_entry(&mut b, e).unwrap_or_else(|err| panic!("cannot encode tar entry {e:?}: {err}"));
        }
        b.into_inner().expect("finish tar archive")
    }

    /// Builds the blob: the tar, compressed as asked, with its digests.
    pub fn build(&self) -> BuiltLayer {
        let tar = self.tar();
        let diff_id = sha256_digest(&tar);
        let blob = match self.compression {
            Compression::None => tar,
            Compression::Gzip => {
                // flate2 writes a gzip header with mtime 0 and no file name: reproducible.
                let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                enc.write_all(&tar).expect("gzip into memory");
                enc.finish().expect("gzip into memory")
            }
            Compression::Zstd => zstd::bulk::compress(&tar, 3).expect("zstd into memory"),
        };
        BuiltLayer {
            digest: sha256_digest(&blob),
            size: blob.len() as u64,
            media_type: self.compression.media_type(false),
            diff_id,
            blob,
        }
    }
}

fn header(kind: tar::EntryType, mode: u32, uid: u64, gid: u64, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(uid);
    h.set_gid(gid);
    h.set_mtime(MTIME);
    h.set_size(size);
    h
}

/// `a/b/name` -> `a/b/<prefix>name`.
fn with_name_prefix(path: &str, prefix: &str) -> String {
    let path = path.trim_end_matches('/');
    match path.rsplit_once('/') {
        Some((dir, name)) => format!("{dir}/{prefix}{name}"),
        None => format!("{prefix}{path}"),
    }
}

fn append_entry(b: &mut tar::Builder<Vec<u8>>, e: &Entry) -> std::io::Result<()> {
    use tar::EntryType as T;
    match e {
        Entry::Dir { path, mode } => {
            let mut h = header(T::Directory, *mode, 0, 0, 0);
            let path = format!("{}/", path.trim_end_matches('/'));
            b.append_data(&mut h, path, std::io::empty())
        }
        Entry::File {
            path,
            mode,
            uid,
            gid,
            data,
        } => {
            let mut h = header(T::Regular, *mode, *uid, *gid, data.len() as u64);
            b.append_data(&mut h, path, data.as_slice())
        }
        Entry::Symlink { path, target } => {
            let mut h = header(T::Symlink, 0o777, 0, 0, 0);
            b.append_link(&mut h, path, target)
        }
        Entry::Hardlink { path, target } => {
            let mut h = header(T::Link, 0o644, 0, 0, 0);
            b.append_link(&mut h, path, target)
        }
        Entry::Whiteout { path } => {
            let mut h = header(T::Regular, 0o644, 0, 0, 0);
            b.append_data(&mut h, with_name_prefix(path, ".wh."), std::io::empty())
        }
        Entry::Opaque { dir } => {
            let mut h = header(T::Regular, 0o644, 0, 0, 0);
            let path = format!("{}/.wh..wh..opq", dir.trim_end_matches('/'));
            b.append_data(&mut h, path, std::io::empty())
        }
        Entry::RawName { name, kind } => {
            let (mut h, data, link): (_, &[u8], Option<&[u8]>) = match kind {
                RawKind::File(d) => (header(T::Regular, 0o644, 0, 0, d.len() as u64), d, None),
                RawKind::Symlink(t) => (header(T::Symlink, 0o777, 0, 0, 0), &[], Some(t)),
                RawKind::Hardlink(t) => (header(T::Link, 0o644, 0, 0, 0), &[], Some(t)),
            };
            set_raw(&mut h.as_old_mut().name, name)?;
            if let Some(link) = link {
                set_raw(&mut h.as_old_mut().linkname, link)?;
            }
            h.set_cksum();
            b.append(&h, data)
        }
    }
}

fn set_raw(slot: &mut [u8; 100], bytes: &[u8]) -> std::io::Result<()> {
    if bytes.len() > slot.len() || bytes.contains(&0) {
        return Err(std::io::Error::other(
            "raw tar names must be at most 100 bytes without NUL",
        ));
    }
    slot.fill(0);
    slot[..bytes.len()].copy_from_slice(bytes);
    Ok(())
}

/// An image to build: its layers (bottom first) and config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSpec {
    pub layers: Vec<Layer>,
    pub user: Option<String>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    /// `config.WorkingDir`, when set.
    pub working_dir: Option<String>,
    pub os: String,
    pub arch: String,
    /// The platform variant (`v8` for arm64, ...), written to the config and to index entries.
    pub variant: Option<String>,
    /// Docker schema2 media types instead of OCI ones.
    pub docker_media_types: bool,
    /// `config.ExposedPorts` (`80/tcp`).
    pub exposed_ports: Vec<String>,
    /// `config.Volumes` (VOLUME paths).
    pub volumes: Vec<String>,
}

impl Default for ImageSpec {
    /// No layers, linux/amd64, OCI media types, `Env` with a standard `PATH`.
    fn default() -> Self {
        ImageSpec {
            layers: Vec::new(),
            user: None,
            entrypoint: Vec::new(),
            cmd: Vec::new(),
            env: vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()],
            working_dir: None,
            os: "linux".into(),
            arch: "amd64".into(),
            variant: None,
            docker_media_types: false,
            exposed_ports: Vec::new(),
            volumes: Vec::new(),
        }
    }
}

/// An image built in memory, ready to push.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    pub layers: Vec<BuiltLayer>,
    /// Each layer's media type as written in the manifest.
    pub layer_media_types: Vec<&'static str>,
    pub config: Vec<u8>,
    pub config_digest: String,
    pub manifest: Vec<u8>,
    pub manifest_media_type: &'static str,
    pub manifest_digest: String,
}

impl ImageSpec {
    /// A busybox image ([`busybox_layer`], gzip) running `/bin/sh`.
    pub fn busybox() -> ImageSpec {
        ImageSpec {
            layers: vec![busybox_layer(Compression::Gzip)],
            cmd: vec!["/bin/sh".into()],
            ..ImageSpec::default()
        }
    }

    /// Builds the layers, the config and the manifest.
    pub fn build(&self) -> BuiltImage {
        let docker = self.docker_media_types;
        let layers: Vec<BuiltLayer> = self.layers.iter().map(Layer::build).collect();
        let layer_media_types: Vec<&'static str> =
            self.layers.iter().map(|l| l.compression.media_type(docker)).collect();
        self.build_with(layers, layer_media_types)
    }

    /// Builds the config and the manifest around layers built elsewhere (hand-made blobs:
    /// bombs, raw tar bytes); `self.layers` is ignored.
    pub fn build_with(&self, layers: Vec<BuiltLayer>, layer_media_types: Vec<&'static str>) -> BuiltImage {
        let docker = self.docker_media_types;

        let mut cfg = Map::new();
        if !self.env.is_empty() {
            cfg.insert("Env".into(), json!(self.env));
        }
        if !self.entrypoint.is_empty() {
            cfg.insert("Entrypoint".into(), json!(self.entrypoint));
        }
        if !self.cmd.is_empty() {
            cfg.insert("Cmd".into(), json!(self.cmd));
        }
        if let Some(user) = &self.user {
            cfg.insert("User".into(), json!(user));
        }
        if let Some(wd) = &self.working_dir {
            cfg.insert("WorkingDir".into(), json!(wd));
        }
        if !self.volumes.is_empty() {
            let vols: Map<String, Value> = self.volumes.iter().map(|p| (p.clone(), json!({}))).collect();
            cfg.insert("Volumes".into(), Value::Object(vols));
        }
        if !self.exposed_ports.is_empty() {
            let ports: Map<String, Value> = self.exposed_ports.iter().map(|p| (p.clone(), json!({}))).collect();
            cfg.insert("ExposedPorts".into(), Value::Object(ports));
        }
        let mut config = json!({
            "created": CREATED,
            "architecture": self.arch,
            "os": self.os,
            "config": Value::Object(cfg),
            "rootfs": {
                "type": "layers",
                "diff_ids": layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>(),
            },
            "history": (0..layers.len())
                .map(|i| json!({"created": CREATED, "created_by": format!("berth-e2e layer {i}")}))
                .collect::<Vec<_>>(),
        });
        if let Some(v) = &self.variant {
            config["variant"] = json!(v);
        }
        let config = serde_json::to_vec(&config).expect("serialize config");
        let config_digest = sha256_digest(&config);

        let (manifest_media_type, config_media_type) = if docker {
            (media::DOCKER_MANIFEST, media::DOCKER_CONFIG)
        } else {
            (media::OCI_MANIFEST, media::OCI_CONFIG)
        };
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": manifest_media_type,
            "config": {"mediaType": config_media_type, "digest": config_digest, "size": config.len()},
            "layers": layers.iter().zip(&layer_media_types)
                .map(|(l, mt)| json!({"mediaType": mt, "digest": l.digest, "size": l.size}))
                .collect::<Vec<_>>(),
        });
        let manifest = serde_json::to_vec(&manifest).expect("serialize manifest");
        BuiltImage {
            manifest_digest: sha256_digest(&manifest),
            manifest,
            manifest_media_type,
            config_digest,
            config,
            layers,
            layer_media_types,
        }
    }
}

/// What [`push_image`] pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    pub repo: String,
    /// The tag (or digest) the manifest was put under.
    pub reference: String,
    pub manifest_digest: String,
    /// The config digest: the image id.
    pub config_digest: String,
    pub layer_digests: Vec<String>,
    /// Bytes of manifest + config + layer blobs.
    pub size: u64,
}

impl Pushed {
    /// `host:port/repo:tag` (or `host:port/repo@sha256:...` when pushed by digest).
    pub fn image_ref(&self, reg: &str) -> String {
        if self.reference.starts_with("sha256:") {
            format!("{reg}/{}@{}", self.repo, self.reference)
        } else {
            format!("{reg}/{}:{}", self.repo, self.reference)
        }
    }

    /// `host:port/repo@<manifest digest>`.
    pub fn digest_ref(&self, reg: &str) -> String {
        format!("{reg}/{}@{}", self.repo, self.manifest_digest)
    }
}

/// Builds `spec` and pushes it to `reg` (`host:port`, plain HTTP) as `repo:tag`.
pub async fn push_image(
    reg: &str,
    repo: &str,
    tag: &str,
    spec: &ImageSpec,
    auth: Option<(&str, &str)>,
) -> Result<Pushed> {
    push_built(reg, repo, tag, &spec.build(), auth).await
}

/// Pushes an already built image (blobs first, skipping those present) under `reference`.
pub async fn push_built(
    reg: &str,
    repo: &str,
    reference: &str,
    img: &BuiltImage,
    auth: Option<(&str, &str)>,
) -> Result<Pushed> {
    let client = http_client();
    let mut size = 0u64;
    for l in &img.layers {
        upload_blob(&client, reg, repo, &l.blob, &l.digest, auth).await?;
        size += l.size;
    }
    upload_blob(&client, reg, repo, &img.config, &img.config_digest, auth).await?;
    put_manifest(reg, repo, reference, img.manifest_media_type, &img.manifest, auth).await?;
    size += (img.config.len() + img.manifest.len()) as u64;
    Ok(Pushed {
        repo: repo.into(),
        reference: reference.into(),
        manifest_digest: img.manifest_digest.clone(),
        config_digest: img.config_digest.clone(),
        layer_digests: img.layers.iter().map(|l| l.digest.clone()).collect(),
        size,
    })
}

/// Pushes each image by digest, then an OCI index (or, with `docker_list`, a Docker manifest
/// list) naming them with their platforms, under `tag`. Returns the index digest and the images.
pub async fn push_index(
    reg: &str,
    repo: &str,
    tag: &str,
    images: &[ImageSpec],
    docker_list: bool,
    auth: Option<(&str, &str)>,
) -> Result<(String, Vec<Pushed>)> {
    let mut pushed = Vec::new();
    let mut entries = Vec::new();
    for spec in images {
        let img = spec.build();
        pushed.push(push_built(reg, repo, &img.manifest_digest, &img, auth).await?);
        let mut platform = json!({"architecture": spec.arch, "os": spec.os});
        if let Some(v) = &spec.variant {
            platform["variant"] = json!(v);
        }
        entries.push(json!({
            "mediaType": img.manifest_media_type,
            "digest": img.manifest_digest,
            "size": img.manifest.len(),
            "platform": platform,
        }));
    }
    let media_type = if docker_list {
        media::DOCKER_LIST
    } else {
        media::OCI_INDEX
    };
    let index = json!({"schemaVersion": 2, "mediaType": media_type, "manifests": entries});
    let body = serde_json::to_vec(&index)?;
    let digest = put_manifest(reg, repo, tag, media_type, &body, auth).await?;
    Ok((digest, pushed))
}

/// Uploads `data` as a blob (whatever it is) and returns its digest.
pub async fn put_blob(reg: &str, repo: &str, data: &[u8], auth: Option<(&str, &str)>) -> Result<String> {
    let digest = sha256_digest(data);
    upload_blob(&http_client(), reg, repo, data, &digest, auth).await?;
    Ok(digest)
}

/// PUTs `body` as-is as manifest `repo:reference` with Content-Type `media_type`; returns the
/// body's digest. The registry may still refuse what it cannot parse (that is an error here).
pub async fn put_manifest(
    reg: &str,
    repo: &str,
    reference: &str,
    media_type: &str,
    body: &[u8],
    auth: Option<(&str, &str)>,
) -> Result<String> {
    let url = format!("http://{reg}/v2/{repo}/manifests/{reference}");
    let resp = with_auth(http_client().put(&url), auth)
        .header(reqwest::header::CONTENT_TYPE, media_type)
        .body(body.to_vec())
        .send()
        .await
        .with_context(|| format!("PUT {url}"))?;
    let status = resp.status();
    if status.as_u16() != 201 {
        bail!("PUT {url}: {status}: {}", resp.text().await.unwrap_or_default());
    }
    Ok(sha256_digest(body))
}

fn with_auth(rb: reqwest::RequestBuilder, auth: Option<(&str, &str)>) -> reqwest::RequestBuilder {
    match auth {
        Some((u, p)) => rb.basic_auth(u, Some(p)),
        None => rb,
    }
}

/// Monolithic upload: HEAD (skip if present), POST for a session, PUT the bytes with `?digest=`.
async fn upload_blob(
    client: &reqwest::Client,
    reg: &str,
    repo: &str,
    data: &[u8],
    digest: &str,
    auth: Option<(&str, &str)>,
) -> Result<()> {
    let blob_url = format!("http://{reg}/v2/{repo}/blobs/{digest}");
    let head = with_auth(client.head(&blob_url), auth).send().await?;
    if head.status().as_u16() == 200 {
        return Ok(());
    }
    let start = format!("http://{reg}/v2/{repo}/blobs/uploads/");
    let resp = with_auth(client.post(&start), auth)
        .header(reqwest::header::CONTENT_LENGTH, "0")
        .send()
        .await
        .with_context(|| format!("POST {start}"))?;
    let status = resp.status();
    if status.as_u16() != 202 {
        bail!("POST {start}: {status}: {}", resp.text().await.unwrap_or_default());
    }
    let location = resp
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .context("upload session without Location")?
        .to_string();
    let mut url = if location.starts_with("http://") || location.starts_with("https://") {
        location
    } else {
        format!("http://{reg}{location}")
    };
    url.push(if url.contains('?') { '&' } else { '?' });
    url.push_str("digest=");
    url.push_str(digest);
    let resp = with_auth(client.put(&url), auth)
        .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
        .body(data.to_vec())
        .send()
        .await
        .with_context(|| format!("PUT blob {digest}"))?;
    let status = resp.status();
    if status.as_u16() != 201 {
        bail!("PUT blob {digest}: {status}: {}", resp.text().await.unwrap_or_default());
    }
    Ok(())
}

/// Applets linked to busybox by [`busybox_layer`].
pub const BUSYBOX_APPLETS: &[&str] = &[
    "sh", "ls", "echo", "cat", "sleep", "id", "env", "true", "false", "touch", "mkdir", "rm", "grep", "wc", "head",
    "stat", "hostname", "kill", "ps", "readlink", "test", "nc", "dd",
];

/// A minimal root filesystem: `/bin/busybox` (the host's static `/bin/busybox`, package
/// busybox-static) with `/bin/<applet> -> busybox` symlinks ([`BUSYBOX_APPLETS`]), `/etc/passwd`
/// (root and `app:x:1000:1000::/home/app:/bin/sh`), `/etc/group`, `/home/app`, `/tmp`.
/// Panics if the host has no `/bin/busybox`.
pub fn busybox_layer(compression: Compression) -> Layer {
    let busybox = std::fs::read("/bin/busybox").expect("read /bin/busybox (apt-get install busybox-static)");
    let mut entries = vec![
        Entry::dir("bin"),
        Entry::File {
            path: "bin/busybox".into(),
            mode: 0o755,
            uid: 0,
            gid: 0,
            data: busybox,
        },
    ];
    for applet in BUSYBOX_APPLETS {
        entries.push(Entry::symlink(&format!("bin/{applet}"), "busybox"));
    }
    entries.extend([
        Entry::dir("etc"),
        Entry::file(
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        ),
        Entry::file("etc/group", "root:x:0:\napp:x:1000:\nnogroup:x:65534:\n"),
        Entry::dir("home"),
        Entry::Dir {
            path: "home/app".into(),
            mode: 0o755,
        },
        Entry::dir("root"),
        Entry::Dir {
            path: "tmp".into(),
            mode: 0o1777,
        },
    ]);
    Layer::new(compression, entries)
}

/// An image of one gzip [`random_layer`] and nothing else, built.
pub fn random_image(bytes: usize, seed: u64) -> BuiltImage {
    ImageSpec {
        layers: vec![random_layer(bytes, seed, Compression::Gzip)],
        ..Default::default()
    }
    .build()
}

/// One file `data/random-<seed>.bin` of `bytes` incompressible bytes from an xorshift64*
/// generator seeded with `seed`: the same arguments give the same layer, different seeds
/// different blobs. For pull benchmarks.
pub fn random_layer(bytes: usize, seed: u64, compression: Compression) -> Layer {
    let mut data = vec![0u8; bytes];
    let mut s = seed ^ 0x9E37_79B9_7F4A_7C15;
    if s == 0 {
        s = 1;
    }
    for chunk in data.chunks_mut(8) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        let v = s.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
    Layer::new(
        compression,
        vec![
            Entry::dir("data"),
            Entry::File {
                path: format!("data/random-{seed}.bin"),
                mode: 0o644,
                uid: 0,
                gid: 0,
                data,
            },
        ],
    )
}
