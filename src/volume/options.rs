//! The local driver's options, as `docker volume create -o` takes them: `type` (none, or
//! tmpfs), `device` (`tmpfs`, or the host directory a `type=none,o=bind` volume binds) and
//! `o` (mount options). Anything else is refused by name rather than ignored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What backs a volume's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backing {
    /// A plain directory under berthd's root.
    Directory,
    /// A tmpfs with these mount options (size=, mode=, uid=, gid=, nr_inodes=).
    Tmpfs(String),
    /// A bind mount of a host directory (read-only with `o=bind,ro`).
    Bind { source: PathBuf, readonly: bool },
}

/// Mount options a tmpfs volume may carry.
const TMPFS_OPTIONS: [&str; 5] = ["size", "mode", "uid", "gid", "nr_inodes"];

/// Reads the options of a `local` volume.
pub fn parse(options: &BTreeMap<String, String>) -> Result<Backing, String> {
    if let Some(key) = options.keys().find(|k| !matches!(k.as_str(), "type" | "device" | "o")) {
        return Err(format!("volume option {key:?} is not known (type, device and o are)"));
    }
    let get = |k: &str| options.get(k).map(String::as_str).unwrap_or("");
    let mount_opts: Vec<&str> = get("o").split(',').filter(|o| !o.is_empty()).collect();
    match get("type") {
        "" if get("device").is_empty() && mount_opts.is_empty() => Ok(Backing::Directory),
        "tmpfs" => {
            if !matches!(get("device"), "" | "tmpfs") {
                return Err(format!("a tmpfs volume's device is \"tmpfs\", not {:?}", get("device")));
            }
            for o in &mount_opts {
                let key = o.split_once('=').map_or(*o, |(k, _)| k);
                if !TMPFS_OPTIONS.contains(&key) {
                    return Err(format!(
                        "tmpfs option {o:?} is not supported (size, mode, uid, gid, nr_inodes are)"
                    ));
                }
            }
            Ok(Backing::Tmpfs(mount_opts.join(",")))
        }
        "none" => {
            let mut readonly = false;
            let mut bind = false;
            for o in &mount_opts {
                match *o {
                    "bind" | "rbind" => bind = true,
                    "ro" => readonly = true,
                    "rw" => readonly = false,
                    other => {
                        return Err(format!(
                            "bind volume option {other:?} is not supported (bind, rbind, ro, rw are)"
                        ))
                    }
                }
            }
            let source = Path::new(get("device"));
            if !bind || !source.is_absolute() {
                return Err("type=none needs o=bind and an absolute device (the host directory)".into());
            }
            if !source.is_dir() {
                return Err(format!("device {}: not an existing directory", source.display()));
            }
            Ok(Backing::Bind {
                source: source.to_path_buf(),
                readonly,
            })
        }
        "" => Err("device and o need type=tmpfs or type=none".into()),
        other => Err(format!(
            "volume type {other:?} is not supported by the local driver here (tmpfs and none are)"
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn local_driver_options_are_read_and_the_rest_refused_by_name() {
        assert_eq!(parse(&opts(&[])), Ok(Backing::Directory));
        assert_eq!(
            parse(&opts(&[
                ("type", "tmpfs"),
                ("device", "tmpfs"),
                ("o", "size=64m,mode=1777")
            ])),
            Ok(Backing::Tmpfs("size=64m,mode=1777".into()))
        );
        assert_eq!(
            parse(&opts(&[("type", "none"), ("o", "bind,ro"), ("device", "/tmp")])),
            Ok(Backing::Bind {
                source: "/tmp".into(),
                readonly: true
            })
        );
        for (bad, says) in [
            (opts(&[("colour", "blue")]), "colour"),
            (opts(&[("type", "nfs")]), "nfs"),
            (opts(&[("type", "tmpfs"), ("o", "exec")]), "exec"),
            (opts(&[("type", "none"), ("device", "/tmp")]), "o=bind"),
            (
                opts(&[("type", "none"), ("o", "bind"), ("device", "/no/such/dir")]),
                "/no/such/dir",
            ),
            (opts(&[("device", "/tmp")]), "type="),
        ] {
            let err = parse(&bad).expect_err(says);
            assert!(err.contains(says), "{err}");
        }
    }
}
