//! Tests of the Dockerfile parser.

use super::*;

fn ok(text: &str) -> Dockerfile {
    parse(text).expect("parses")
}

fn fails(text: &str) -> ParseError {
    parse(text).expect_err("is refused")
}

fn raw(s: &str) -> Args {
    Args::Raw(s.to_string())
}

fn json(items: &[&str]) -> Args {
    Args::Json(items.iter().map(|s| s.to_string()).collect())
}

/// The instructions of the only stage.
fn body(text: &str) -> Vec<Instruction> {
    let d = ok(text);
    assert_eq!(d.stages.len(), 1);
    d.stages[0].instructions.clone()
}

#[test]
fn a_simple_file() {
    let d = ok("FROM alpine:3.20\nRUN apk add curl\nCMD [\"curl\", \"--version\"]\n");
    assert_eq!(d.escape, '\\');
    assert!(d.meta_args.is_empty());
    let s = &d.stages[0];
    assert_eq!(s.base, "alpine:3.20");
    assert_eq!(s.name, None);
    assert_eq!(s.from.line, 1);
    assert_eq!(s.from.args, raw("alpine:3.20"));
    assert_eq!(s.instructions.len(), 2);
    let run = &s.instructions[0];
    assert_eq!((run.line, run.keyword), (2, Keyword::Run));
    assert_eq!(run.args, raw("apk add curl"));
    assert_eq!(run.original, "RUN apk add curl");
    assert!(run.flags.is_empty());
    assert_eq!(s.instructions[1].args, json(&["curl", "--version"]));
}

#[test]
fn continuations_with_comments_and_blank_lines_inside() {
    let text =
        "FROM scratch\nRUN apk add \\\n    # a comment in the middle\n\n    curl \\\n  \\\n    jq\nUSER nobody\n";
    let ins = body(text);
    assert_eq!(ins[0].line, 2);
    assert_eq!(ins[0].args, raw("apk add     curl       jq"));
    assert_eq!(ins[0].original, "RUN apk add curl jq");
    assert_eq!((ins[1].line, ins[1].keyword), (8, Keyword::User));
    assert_eq!(ins[1].args, raw("nobody"));
}

#[test]
fn continuation_without_whitespace_joins_directly() {
    let ins = body("FROM scratch\nRUN echo ab\\\ncd \\  \t\nef\n");
    assert_eq!(ins[0].args, raw("echo abcd ef"));
    assert_eq!(ins[0].original, "RUN echo abcd ef");
}

#[test]
fn a_continuation_at_the_end_of_the_file() {
    let ins = body("FROM scratch\nRUN true \\\n");
    assert_eq!(ins[0].args, raw("true"));
}

#[test]
fn comments_and_indentation_and_crlf() {
    let ins = body("# leading comment\r\n  FROM scratch\r\n\t# indented comment\r\n   ENV A=1\r\n");
    assert_eq!(ins[0].keyword, Keyword::Env);
    assert_eq!(ins[0].args, raw("A=1"));
    assert_eq!(ins[0].line, 4);
}

#[test]
fn the_escape_directive_with_a_backtick() {
    let text =
        "# escape=`\nFROM mcr.microsoft.com/windows/servercore\nCOPY testfile.txt c:\\\nRUN dir c:\\ `\n    /b\n";
    let d = ok(text);
    assert_eq!(d.escape, '`');
    let ins = &d.stages[0].instructions;
    assert_eq!(ins[0].args, raw("testfile.txt c:\\"));
    assert_eq!(ins[1].args, raw("dir c:\\     /b"));
    assert_eq!(ins[1].original, "RUN dir c:\\ /b");
    assert_eq!(ins[1].line, 4);
}

#[test]
fn directives_are_case_insensitive_and_syntax_is_ignored() {
    let d = ok("# syntax=docker/dockerfile:1\n#ESCAPE = `\nFROM scratch\n");
    assert_eq!(d.escape, '`');
}

#[test]
fn a_directive_after_content_is_a_comment() {
    let d = ok("FROM scratch\n# escape=`\nRUN a \\\n b\n");
    assert_eq!(d.escape, '\\');
    assert_eq!(d.stages[0].instructions[0].args, raw("a  b"));
    // After a comment, or after an unknown directive, or a blank line: a comment too.
    assert_eq!(ok("# hello\n# escape=`\nFROM scratch\n").escape, '\\');
    assert_eq!(ok("# unknown=x\n# escape=`\nFROM scratch\n").escape, '\\');
    assert_eq!(ok("\n# escape=`\nFROM scratch\n").escape, '\\');
}

#[test]
fn bad_or_repeated_escape_directives() {
    let e = fails("# escape=x\nFROM scratch\n");
    assert_eq!(e.line, 1);
    assert!(e.message.contains("invalid escape token"), "{e}");
    let e = fails("# escape=`\n# escape=\\\nFROM scratch\n");
    assert_eq!(e.line, 2);
    assert_eq!(e.message, "only one escape parser directive can be used");
}

#[test]
fn keywords_are_case_insensitive() {
    let d = ok("from alpine As Build\nrun make\nWorkDir /src\ncopy --FROM=x a b\n");
    let s = &d.stages[0];
    assert_eq!(s.name.as_deref(), Some("build"));
    assert_eq!(s.from.original, "from alpine As Build");
    let kinds: Vec<Keyword> = s.instructions.iter().map(|i| i.keyword).collect();
    assert_eq!(kinds, [Keyword::Run, Keyword::Workdir, Keyword::Copy]);
    assert_eq!(s.instructions[2].flags, [("FROM".to_string(), "x".to_string())]);
}

#[test]
fn every_keyword_is_known() {
    for k in Keyword::ALL {
        assert_eq!(Keyword::from_word(&k.name().to_lowercase()), Some(k));
    }
    assert_eq!(Keyword::from_word("stopsignal"), Some(Keyword::StopSignal));
    assert_eq!(Keyword::from_word("copyx"), None);
}

#[test]
fn json_and_shell_forms() {
    let ins = body(concat!(
        "FROM scratch\n",
        "RUN [\"/bin/sh\", \"-c\", \"echo \\\"hi\\\"\"]\n",
        "ENTRYPOINT [ \"tini\" , \"--\" ]\n",
        "CMD []\n",
        "VOLUME [\"/data\", \"/logs\"]\n",
        "VOLUME /a /b\n",
        "COPY [\"a b\", \"/dst/\"]\n",
        "SHELL [\"powershell\", \"-Command\"]\n",
        "EXPOSE [80]\n",
        "CMD echo \"x\"\n",
    ));
    assert_eq!(ins[0].args, json(&["/bin/sh", "-c", "echo \"hi\""]));
    assert_eq!(ins[1].args, json(&["tini", "--"]));
    assert_eq!(ins[2].args, Args::Json(Vec::new()));
    assert_eq!(ins[3].args, json(&["/data", "/logs"]));
    assert_eq!(ins[4].args, raw("/a /b"));
    assert_eq!(ins[5].args, json(&["a b", "/dst/"]));
    assert_eq!(ins[6].args, json(&["powershell", "-Command"]));
    // EXPOSE has no JSON form.
    assert_eq!(ins[7].args, raw("[80]"));
    assert_eq!(ins[8].args, raw("echo \"x\""));
}

#[test]
fn invalid_json_falls_back_to_the_shell_form() {
    let ins = body("FROM scratch\nRUN [\"a\", 'b']\nCMD [\"a\", 1]\nRUN [ -f x ] && echo y\nCMD [\"a\"] tail\n");
    assert_eq!(ins[0].args, raw("[\"a\", 'b']"));
    assert_eq!(ins[1].args, raw("[\"a\", 1]"));
    assert_eq!(ins[2].args, raw("[ -f x ] && echo y"));
    assert_eq!(ins[3].args, raw("[\"a\"] tail"));
}

#[test]
fn shell_must_be_json() {
    let e = fails("FROM scratch\nSHELL /bin/bash -c\n");
    assert_eq!(
        (e.line, e.message.as_str()),
        (2, "SHELL requires the arguments to be in JSON form")
    );
    assert_eq!(fails("FROM scratch\nSHELL []\n").line, 2);
}

#[test]
fn multi_stage_with_names() {
    let d =
        ok("FROM golang:1.22 AS build\nRUN go build\nFROM alpine as Final\nCOPY --from=build /out /bin/\nFROM build\n");
    assert_eq!(d.stages.len(), 3);
    assert_eq!(d.stages[0].name.as_deref(), Some("build"));
    assert_eq!(d.stages[0].base, "golang:1.22");
    assert_eq!(d.stages[1].name.as_deref(), Some("final"));
    assert_eq!(d.stages[1].base, "alpine");
    assert_eq!(d.stages[1].instructions[0].flag("from"), Some("build"));
    assert_eq!(d.stages[2].base, "build");
    assert_eq!(d.stages[2].from.line, 5);
    assert_eq!(d.stage_index("BUILD"), Some(0));
    assert_eq!(d.stage_index("final"), Some(1));
    assert_eq!(d.stage_index("2"), Some(2));
    assert_eq!(d.stage_index("3"), None);
    assert_eq!(d.stage_index("alpine"), None);
}

#[test]
fn duplicate_stage_names_are_refused() {
    let e = fails("FROM a AS x\nFROM b AS X\n");
    assert_eq!(e.line, 2);
    assert_eq!(e.message, "duplicate stage name \"x\"");
}

#[test]
fn bad_from_forms() {
    assert_eq!(
        fails("FROM a b\n").message,
        "FROM requires either one or three arguments"
    );
    assert_eq!(fails("FROM a AS b c\n").line, 1);
    assert_eq!(fails("FROM a IS b\n").line, 1);
    assert!(fails("FROM a AS 1st\n")
        .message
        .contains("invalid name for build stage"));
    assert!(fails("FROM a AS x$y\n").message.contains("invalid name"));
    assert_eq!(
        ok("FROM a AS my-stage_1.2\n").stages[0].name.as_deref(),
        Some("my-stage_1.2")
    );
}

#[test]
fn from_with_platform_and_meta_args() {
    let d = ok("ARG VERSION=3.20\nARG PLATFORM\nFROM --platform=$PLATFORM alpine:${VERSION} AS base\nARG VERSION\n");
    assert_eq!(d.meta_args.len(), 2);
    assert_eq!(d.meta_args[0].args, raw("VERSION=3.20"));
    assert_eq!(d.meta_args[1].line, 2);
    let s = &d.stages[0];
    assert_eq!(s.from.flags, [("platform".to_string(), "$PLATFORM".to_string())]);
    assert_eq!(s.from.args, raw("alpine:${VERSION} AS base"));
    assert_eq!(s.base, "alpine:${VERSION}");
    assert_eq!(s.instructions[0].keyword, Keyword::Arg);
}

#[test]
fn instructions_before_from_are_refused() {
    let e = fails("# comment\nARG A\n\nRUN true\nFROM scratch\n");
    assert_eq!(e.line, 4);
    assert!(e.message.starts_with("RUN before the first FROM"), "{e}");
    assert_eq!(e.to_string(), format!("Dockerfile line 4: {}", e.message));
}

#[test]
fn empty_files_and_files_without_from() {
    let e = fails("# only a comment\n\n");
    assert_eq!(e.line, 0);
    assert_eq!(e.to_string(), format!("Dockerfile: {}", e.message));
    assert_eq!(fails("ARG A=1\n").line, 0);
}

#[test]
fn unknown_instructions_are_refused() {
    let e = fails("FROM scratch\n\nfoo bar\n");
    assert_eq!(e, ParseError::new(3, "unknown instruction: FOO"));
    assert_eq!(e.to_string(), "Dockerfile line 3: unknown instruction: FOO");
    let as_error: &dyn std::error::Error = &e;
    assert_eq!(as_error.to_string(), e.to_string());
    assert_eq!(Keyword::StopSignal.to_string(), "STOPSIGNAL");
}

#[test]
fn instructions_need_arguments() {
    let e = fails("FROM scratch\nRUN\n");
    assert_eq!((e.line, e.message.as_str()), (2, "RUN requires at least one argument"));
    assert_eq!(fails("FROM\n").message, "FROM requires at least one argument");
    assert_eq!(fails("FROM --platform=linux/arm64\n").line, 1);
    assert_eq!(
        fails("FROM scratch\nCOPY --from=x   \n").message,
        "COPY requires at least one argument"
    );
    assert_eq!(fails("FROM scratch\nWORKDIR \\\n\n").line, 2);
}

#[test]
fn heredocs_are_refused() {
    for text in [
        "FROM scratch\nRUN <<EOF\necho hi\nEOF\n",
        "FROM scratch\nRUN cat <<-'END' > /x\n",
        "FROM scratch\nCOPY <<EOF /etc/x\n",
        "FROM scratch\nONBUILD RUN <<EOF\n",
    ] {
        let e = fails(text);
        assert_eq!(
            (e.line, e.message.as_str()),
            (2, "heredocs are not supported"),
            "{text}"
        );
    }
    // Not heredocs: a here-string, a shift, a quoted word.
    let ins = body("FROM scratch\nRUN cat <<< hi\nRUN echo $((1<<2)) \"<<EOF\"\n");
    assert_eq!(ins.len(), 2);
}

#[test]
fn flags_are_parsed_for_keywords_that_take_them() {
    let ins = body(concat!(
        "FROM scratch\n",
        "COPY --from=build --chown=1:2 src dst\n",
        "ADD --chmod=755 --keep-git-dir \"--x\" y\n",
        "RUN --network=none --mount=\"type=cache,target=/root/.cache\" make\n",
        "COPY -- --weird dst\n",
        "ENV --x=1\n",
        "HEALTHCHECK --interval=5s --retries=3 CMD curl -f http://localhost/\n",
        "HEALTHCHECK NONE\n",
    ));
    let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
    assert_eq!(ins[0].flags, [pair("from", "build"), pair("chown", "1:2")]);
    assert_eq!(ins[0].args, raw("src dst"));
    assert_eq!(ins[0].original, "COPY --from=build --chown=1:2 src dst");
    assert_eq!(ins[1].flags, [pair("chmod", "755"), pair("keep-git-dir", "")]);
    assert_eq!(ins[1].args, raw("\"--x\" y"));
    assert_eq!(
        ins[2].flags,
        [pair("network", "none"), pair("mount", "type=cache,target=/root/.cache")]
    );
    assert_eq!(ins[2].args, raw("make"));
    assert!(ins[3].flags.is_empty());
    assert_eq!(ins[3].args, raw("--weird dst"));
    assert!(ins[4].flags.is_empty());
    assert_eq!(ins[4].args, raw("--x=1"));
    assert_eq!(ins[5].flags, [pair("interval", "5s"), pair("retries", "3")]);
    assert_eq!(ins[5].args, raw("CMD curl -f http://localhost/"));
    assert_eq!(ins[5].flag("interval"), Some("5s"));
    assert_eq!(ins[5].flag("timeout"), None);
    assert_eq!(ins[6].args, raw("NONE"));
}

#[test]
fn healthcheck_exec_form_stays_raw() {
    let ins = body("FROM scratch\nHEALTHCHECK --timeout=3s CMD [\"curl\", \"x\"]\n");
    assert_eq!(ins[0].args, raw("CMD [\"curl\", \"x\"]"));
    assert!(fails("FROM scratch\nHEALTHCHECK NONE now\n")
        .message
        .contains("NONE takes no arguments"));
    assert!(fails("FROM scratch\nHEALTHCHECK CMD\n")
        .message
        .contains("missing command"));
    assert!(fails("FROM scratch\nHEALTHCHECK curl x\n")
        .message
        .contains("unknown type"));
}

#[test]
fn onbuild_keeps_its_trigger() {
    let ins = body("FROM scratch\nONBUILD RUN make \\\n  install\nonbuild COPY --from=x a b\n");
    assert_eq!(ins[0].keyword, Keyword::OnBuild);
    assert_eq!(ins[0].args, raw("RUN make   install"));
    assert!(ins[0].flags.is_empty());
    assert_eq!(ins[1].args, raw("COPY --from=x a b"));
    for (text, needle) in [
        ("ONBUILD ONBUILD RUN x", "chaining ONBUILD"),
        ("ONBUILD FROM alpine", "FROM isn't allowed as an ONBUILD trigger"),
        ("ONBUILD maintainer me", "MAINTAINER isn't allowed"),
        ("ONBUILD BOGUS x", "unknown instruction: BOGUS"),
        ("ONBUILD SHELL sh", "JSON form"),
    ] {
        let e = fails(&format!("FROM scratch\n{text}\n"));
        assert_eq!(e.line, 2);
        assert!(e.message.contains(needle), "{text}: {e}");
    }
}

#[test]
fn other_keywords_keep_raw_text() {
    let ins = body(concat!(
        "FROM scratch\n",
        "MAINTAINER Jane Doe <jane@example.com>\n",
        "STOPSIGNAL SIGTERM\n",
        "USER app:app\n",
        "WORKDIR /my dir\n",
        "LABEL a=\"b c\" d=e\n",
        "EXPOSE 80/tcp 443\n",
        "ENV PATH=/x:$PATH\n",
    ));
    let args: Vec<Args> = ins.iter().map(|i| i.args.clone()).collect();
    assert_eq!(
        args,
        [
            raw("Jane Doe <jane@example.com>"),
            raw("SIGTERM"),
            raw("app:app"),
            raw("/my dir"),
            raw("a=\"b c\" d=e"),
            raw("80/tcp 443"),
            raw("PATH=/x:$PATH"),
        ]
    );
}

#[test]
fn a_byte_order_mark_is_skipped() {
    let d = ok("\u{feff}# escape=`\nFROM scratch\n");
    assert_eq!(d.escape, '`');
}
