//! Finding a container or pod from what a person typed: the full id, a unique id prefix,
//! or a name (the metadata name, which `berthctl run` sets to `--name`).

use anyhow::bail;
use berth_proto as pb;

use crate::containers::RUN_LABEL;
use crate::{explain, Ctx};

/// Picks the one item `query` means among `(id, name, item)`: an exact id wins, then an
/// exact name, then an id prefix. No match or several are errors that say so.
pub fn pick<'a, T>(what: &str, query: &str, items: &'a [(String, String, T)]) -> anyhow::Result<&'a T> {
    if query.is_empty() {
        bail!("empty {what} id");
    }
    if let Some((_, _, t)) = items.iter().find(|(id, _, _)| id == query) {
        return Ok(t);
    }
    let by_name: Vec<_> = items.iter().filter(|(_, name, _)| name == query).collect();
    if by_name.len() == 1 {
        return Ok(&by_name[0].2);
    }
    if by_name.len() > 1 {
        let ids: Vec<String> = by_name
            .iter()
            .map(|(id, _, _)| crate::output::short_id(id, false))
            .collect();
        bail!(
            "{} {what}s are named {query:?} ({}); give an id",
            by_name.len(),
            ids.join(", ")
        );
    }
    let by_prefix: Vec<_> = items.iter().filter(|(id, _, _)| id.starts_with(query)).collect();
    match by_prefix.len() {
        0 => bail!("no such {what}: {query}"),
        1 => Ok(&by_prefix[0].2),
        n => {
            let ids: Vec<String> = by_prefix
                .iter()
                .map(|(id, _, _)| crate::output::short_id(id, false))
                .collect();
            bail!(
                "{query:?} is ambiguous: it starts the ids of {n} {what}s ({}); type more of the id",
                ids.join(", ")
            )
        }
    }
}

pub async fn all_containers(ctx: &mut Ctx) -> anyhow::Result<Vec<pb::Container>> {
    Ok(ctx
        .rt
        .list_containers(ctx.req(pb::ListContainersRequest { filter: None }))
        .await
        .map_err(explain)?
        .into_inner()
        .containers)
}

pub async fn all_pods(ctx: &mut Ctx) -> anyhow::Result<Vec<pb::PodSandbox>> {
    Ok(ctx
        .rt
        .list_pod_sandbox(ctx.req(pb::ListPodSandboxRequest { filter: None }))
        .await
        .map_err(explain)?
        .into_inner()
        .items)
}

/// The container `query` names.
pub async fn container(ctx: &mut Ctx, query: &str) -> anyhow::Result<pb::Container> {
    let list = all_containers(ctx).await?;
    let items: Vec<(String, String, pb::Container)> = list
        .into_iter()
        .map(|c| {
            (
                c.id.clone(),
                c.metadata.as_ref().map(|m| m.name.clone()).unwrap_or_default(),
                c,
            )
        })
        .collect();
    let attempt = |c: &pb::Container| c.metadata.as_ref().map_or(0, |m| m.attempt);
    let items = latest_attempts(items, |c| c.labels.contains_key(RUN_LABEL), attempt);
    pick("container", query, &items).cloned()
}

/// The pod `query` names.
pub async fn pod(ctx: &mut Ctx, query: &str) -> anyhow::Result<pb::PodSandbox> {
    let list = all_pods(ctx).await?;
    let items: Vec<(String, String, pb::PodSandbox)> = list
        .into_iter()
        .map(|p| {
            (
                p.id.clone(),
                p.metadata.as_ref().map(|m| m.name.clone()).unwrap_or_default(),
                p,
            )
        })
        .collect();
    let attempt = |p: &pb::PodSandbox| p.metadata.as_ref().map_or(0, |m| m.attempt);
    let items = latest_attempts(items, |p| p.labels.contains_key(RUN_LABEL), attempt);
    pick("pod", query, &items).cloned()
}

/// Drops the attempts of a `berthctl run` container (or pod) that a later one of the same
/// name replaces: while berthd restarts one, both are listed for a moment, and the name
/// means the new one.
fn latest_attempts<T>(
    items: Vec<(String, String, T)>,
    is_run: impl Fn(&T) -> bool,
    attempt: impl Fn(&T) -> u32,
) -> Vec<(String, String, T)> {
    let newest = |name: &str| {
        items
            .iter()
            .filter(|(_, n, t)| n == name && is_run(t))
            .map(|(_, _, t)| attempt(t))
            .max()
    };
    let keep: Vec<bool> = items
        .iter()
        .map(|(_, name, t)| !is_run(t) || newest(name).is_none_or(|a| a == attempt(t)))
        .collect();
    items
        .into_iter()
        .zip(keep)
        .filter_map(|(item, keep)| keep.then_some(item))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_run_containers_name_means_its_latest_attempt() {
        // (is a run container, attempt)
        let items = vec![
            ("aa01".to_string(), "web".to_string(), (true, 0)),
            ("bb02".to_string(), "web".to_string(), (true, 1)),
            ("cc03".to_string(), "app".to_string(), (false, 0)),
            ("dd04".to_string(), "app".to_string(), (false, 1)),
        ];
        let items = latest_attempts(items, |t| t.0, |t| t.1);
        assert_eq!(*pick("container", "web", &items).unwrap(), (true, 1));
        assert!(pick("container", "app", &items).is_err(), "other names stay ambiguous");
        assert!(
            pick("container", "aa01", &items).is_err(),
            "the replaced one is not offered"
        );
    }

    #[test]
    fn prefixes_and_names() {
        let items = vec![
            ("abc123".to_string(), "web".to_string(), 1),
            ("abd456".to_string(), "db".to_string(), 2),
            ("ff0000".to_string(), "web2".to_string(), 3),
        ];
        assert_eq!(*pick("container", "abc123", &items).unwrap(), 1);
        assert_eq!(*pick("container", "abd", &items).unwrap(), 2);
        assert_eq!(*pick("container", "db", &items).unwrap(), 2);
        assert_eq!(*pick("container", "f", &items).unwrap(), 3);
        let e = pick("container", "ab", &items).unwrap_err().to_string();
        assert!(e.contains("ambiguous") && e.contains("2 containers"), "{e}");
        let e = pick("container", "zz", &items).unwrap_err().to_string();
        assert_eq!(e, "no such container: zz");
        let dup = vec![
            ("a1".to_string(), "x".to_string(), 1),
            ("b1".to_string(), "x".to_string(), 2),
        ];
        assert!(pick("pod", "x", &dup)
            .unwrap_err()
            .to_string()
            .contains("2 pods are named"));
    }
}
