//! Docker's `-f/--filter KEY=VALUE` for `ps` and `images`: values of one key are ORed,
//! keys are ANDed, except `label`, whose values must all match (as Docker does).

use std::collections::{BTreeMap, HashMap};

use anyhow::bail;

/// Parsed `--filter`s: each key with its values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters(BTreeMap<String, Vec<String>>);

impl Filters {
    /// Parses `KEY=VALUE` filters, refusing keys outside `keys`.
    pub fn parse(args: &[String], keys: &[&str]) -> anyhow::Result<Filters> {
        let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for a in args {
            let Some((k, v)) = a.split_once('=') else {
                bail!("--filter {a:?}: give KEY=VALUE (keys: {})", keys.join(", "));
            };
            let k = k.trim().to_ascii_lowercase();
            if !keys.contains(&k.as_str()) {
                bail!("--filter {a:?}: unknown key {k:?} (keys: {})", keys.join(", "));
            }
            map.entry(k).or_default().push(v.to_string());
        }
        Ok(Filters(map))
    }

    /// The values given for `key`.
    pub fn values(&self, key: &str) -> &[String] {
        self.0.get(key).map(Vec::as_slice).unwrap_or(&[])
    }

    /// True when `key` was not given, or one of its values passes `f`.
    pub fn any(&self, key: &str, f: impl Fn(&str) -> bool) -> bool {
        let v = self.values(key);
        v.is_empty() || v.iter().any(|x| f(x))
    }

    /// True when every `label` filter (`KEY` or `KEY=VALUE`) matches `labels`.
    pub fn labels_match(&self, labels: &HashMap<String, String>) -> bool {
        self.values("label").iter().all(|spec| match spec.split_once('=') {
            Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
            None => labels.contains_key(spec.as_str()),
        })
    }
}

/// A true/false filter value.
pub fn parse_bool(key: &str, v: &str) -> anyhow::Result<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => bail!("--filter {key}={v}: give true or false"),
    }
}

/// Go's path.Match: `*` is any run of characters but `/`, `?` one character but `/`.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    fn go(p: &[char], t: &[char]) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some('*') => (0..=t.len())
                .take_while(|&i| i == 0 || t[i - 1] != '/')
                .any(|i| go(&p[1..], &t[i..])),
            Some('?') => t.first().is_some_and(|c| *c != '/') && go(&p[1..], &t[1..]),
            Some(c) => t.first() == Some(c) && go(&p[1..], &t[1..]),
        }
    }
    go(&p, &t)
}

/// Docker's `reference=PATTERN` on one `repo:tag`: with a tag in the pattern the whole
/// `repo:tag` must match, else the repository alone; `docker.io/library/` may be left out.
pub fn reference_matches(pattern: &str, repo_tag: &str) -> bool {
    let (repo, _) = split_tag(repo_tag);
    let has_tag = split_tag(pattern).1.is_some();
    let subject = if has_tag { repo_tag } else { repo };
    let short = subject
        .strip_prefix("docker.io/library/")
        .or_else(|| subject.strip_prefix("docker.io/"))
        .unwrap_or(subject);
    glob(pattern, subject) || glob(pattern, short)
}

/// `repo:tag` → (repo, Some(tag)); a `:` before the last `/` is a registry port.
pub fn split_tag(name: &str) -> (&str, Option<&str>) {
    match name.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => (r, Some(t)),
        _ => (name, None),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn f(args: &[&str]) -> Filters {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        Filters::parse(&args, &["status", "name", "label"]).unwrap()
    }

    #[test]
    fn or_within_a_key_and_across_keys() {
        let fl = f(&["status=running", "status=exited", "name=web"]);
        assert!(fl.any("status", |s| s == "exited"));
        assert!(!fl.any("status", |s| s == "created"));
        assert!(fl.any("id", |_| false), "a key not given passes");
        assert_eq!(fl.values("name"), ["web"]);
        let e = Filters::parse(&["nope=1".into()], &["status"]).unwrap_err().to_string();
        assert!(e.contains("unknown key \"nope\""), "{e}");
        assert!(Filters::parse(&["status".into()], &["status"]).is_err());
    }

    #[test]
    fn labels_must_all_match() {
        let fl = f(&["label=a=1", "label=b"]);
        let mut m = HashMap::new();
        m.insert("a".to_string(), "1".to_string());
        assert!(!fl.labels_match(&m));
        m.insert("b".to_string(), "anything".to_string());
        assert!(fl.labels_match(&m));
        m.insert("a".to_string(), "2".to_string());
        assert!(!fl.labels_match(&m));
        assert!(f(&[]).labels_match(&m));
    }

    #[test]
    fn globs_and_references() {
        assert!(glob("busy*", "busybox"));
        assert!(!glob("busy*", "busy/box"));
        assert!(glob("b?sybox", "busybox"));
        assert!(!glob("busybox", "busybox2"));
        assert!(reference_matches("busybox", "docker.io/library/busybox:1.36"));
        assert!(reference_matches("busybox:1.*", "docker.io/library/busybox:1.36"));
        assert!(!reference_matches("busybox:2*", "docker.io/library/busybox:1.36"));
        assert!(reference_matches("localhost:5000/*", "localhost:5000/test:latest"));
        assert!(reference_matches(
            "localhost:5000/test:lat*",
            "localhost:5000/test:latest"
        ));
        assert!(!reference_matches("test", "localhost:5000/test:latest"));
        assert!(reference_matches("*/test", "localhost:5000/test:latest"));
        assert_eq!(split_tag("localhost:5000/x"), ("localhost:5000/x", None));
        assert!(parse_bool("dangling", "TRUE").unwrap());
        assert!(parse_bool("dangling", "yes").is_err());
    }
}
