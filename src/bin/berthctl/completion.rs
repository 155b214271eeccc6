//! `completion bash|zsh|fish`: completion scripts written from the clap command tree.

use clap::CommandFactory as _;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, clap::Args)]
pub struct CompletionArgs {
    /// The shell to write the script for.
    #[arg(value_enum)]
    shell: Shell,
}

/// A flag: long name, short letter, help.
type Flag = (Option<String>, Option<char>, String);

/// (subcommand, its flags, about) for every subcommand.
fn tree() -> Vec<(String, Vec<Flag>, String)> {
    let cli = crate::Cli::command();
    let globals: Vec<_> = cli.get_arguments().cloned().collect();
    cli.get_subcommands()
        .map(|sc| {
            let mut flags: Vec<_> = sc
                .get_arguments()
                .chain(globals.iter())
                .filter(|a| !a.is_positional())
                .map(|a| {
                    (
                        a.get_long().map(str::to_string),
                        a.get_short(),
                        a.get_help().map(|h| h.to_string()).unwrap_or_default(),
                    )
                })
                .collect();
            flags.push((Some("help".into()), Some('h'), "Print help".into()));
            let about = sc.get_about().map(|h| h.to_string()).unwrap_or_default();
            (sc.get_name().to_string(), flags, about)
        })
        .collect()
}

fn flag_words(flags: &[Flag]) -> String {
    let mut words = Vec::new();
    for (long, short, _) in flags {
        if let Some(l) = long {
            words.push(format!("--{l}"));
        }
        if let Some(s) = short {
            words.push(format!("-{s}"));
        }
    }
    words.join(" ")
}

pub fn bash() -> String {
    let t = tree();
    let names: Vec<&str> = t.iter().map(|(n, _, _)| n.as_str()).collect();
    let mut s = String::from("# bash completion for berthctl\n_berthctl() {\n    local cur cmd i\n");
    s.push_str("    cur=\"${COMP_WORDS[COMP_CWORD]}\"\n    cmd=\"\"\n");
    s.push_str("    for ((i = 1; i < COMP_CWORD; i++)); do\n        case \"${COMP_WORDS[i]}\" in\n");
    s.push_str("            -r|--runtime-endpoint|--timeout) ((i++)) ;;\n            -*) ;;\n");
    s.push_str("            *) cmd=\"${COMP_WORDS[i]}\"; break ;;\n        esac\n    done\n");
    s.push_str("    case \"$cmd\" in\n");
    s.push_str(&format!(
        "        \"\") COMPREPLY=($(compgen -W \"{} --runtime-endpoint -r --timeout --help --version\" -- \"$cur\")) ;;\n",
        names.join(" ")
    ));
    for (name, flags, _) in &t {
        s.push_str(&format!(
            "        {name}) if [[ \"$cur\" == -* ]]; then COMPREPLY=($(compgen -W \"{}\" -- \"$cur\")); else COMPREPLY=($(compgen -f -- \"$cur\")); fi ;;\n",
            flag_words(flags)
        ));
    }
    s.push_str("    esac\n}\ncomplete -F _berthctl berthctl\n");
    s
}

fn quote_fish(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

pub fn fish() -> String {
    let t = tree();
    let mut s = String::from("# fish completion for berthctl\ncomplete -c berthctl -f\n");
    for (name, flags, about) in &t {
        s.push_str(&format!(
            "complete -c berthctl -n __fish_use_subcommand -a {name} -d {}\n",
            quote_fish(about)
        ));
        for (long, short, help) in flags {
            let mut line = format!("complete -c berthctl -n '__fish_seen_subcommand_from {name}'");
            if let Some(l) = long {
                line.push_str(&format!(" -l {l}"));
            }
            if let Some(c) = short {
                line.push_str(&format!(" -s {c}"));
            }
            line.push_str(&format!(" -d {}\n", quote_fish(help)));
            s.push_str(&line);
        }
    }
    s
}

pub fn zsh() -> String {
    format!(
        "#compdef berthctl\n# zsh completion for berthctl (the bash script through bashcompinit)\nautoload -U +X bashcompinit && bashcompinit\n{}",
        bash()
    )
}

pub fn print(a: &CompletionArgs) -> anyhow::Result<i32> {
    print!(
        "{}",
        match a.shell {
            Shell::Bash => bash(),
            Shell::Zsh => zsh(),
            Shell::Fish => fish(),
        }
    );
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_cover_commands_and_flags() {
        let b = bash();
        assert!(b.contains("complete -F _berthctl berthctl"));
        assert!(b.contains(" ps) ") && b.contains("--no-trunc") && b.contains("port-forward"));
        assert!(b.contains("--publish") && b.contains("--env-file"));
        let f = fish();
        assert!(f.contains("-a exec -d 'Run a command in a running container'"));
        assert!(f.contains("__fish_seen_subcommand_from logs' -l follow -s f"));
        assert!(zsh().starts_with("#compdef berthctl"));
    }

    #[test]
    fn cli_is_consistent() {
        crate::Cli::command().debug_assert();
    }
}
