//! How `run` gives a container its storage, with Docker's rules: `-v /host:/ctr` binds a
//! host path (made if missing), `-v name:/ctr` a named volume (made if missing), `-v /ctr`
//! a new anonymous volume, `--mount type=bind|volume|tmpfs,...`, `--tmpfs /ctr[:opts]` and
//! `--volumes-from CONTAINER[:ro|rw]`. Volumes live in berthd (`berth.v1.Volumes`); the
//! container gets each as a CRI bind mount of the volume's directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use berth_proto as pb;
use berth_proto::berth::v1 as api;
use berth_proto::berth::v1::volumes_client::VolumesClient;
use tonic::transport::Channel;

use crate::explain;

/// One storage request of `run`, before berthd is asked for anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeUse {
    /// A host path; `create` makes it when missing (`-v`), else it must exist (`--mount`).
    Bind {
        host: PathBuf,
        target: String,
        readonly: bool,
        create: bool,
        propagation: pb::MountPropagation,
        relabel: bool,
    },
    /// A named volume, made with `options` if it does not exist.
    Named {
        name: String,
        target: String,
        readonly: bool,
        options: BTreeMap<String, String>,
    },
    /// A new anonymous volume (a tmpfs one with `options`).
    Anonymous {
        target: String,
        readonly: bool,
        options: BTreeMap<String, String>,
    },
}

impl VolumeUse {
    /// Where it is mounted in the container.
    pub fn target(&self) -> &str {
        match self {
            VolumeUse::Bind { target, .. } | VolumeUse::Named { target, .. } | VolumeUse::Anonymous { target, .. } => {
                target
            }
        }
    }
}

/// `-v`: `HOST:CTR[:opts]`, `NAME:CTR[:opts]` or `CTR`.
pub fn parse_v(spec: &str, cwd: &Path) -> anyhow::Result<VolumeUse> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, target, mode) = match parts.as_slice() {
        [t] => ("", *t, ""),
        [s, t] => (*s, *t, ""),
        [s, t, m] => (*s, *t, *m),
        _ => bail!("-v {spec:?}: expected [SOURCE:]CONTAINER_PATH[:ro|rw]"),
    };
    if !target.starts_with('/') {
        bail!("-v {spec:?}: the container path must be absolute");
    }
    let (mut readonly, mut relabel) = (false, false);
    for m in mode.split(',').filter(|m| !m.is_empty()) {
        match m {
            "ro" => readonly = true,
            "rw" => readonly = false,
            "z" | "Z" => relabel = true,
            other => bail!("-v {spec:?}: unknown option {other:?} (ro, rw, z or Z)"),
        }
    }
    let target = target.to_string();
    if source.is_empty() {
        if parts.len() > 1 {
            bail!("-v {spec:?}: the source is empty");
        }
        return Ok(VolumeUse::Anonymous {
            target,
            readonly,
            options: BTreeMap::new(),
        });
    }
    if is_path(source) {
        return Ok(VolumeUse::Bind {
            host: host_path(source, cwd)?,
            target,
            readonly,
            create: true,
            propagation: pb::MountPropagation::PropagationPrivate,
            relabel,
        });
    }
    check_name(source).with_context(|| format!("-v {spec:?}"))?;
    Ok(VolumeUse::Named {
        name: source.to_string(),
        target,
        readonly,
        options: BTreeMap::new(),
    })
}

/// `--mount type=bind|volume|tmpfs,source=..,target=..,readonly,...`.
pub fn parse_mount(spec: &str, cwd: &Path) -> anyhow::Result<VolumeUse> {
    let (mut kind, mut source, mut target) = ("volume", String::new(), String::new());
    let mut readonly = false;
    let mut propagation = pb::MountPropagation::PropagationPrivate;
    let mut options = BTreeMap::new();
    let mut tmpfs = Vec::new();
    for field in spec.split(',').filter(|f| !f.is_empty()) {
        let (key, value) = field.split_once('=').unwrap_or((field, ""));
        match key {
            "type" => kind = value,
            "source" | "src" => source = value.to_string(),
            "target" | "destination" | "dst" => target = value.to_string(),
            "readonly" | "ro" => readonly = matches!(value, "" | "true" | "1"),
            "bind-propagation" => {
                propagation = match value {
                    "private" | "rprivate" => pb::MountPropagation::PropagationPrivate,
                    "slave" | "rslave" => pb::MountPropagation::PropagationHostToContainer,
                    "shared" | "rshared" => pb::MountPropagation::PropagationBidirectional,
                    other => bail!("--mount {spec:?}: bind-propagation {other:?} (private, rslave or rshared)"),
                }
            }
            "volume-opt" => {
                let (k, v) = value
                    .split_once('=')
                    .with_context(|| format!("--mount {spec:?}: volume-opt wants KEY=VALUE"))?;
                options.insert(k.to_string(), v.to_string());
            }
            "tmpfs-size" => tmpfs.push(format!("size={value}")),
            "tmpfs-mode" => tmpfs.push(format!("mode={value}")),
            other => bail!("--mount {spec:?}: option {other:?} is not supported"),
        }
    }
    if !target.starts_with('/') {
        bail!("--mount {spec:?}: target must be an absolute container path");
    }
    match kind {
        "bind" => {
            if source.is_empty() {
                bail!("--mount {spec:?}: a bind mount needs a source");
            }
            let host = host_path(&source, cwd)?;
            if !host.exists() {
                bail!("--mount {spec:?}: bind source path {} does not exist", host.display());
            }
            Ok(VolumeUse::Bind {
                host,
                target,
                readonly,
                create: false,
                propagation,
                relabel: false,
            })
        }
        "volume" if source.is_empty() => Ok(VolumeUse::Anonymous {
            target,
            readonly,
            options,
        }),
        "volume" => {
            check_name(&source).with_context(|| format!("--mount {spec:?}"))?;
            Ok(VolumeUse::Named {
                name: source,
                target,
                readonly,
                options,
            })
        }
        "tmpfs" => Ok(tmpfs_use(target, &tmpfs.join(","))),
        other => bail!("--mount {spec:?}: type {other:?} (bind, volume or tmpfs)"),
    }
}

/// `--tmpfs /ctr[:size=64m,mode=1777]`.
pub fn parse_tmpfs(spec: &str) -> anyhow::Result<VolumeUse> {
    let (target, opts) = spec.split_once(':').unwrap_or((spec, ""));
    if !target.starts_with('/') {
        bail!("--tmpfs {spec:?}: the container path must be absolute");
    }
    Ok(tmpfs_use(target.to_string(), opts))
}

fn tmpfs_use(target: String, opts: &str) -> VolumeUse {
    let mut options = BTreeMap::from([("type".to_string(), "tmpfs".to_string())]);
    if !opts.is_empty() {
        options.insert("o".to_string(), opts.to_string());
    }
    VolumeUse::Anonymous {
        target,
        readonly: false,
        options,
    }
}

/// A path, as opposed to a volume name: absolute, or relative with `.` or `~`.
fn is_path(source: &str) -> bool {
    source.starts_with('/') || source.starts_with('.') || source.starts_with('~')
}

fn host_path(source: &str, cwd: &Path) -> anyhow::Result<PathBuf> {
    if let Some(rest) = source.strip_prefix('~') {
        let home = std::env::var_os("HOME").context("~ in a host path, and no HOME")?;
        return Ok(PathBuf::from(home).join(rest.trim_start_matches('/')));
    }
    Ok(cwd.join(source))
}

/// Docker's rule for volume names.
fn check_name(name: &str) -> anyhow::Result<()> {
    if berth::volume::check_name(name).is_err() {
        bail!("{name:?} is neither an absolute path nor a volume name ([a-zA-Z0-9][a-zA-Z0-9_.-]+)");
    }
    Ok(())
}

/// The CRI mounts for `uses`, volumes made and host paths created as needed; the names of
/// the anonymous volumes made (for `--rm` and failures to take back).
pub async fn resolve(
    client: &mut VolumesClient<Channel>,
    uses: &[VolumeUse],
) -> anyhow::Result<(Vec<pb::Mount>, Vec<String>)> {
    let mut mounts = Vec::new();
    let mut anonymous = Vec::new();
    for u in uses {
        let mount = match u {
            VolumeUse::Bind {
                host,
                target,
                readonly,
                create,
                propagation,
                relabel,
            } => {
                if *create && !host.exists() {
                    std::fs::create_dir_all(host).with_context(|| format!("creating host path {}", host.display()))?;
                }
                let host = std::fs::canonicalize(host).with_context(|| format!("host path {}", host.display()))?;
                pb::Mount {
                    container_path: target.clone(),
                    host_path: host.display().to_string(),
                    readonly: *readonly,
                    selinux_relabel: *relabel,
                    propagation: *propagation as i32,
                    ..Default::default()
                }
            }
            VolumeUse::Named {
                name,
                target,
                readonly,
                options,
            } => volume_mount(create(client, name, options, false).await?, target, *readonly),
            VolumeUse::Anonymous {
                target,
                readonly,
                options,
            } => {
                let v = create(client, "", options, true).await?;
                anonymous.push(v.name.clone());
                volume_mount(v, target, *readonly)
            }
        };
        mounts.push(mount);
    }
    Ok((mounts, anonymous))
}

fn volume_mount(v: api::Volume, target: &str, readonly: bool) -> pb::Mount {
    pb::Mount {
        container_path: target.to_string(),
        host_path: v.mountpoint,
        readonly,
        ..Default::default()
    }
}

async fn create(
    client: &mut VolumesClient<Channel>,
    name: &str,
    options: &BTreeMap<String, String>,
    anonymous: bool,
) -> anyhow::Result<api::Volume> {
    let req = api::CreateVolumeRequest {
        name: name.to_string(),
        options: options.clone().into_iter().collect(),
        anonymous,
        ..Default::default()
    };
    let v = client.create_volume(req).await.map_err(explain)?.into_inner().volume;
    v.context("berthd returned no volume")
}

/// `--volumes-from CONTAINER[:ro|rw]`: that container's mounts, read-only if asked.
pub fn mounts_from(spec: &str, status: &pb::ContainerStatus) -> anyhow::Result<Vec<pb::Mount>> {
    let (_, mode) = spec.split_once(':').unwrap_or((spec, ""));
    let readonly = match mode {
        "" | "rw" => None,
        "ro" => Some(true),
        other => bail!("--volumes-from {spec:?}: mode {other:?} (ro or rw)"),
    };
    Ok(status
        .mounts
        .iter()
        .map(|m| pb::Mount {
            readonly: readonly.unwrap_or(m.readonly),
            ..m.clone()
        })
        .collect())
}

/// Removes the anonymous volumes among `names` (after their container went); failures are
/// reported, not fatal.
pub async fn remove_anonymous(client: &mut VolumesClient<Channel>, names: &[String]) {
    for name in names {
        let req = api::RemoveVolumeRequest {
            name: name.clone(),
            force: true,
        };
        if let Err(e) = client.remove_volume(req).await {
            eprintln!("berthctl: removing volume {name}: {}", e.message());
        }
    }
}

/// The anonymous volumes container `id` uses: all of them, or (`all` false) its tmpfs ones,
/// which go with the container as Docker's tmpfs mounts do.
pub async fn anonymous_of(client: &mut VolumesClient<Channel>, id: &str, all: bool) -> anyhow::Result<Vec<String>> {
    let list = client
        .list_volumes(api::ListVolumesRequest { sizes: false })
        .await
        .map_err(explain)?
        .into_inner()
        .volumes;
    Ok(list
        .into_iter()
        .filter(|v| v.anonymous && v.used_by.iter().any(|u| u == id))
        .filter(|v| all || v.options.get("type").is_some_and(|t| t == "tmpfs"))
        .map(|v| v.name)
        .collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn v_tells_paths_names_and_anonymous_volumes_apart() {
        let cwd = Path::new("/work");
        let bind = parse_v("./data:/data:ro", cwd).unwrap();
        assert!(
            matches!(&bind, VolumeUse::Bind { host, readonly: true, create: true, .. } if host == Path::new("/work/./data"))
        );
        assert!(matches!(
            parse_v("/srv:/srv:z", cwd).unwrap(),
            VolumeUse::Bind { relabel: true, .. }
        ));
        assert_eq!(
            parse_v("dbdata:/var/lib/db", cwd).unwrap(),
            VolumeUse::Named {
                name: "dbdata".into(),
                target: "/var/lib/db".into(),
                readonly: false,
                options: BTreeMap::new()
            }
        );
        assert!(matches!(parse_v("/cache", cwd).unwrap(), VolumeUse::Anonymous { .. }));
        for (bad, says) in [
            ("name:rel", "absolute"),
            ("bad name!:/x", "neither"),
            ("/a:/b:rx", "rx"),
            (":/x", "empty"),
            ("a:b:c:d", "expected"),
        ] {
            let err = format!("{:#}", parse_v(bad, cwd).unwrap_err());
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn mount_reads_dockers_keys_and_refuses_the_rest() {
        let cwd = Path::new("/");
        let m = parse_mount("type=volume,source=db,target=/d,readonly,volume-opt=type=tmpfs", cwd).unwrap();
        assert!(
            matches!(&m, VolumeUse::Named { name, readonly: true, options, .. } if name == "db" && options["type"] == "tmpfs")
        );
        let t = parse_mount("type=tmpfs,dst=/run/x,tmpfs-size=1m", cwd).unwrap();
        assert!(matches!(&t, VolumeUse::Anonymous { options, .. } if options["o"] == "size=1m"));
        let b = parse_mount("type=bind,src=/tmp,target=/t,bind-propagation=rslave", cwd).unwrap();
        assert!(matches!(
            b,
            VolumeUse::Bind {
                create: false,
                propagation: pb::MountPropagation::PropagationHostToContainer,
                ..
            }
        ));
        for (bad, says) in [
            ("type=bind,src=/no/such/dir,target=/t", "does not exist"),
            ("type=volume,target=/t,consistency=cached", "consistency"),
            ("type=npipe,target=/t", "npipe"),
            ("type=volume,source=x", "target"),
        ] {
            let err = format!("{:#}", parse_mount(bad, cwd).unwrap_err());
            assert!(err.contains(says), "{bad}: {err}");
        }
        assert!(
            matches!(parse_tmpfs("/scratch:size=2m").unwrap(), VolumeUse::Anonymous { options, .. } if options["o"] == "size=2m")
        );
    }
}
