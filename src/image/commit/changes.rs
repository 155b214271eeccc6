//! Dockerfile instructions applied to an image config's `config` object, as `commit -c`
//! takes them: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME and
//! WORKDIR, with the exec (JSON array) and shell forms and quoted `K=V` pairs.

use serde_json::{json, Map, Value};

/// One parsed instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Cmd(Vec<String>),
    Entrypoint(Vec<String>),
    Env(Vec<(String, String)>),
    Expose(Vec<String>),
    Label(Vec<(String, String)>),
    OnBuild(String),
    StopSignal(String),
    User(String),
    Volume(Vec<String>),
    Workdir(String),
}

fn invalid(line: &str, why: &str) -> String {
    format!("change {line:?}: {why}")
}

/// Parses one instruction line.
pub fn parse(line: &str) -> Result<Change, String> {
    let line = line.trim();
    let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    let rest = rest.trim();
    if rest.is_empty() {
        return Err(invalid(line, "the instruction has no value"));
    }
    let one = |what: &str| -> Result<String, String> {
        let words = split_words(rest).map_err(|e| invalid(line, &e))?;
        match words.as_slice() {
            [w] => Ok(w.clone()),
            _ => Err(invalid(line, &format!("{what} takes one value"))),
        }
    };
    Ok(match word.to_ascii_uppercase().as_str() {
        "CMD" => Change::Cmd(command(rest)),
        "ENTRYPOINT" => Change::Entrypoint(command(rest)),
        "ENV" => Change::Env(pairs(rest, true).map_err(|e| invalid(line, &e))?),
        "LABEL" => Change::Label(pairs(rest, false).map_err(|e| invalid(line, &e))?),
        "EXPOSE" => Change::Expose(
            split_words(rest)
                .map_err(|e| invalid(line, &e))?
                .into_iter()
                .map(|p| exposed_port(&p).map_err(|e| invalid(line, &e)))
                .collect::<Result<_, _>>()?,
        ),
        "ONBUILD" => Change::OnBuild(rest.to_string()),
        "STOPSIGNAL" => Change::StopSignal(one("STOPSIGNAL")?),
        "USER" => Change::User(one("USER")?),
        "WORKDIR" => Change::Workdir(rest.to_string()),
        "VOLUME" => Change::Volume(match json_array(rest) {
            Some(v) => v,
            None => split_words(rest).map_err(|e| invalid(line, &e))?,
        }),
        _ => return Err(invalid(
            line,
            "only CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME and WORKDIR can be changed",
        )),
    })
}

fn json_array(text: &str) -> Option<Vec<String>> {
    text.starts_with('[').then(|| serde_json::from_str(text).ok()).flatten()
}

/// The exec form as it is, the shell form under `/bin/sh -c`.
fn command(text: &str) -> Vec<String> {
    json_array(text).unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into(), text.into()])
}

/// `PORT[/PROTO]` as image configs key it (`80/tcp`).
pub fn exposed_port(text: &str) -> Result<String, String> {
    let (num, proto) = text.split_once('/').unwrap_or((text, "tcp"));
    let proto = proto.to_ascii_lowercase();
    let ok_num = |n: &str| n.parse::<u16>().is_ok_and(|n| n > 0);
    let ok = match num.split_once('-') {
        Some((a, b)) => ok_num(a) && ok_num(b),
        None => ok_num(num),
    };
    if !ok || !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("{text:?} is not a port (PORT[/tcp|udp|sctp])"));
    }
    Ok(format!("{num}/{proto}"))
}

/// Words as a shell splits them: whitespace outside quotes separates, single quotes keep
/// everything, double quotes and bare text take backslash escapes.
pub fn split_words(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => words.extend(word.take()),
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => w.push(c),
                        None => return Err("unterminated single quote".into()),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => w.push(c),
                            Some(c) => {
                                w.push('\\');
                                w.push(c);
                            }
                            None => return Err("unterminated double quote".into()),
                        },
                        Some(c) => w.push(c),
                        None => return Err("unterminated double quote".into()),
                    }
                }
            }
            '\\' => {
                let w = word.get_or_insert_with(String::new);
                if let Some(c) = chars.next() {
                    w.push(c);
                }
            }
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    Ok(words)
}

/// `K=V ...` pairs; with `legacy`, also the old `K V` form (the rest of the line is V).
fn pairs(text: &str, legacy: bool) -> Result<Vec<(String, String)>, String> {
    let first = text.split_whitespace().next().unwrap_or("");
    if legacy && !first.contains('=') {
        let (k, v) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
        return Ok(vec![(k.to_string(), v.trim().to_string())]);
    }
    split_words(text)?
        .into_iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(format!("{w:?} is not KEY=VALUE")),
        })
        .collect()
}

fn object<'a>(config: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let slot = config.entry(key).or_insert_with(|| json!({}));
    if !slot.is_object() {
        *slot = json!({});
    }
    slot.as_object_mut().expect("an object was just put there")
}

/// Sets `K=V` in an environment list, replacing an earlier `K`.
pub fn set_env(env: &mut Vec<String>, key: &str, value: &str) {
    env.retain(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) != key);
    env.push(format!("{key}={value}"));
}

/// Applies `changes` to the `config` object of an image config, in order. An ENTRYPOINT
/// clears the CMD it would otherwise inherit unless the changes also set a CMD.
pub fn apply(config: &mut Map<String, Value>, changes: &[Change]) {
    let sets_cmd = changes.iter().any(|c| matches!(c, Change::Cmd(_)));
    for change in changes {
        match change {
            Change::Cmd(v) => {
                config.insert("Cmd".into(), json!(v));
            }
            Change::Entrypoint(v) => {
                config.insert("Entrypoint".into(), json!(v));
                if !sets_cmd {
                    config.insert("Cmd".into(), Value::Null);
                }
            }
            Change::Env(kv) => {
                let mut env: Vec<String> = config
                    .get("Env")
                    .and_then(|e| serde_json::from_value(e.clone()).ok())
                    .unwrap_or_default();
                for (k, v) in kv {
                    set_env(&mut env, k, v);
                }
                config.insert("Env".into(), json!(env));
            }
            Change::Expose(ports) => {
                let exposed = object(config, "ExposedPorts");
                for p in ports {
                    exposed.insert(p.clone(), json!({}));
                }
            }
            Change::Label(kv) => {
                let labels = object(config, "Labels");
                for (k, v) in kv {
                    labels.insert(k.clone(), json!(v));
                }
            }
            Change::Volume(paths) => {
                let volumes = object(config, "Volumes");
                for p in paths {
                    volumes.insert(p.clone(), json!({}));
                }
            }
            Change::OnBuild(text) => {
                let mut list: Vec<String> = config
                    .get("OnBuild")
                    .and_then(|e| serde_json::from_value(e.clone()).ok())
                    .unwrap_or_default();
                list.push(text.clone());
                config.insert("OnBuild".into(), json!(list));
            }
            Change::StopSignal(s) => {
                config.insert("StopSignal".into(), json!(s));
            }
            Change::User(u) => {
                config.insert("User".into(), json!(u));
            }
            Change::Workdir(dir) => {
                let base = config.get("WorkingDir").and_then(Value::as_str).unwrap_or("/");
                let joined = std::path::Path::new(if base.is_empty() { "/" } else { base }).join(dir);
                config.insert("WorkingDir".into(), json!(joined.display().to_string()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_and_pairs() {
        assert_eq!(
            parse(r#"CMD ["nginx", "-g", "daemon off;"]"#),
            Ok(Change::Cmd(vec!["nginx".into(), "-g".into(), "daemon off;".into()]))
        );
        assert_eq!(
            parse("cmd echo $HOME"),
            Ok(Change::Cmd(vec!["/bin/sh".into(), "-c".into(), "echo $HOME".into()]))
        );
        assert_eq!(
            parse(r#"ENV A=1 B="two words" C=it\'s"#),
            Ok(Change::Env(vec![
                ("A".into(), "1".into()),
                ("B".into(), "two words".into()),
                ("C".into(), "it's".into())
            ]))
        );
        assert_eq!(
            parse("ENV PATH /a b"),
            Ok(Change::Env(vec![("PATH".into(), "/a b".into())]))
        );
        assert_eq!(
            parse("EXPOSE 80 53/UDP"),
            Ok(Change::Expose(vec!["80/tcp".into(), "53/udp".into()]))
        );
        assert!(parse("EXPOSE http").is_err());
        assert!(parse("RUN make").expect_err("refused").contains("only CMD"));
        assert!(parse("USER").is_err());
        assert!(parse("LABEL novalue").is_err());
        assert!(parse("ENV A=\"open").is_err());
    }

    #[test]
    fn applied_in_order() {
        let mut config = serde_json::from_value::<Map<String, Value>>(json!({
            "Env": ["PATH=/bin", "A=0"],
            "Cmd": ["sh"],
            "WorkingDir": "/srv"
        }))
        .expect("map");
        let changes: Vec<Change> = [
            "ENV A=1",
            "ENTRYPOINT [\"/app\"]",
            "WORKDIR data",
            "EXPOSE 8080",
            "LABEL k=v",
            "VOLUME /data /logs",
        ]
        .iter()
        .map(|l| parse(l).expect("parse"))
        .collect();
        apply(&mut config, &changes);
        assert_eq!(config["Env"], json!(["PATH=/bin", "A=1"]));
        assert_eq!(config["Entrypoint"], json!(["/app"]));
        assert_eq!(config["Cmd"], Value::Null);
        assert_eq!(config["WorkingDir"], json!("/srv/data"));
        assert_eq!(config["ExposedPorts"], json!({"8080/tcp": {}}));
        assert_eq!(config["Labels"], json!({"k": "v"}));
        assert_eq!(config["Volumes"], json!({"/data": {}, "/logs": {}}));
    }
}
