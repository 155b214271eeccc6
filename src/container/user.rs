//! The container process's user: CRI `run_as_user` / `run_as_username` / `run_as_group` /
//! `supplemental_groups`, else the image's `User`, resolved against the image's own
//! `/etc/passwd` and `/etc/group` (never the host's), as containerd's CRI plugin does.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{User, UserBuilder};

use super::model::SecuritySpec;

use super::spec_input::SpecError;

/// Largest passwd/group file read (a hostile image must not make us read gigabytes).
const MAX_DB_SIZE: u64 = 16 << 20;
/// One `/etc/passwd` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PasswdEntry {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// One `/etc/group` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupEntry {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

/// Resolves the process user.
///
/// - `run_as_username`, else `run_as_user`, else the image `User` (`name`, `uid`, `uid:gid`,
///   `name:group`, `uid:group`, `name:gid`; empty: root).
/// - The primary gid is `run_as_group`, else the group part of the image `User`, else the user's
///   passwd gid, else 0. Numeric ids need no passwd/group entry; names must resolve, else
///   `Invalid` naming them. `run_as_group` without a user is `Invalid` (CRI rule).
/// - Additional gids (containerd order): the primary gid, then, unless the supplemental-groups
///   policy is Strict, the `/etc/group` groups listing the user by name, then the CRI
///   `supplemental_groups`; duplicates removed.
pub(crate) fn resolve(rootfs: &Path, sec: &SecuritySpec, image_user: Option<&str>) -> Result<User, SpecError> {
    let passwd = || read_passwd(rootfs);
    let groups = || read_group(rootfs);

    let (uid, name, passwd_gid, explicit_gid) = if !sec.run_as_username.is_empty() {
        let entries = passwd()?;
        let e = entries.iter().find(|e| e.name == sec.run_as_username).ok_or_else(|| {
            SpecError::Invalid(format!(
                "security.run_as_username: user {:?} not found in the image's /etc/passwd",
                sec.run_as_username
            ))
        })?;
        (e.uid, Some(e.name.clone()), Some(e.gid), None)
    } else if let Some(uid) = sec.run_as_user {
        let uid = to_id(uid, "security.run_as_user")?;
        let entry = passwd()?.into_iter().find(|e| e.uid == uid);
        (uid, entry.as_ref().map(|e| e.name.clone()), entry.map(|e| e.gid), None)
    } else {
        if sec.run_as_group.is_some() {
            return Err(SpecError::Invalid(
                "security.run_as_group: a group needs run_as_user or run_as_username".into(),
            ));
        }
        let spec = image_user.unwrap_or("").trim();
        let (user_part, group_part) = match spec.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (spec, None),
        };
        let (uid, name, pgid) = match user_part {
            "" => {
                let entry = passwd()?.into_iter().find(|e| e.uid == 0);
                (0, entry.as_ref().map(|e| e.name.clone()), entry.map(|e| e.gid))
            }
            u => match u.parse::<u32>() {
                Ok(uid) => {
                    let entry = passwd()?.into_iter().find(|e| e.uid == uid);
                    (uid, entry.as_ref().map(|e| e.name.clone()), entry.map(|e| e.gid))
                }
                Err(_) => {
                    let entries = passwd()?;
                    let e = entries.iter().find(|e| e.name == u).ok_or_else(|| {
                        SpecError::Invalid(format!("image User: user {u:?} not found in the image's /etc/passwd"))
                    })?;
                    (e.uid, Some(e.name.clone()), Some(e.gid))
                }
            },
        };
        let gid = match group_part.filter(|g| !g.is_empty()) {
            None => None,
            Some(g) => Some(match g.parse::<u32>() {
                Ok(gid) => gid,
                Err(_) => groups()?.iter().find(|e| e.name == g).map(|e| e.gid).ok_or_else(|| {
                    SpecError::Invalid(format!("image User: group {g:?} not found in the image's /etc/group"))
                })?,
            }),
        };
        (uid, name, pgid, gid)
    };

    let gid = match sec.run_as_group {
        Some(g) => to_id(g, "security.run_as_group")?,
        None => explicit_gid.or(passwd_gid).unwrap_or(0),
    };

    let mut additional = vec![gid];
    if !sec.supplemental_groups_strict {
        if let Some(name) = &name {
            additional.extend(
                groups()?
                    .iter()
                    .filter(|g| g.members.iter().any(|m| m == name))
                    .map(|g| g.gid),
            );
        }
    }
    for &g in &sec.supplemental_groups {
        additional.push(to_id(g, "security.supplemental_groups")?);
    }
    // In the order the kernel keeps them (setgroups sorts): runtimes that keep the given
    // order (gVisor) then list them as runc's containers do.
    additional.sort_unstable();
    additional.dedup();

    let mut b = UserBuilder::default().uid(uid).gid(gid).additional_gids(additional);
    if let Some(name) = name {
        b = b.username(name);
    }
    b.build().map_err(|e| SpecError::build("user", e))
}

fn to_id(v: i64, field: &str) -> Result<u32, SpecError> {
    u32::try_from(v).map_err(|_| SpecError::Invalid(format!("{field}: {v} is not a valid id")))
}

/// A `--chown` owner, `user[:group]` by name or id, resolved in `rootfs`'s own passwd and
/// group files. Without a group, the gid is the uid's number (as Docker does).
pub(crate) fn owner(rootfs: &Path, spec: &str) -> Result<(u32, u32), String> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let uid = match user.parse::<u32>() {
        Ok(uid) => uid,
        Err(_) => read_passwd(rootfs)
            .map_err(|e| e.to_string())?
            .into_iter()
            .find(|e| e.name == user)
            .map(|e| e.uid)
            .ok_or_else(|| format!("user {user:?} is not in the image's /etc/passwd"))?,
    };
    let gid = match group {
        None => uid,
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => read_group(rootfs)
                .map_err(|e| e.to_string())?
                .into_iter()
                .find(|e| e.name == g)
                .map(|e| e.gid)
                .ok_or_else(|| format!("group {g:?} is not in the image's /etc/group"))?,
        },
    };
    Ok((uid, gid))
}

/// The image's `/etc/passwd` entries (none if the file does not exist, as for `scratch` images).
pub(crate) fn read_passwd(rootfs: &Path) -> Result<Vec<PasswdEntry>, SpecError> {
    let Some(text) = read_in_rootfs(rootfs, "/etc/passwd")? else {
        return Ok(Vec::new());
    };
    Ok(text
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.trim().split(':').collect();
            if f.len() < 4 || f[0].is_empty() || f[0].starts_with('#') {
                return None;
            }
            Some(PasswdEntry {
                name: f[0].to_owned(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
            })
        })
        .collect())
}

/// The image's `/etc/group` entries (none if the file does not exist).
pub(crate) fn read_group(rootfs: &Path) -> Result<Vec<GroupEntry>, SpecError> {
    let Some(text) = read_in_rootfs(rootfs, "/etc/group")? else {
        return Ok(Vec::new());
    };
    Ok(text
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.trim().split(':').collect();
            if f.len() < 3 || f[0].is_empty() || f[0].starts_with('#') {
                return None;
            }
            let members = f
                .get(3)
                .map(|m| {
                    m.split(',')
                        .map(str::trim)
                        .filter(|m| !m.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            Some(GroupEntry {
                name: f[0].to_owned(),
                gid: f[2].parse().ok()?,
                members,
            })
        })
        .collect())
}

/// Reads `path` (absolute, as seen in the container) from `rootfs`, resolving symlinks as if
/// `rootfs` were `/` so that an image cannot make us read host files; `None` if missing.
fn read_in_rootfs(rootfs: &Path, path: &str) -> Result<Option<String>, SpecError> {
    let Some(host_path) = resolve_in_root(rootfs, Path::new(path))? else {
        return Ok(None);
    };
    let meta = fs::symlink_metadata(&host_path).map_err(|e| SpecError::io(&host_path, e))?;
    if !meta.is_file() {
        return Err(SpecError::Invalid(format!("image {path} is not a regular file")));
    }
    let file = fs::File::open(&host_path).map_err(|e| SpecError::io(&host_path, e))?;
    let mut buf = Vec::new();
    file.take(MAX_DB_SIZE)
        .read_to_end(&mut buf)
        .map_err(|e| SpecError::io(&host_path, e))?;
    Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
}

/// The host path of `path` resolved inside `root` (see [`crate::sys::inroot::resolve`]);
/// `None` if a component does not exist.
pub(crate) fn resolve_in_root(root: &Path, path: &Path) -> Result<Option<PathBuf>, SpecError> {
    match crate::sys::inroot::resolve(root, path) {
        Ok(inside) => Ok(inside.map(|p| crate::sys::inroot::host_path(root, &p))),
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => Err(SpecError::Invalid(e.to_string())),
        Err(e) => Err(SpecError::io(root, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn rootfs() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::create_dir_all(dir.path().join("etc")).expect("mkdir");
        fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\n# comment\nalice:x:1000:1001::/home/alice:/bin/sh\nbob:x:1002:1002::/:/bin/sh\nbroken\n",
        )
        .expect("passwd");
        fs::write(
            dir.path().join("etc/group"),
            "root:x:0:\nalice:x:1001:\nwheel:x:10:root,alice\ndocker:x:999:bob, alice\nstaff:x:50:\n",
        )
        .expect("group");
        dir
    }

    fn sec() -> SecuritySpec {
        SecuritySpec::default()
    }

    fn ids(u: &User) -> (u32, u32, Vec<u32>) {
        (u.uid(), u.gid(), u.additional_gids().clone().unwrap_or_default())
    }

    #[test]
    fn default_is_root_with_its_groups() {
        let r = rootfs();
        let u = resolve(r.path(), &sec(), None).expect("resolve");
        assert_eq!(ids(&u), (0, 0, vec![0, 10]));
        assert_eq!(u.username().as_deref(), Some("root"));
    }

    #[test]
    fn run_as_username_resolves_uid_gid_and_groups() {
        let r = rootfs();
        let s = SecuritySpec {
            run_as_username: "alice".into(),
            supplemental_groups: vec![5000, 10],
            ..sec()
        };
        let u = resolve(r.path(), &s, Some("bob")).expect("resolve");
        // Sorted, as the kernel keeps them.
        assert_eq!(ids(&u), (1000, 1001, vec![10, 999, 1001, 5000]));
    }

    #[test]
    fn strict_policy_skips_image_groups() {
        let r = rootfs();
        let s = SecuritySpec {
            run_as_user: Some(1000),
            supplemental_groups: vec![5000],
            supplemental_groups_strict: true,
            ..sec()
        };
        assert_eq!(
            ids(&resolve(r.path(), &s, None).expect("resolve")),
            (1000, 1001, vec![1001, 5000])
        );
    }

    #[test]
    fn run_as_user_and_group_numeric_without_passwd_entry() {
        let r = rootfs();
        let s = SecuritySpec {
            run_as_user: Some(4242),
            run_as_group: Some(77),
            ..sec()
        };
        let u = resolve(r.path(), &s, None).expect("resolve");
        assert_eq!(ids(&u), (4242, 77, vec![77]));
        assert_eq!(u.username(), &None);
        // run_as_group overrides the passwd gid
        let s = SecuritySpec {
            run_as_user: Some(1000),
            run_as_group: Some(3),
            ..sec()
        };
        assert_eq!(resolve(r.path(), &s, None).expect("resolve").gid(), 3);
    }

    #[test]
    fn image_user_forms() {
        let r = rootfs();
        let cases: [(&str, (u32, u32)); 6] = [
            ("alice", (1000, 1001)),
            ("1002", (1002, 1002)),
            ("1000:50", (1000, 50)),
            ("alice:staff", (1000, 50)),
            ("7:wheel", (7, 10)),
            ("9999", (9999, 0)),
        ];
        for (spec, (uid, gid)) in cases {
            let u = resolve(r.path(), &sec(), Some(spec)).expect(spec);
            assert_eq!((u.uid(), u.gid()), (uid, gid), "{spec}");
        }
    }

    #[test]
    fn unknown_names_are_invalid() {
        let r = rootfs();
        let s = SecuritySpec {
            run_as_username: "mallory".into(),
            ..sec()
        };
        let err = resolve(r.path(), &s, None).expect_err("unknown");
        assert!(matches!(&err, SpecError::Invalid(m) if m.contains("mallory") && m.contains("run_as_username")));
        let err = resolve(r.path(), &sec(), Some("nobody")).expect_err("unknown");
        assert!(matches!(&err, SpecError::Invalid(m) if m.contains("nobody")));
        let err = resolve(r.path(), &sec(), Some("alice:nogroup")).expect_err("unknown");
        assert!(matches!(&err, SpecError::Invalid(m) if m.contains("nogroup")));
        let s = SecuritySpec {
            run_as_group: Some(5),
            ..sec()
        };
        assert!(matches!(resolve(r.path(), &s, None), Err(SpecError::Invalid(_))));
        let s = SecuritySpec {
            run_as_user: Some(-1),
            ..sec()
        };
        assert!(matches!(resolve(r.path(), &s, None), Err(SpecError::Invalid(_))));
    }

    #[test]
    fn missing_files_mean_numeric_only() {
        let r = tempfile::tempdir().expect("tempdir");
        let u = resolve(
            r.path(),
            &SecuritySpec {
                run_as_user: Some(1000),
                ..sec()
            },
            None,
        )
        .expect("resolve");
        assert_eq!(ids(&u), (1000, 0, vec![0]));
        assert!(resolve(r.path(), &sec(), Some("alice")).is_err());
    }

    #[test]
    fn symlinks_stay_inside_rootfs() {
        // The host-side target of an absolute link must not be read: /etc/passwd -> /outside/passwd
        // resolves to <rootfs>/outside/passwd.
        let outside = tempfile::tempdir().expect("tempdir");
        fs::write(outside.path().join("passwd"), "evil:x:0:0::/:/bin/sh\n").expect("write");
        let r = tempfile::tempdir().expect("tempdir");
        fs::create_dir_all(r.path().join("etc")).expect("mkdir");
        symlink(outside.path().join("passwd"), r.path().join("etc/passwd")).expect("symlink");
        assert_eq!(read_passwd(r.path()).expect("read"), vec![]);
        // ../../.. is clamped at the rootfs.
        fs::remove_file(r.path().join("etc/passwd")).expect("rm");
        symlink("../../../../../../../../etc/real", r.path().join("etc/passwd")).expect("symlink");
        fs::write(r.path().join("etc/real"), "carol:x:5:6::/:/bin/sh\n").expect("write");
        let entries = read_passwd(r.path()).expect("read");
        assert_eq!(
            entries,
            vec![PasswdEntry {
                name: "carol".into(),
                uid: 5,
                gid: 6
            }]
        );
        // A symlinked directory is followed inside the rootfs too.
        let r2 = tempfile::tempdir().expect("tempdir");
        fs::create_dir_all(r2.path().join("real")).expect("mkdir");
        fs::write(r2.path().join("real/passwd"), "dave:x:8:9::/:/bin/sh\n").expect("write");
        symlink("/real", r2.path().join("etc")).expect("symlink");
        assert_eq!(read_passwd(r2.path()).expect("read")[0].name, "dave");
    }

    #[test]
    fn symlink_loops_are_refused() {
        let r = tempfile::tempdir().expect("tempdir");
        fs::create_dir_all(r.path().join("etc")).expect("mkdir");
        symlink("passwd", r.path().join("etc/passwd")).expect("symlink");
        assert!(matches!(read_passwd(r.path()), Err(SpecError::Invalid(_))));
    }
}
