//! Compose's `build:`: a service's image made by berthd's builder, as `berthctl build`
//! makes it. `up` builds images that are missing (`--build`: always); `build` builds them.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use serde_yaml_ng::Value;

use super::file::{Project, Service};
use crate::build::BuildArgs;
use crate::Ctx;

/// A service's `build:`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildSpec {
    pub context: PathBuf,
    /// Relative to the context.
    pub dockerfile: Option<PathBuf>,
    /// `KEY=VALUE` (or `KEY`: from the environment).
    pub args: Vec<String>,
    pub target: Option<String>,
}

/// Reads `build:` (a context path, or a mapping of context, dockerfile, args, target),
/// paths relative to the compose file's directory `dir`.
pub fn parse(v: &Value, dir: &Path, scalar: impl Fn(&Value) -> anyhow::Result<String>) -> anyhow::Result<BuildSpec> {
    if let Value::String(context) = v {
        return Ok(BuildSpec {
            context: dir.join(context),
            ..Default::default()
        });
    }
    let m = v.as_mapping().context("build: expected a path or a mapping")?;
    let mut spec = BuildSpec {
        context: dir.to_path_buf(),
        ..Default::default()
    };
    for (k, val) in m {
        match k.as_str().unwrap_or("") {
            "context" => spec.context = dir.join(scalar(val)?),
            "dockerfile" => spec.dockerfile = Some(PathBuf::from(scalar(val)?)),
            "target" => spec.target = Some(scalar(val)?),
            "args" => {
                spec.args = match val {
                    Value::Mapping(args) => args
                        .iter()
                        .map(|(k, v)| {
                            let k = scalar(k)?;
                            Ok(if v.is_null() { k } else { format!("{k}={}", scalar(v)?) })
                        })
                        .collect::<anyhow::Result<_>>()?,
                    Value::Sequence(list) => list.iter().map(&scalar).collect::<anyhow::Result<_>>()?,
                    _ => bail!("build.args: expected a mapping or a list"),
                }
            }
            other => bail!("build: key {other:?} is not supported"),
        }
    }
    Ok(spec)
}

async fn image_present(ctx: &mut Ctx, image: &str) -> anyhow::Result<bool> {
    Ok(!crate::images::list(ctx, Some(image)).await?.is_empty())
}

/// Builds the images of `services` that have `build:` (with `only_missing`, those not present).
pub async fn build_services(ctx: &mut Ctx, services: &[&Service], only_missing: bool) -> anyhow::Result<()> {
    for s in services {
        let Some(b) = &s.build else { continue };
        if only_missing && image_present(ctx, &s.image).await? {
            continue;
        }
        eprintln!("Building {} ({})", s.name, s.image);
        let dockerfile = b.dockerfile.as_ref().map(|d| b.context.join(d).display().to_string());
        let args = BuildArgs::new(
            &b.context,
            dockerfile,
            vec![s.image.clone()],
            b.args.clone(),
            b.target.clone(),
        );
        crate::build::build(ctx.bld.clone(), args, ctx.timeout)
            .await
            .with_context(|| format!("building service {}", s.name))?;
    }
    Ok(())
}

/// `compose build`: every chosen service's image, built again.
pub async fn build(ctx: &mut Ctx, project: &Project, chosen: &[&Service]) -> anyhow::Result<()> {
    if !project.services.iter().any(|s| s.build.is_some()) {
        eprintln!("no service has build:");
    }
    build_services(ctx, chosen, false).await
}
