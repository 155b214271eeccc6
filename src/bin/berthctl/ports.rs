//! Published ports the Docker way: `-p CONTAINER` and `-p IP::CONTAINER` get a free host
//! port, `-P` publishes every port the image exposes on free host ports, and `port
//! CONTAINER [PORT[/PROTO]]` shows where each landed (from the pod's annotation).

use anyhow::{bail, Context as _};
use berth_proto as pb;

use crate::containers::{PORTS_ANNOTATION, RUN_LABEL};
use crate::{resolve, runspec, Ctx};

#[derive(Debug, clap::Args)]
pub struct PortArgs {
    /// The container (id, id prefix or name).
    pub container: String,
    /// Only this container port: PORT[/tcp|udp|sctp].
    pub private_port: Option<String>,
}

/// Adds the image's exposed ports (with `publish_all`), gives every mapping without a host
/// port a free one, and records them all in the pod's annotation.
pub async fn finish(
    ctx: &mut Ctx,
    pod: &mut pb::PodSandboxConfig,
    publish_all: bool,
    image: &str,
) -> anyhow::Result<()> {
    if publish_all {
        let details = crate::images::details(ctx, image).await?;
        for exposed in details.map(|(_, d)| d.exposed).unwrap_or_default() {
            let mapping = runspec::parse_port(&exposed).with_context(|| format!("the image exposes {exposed:?}"))?;
            let taken = pod
                .port_mappings
                .iter()
                .any(|m| m.container_port == mapping.container_port && m.protocol == mapping.protocol);
            if !taken {
                pod.port_mappings.push(mapping);
            }
        }
    }
    for m in pod.port_mappings.iter_mut().filter(|m| m.host_port == 0) {
        m.host_port = free_port(m)?;
    }
    pod.annotations.remove(PORTS_ANNOTATION);
    if !pod.port_mappings.is_empty() {
        let shown: Vec<String> = pod.port_mappings.iter().map(runspec::show_port).collect();
        pod.annotations.insert(PORTS_ANNOTATION.to_string(), shown.join(", "));
    }
    Ok(())
}

/// A host port free now on the mapping's address and protocol (the kernel picks it).
fn free_port(m: &pb::PortMapping) -> anyhow::Result<i32> {
    let ip = if m.host_ip.is_empty() { "0.0.0.0" } else { &m.host_ip };
    let addr = (ip.parse::<std::net::IpAddr>()?, 0);
    let port = if m.protocol == pb::Protocol::Udp as i32 {
        std::net::UdpSocket::bind(addr)?.local_addr()?.port()
    } else {
        std::net::TcpListener::bind(addr)?.local_addr()?.port()
    };
    Ok(i32::from(port))
}

/// `berthctl port`: `80/tcp -> 0.0.0.0:32768`, one line per mapping.
pub async fn port(ctx: &mut Ctx, a: PortArgs) -> anyhow::Result<i32> {
    let c = resolve::container(ctx, &a.container).await?;
    let pod = resolve::all_pods(ctx)
        .await?
        .into_iter()
        .find(|p| p.id == c.pod_sandbox_id)
        .context("the container's pod is gone")?;
    if !pod.labels.contains_key(RUN_LABEL) {
        bail!(
            "container {} was not made by berthctl run; its pod's ports are kubelet's to show",
            a.container
        );
    }
    let shown = pod.annotations.get(PORTS_ANNOTATION).cloned().unwrap_or_default();
    let want = a.private_port.as_deref().map(|p| {
        if p.contains('/') {
            p.to_string()
        } else {
            format!("{p}/tcp")
        }
    });
    let mut any = false;
    for mapping in shown.split(", ").filter(|s| !s.is_empty()) {
        let Some((host, private)) = mapping.split_once("->") else {
            continue;
        };
        if want.as_deref().is_none_or(|w| w == private) {
            println!("{private} -> {host}");
            any = true;
        }
    }
    if !any && want.is_some() {
        bail!("no public port for {} published", want.unwrap_or_default());
    }
    Ok(0)
}
