//! Tests of the shell-like word processing.

use std::collections::BTreeMap;

use super::*;

/// A lookup over fixed variables: A=a, B=b, EMPTY="", SPACED="x y", HOME=/root.
fn env(name: &str) -> Option<String> {
    let vars = BTreeMap::from([
        ("A", "a"),
        ("B", "b"),
        ("EMPTY", ""),
        ("SPACED", "x y"),
        ("HOME", "/root"),
    ]);
    vars.get(name).map(|v| v.to_string())
}

fn ex(raw: &str) -> String {
    expand(raw, '\\', &env).expect("expands")
}

fn ex_err(raw: &str) -> String {
    expand(raw, '\\', &env).expect_err("is refused")
}

fn words(raw: &str) -> Vec<String> {
    expand_words(raw, '\\', &env).expect("expands")
}

fn some(pairs: &[(&str, &str)]) -> Vec<(String, Option<String>)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Some(v.to_string())))
        .collect()
}

#[test]
fn plain_variables() {
    assert_eq!(ex("$A"), "a");
    assert_eq!(ex("${A}"), "a");
    assert_eq!(ex("$A$B"), "ab");
    assert_eq!(ex("${A}_$B.txt"), "a_b.txt");
    assert_eq!(ex("$A_x"), "", "A_x is one (unset) name");
    assert_eq!(ex("$UNSET/x"), "/x");
    assert_eq!(ex("$HOME/bin"), "/root/bin");
    assert_eq!(ex("cost: 5$"), "cost: 5$");
    assert_eq!(ex("$ a"), "$ a");
}

#[test]
fn default_and_alternative_values() {
    assert_eq!(ex("${A:-x}"), "a");
    assert_eq!(ex("${UNSET:-x}"), "x");
    assert_eq!(ex("${EMPTY:-x}"), "x");
    assert_eq!(ex("${A-x}"), "a");
    assert_eq!(ex("${UNSET-x}"), "x");
    assert_eq!(ex("${EMPTY-x}"), "", "set but empty keeps its empty value");
    assert_eq!(ex("${A:+y}"), "y");
    assert_eq!(ex("${EMPTY:+y}"), "");
    assert_eq!(ex("${UNSET:+y}"), "");
    assert_eq!(ex("${A+y}"), "y");
    assert_eq!(ex("${EMPTY+y}"), "y");
    assert_eq!(ex("${UNSET+y}"), "");
}

#[test]
fn words_of_substitutions_are_processed() {
    assert_eq!(ex("${UNSET:-$A/${B}}"), "a/b");
    assert_eq!(ex("${UNSET:-\"x }\"}"), "x }");
    assert_eq!(ex("${UNSET:-a\\}b}"), "a}b");
    assert_eq!(ex("${UNSET:-}"), "");
    assert_eq!(ex("${UNSET:-${B:+bee}}"), "bee");
}

#[test]
fn required_variables() {
    assert_eq!(ex("${A:?must be set}"), "a");
    assert_eq!(ex_err("${UNSET:?must be set}"), "UNSET: must be set");
    assert_eq!(ex_err("${EMPTY:?}"), "EMPTY: parameter not set or null");
    assert_eq!(ex("${EMPTY?}"), "");
}

#[test]
fn bad_substitutions() {
    assert_eq!(ex_err("${A"), "syntax error: missing '}'");
    assert_eq!(ex_err("${UNSET:-x"), "syntax error: missing '}'");
    assert_eq!(ex_err("${}"), "syntax error: bad substitution");
    assert_eq!(ex_err("${:-x}"), "syntax error: bad substitution");
    assert_eq!(ex_err("${A:}"), "syntax error: bad substitution");
    assert_eq!(ex_err("${A%x}"), "unsupported modifier (%) in substitution");
    assert_eq!(ex_err("${A:=x}"), "unsupported modifier (=) in substitution");
}

#[test]
fn escapes_and_quotes() {
    assert_eq!(ex("\\$A"), "$A");
    assert_eq!(ex("'$A'"), "$A");
    assert_eq!(ex("'a\\b'"), "a\\b");
    assert_eq!(ex("\"$A\""), "a");
    assert_eq!(ex("\"${A}-x\""), "a-x");
    assert_eq!(ex("\"a \\\"quoted\\\" word\""), "a \"quoted\" word");
    assert_eq!(ex("\"\\$A \\\\ \\n\""), "$A \\ \\n");
    assert_eq!(ex("\"it's\""), "it's");
    assert_eq!(ex("'say \"hi\"'"), "say \"hi\"");
    assert_eq!(ex("a\\ b"), "a b");
    assert_eq!(ex("\\\"x\\\""), "\"x\"");
    assert_eq!(ex("C:\\\\dir"), "C:\\dir");
    assert_eq!(ex("trailing\\"), "trailing");
    assert_eq!(ex("  keep   spaces "), "  keep   spaces ");
    assert_eq!(ex("\"a\\\nb\""), "ab");
}

#[test]
fn unterminated_quotes() {
    assert!(ex_err("'abc").contains("single-quote"));
    assert!(ex_err("\"abc").contains("double-quote"));
}

#[test]
fn a_backtick_escape() {
    let e = |raw: &str| expand(raw, '`', &env).expect("expands");
    assert_eq!(e("C:\\Users\\$A"), "C:\\Users\\a");
    assert_eq!(e("`$A"), "$A");
    assert_eq!(e("\"`\"q`\"\""), "\"q\"");
    assert_eq!(e("a` b"), "a b");
}

#[test]
fn splitting_into_words() {
    assert_eq!(words("a  b\tc"), ["a", "b", "c"]);
    assert_eq!(words("\"a b\" c"), ["a b", "c"]);
    assert_eq!(words("'a b'c d"), ["a bc", "d"]);
    assert_eq!(words("a\\ b c"), ["a b", "c"]);
    assert_eq!(words("$SPACED z"), ["x y", "z"], "expansions are not split");
    assert_eq!(words("$UNSET z"), ["z"], "an empty expansion makes no word");
    assert_eq!(words("\"\" z"), ["", "z"], "an empty quoted string is a word");
    assert_eq!(words("  80/tcp   ${B}443  "), ["80/tcp", "b443"]);
    assert!(words("   ").is_empty());
    assert!(expand_words("\"a", '\\', &env).is_err());
}

#[test]
fn env_pairs() {
    let p = |raw: &str| pairs(raw, '\\', true, &env).expect("pairs");
    assert_eq!(p("A=1 B=\"two words\""), some(&[("A", "1"), ("B", "two words")]));
    assert_eq!(p("PATH=$HOME/bin:${A}"), some(&[("PATH", "/root/bin:a")]));
    assert_eq!(p("X=a\\ b Y='$A'"), some(&[("X", "a b"), ("Y", "$A")]));
    assert_eq!(p("EMPTY= NEXT=1"), some(&[("EMPTY", ""), ("NEXT", "1")]));
    assert_eq!(p("K=v=w"), some(&[("K", "v=w")]));
    assert_eq!(p("\"my key\"=v"), some(&[("my key", "v")]));
    // Values see the environment before the instruction, not earlier pairs.
    assert_eq!(p("A=new C=$A"), some(&[("A", "new"), ("C", "a")]));
    assert!(p("").is_empty());
}

#[test]
fn legacy_env_and_label_form() {
    let p = |raw: &str| pairs(raw, '\\', true, &env).expect("pairs");
    assert_eq!(p("NAME rest of   the line"), some(&[("NAME", "rest of   the line")]));
    assert_eq!(p("GREETING \"hello world\" $A"), some(&[("GREETING", "hello world a")]));
    assert_eq!(p("X   y"), some(&[("X", "y")]));
    assert!(
        pairs("NAME", '\\', true, &env).is_err(),
        "the legacy form needs a value"
    );
    let e = pairs("A=1 B", '\\', true, &env).expect_err("B has no =");
    assert!(e.contains("can't find ="), "{e}");
    assert!(pairs("=v", '\\', true, &env).is_err(), "empty names are refused");
}

#[test]
fn arg_pairs() {
    let p = |raw: &str| pairs(raw, '\\', false, &env).expect("pairs");
    assert_eq!(p("VERSION"), [("VERSION".to_string(), None)]);
    assert_eq!(p("V=1.2"), some(&[("V", "1.2")]));
    assert_eq!(
        p("A B=\"x y\" C="),
        [
            ("A".to_string(), None),
            ("B".to_string(), Some("x y".to_string())),
            ("C".to_string(), Some(String::new())),
        ]
    );
    assert_eq!(p("D=${UNSET:-dflt}"), some(&[("D", "dflt")]));
}
