//! What makes a container request valid, checked before anything is made (the sandbox's
//! counterpart is `sandbox::validate`; both use its name rule).

use std::path::{Component, Path};

use super::model::ContainerSpec;
use crate::sandbox::valid_name;

/// `s` cut to 80 characters, for error messages.
pub fn shown(s: &str) -> String {
    s.chars().take(80).collect()
}

/// Refuses a container request that names nothing valid, would write outside the pod's log
/// directory, gives ids no kernel takes, or carries NUL bytes or unusable variable names.
pub fn validate(spec: &ContainerSpec) -> Result<(), String> {
    if spec.name.is_empty() {
        return Err("container config metadata.name is required".into());
    }
    if !valid_name(&spec.name) {
        return Err(format!("container name {:?} is not valid", shown(&spec.name)));
    }
    // Relative to the pod's log directory, and staying inside it.
    let log = Path::new(&spec.log_path);
    if log.is_absolute()
        || spec.log_path.len() > 4096
        || spec.log_path.contains('\0')
        || log.components().any(|p| p == Component::ParentDir)
    {
        return Err(format!(
            "log_path {:?} must be relative to the pod's log directory, without '..'",
            shown(&spec.log_path)
        ));
    }
    if spec.image.trim().is_empty() {
        return Err("container config image is required".into());
    }
    let sec = &spec.security;
    let ids = sec
        .run_as_user
        .iter()
        .chain(&sec.run_as_group)
        .chain(&sec.supplemental_groups);
    if let Some(bad) = ids.into_iter().find(|id| u32::try_from(**id).is_err()) {
        return Err(format!("user or group id {bad} is out of range"));
    }
    let strings = spec
        .command
        .iter()
        .chain(&spec.args)
        .chain(spec.mounts.iter().flat_map(|m| [&m.host_path, &m.container_path]));
    if let Some(bad) = strings.into_iter().find(|s| s.contains('\0')) {
        return Err(format!(
            "command, argument or mount path {:?} contains a NUL byte",
            shown(bad)
        ));
    }
    for (i, m) in spec.mounts.iter().enumerate() {
        super::image_volume::validate(i, m)?;
    }
    if let Some((key, _)) = spec
        .envs
        .iter()
        .find(|(k, _)| k.is_empty() || k.contains('=') || k.contains('\0'))
    {
        return Err(format!("environment variable name {key:?} is not valid"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::model::MountSpec;

    fn ok() -> ContainerSpec {
        ContainerSpec {
            name: "web".into(),
            image: "busybox".into(),
            log_path: "web/0.log".into(),
            ..Default::default()
        }
    }

    #[test]
    fn each_fault_is_named() {
        assert_eq!(validate(&ok()), Ok(()));
        type Break = fn(&mut ContainerSpec);
        let cases: Vec<(Break, &str)> = vec![
            (|c| c.name.clear(), "metadata.name is required"),
            (|c| c.name = "a/b".into(), "is not valid"),
            (|c| c.name = "x".repeat(254), "is not valid"),
            (|c| c.log_path = "/var/log/x".into(), "log_path"),
            (|c| c.log_path = "a/../../x".into(), "log_path"),
            (|c| c.image = " ".into(), "image is required"),
            (|c| c.security.run_as_user = Some(-1), "out of range"),
            (|c| c.security.supplemental_groups = vec![1 << 32], "out of range"),
            (|c| c.args = vec!["a\0b".into()], "NUL byte"),
            (
                |c| {
                    c.mounts = vec![MountSpec {
                        container_path: "/x\0".into(),
                        ..Default::default()
                    }]
                },
                "NUL byte",
            ),
            (
                |c| c.envs = vec![("A=B".into(), "v".into())],
                "environment variable name",
            ),
            (
                |c| c.envs = vec![(String::new(), "v".into())],
                "environment variable name",
            ),
        ];
        for (break_it, want) in cases {
            let mut c = ok();
            break_it(&mut c);
            let err = validate(&c).expect_err(want);
            assert!(err.contains(want), "{err} (wanted {want})");
        }
    }
}
