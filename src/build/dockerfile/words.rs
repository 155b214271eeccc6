//! Shell-like processing of instruction arguments, as Docker applies it to everything but
//! RUN/CMD/ENTRYPOINT: quotes removed, the escape character honoured, `$VAR` and `${VAR…}`
//! expanded from a lookup. Nothing is run and no globbing happens.

/// A variable lookup: `None` when the variable is unset.
type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

const MISSING_BRACE: &str = "syntax error: missing '}'";
const BAD_SUBSTITUTION: &str = "syntax error: bad substitution";

/// Shell-like processing of one word of raw arguments (WORKDIR, USER, STOPSIGNAL, a FROM image,
/// a COPY destination…): quotes removed; `$VAR`, `${VAR}`, `${VAR:-word}`, `${VAR-word}`,
/// `${VAR:+word}`, `${VAR+word}` (and `${VAR:?msg}`, `${VAR?msg}`) expanded through `lookup`
/// (`None`: unset, which expands to nothing); the escape character escaping the next character
/// (inside double quotes only before `$`, `"`, the escape character and a newline, elsewhere
/// kept); single quotes keeping everything literal. Whitespace is kept as it is.
pub fn expand(raw: &str, escape: char, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = Out::new(false);
    Lexer::new(raw, escape, lookup).process(&mut out, None)?;
    Ok(out.word)
}

/// Like [`expand`], but split into words on unquoted, unescaped whitespace (EXPOSE, the raw
/// form of VOLUME, COPY/ADD sources and destination…). Expanded values are not split again; a
/// word that is only an empty expansion is dropped, an empty quoted string (`""`) is a word.
pub fn expand_words(raw: &str, escape: char, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Vec<String>, String> {
    let mut out = Out::new(true);
    Lexer::new(raw, escape, lookup).process(&mut out, None)?;
    out.finish();
    Ok(out.words)
}

/// `K=V K2="v 2"` pairs (ENV, LABEL, ARG), each key and value processed as by [`expand`], all
/// against `lookup` (the environment before the instruction: a value never sees a variable set
/// earlier in the same instruction).
///
/// `legacy` is for ENV and LABEL: when the first word has no `=`, the old form `KEY rest of line`
/// applies, the value being the rest of the line expanded as one word; otherwise every word must
/// have an `=`. Without `legacy` (ARG), `NAME` alone gives `(NAME, None)` and `NAME=v` gives
/// `(NAME, Some(v))`. Keys may not be empty.
pub fn pairs(
    raw: &str,
    escape: char,
    legacy: bool,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<(String, Option<String>)>, String> {
    let spans = raw_word_spans(raw, escape);
    let Some(&(start, end)) = spans.first() else {
        return Ok(Vec::new());
    };
    let key = |text: &str| -> Result<String, String> {
        let key = expand(text, escape, lookup)?;
        if key.is_empty() {
            return Err(format!("empty name in {:?}: names can not be blank", raw.trim()));
        }
        Ok(key)
    };
    let first = &raw[start..end];
    if legacy && !first.contains('=') {
        let rest = raw[end..].trim();
        if rest.is_empty() {
            return Err(format!(
                "{first:?} has no value: the form is NAME=VALUE (or NAME VALUE)"
            ));
        }
        return Ok(vec![(key(first)?, Some(expand(rest, escape, lookup)?))]);
    }
    let mut out = Vec::with_capacity(spans.len());
    for (start, end) in spans {
        let word = &raw[start..end];
        match word.split_once('=') {
            Some((name, value)) => out.push((key(name)?, Some(expand(value, escape, lookup)?))),
            None if !legacy => out.push((key(word)?, None)),
            None => return Err(format!("can't find = in {word:?}: must be of the form name=value")),
        }
    }
    Ok(out)
}

/// The whitespace-separated words of raw text, quotes and escapes kept but honoured (a quoted
/// or escaped space does not split), as byte ranges.
pub(super) fn raw_word_spans(raw: &str, escape: char) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut start = None;
    let mut quote = None;
    let mut chars = raw.char_indices();
    while let Some((i, c)) = chars.next() {
        if let Some(q) = quote {
            if c == q {
                quote = None;
            } else if c == escape && q != '\'' {
                chars.next();
            }
            continue;
        }
        if c.is_whitespace() {
            if let Some(s) = start.take() {
                spans.push((s, i));
            }
            continue;
        }
        start.get_or_insert(i);
        if c == '\'' || c == '"' {
            quote = Some(c);
        } else if c == escape {
            chars.next();
        }
    }
    if let Some(s) = start {
        spans.push((s, raw.len()));
    }
    spans
}

/// The whitespace-separated raw words of `raw` (see [`raw_word_spans`]).
pub(super) fn raw_words(raw: &str, escape: char) -> Vec<&str> {
    raw_word_spans(raw, escape)
        .into_iter()
        .map(|(s, e)| &raw[s..e])
        .collect()
}

/// What the lexer produces: one word, or words split on literal whitespace.
struct Out {
    split: bool,
    words: Vec<String>,
    word: String,
    in_word: bool,
}

impl Out {
    fn new(split: bool) -> Self {
        Out {
            split,
            words: Vec::new(),
            word: String::new(),
            in_word: false,
        }
    }

    /// An unquoted, unescaped character: whitespace ends a word when splitting.
    fn literal(&mut self, c: char) {
        if self.split && c.is_whitespace() {
            self.finish();
        } else {
            self.word.push(c);
            self.in_word = true;
        }
    }

    /// Quoted or escaped text: always part of a word, even when empty.
    fn raw(&mut self, s: &str) {
        self.word.push_str(s);
        self.in_word = true;
    }

    /// An expansion's value: part of a word, but an empty value makes none.
    fn expanded(&mut self, s: &str) {
        if !s.is_empty() {
            self.raw(s);
        }
    }

    fn finish(&mut self) {
        if self.in_word {
            self.words.push(std::mem::take(&mut self.word));
            self.in_word = false;
        }
    }
}

struct Lexer<'a> {
    chars: Vec<char>,
    pos: usize,
    escape: char,
    lookup: Lookup<'a>,
}

impl<'a> Lexer<'a> {
    fn new(raw: &str, escape: char, lookup: Lookup<'a>) -> Self {
        Lexer {
            chars: raw.chars().collect(),
            pos: 0,
            escape,
            lookup,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        self.pos += usize::from(c.is_some());
        c
    }

    /// Processes up to `stop` (consumed; an error when the text ends first) or the end.
    fn process(&mut self, out: &mut Out, stop: Option<char>) -> Result<(), String> {
        loop {
            let Some(c) = self.peek() else {
                return match stop {
                    Some(_) => Err(MISSING_BRACE.to_string()),
                    None => Ok(()),
                };
            };
            if Some(c) == stop {
                self.pos += 1;
                return Ok(());
            }
            match c {
                '\'' => out.raw(&self.single_quoted()?),
                '"' => out.raw(&self.double_quoted()?),
                '$' => out.expanded(&self.dollar()?),
                _ if c == self.escape => {
                    self.pos += 1;
                    // An escape character at the very end is dropped.
                    if let Some(next) = self.next() {
                        out.raw(next.encode_utf8(&mut [0; 4]));
                    }
                }
                _ => {
                    self.pos += 1;
                    out.literal(c);
                }
            }
        }
    }

    fn single_quoted(&mut self) -> Result<String, String> {
        self.pos += 1;
        let mut s = String::new();
        loop {
            match self.next() {
                None => return Err("unexpected end of statement while looking for matching single-quote".into()),
                Some('\'') => return Ok(s),
                Some(c) => s.push(c),
            }
        }
    }

    fn double_quoted(&mut self) -> Result<String, String> {
        self.pos += 1;
        let mut s = String::new();
        loop {
            match self.peek() {
                None => return Err("unexpected end of statement while looking for matching double-quote".into()),
                Some('"') => {
                    self.pos += 1;
                    return Ok(s);
                }
                Some('$') => s.push_str(&self.dollar()?),
                Some(c) => {
                    self.pos += 1;
                    if c == self.escape {
                        match self.peek() {
                            Some('\n') => {
                                self.pos += 1;
                                continue;
                            }
                            Some(n) if n == '"' || n == '$' || n == self.escape => {
                                self.pos += 1;
                                s.push(n);
                                continue;
                            }
                            _ => {}
                        }
                    }
                    s.push(c);
                }
            }
        }
    }

    /// `$NAME`, `${NAME}` or `${NAME<modifier>word}`, at a `$`.
    fn dollar(&mut self) -> Result<String, String> {
        self.pos += 1;
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".to_string());
            }
            return Ok((self.lookup)(&name).unwrap_or_default());
        }
        self.pos += 1;
        match self.peek() {
            None => return Err(MISSING_BRACE.into()),
            Some('{' | '}' | ':') => return Err(BAD_SUBSTITUTION.into()),
            Some(_) => {}
        }
        let name = self.name();
        if name.is_empty() {
            return Err(BAD_SUBSTITUTION.into());
        }
        let value = (self.lookup)(&name);
        match self.next() {
            None => Err(MISSING_BRACE.into()),
            Some('}') => Ok(value.unwrap_or_default()),
            Some(':') => {
                let modifier = self.next().ok_or(MISSING_BRACE)?;
                if modifier == '}' {
                    return Err(BAD_SUBSTITUTION.into());
                }
                let word = self.sub_word()?;
                // With a colon, an empty value counts as unset.
                let value = value.filter(|v| !v.is_empty());
                apply(&name, modifier, value, word)
            }
            Some(modifier @ ('-' | '+' | '?')) => {
                let word = self.sub_word()?;
                apply(&name, modifier, value, word)
            }
            Some(c) => Err(format!("unsupported modifier ({c}) in substitution")),
        }
    }

    /// The word of `${NAME-word}`, processed (quotes, escapes, nested expansions) up to `}`.
    fn sub_word(&mut self) -> Result<String, String> {
        let mut out = Out::new(false);
        self.process(&mut out, Some('}'))?;
        Ok(out.word)
    }

    /// A variable name: letters, digits and `_`; or a run of digits (positional); or one
    /// special parameter character. Empty when none follows.
    fn name(&mut self) -> String {
        let mut name = String::new();
        match self.peek() {
            Some(c) if c.is_ascii_digit() => {
                while let Some(d) = self.peek().filter(char::is_ascii_digit) {
                    name.push(d);
                    self.pos += 1;
                }
                return name;
            }
            Some(c @ ('@' | '*' | '#' | '?' | '-' | '$' | '!')) => {
                self.pos += 1;
                name.push(c);
                return name;
            }
            _ => {}
        }
        while let Some(c) = self.peek().filter(|c| c.is_alphanumeric() || *c == '_') {
            name.push(c);
            self.pos += 1;
        }
        name
    }
}

/// A `${NAME<modifier>word}` substitution's result for the variable's value (`None`: unset,
/// or empty under a colon modifier).
fn apply(name: &str, modifier: char, value: Option<String>, word: String) -> Result<String, String> {
    match (modifier, value) {
        ('-', None) => Ok(word),
        ('-', Some(v)) => Ok(v),
        ('+', None) => Ok(String::new()),
        ('+', Some(_)) => Ok(word),
        ('?', None) if word.is_empty() => Err(format!("{name}: parameter not set or null")),
        ('?', None) => Err(format!("{name}: {word}")),
        ('?', Some(v)) => Ok(v),
        (m, _) => Err(format!("unsupported modifier ({m}) in substitution")),
    }
}
