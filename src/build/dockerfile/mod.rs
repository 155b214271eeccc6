//! The Dockerfile front end of `berthctl build`, pure (no I/O): the file parsed into stages of
//! instructions (`parse`), the shell-like word processing the executor applies to instruction
//! arguments (`expand`, `expand_words`, `pairs`), glob matching (`glob_match`) and
//! `.dockerignore` (`Ignore`). Docker's rules throughout, the BuildKit front end's where the two
//! differ.

mod ast;
mod glob;
mod ignore;
mod lines;
mod parse;
mod words;

pub use ast::{Args, Dockerfile, Instruction, Keyword, ParseError, Stage};
pub use glob::glob_match;
pub use ignore::Ignore;
pub use parse::parse;
pub use words::{expand, expand_words, pairs};

#[cfg(test)]
mod glob_tests;
#[cfg(test)]
mod parse_tests;
#[cfg(test)]
mod words_tests;
