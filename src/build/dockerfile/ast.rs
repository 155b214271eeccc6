//! The parsed Dockerfile: instructions with their flags and arguments, grouped into build
//! stages, and the error a Dockerfile that cannot be parsed gives.

use std::fmt;

/// A Dockerfile that cannot be parsed, with the line it went wrong on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line of the offending instruction; 0 when the fault belongs to no line.
    pub line: usize,
    /// What is wrong, without the line.
    pub message: String,
}

impl ParseError {
    /// An error at `line` (0: the whole file).
    pub fn new(line: usize, message: impl Into<String>) -> Self {
        ParseError {
            line,
            message: message.into(),
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "Dockerfile: {}", self.message)
        } else {
            write!(f, "Dockerfile line {}: {}", self.line, self.message)
        }
    }
}

impl std::error::Error for ParseError {}

/// An instruction's keyword (written in any case in the file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keyword {
    /// `FROM`: starts a build stage.
    From,
    /// `RUN`: runs a command in the image.
    Run,
    /// `CMD`: the default command.
    Cmd,
    /// `ENTRYPOINT`: the entrypoint.
    Entrypoint,
    /// `ENV`: environment variables.
    Env,
    /// `ARG`: build arguments.
    Arg,
    /// `LABEL`: image labels.
    Label,
    /// `EXPOSE`: ports.
    Expose,
    /// `COPY`: files from the context or another stage.
    Copy,
    /// `ADD`: like COPY, with archives and URLs.
    Add,
    /// `WORKDIR`: the working directory.
    Workdir,
    /// `USER`: the user (and group).
    User,
    /// `VOLUME`: volume mount points.
    Volume,
    /// `STOPSIGNAL`: the signal that stops the container.
    StopSignal,
    /// `HEALTHCHECK`: the health check command.
    Healthcheck,
    /// `ONBUILD`: an instruction for images built from this one.
    OnBuild,
    /// `MAINTAINER`: the (deprecated) author field.
    Maintainer,
    /// `SHELL`: the shell of shell-form commands.
    Shell,
}

impl Keyword {
    /// Every keyword, in declaration order.
    pub const ALL: [Keyword; 18] = [
        Keyword::From,
        Keyword::Run,
        Keyword::Cmd,
        Keyword::Entrypoint,
        Keyword::Env,
        Keyword::Arg,
        Keyword::Label,
        Keyword::Expose,
        Keyword::Copy,
        Keyword::Add,
        Keyword::Workdir,
        Keyword::User,
        Keyword::Volume,
        Keyword::StopSignal,
        Keyword::Healthcheck,
        Keyword::OnBuild,
        Keyword::Maintainer,
        Keyword::Shell,
    ];

    /// The keyword as conventionally written (upper case), e.g. `"STOPSIGNAL"`.
    pub fn name(self) -> &'static str {
        match self {
            Keyword::From => "FROM",
            Keyword::Run => "RUN",
            Keyword::Cmd => "CMD",
            Keyword::Entrypoint => "ENTRYPOINT",
            Keyword::Env => "ENV",
            Keyword::Arg => "ARG",
            Keyword::Label => "LABEL",
            Keyword::Expose => "EXPOSE",
            Keyword::Copy => "COPY",
            Keyword::Add => "ADD",
            Keyword::Workdir => "WORKDIR",
            Keyword::User => "USER",
            Keyword::Volume => "VOLUME",
            Keyword::StopSignal => "STOPSIGNAL",
            Keyword::Healthcheck => "HEALTHCHECK",
            Keyword::OnBuild => "ONBUILD",
            Keyword::Maintainer => "MAINTAINER",
            Keyword::Shell => "SHELL",
        }
    }

    /// The keyword a word names, case-insensitively (`None`: not an instruction).
    pub fn from_word(word: &str) -> Option<Keyword> {
        Keyword::ALL.into_iter().find(|k| k.name().eq_ignore_ascii_case(word))
    }

    /// Whether `--name=value` flags may come before the arguments (FROM, RUN, COPY, ADD,
    /// HEALTHCHECK); elsewhere a leading `--x` is argument text.
    pub fn takes_flags(self) -> bool {
        matches!(
            self,
            Keyword::From | Keyword::Run | Keyword::Copy | Keyword::Add | Keyword::Healthcheck
        )
    }

    /// Whether the arguments may be written in the exec (JSON array) form.
    pub fn allows_json(self) -> bool {
        matches!(
            self,
            Keyword::Run
                | Keyword::Cmd
                | Keyword::Entrypoint
                | Keyword::Shell
                | Keyword::Volume
                | Keyword::Copy
                | Keyword::Add
        )
    }
}

impl fmt::Display for Keyword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An instruction's arguments, in the form they were written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Args {
    /// The exec (JSON array) form: `["a", "b"]`, strings as JSON decodes them. Only produced for
    /// RUN, CMD, ENTRYPOINT, SHELL, VOLUME, COPY and ADD, when the text after the flags is a valid
    /// JSON array of strings.
    Json(Vec<String>),
    /// Everything after the keyword and its flags, continuation lines joined, leading and
    /// trailing whitespace trimmed, not expanded and with its quotes kept.
    Raw(String),
}

/// One instruction of a Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// 1-based line where the instruction starts.
    pub line: usize,
    /// Its keyword.
    pub keyword: Keyword,
    /// `--name=value` flags before the arguments, in order, quotes removed; a flag without
    /// `=value` has the value `""`. Only for FROM, RUN, COPY, ADD and HEALTHCHECK.
    pub flags: Vec<(String, String)>,
    /// The arguments after the keyword and its flags.
    pub args: Args,
    /// The instruction as written, continuation lines joined (by a space where either side of
    /// the break had whitespace), for progress output and cache keys (e.g. `"RUN apk add curl"`).
    pub original: String,
}

impl Instruction {
    /// The value of the last flag called `name` (`None`: no such flag).
    pub fn flag(&self, name: &str) -> Option<&str> {
        self.flags
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A build stage: a FROM and the instructions up to the next FROM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// Its FROM instruction (`Args::Raw("image [AS name]")` as written).
    pub from: Instruction,
    /// The image reference text of FROM, unexpanded (may contain `$VARS` from pre-FROM ARGs).
    pub base: String,
    /// `AS name`, lower-cased (names are case-insensitive).
    pub name: Option<String>,
    /// The stage's instructions after its FROM.
    pub instructions: Vec<Instruction>,
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    /// The escape character (`\` unless a `# escape=` directive says otherwise).
    pub escape: char,
    /// ARG instructions before the first FROM.
    pub meta_args: Vec<Instruction>,
    /// The build stages, in order (at least one).
    pub stages: Vec<Stage>,
}

impl Dockerfile {
    /// The index of the stage a `--from=`/`FROM` reference names: a stage name
    /// (case-insensitively) or a stage's decimal index. `None`: no such stage (an image, then).
    pub fn stage_index(&self, reference: &str) -> Option<usize> {
        let lower = reference.to_ascii_lowercase();
        if let Some(i) = self
            .stages
            .iter()
            .position(|s| s.name.as_deref() == Some(lower.as_str()))
        {
            return Some(i);
        }
        if !reference.is_empty() && reference.bytes().all(|b| b.is_ascii_digit()) {
            return reference.parse::<usize>().ok().filter(|&i| i < self.stages.len());
        }
        None
    }
}
