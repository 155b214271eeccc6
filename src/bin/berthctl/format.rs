//! Docker's `--format` for `ps` and `images`: the subset of Go templates Docker users write.
//! `table` first prints a header line and aligns the tab-separated cells (as Docker's
//! tabwriter: columns at least 10 wide, 3 spaces apart); `json` or `{{json .}}` prints each
//! row as one JSON object; `{{.Field}}` and `{{.Label "key"}}` are replaced; `\t` and `\n`
//! stand for a tab and a newline. Anything else in `{{ }}` is an error naming it.

use std::collections::BTreeMap;

use anyhow::bail;

/// One piece of a parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Field(&'static str),
    Label(String),
    Json,
}

/// A parsed `--format`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    table: bool,
    pieces: Vec<Piece>,
    /// The fields' header names: (field, HEADER).
    headers: Vec<(&'static str, &'static str)>,
}

/// One row's values: each field by name, and the labels for `{{.Label "k"}}`.
#[derive(Debug, Clone, Default)]
pub struct Row {
    pub values: BTreeMap<&'static str, String>,
    pub labels: BTreeMap<String, String>,
}

/// Labels as Docker's `{{.Labels}}` shows them: `k=v,k2=v2`, sorted.
pub fn labels_text(labels: &BTreeMap<String, String>) -> String {
    let parts: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    parts.join(",")
}

impl Template {
    /// Parses `text` for rows with `fields` ((name, HEADER) pairs); a bare `table` is
    /// `table` + `default`.
    pub fn parse(text: &str, fields: &[(&'static str, &'static str)], default: &str) -> anyhow::Result<Template> {
        let text = text.replace("\\t", "\t").replace("\\n", "\n");
        let (table, body) = match text.strip_prefix("table") {
            Some(rest) if rest.trim().is_empty() => (true, default.to_string()),
            Some(rest) if rest.starts_with([' ', '\t']) => (true, rest[1..].to_string()),
            _ => (false, text.clone()),
        };
        if !table && body.trim() == "json" {
            return Ok(Template {
                table: false,
                pieces: vec![Piece::Json],
                headers: fields.to_vec(),
            });
        }
        let mut pieces = Vec::new();
        let mut rest = body.as_str();
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                pieces.push(Piece::Text(rest[..start].to_string()));
            }
            let Some(len) = rest[start..].find("}}") else {
                bail!("--format: unclosed {{{{ in {text:?}");
            };
            let action = rest[start + 2..start + len].trim();
            pieces.push(piece(action, fields)?);
            rest = &rest[start + len + 2..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
        }
        Ok(Template {
            table,
            pieces,
            headers: fields.to_vec(),
        })
    }

    /// Whether the template shows `field` (or the whole row, as JSON).
    pub fn uses(&self, field: &str) -> bool {
        self.pieces
            .iter()
            .any(|p| matches!(p, Piece::Json) || matches!(p, Piece::Field(f) if *f == field))
    }

    fn line(&self, row: Option<&Row>) -> String {
        let mut out = String::new();
        for p in &self.pieces {
            match (p, row) {
                (Piece::Text(t), _) => out.push_str(t),
                (Piece::Field(f), Some(r)) => out.push_str(r.values.get(f).map(String::as_str).unwrap_or("")),
                (Piece::Field(f), None) => {
                    let h = self.headers.iter().find(|(n, _)| n == f).map(|(_, h)| *h);
                    out.push_str(h.unwrap_or(f));
                }
                (Piece::Label(k), Some(r)) => out.push_str(r.labels.get(k).map(String::as_str).unwrap_or("")),
                (Piece::Label(_), None) => out.push_str("LABEL"),
                (Piece::Json, Some(r)) => out.push_str(&serde_json::to_string(&r.values).unwrap_or_default()),
                (Piece::Json, None) => {}
            }
        }
        out
    }

    /// The text for `rows`: a header and aligned cells for `table`, else one line each.
    pub fn render(&self, rows: &[Row]) -> String {
        let mut lines: Vec<String> = Vec::new();
        if self.table {
            lines.push(self.line(None));
        }
        lines.extend(rows.iter().map(|r| self.line(Some(r))));
        let mut out = String::new();
        if !self.table {
            for l in lines {
                out.push_str(&l);
                out.push('\n');
            }
            return out;
        }
        let split: Vec<Vec<&str>> = lines.iter().map(|l| l.split('\t').collect()).collect();
        let mut widths: Vec<usize> = Vec::new();
        for cells in &split {
            for (i, c) in cells.iter().enumerate().take(cells.len().saturating_sub(1)) {
                if widths.len() <= i {
                    widths.push(10);
                }
                widths[i] = widths[i].max(c.chars().count() + 3);
            }
        }
        for cells in split {
            let last = cells.len().saturating_sub(1);
            for (i, c) in cells.iter().enumerate() {
                if i < last {
                    out.push_str(&format!("{c:<w$}", w = widths[i]));
                } else {
                    out.push_str(c);
                }
            }
            out.push('\n');
        }
        out
    }
}

fn piece(action: &str, fields: &[(&'static str, &'static str)]) -> anyhow::Result<Piece> {
    if action == "json ." {
        return Ok(Piece::Json);
    }
    if let Some(key) = action.strip_prefix(".Label ") {
        let key = key.trim();
        if key.len() >= 2 && key.starts_with('"') && key.ends_with('"') {
            return Ok(Piece::Label(key[1..key.len() - 1].to_string()));
        }
    }
    if let Some(name) = action.strip_prefix('.') {
        if let Some((f, _)) = fields.iter().find(|(f, _)| *f == name) {
            return Ok(Piece::Field(f));
        }
    }
    let known: Vec<String> = fields.iter().map(|(f, _)| format!("{{{{.{f}}}}}")).collect();
    bail!(
        "--format: unknown placeholder {{{{{action}}}}}; use {}, {{{{.Label \"KEY\"}}}} or {{{{json .}}}}",
        known.join(" ")
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const FIELDS: &[(&str, &str)] = &[("ID", "CONTAINER ID"), ("Names", "NAMES"), ("Status", "STATUS")];

    fn row(id: &str, name: &str) -> Row {
        let mut r = Row::default();
        r.values.insert("ID", id.into());
        r.values.insert("Names", name.into());
        r.values.insert("Status", "Up".into());
        r.labels.insert("app".into(), "web".into());
        r
    }

    #[test]
    fn plain_templates_replace_fields_and_labels() {
        let t = Template::parse("{{.ID}}:{{ .Names }} {{.Label \"app\"}}|{{.Label \"no\"}}", FIELDS, "").unwrap();
        assert_eq!(t.render(&[row("a1", "x"), row("b2", "y")]), "a1:x web|\nb2:y web|\n");
        assert!(t.uses("ID") && !t.uses("Status"));
        let t = Template::parse("{{.ID}}\\t{{.Names}}", FIELDS, "").unwrap();
        assert_eq!(t.render(&[row("a1", "x")]), "a1\tx\n", "no alignment without table");
    }

    #[test]
    fn table_aligns_like_docker() {
        let t = Template::parse("table {{.ID}}\\t{{.Names}}\\t{{.Status}}", FIELDS, "").unwrap();
        assert_eq!(
            t.render(&[row("a1", "a-long-name-here"), row("b2", "y")]),
            "CONTAINER ID   NAMES              STATUS\n\
             a1             a-long-name-here   Up\n\
             b2             y                  Up\n"
        );
        let t = Template::parse("table", FIELDS, "{{.Names}}\t{{.ID}}").unwrap();
        assert_eq!(t.render(&[row("a1", "x")]), "NAMES     CONTAINER ID\nx         a1\n");
    }

    #[test]
    fn json_is_one_object_per_line() {
        for f in ["json", "{{json .}}", "{{ json . }}"] {
            let t = Template::parse(f, FIELDS, "").unwrap();
            assert!(t.uses("Status"));
            assert_eq!(
                t.render(&[row("a1", "x")]),
                "{\"ID\":\"a1\",\"Names\":\"x\",\"Status\":\"Up\"}\n",
                "{f}"
            );
        }
    }

    #[test]
    fn unknown_placeholders_are_named() {
        let e = Template::parse("{{.Nope}}", FIELDS, "").unwrap_err().to_string();
        assert!(e.contains("{{.Nope}}") && e.contains("{{.ID}}"), "{e}");
        let e = Template::parse("{{.ID | upper}}", FIELDS, "").unwrap_err().to_string();
        assert!(e.contains("{{.ID | upper}}"), "{e}");
        assert!(Template::parse("{{.ID", FIELDS, "").is_err());
        let mut l = BTreeMap::new();
        l.insert("b".to_string(), "2".to_string());
        l.insert("a".to_string(), "1".to_string());
        assert_eq!(labels_text(&l), "a=1,b=2");
    }
}
