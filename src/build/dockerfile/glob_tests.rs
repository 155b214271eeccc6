//! Tests of glob matching and `.dockerignore`.

use super::*;

fn m(pattern: &str, path: &str) -> bool {
    glob_match(pattern, path).expect("valid pattern")
}

fn ignore(text: &str) -> Ignore {
    Ignore::parse(text).expect("parses")
}

#[test]
fn stars_and_question_marks() {
    assert!(m("*.go", "main.go"));
    assert!(m("*", ""));
    assert!(m("a*b*c", "aXXbYYc"));
    assert!(m("a*", "a"));
    assert!(!m("*.go", "cmd/main.go"), "* does not cross /");
    assert!(m("*/*.go", "cmd/main.go"));
    assert!(!m("a*", "ab/c"));
    assert!(m("a?c", "abc"));
    assert!(!m("a?c", "a/c"), "? does not match /");
    assert!(!m("a?c", "ac"));
    assert!(!m("main.go", "main.gox"));
    assert!(m("**", "ab"), "** is just * here");
    assert!(!m("**", "a/b"));
}

#[test]
fn character_classes() {
    assert!(m("[a-c]x", "bx"));
    assert!(!m("[a-c]x", "dx"));
    assert!(m("[!a]", "b"));
    assert!(!m("[!a]", "a"));
    assert!(m("[^a-c]", "z"));
    assert!(!m("[^a-c]", "b"));
    assert!(m("[abc]", "c"));
    assert!(m("[\\]]", "]"));
    assert!(m("[\\-]", "-"));
    assert!(m("x]", "x]"));
}

#[test]
fn escapes() {
    assert!(m("\\*", "*"));
    assert!(!m("\\*", "a"));
    assert!(m("a\\?b", "a?b"));
    assert!(!m("a\\?b", "axb"));
    assert!(m("\\[x]", "[x]"));
}

#[test]
fn malformed_patterns() {
    for p in ["[", "[a", "[]", "[a-", "[a-]", "[-]", "x\\", "[!]"] {
        assert!(glob_match(p, "a").is_err(), "{p:?}");
    }
}

#[test]
fn ignore_globs_and_exceptions() {
    let i = ignore("# comment\n\n*.log\n!keep.log\n");
    assert!(i.excludes("debug.log"));
    assert!(!i.excludes("keep.log"));
    assert!(!i.excludes("logs/debug.log"), "*.log is anchored at the root");
    assert!(!i.excludes("main.go"));
    assert!(!i.excludes("# comment"));
    assert!(!i.is_empty());
    // The last matching pattern wins.
    let i = ignore("!keep.log\n*.log\n");
    assert!(i.excludes("keep.log"));
}

#[test]
fn ignore_double_star() {
    let i = ignore("**/node_modules\n");
    assert!(i.excludes("node_modules"));
    assert!(i.excludes("web/node_modules"));
    assert!(i.excludes("a/b/node_modules/x/y.js"));
    assert!(!i.excludes("node_modules_x"));
    let i = ignore("docs/**/*.md\n");
    assert!(i.excludes("docs/a.md"));
    assert!(i.excludes("docs/x/y/a.md"));
    assert!(!i.excludes("a.md"));
    let i = ignore("build/**\n");
    assert!(i.excludes("build/x"));
    assert!(i.excludes("build/x/y"));
    assert!(!i.excludes("builds"));
    assert!(ignore("**\n").excludes("any/thing"));
}

#[test]
fn ignore_leading_slash_and_cleaning() {
    let i = ignore("/build\n  ./tmp/  \nsrc//gen/../out\n");
    assert!(i.excludes("build"));
    assert!(i.excludes("build/bin/app"));
    assert!(i.excludes("tmp/x"));
    assert!(i.excludes("src/out/a"));
    assert!(!i.excludes("src/gen/a"));
    assert!(!i.excludes("x/build"));
    assert!(i.excludes("./build/"), "paths are normalized too");
}

#[test]
fn ignore_directories_exclude_their_contents() {
    let i = ignore("dir\n");
    assert!(i.excludes("dir"));
    assert!(i.excludes("dir/file"));
    assert!(i.excludes("dir/sub/file"));
    assert!(!i.excludes("dirt"));
    assert!(!i.excludes("other/dir"));
    assert!(!i.may_reinclude_under("dir"));
}

#[test]
fn ignore_exceptions_under_excluded_directories() {
    let i = ignore("dir\n!dir/keep\n");
    assert!(i.excludes("dir"));
    assert!(i.excludes("dir/other"));
    assert!(!i.excludes("dir/keep"));
    assert!(!i.excludes("dir/keep/inner"));
    assert!(i.may_reinclude_under("dir"));
    assert!(!i.may_reinclude_under("other"));
    assert!(!i.may_reinclude_under("dir/other"));
    assert!(i.may_reinclude_under("dir/keep"));

    let i = ignore("*\n!src/*/main.go\n!**/README.md\n");
    assert!(i.excludes("go.mod"));
    assert!(!i.excludes("src/app/main.go"));
    assert!(!i.excludes("a/b/README.md"));
    assert!(i.may_reinclude_under("src"));
    assert!(i.may_reinclude_under("anything"), "** could match anywhere");

    let i = ignore("*\n!src/*/main.go\n");
    assert!(i.may_reinclude_under("src/app"));
    assert!(!i.may_reinclude_under("vendor"));
    // An exception naming a parent re-includes everything under it.
    let i = ignore("a/b\n!a\n");
    assert!(!i.excludes("a/b/x"));
    assert!(i.may_reinclude_under("a/b"));
}

#[test]
fn ignore_errors_and_empty_files() {
    assert!(Ignore::parse("!\n").is_err());
    assert!(Ignore::parse("[a\n").is_err());
    let i = ignore("\n# only comments\n   \n");
    assert!(i.is_empty());
    assert!(!i.excludes("x"));
    assert!(!Ignore::default().excludes("x"));
    assert!(!Ignore::default().may_reinclude_under("x"));
}
