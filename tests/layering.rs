//! The daemon's layering, checked from its source: the CRI edge (`cri`, `api`, `server`,
//! `daemon`, `error`) may use the domain, the domain (everything else) never uses the edge,
//! and no two files import each other, directly or round a loop, except the known loops
//! listed here (each one a debt; the test fails when one is gone, so the list only shrinks).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level modules that make up the edge: wire types, gRPC errors, the server and the
/// daemon that wires the services together.
const EDGE: &[&str] = &["cri", "api", "server", "daemon", "error"];

/// File-level import loops not yet taken apart (none today; a loop that cannot be undone at
/// once is listed here, as a debt).
const KNOWN_LOOPS: &[&[&str]] = &[];

type Module = Vec<String>;

/// Every module file of the library (not the binaries) by module path.
fn module_files(src: &Path) -> BTreeMap<Module, PathBuf> {
    fn walk(dir: &Path, prefix: &Module, out: &mut BTreeMap<Module, PathBuf>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir).expect("read src").flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                if prefix.is_empty() && name == "bin" {
                    continue;
                }
                let mut m = prefix.clone();
                m.push(name);
                walk(&path, &m, out);
            } else if let Some(stem) = name.strip_suffix(".rs") {
                let mut m = prefix.clone();
                match stem {
                    "mod" => {}
                    "lib" | "main" if prefix.is_empty() => {
                        if stem == "main" {
                            continue;
                        }
                    }
                    _ => m.push(stem.to_string()),
                }
                out.insert(m, path);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(src, &Vec::new(), &mut out);
    out
}

/// The source without comments and without the trailing `#[cfg(test)] mod tests`.
fn production_code(text: &str) -> String {
    let mut out = String::new();
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim_start();
        let next_item = lines[i + 1..]
            .iter()
            .map(|l| l.trim_start())
            .find(|l| !l.starts_with("#["));
        if t == "#[cfg(test)]" && next_item.is_some_and(|n| n.starts_with("mod ")) {
            break;
        }
        if t.starts_with("//") {
            continue;
        }
        out.push_str(line.split(" // ").next().unwrap_or(line));
        out.push('\n');
    }
    out
}

/// `use` trees flattened to paths (`a::{b, c::d}` gives `a::b` and `a::c::d`), each with
/// whether the `use` re-exports it, and the code without its `use` statements.
fn split_uses(code: &str) -> (Vec<(bool, String)>, String) {
    fn expand(prefix: &str, tree: &str, out: &mut Vec<String>) {
        let tree = tree.trim();
        if let Some(open) = tree.find('{') {
            let head = tree[..open].trim_end_matches("::").trim();
            let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
            let base = join(prefix, head);
            let (mut depth, mut start) = (0, 0);
            for (i, ch) in inner.char_indices() {
                match ch {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        expand(&base, &inner[start..i], out);
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            expand(&base, &inner[start..], out);
        } else if !tree.is_empty() {
            match tree.split(" as ").next().unwrap_or(tree).trim() {
                "self" => out.push(prefix.to_string()),
                item => out.push(join(prefix, item)),
            }
        }
    }
    fn join(a: &str, b: &str) -> String {
        match (a.is_empty(), b.is_empty()) {
            (true, _) => b.to_string(),
            (_, true) => a.to_string(),
            _ => format!("{a}::{b}"),
        }
    }
    let (mut out, mut rest) = (Vec::new(), String::new());
    for stmt in code.split_inclusive(';') {
        let at = stmt.rfind("use ").filter(|&p| {
            p == 0 || stmt[..p].ends_with(|c: char| c.is_whitespace() || c == ')' || c == '{' || c == '}')
        });
        let Some(pos) = at else {
            rest.push_str(stmt);
            continue;
        };
        let head = stmt[..pos].trim_end();
        rest.push_str(head);
        let last = head
            .rsplit(|c: char| c.is_whitespace() || c == '{' || c == '}')
            .next()
            .unwrap_or("");
        let reexport = last.starts_with("pub");
        let mut paths = Vec::new();
        expand("", stmt[pos + 4..].trim_end_matches(';'), &mut paths);
        out.extend(paths.into_iter().map(|p| (reexport, p)));
    }
    (out, rest)
}

/// Paths written inline (`crate::clock::now_nanos()`), outside `use` statements.
fn inline_paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    for start in ["crate::", "super::"] {
        let mut rest = code;
        while let Some(i) = rest.find(start) {
            let before = rest[..i].chars().last();
            let tail = &rest[i..];
            let len = tail
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(tail.len());
            if !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                out.push(tail[..len].trim_end_matches(':').to_string());
            }
            rest = &tail[start.len()..];
        }
    }
    out
}

/// The module file a path in `from` names: the deepest existing module along it, following
/// re-exports of the item it ends at. A path that does not start at `crate`, `super` or
/// `self` is tried as a child of `from`.
fn resolve(
    from: &Module,
    path: &str,
    files: &BTreeMap<Module, PathBuf>,
    reexports: &BTreeMap<(Module, String), Module>,
) -> Module {
    let mut segs = path.split("::").peekable();
    let mut m: Module = if segs.peek() == Some(&"crate") {
        segs.next();
        Vec::new()
    } else {
        from.clone()
    };
    while let Some(&s) = segs.peek() {
        match s {
            "super" => {
                m.pop();
            }
            "self" => {}
            _ => break,
        }
        segs.next();
    }
    for seg in segs {
        let mut next = m.clone();
        next.push(seg.to_string());
        if files.contains_key(&next) {
            m = next;
            continue;
        }
        if let Some(target) = reexports.get(&(m.clone(), seg.to_string())) {
            return target.clone();
        }
        break;
    }
    m
}

fn graph() -> (BTreeMap<Module, BTreeSet<Module>>, BTreeMap<Module, PathBuf>) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = module_files(&src);
    let code: BTreeMap<Module, String> = files
        .iter()
        .map(|(m, p)| (m.clone(), production_code(&std::fs::read_to_string(p).expect("read"))))
        .collect();
    // Re-exports first (one level: `pub use lifecycle::Sandboxes` in sandbox/mod.rs).
    let mut reexports = BTreeMap::new();
    for (m, text) in &code {
        for (reexport, path) in split_uses(text).0 {
            let target = resolve(m, &path, &files, &BTreeMap::new());
            if reexport && &target != m {
                let item = path.rsplit("::").next().unwrap_or_default().to_string();
                reexports.insert((m.clone(), item), target);
            }
        }
    }
    let mut edges: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (m, text) in &code {
        let (uses, rest) = split_uses(text);
        let mut paths: Vec<String> = uses
            .into_iter()
            .filter(|(reexport, _)| !reexport)
            .map(|(_, p)| p)
            .collect();
        paths.extend(inline_paths(&rest));
        let set = edges.entry(m.clone()).or_default();
        for p in paths {
            let target = resolve(m, &p, &files, &reexports);
            // lib.rs only declares the modules.
            if &target != m && !target.is_empty() {
                set.insert(target);
            }
        }
    }
    (edges, files)
}

fn display(m: &Module, files: &BTreeMap<Module, PathBuf>) -> String {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    files[m].strip_prefix(&src).unwrap_or(&files[m]).display().to_string()
}

#[test]
fn the_domain_never_uses_the_edge() {
    let (edges, files) = graph();
    let mut wrong = Vec::new();
    for (from, targets) in &edges {
        if from.first().is_some_and(|t| EDGE.contains(&t.as_str())) || from.is_empty() {
            continue;
        }
        for t in targets {
            if t.first().is_some_and(|t| EDGE.contains(&t.as_str())) {
                wrong.push(format!("{} uses {}", display(from, &files), display(t, &files)));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "domain code reaches into the CRI edge:\n{}",
        wrong.join("\n")
    );
    // The graph is real: the edge does use the domain.
    let cri_to_container = edges.iter().any(|(f, ts)| {
        f.first().is_some_and(|t| t == "cri") && ts.iter().any(|t| t.first().is_some_and(|t| t == "container"))
    });
    assert!(
        cri_to_container,
        "the import graph found no cri -> container use: the parser is broken"
    );
}

/// Strongly connected groups of files (Tarjan), each sorted, of more than one file.
fn loops(edges: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<Module>> {
    struct T<'a> {
        edges: &'a BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<Module, usize>,
        low: BTreeMap<Module, usize>,
        stack: Vec<Module>,
        on: BTreeSet<Module>,
        out: Vec<Vec<Module>>,
    }
    fn visit(t: &mut T, v: &Module) {
        let n = t.index.len();
        t.index.insert(v.clone(), n);
        t.low.insert(v.clone(), n);
        t.stack.push(v.clone());
        t.on.insert(v.clone());
        for w in t.edges.get(v).cloned().unwrap_or_default() {
            if !t.index.contains_key(&w) {
                visit(t, &w);
                let l = t.low[v].min(t.low[&w]);
                t.low.insert(v.clone(), l);
            } else if t.on.contains(&w) {
                let l = t.low[v].min(t.index[&w]);
                t.low.insert(v.clone(), l);
            }
        }
        if t.low[v] == t.index[v] {
            let mut group = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(&w);
                let done = &w == v;
                group.push(w);
                if done {
                    break;
                }
            }
            if group.len() > 1 {
                group.sort();
                t.out.push(group);
            }
        }
    }
    let mut t = T {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in edges.keys() {
        if !t.index.contains_key(v) {
            visit(&mut t, v);
        }
    }
    t.out
}

#[test]
fn no_new_import_loops() {
    let (edges, files) = graph();
    let found: BTreeSet<Vec<String>> = loops(&edges)
        .iter()
        .map(|g| {
            let mut names: Vec<String> = g.iter().map(|m| display(m, &files)).collect();
            names.sort();
            names
        })
        .collect();
    let known: BTreeSet<Vec<String>> = KNOWN_LOOPS
        .iter()
        .map(|g| {
            let mut names: Vec<String> = g.iter().map(|s| s.to_string()).collect();
            names.sort();
            names
        })
        .collect();
    let new: Vec<_> = found.difference(&known).collect();
    let gone: Vec<_> = known.difference(&found).collect();
    assert!(
        new.is_empty(),
        "files that import each other (directly or round a loop): {new:?}"
    );
    assert!(
        gone.is_empty(),
        "known loops that no longer exist (take them off KNOWN_LOOPS): {gone:?}"
    );
}

#[test]
fn the_parser_sees_loops_and_nested_use_trees() {
    let paths: Vec<String> = split_uses("pub use a::{b, c::{d as e, self}};\nfn f() {\n    use crate::x::y;\n}")
        .0
        .into_iter()
        .map(|(r, p)| format!("{r}:{p}"))
        .collect();
    assert_eq!(paths, ["true:a::b", "true:a::c::d", "true:a::c", "false:crate::x::y"]);
    let m = |s: &str| vec![s.to_string()];
    let edges = BTreeMap::from([
        (m("a"), BTreeSet::from([m("b")])),
        (m("b"), BTreeSet::from([m("c")])),
        (m("c"), BTreeSet::from([m("a")])),
        (m("d"), BTreeSet::from([m("a")])),
    ]);
    assert_eq!(loops(&edges), vec![vec![m("a"), m("b"), m("c")]]);
}
