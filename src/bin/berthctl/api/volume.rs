//! `berthctl volume create|ls|inspect|rm|prune`, over `berth.v1.Volumes`.

use std::io::BufRead as _;

use anyhow::{bail, Context as _};
use berth_proto::berth::v1 as pb;
use berth_proto::berth::v1::volumes_client::VolumesClient;
use tonic::transport::Channel;

use super::{explain, human_size, print_table, request};

#[derive(Debug, clap::Subcommand)]
pub enum VolumeCommand {
    /// Create a volume (a generated name when none is given).
    Create {
        name: Option<String>,
        /// Volume driver (only "local").
        #[arg(short, long, default_value = "local")]
        driver: String,
        /// Driver option: type=tmpfs|none, device=..., o=...; repeatable.
        #[arg(short = 'o', long = "opt", value_name = "KEY=VALUE")]
        opts: Vec<String>,
        /// A label; repeatable.
        #[arg(long, value_name = "KEY=VALUE")]
        label: Vec<String>,
    },
    /// List volumes.
    #[command(alias = "list")]
    Ls {
        /// Only names.
        #[arg(short, long)]
        quiet: bool,
        /// dangling=true|false, name=TEXT, label=KEY[=VALUE], driver=local; repeatable.
        #[arg(short, long, value_name = "FILTER")]
        filter: Vec<String>,
    },
    /// Show volumes as JSON.
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove volumes no container uses.
    #[command(alias = "remove")]
    Rm {
        /// A missing volume is no error.
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove unused anonymous volumes (with -a, named ones too).
    Prune {
        /// Named volumes too.
        #[arg(short, long)]
        all: bool,
        /// Do not ask for confirmation.
        #[arg(short, long)]
        force: bool,
        /// label=KEY[=VALUE]; repeatable.
        #[arg(long, value_name = "FILTER")]
        filter: Vec<String>,
    },
}

pub async fn run(client: &mut VolumesClient<Channel>, cmd: VolumeCommand, timeout: Option<u64>) -> anyhow::Result<()> {
    match cmd {
        VolumeCommand::Create {
            name,
            driver,
            opts,
            label,
        } => {
            let req = pb::CreateVolumeRequest {
                name: name.unwrap_or_default(),
                driver,
                labels: pairs("--label", &label)?.into_iter().collect(),
                options: pairs("-o", &opts)?.into_iter().collect(),
                anonymous: false,
            };
            let v = client
                .create_volume(request(req, timeout))
                .await
                .map_err(explain)?
                .into_inner();
            println!("{}", v.volume.map(|v| v.name).unwrap_or_default());
        }
        VolumeCommand::Ls { quiet, filter } => {
            let filters = filter
                .iter()
                .map(|f| Filter::parse(f))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let req = pb::ListVolumesRequest { sizes: false };
            let list = client
                .list_volumes(request(req, timeout))
                .await
                .map_err(explain)?
                .into_inner();
            let shown: Vec<pb::Volume> = list
                .volumes
                .into_iter()
                .filter(|v| filters.iter().all(|f| f.matches(v)))
                .collect();
            if quiet {
                shown.iter().for_each(|v| println!("{}", v.name));
            } else {
                let rows: Vec<Vec<String>> = shown.iter().map(|v| vec![v.driver.clone(), v.name.clone()]).collect();
                print_table(&["DRIVER", "VOLUME NAME"], &rows);
            }
        }
        VolumeCommand::Inspect { names } => {
            let mut out = Vec::new();
            for name in names {
                let req = pb::VolumeStatusRequest { name };
                let v = client
                    .volume_status(request(req, timeout))
                    .await
                    .map_err(explain)?
                    .into_inner();
                out.push(json(&v.volume.unwrap_or_default()));
            }
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        VolumeCommand::Rm { force, names } => {
            let mut failed = false;
            for name in names {
                let req = pb::RemoveVolumeRequest {
                    name: name.clone(),
                    force,
                };
                match client.remove_volume(request(req, timeout)).await {
                    Ok(_) => println!("{name}"),
                    Err(e) => {
                        eprintln!("berthctl: {:#}", explain(e));
                        failed = true;
                    }
                }
            }
            if failed {
                bail!("some volumes were not removed");
            }
        }
        VolumeCommand::Prune { all, force, filter } => {
            let mut labels = Vec::new();
            for f in &filter {
                match f.split_once('=') {
                    Some(("label", l)) => labels.push(l.to_string()),
                    _ => bail!("--filter {f:?}: volume prune filters by label=KEY[=VALUE]"),
                }
            }
            let what = if all {
                "all volumes not used by a container"
            } else {
                "all anonymous volumes not used by a container"
            };
            if !force && !confirm(what)? {
                bail!("nothing removed (answer y, or pass -f)");
            }
            let req = pb::PruneVolumesRequest {
                all,
                labels: labels
                    .iter()
                    .map(|l| {
                        l.split_once('=')
                            .map_or((l.clone(), String::new()), |(k, v)| (k.into(), v.into()))
                    })
                    .collect(),
            };
            let out = client
                .prune_volumes(request(req, timeout))
                .await
                .map_err(explain)?
                .into_inner();
            if !out.removed.is_empty() {
                println!("Deleted Volumes:");
                out.removed.iter().for_each(|n| println!("{n}"));
                println!();
            }
            println!("Total reclaimed space: {}", human_size(out.reclaimed_bytes));
        }
    }
    Ok(())
}

/// Asks on stdin, as Docker's prune does; no answer (no terminal, end of input) is no.
fn confirm(what: &str) -> anyhow::Result<bool> {
    eprintln!("WARNING! This will remove {what}.");
    eprint!("Are you sure you want to continue? [y/N] ");
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .context("reading the answer")?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

fn pairs(flag: &str, items: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    items
        .iter()
        .map(|i| {
            let (k, v) = i.split_once('=').unwrap_or((i, ""));
            if k.is_empty() {
                bail!("{flag} {i:?}: expected KEY=VALUE");
            }
            Ok((k.to_string(), v.to_string()))
        })
        .collect()
}

/// One `ls --filter`.
#[derive(Debug, PartialEq, Eq)]
enum Filter {
    Dangling(bool),
    Name(String),
    Label(String, Option<String>),
    Driver(String),
}

impl Filter {
    fn parse(text: &str) -> anyhow::Result<Filter> {
        let (key, value) = text
            .split_once('=')
            .with_context(|| format!("--filter {text:?}: expected KEY=VALUE"))?;
        Ok(match key {
            "dangling" => Filter::Dangling(match value {
                "true" | "1" => true,
                "false" | "0" => false,
                _ => bail!("--filter {text:?}: dangling is true or false"),
            }),
            "name" => Filter::Name(value.to_string()),
            "label" => match value.split_once('=') {
                Some((k, v)) => Filter::Label(k.to_string(), Some(v.to_string())),
                None => Filter::Label(value.to_string(), None),
            },
            "driver" => Filter::Driver(value.to_string()),
            _ => bail!("--filter {text:?}: filters are dangling, name, label and driver"),
        })
    }

    fn matches(&self, v: &pb::Volume) -> bool {
        match self {
            Filter::Dangling(d) => v.used_by.is_empty() == *d,
            Filter::Name(n) => v.name.contains(n.as_str()),
            Filter::Label(k, want) => v
                .labels
                .get(k)
                .is_some_and(|have| want.as_ref().is_none_or(|w| w == have)),
            Filter::Driver(d) => &v.driver == d,
        }
    }
}

fn json(v: &pb::Volume) -> serde_json::Value {
    let sorted = |m: &std::collections::HashMap<String, String>| {
        m.clone().into_iter().collect::<std::collections::BTreeMap<_, _>>()
    };
    serde_json::json!({
        "Name": v.name,
        "Driver": v.driver,
        "Mountpoint": v.mountpoint,
        "CreatedAt": crate::output::rfc3339(v.created_at),
        "Labels": sorted(&v.labels),
        "Options": sorted(&v.options),
        "Scope": "local",
        "Anonymous": v.anonymous,
        "UsedBy": v.used_by,
        "Size": v.size,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ls_filters_as_docker_reads_them() {
        let v = pb::Volume {
            name: "dbdata".into(),
            driver: "local".into(),
            labels: [("app".to_string(), "db".to_string())].into(),
            ..Default::default()
        };
        for (f, want) in [
            ("dangling=true", true),
            ("dangling=false", false),
            ("name=bda", true),
            ("label=app", true),
            ("label=app=db", true),
            ("label=app=web", false),
            ("driver=local", true),
        ] {
            assert_eq!(Filter::parse(f).unwrap().matches(&v), want, "{f}");
        }
        assert!(Filter::parse("colour=red").is_err());
        assert!(Filter::parse("dangling=maybe").is_err());
    }
}
