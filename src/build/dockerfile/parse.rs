//! From logical lines to instructions and build stages.

use std::collections::BTreeSet;

use super::ast::{Args, Dockerfile, Instruction, Keyword, ParseError, Stage};
use super::lines;
use super::words::raw_words;

/// Parses a Dockerfile: parser directives, comments, continuation lines, instructions with
/// their flags and arguments (unexpanded), grouped into stages. Checks what the syntax alone
/// decides: known keywords, arguments present, only ARG before the first FROM, FROM's form and
/// stage names (valid, not repeated), SHELL in JSON form, ONBUILD's trigger, HEALTHCHECK's
/// type; heredocs are refused.
pub fn parse(text: &str) -> Result<Dockerfile, ParseError> {
    let (escape, lines) = lines::split(text)?;
    let mut meta_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    let mut names = BTreeSet::new();
    for l in lines {
        let ins = instruction(&l.text, l.original, l.line, escape)?;
        if ins.keyword == Keyword::From {
            let (base, name) = from_parts(&ins)?;
            if let Some(name) = &name {
                if !names.insert(name.clone()) {
                    return Err(ParseError::new(ins.line, format!("duplicate stage name {name:?}")));
                }
            }
            stages.push(Stage {
                from: ins,
                base,
                name,
                instructions: Vec::new(),
            });
            continue;
        }
        match stages.last_mut() {
            Some(stage) => stage.instructions.push(ins),
            None if ins.keyword == Keyword::Arg => meta_args.push(ins),
            None => {
                return Err(ParseError::new(
                    ins.line,
                    format!("{} before the first FROM: only ARG may come before FROM", ins.keyword),
                ))
            }
        }
    }
    if stages.is_empty() {
        let message = if meta_args.is_empty() {
            "the file has no instructions"
        } else {
            "no FROM instruction: there is no stage to build"
        };
        return Err(ParseError::new(0, message));
    }
    Ok(Dockerfile {
        escape,
        meta_args,
        stages,
    })
}

/// One instruction from its (trimmed, joined) text.
fn instruction(text: &str, original: String, line: usize, escape: char) -> Result<Instruction, ParseError> {
    let err = |message: String| ParseError::new(line, message);
    let (word, rest) = first_word(text);
    let keyword =
        Keyword::from_word(word).ok_or_else(|| err(format!("unknown instruction: {}", word.to_uppercase())))?;
    let (flags, rest) = if keyword.takes_flags() {
        split_flags(rest, escape)
    } else {
        (Vec::new(), rest)
    };
    let rest = rest.trim();
    if rest.is_empty() {
        return Err(err(format!("{keyword} requires at least one argument")));
    }
    let json = if keyword.allows_json() && rest.starts_with('[') {
        serde_json::from_str::<Vec<String>>(rest).ok()
    } else {
        None
    };
    let args = match json {
        Some(list) => Args::Json(list),
        None => {
            if matches!(keyword, Keyword::Run | Keyword::Copy | Keyword::Add) && has_heredoc(rest, escape) {
                return Err(err("heredocs are not supported".to_string()));
            }
            Args::Raw(rest.to_string())
        }
    };
    match (keyword, &args) {
        (Keyword::Shell, Args::Raw(_)) => {
            return Err(err("SHELL requires the arguments to be in JSON form".to_string()));
        }
        (Keyword::Shell, Args::Json(list)) if list.is_empty() => {
            return Err(err("SHELL requires at least one argument".to_string()));
        }
        (Keyword::OnBuild, _) => check_trigger(rest, line, escape)?,
        (Keyword::Healthcheck, _) => check_healthcheck(rest).map_err(err)?,
        _ => {}
    }
    Ok(Instruction {
        line,
        keyword,
        flags,
        args,
        original,
    })
}

/// The first whitespace-separated word and the rest (trimmed).
fn first_word(text: &str) -> (&str, &str) {
    let text = text.trim();
    match text.find(char::is_whitespace) {
        Some(i) => (&text[..i], text[i..].trim()),
        None => (text, ""),
    }
}

/// Leading `--name[=value]` words (quotes removed, the escape character escaping), and the text
/// after them. A bare `--` ends the flags.
fn split_flags(text: &str, escape: char) -> (Vec<(String, String)>, &str) {
    let mut flags = Vec::new();
    let mut rest = text;
    loop {
        rest = rest.trim_start();
        if !rest.starts_with("--") {
            return (flags, rest);
        }
        let mut word = String::new();
        let mut quote = None;
        let mut end = rest.len();
        let mut chars = rest.char_indices();
        while let Some((i, c)) = chars.next() {
            match quote {
                Some(q) if c == q => quote = None,
                None if c.is_whitespace() => {
                    end = i;
                    break;
                }
                None if c == '\'' || c == '"' => quote = Some(c),
                _ if c == escape && quote != Some('\'') => {
                    if let Some((_, n)) = chars.next() {
                        word.push(n);
                    }
                }
                _ => word.push(c),
            }
        }
        rest = &rest[end..];
        if word == "--" {
            return (flags, rest);
        }
        let flag = &word[2..];
        flags.push(match flag.split_once('=') {
            Some((name, value)) => (name.to_string(), value.to_string()),
            None => (flag.to_string(), String::new()),
        });
    }
}

/// Whether shell-form arguments hold a heredoc (`<<EOF`, `<<-EOF`, `<<"EOF"`): a word starting
/// with `<<` followed by a name.
fn has_heredoc(args: &str, escape: char) -> bool {
    raw_words(args, escape).into_iter().any(|w| {
        w.strip_prefix("<<")
            .map(|r| r.strip_prefix('-').unwrap_or(r))
            .is_some_and(|name| !name.is_empty() && !name.contains('<'))
    })
}

/// FROM's image text and lower-cased stage name.
fn from_parts(from: &Instruction) -> Result<(String, Option<String>), ParseError> {
    let err = |message: String| ParseError::new(from.line, message);
    let Args::Raw(raw) = &from.args else {
        return Err(err("FROM requires either one or three arguments".to_string()));
    };
    let words: Vec<&str> = raw.split_whitespace().collect();
    match words.as_slice() {
        [image] => Ok((image.to_string(), None)),
        [image, as_word, name] if as_word.eq_ignore_ascii_case("as") => {
            let name = name.to_ascii_lowercase();
            let mut chars = name.chars();
            let valid = chars.next().is_some_and(|c| c.is_ascii_lowercase())
                && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'));
            if !valid {
                return Err(err(format!(
                    "invalid name for build stage: {name:?}, name can't start with a number or contain symbols"
                )));
            }
            Ok((image.to_string(), Some(name)))
        }
        _ => Err(err("FROM requires either one or three arguments".to_string())),
    }
}

/// ONBUILD's trigger: a valid instruction, but neither ONBUILD, FROM nor MAINTAINER.
fn check_trigger(trigger: &str, line: usize, escape: char) -> Result<(), ParseError> {
    let (word, _) = first_word(trigger);
    match Keyword::from_word(word) {
        Some(Keyword::OnBuild) => Err(ParseError::new(
            line,
            "chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
        )),
        Some(k @ (Keyword::From | Keyword::Maintainer)) => Err(ParseError::new(
            line,
            format!("{k} isn't allowed as an ONBUILD trigger"),
        )),
        _ => instruction(trigger, trigger.to_string(), line, escape).map(|_| ()),
    }
}

/// HEALTHCHECK's arguments: `NONE` alone, or `CMD` and a command.
fn check_healthcheck(args: &str) -> Result<(), String> {
    let (kind, rest) = first_word(args);
    if kind.eq_ignore_ascii_case("NONE") {
        if rest.is_empty() {
            return Ok(());
        }
        return Err("HEALTHCHECK NONE takes no arguments".to_string());
    }
    if kind.eq_ignore_ascii_case("CMD") {
        if rest.is_empty() {
            return Err("missing command after HEALTHCHECK CMD".to_string());
        }
        return Ok(());
    }
    Err(format!("unknown type {kind:?} in HEALTHCHECK (try CMD)"))
}
