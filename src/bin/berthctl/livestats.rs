//! `stats` as Docker shows it: live, a new table every 2 seconds until Ctrl-C (redrawn in
//! place on a terminal, printed one after the other elsewhere). Off a terminal one table
//! is printed, as crictl does, unless `-w/--watch` asks for more; `--no-stream` always
//! prints one. Each round is `procs::stats` with the same arguments.

use std::io::{IsTerminal as _, Write as _};
use std::time::Duration;

use clap::{CommandFactory as _, FromArgMatches as _};

use crate::procs::{stats, StatsArgs};
use crate::{Cli, Ctx};

#[derive(Debug, clap::Args)]
pub struct LiveStatsArgs {
    #[command(flatten)]
    args: StatsArgs,
    /// Print one table and exit (what stats does off a terminal unless -w).
    #[arg(long, conflicts_with = "watch")]
    no_stream: bool,
    /// Keep printing a new table every 2 seconds, also when stdout is not a terminal.
    #[arg(short, long)]
    watch: bool,
}

/// The `stats` arguments of this command line again, for the next round (the parsed
/// ones are used up by each round).
fn again() -> anyhow::Result<StatsArgs> {
    let matches = Cli::command().try_get_matches_from(std::env::args_os())?;
    let mut m = &matches;
    while let Some((name, sub)) = m.subcommand() {
        m = sub;
        if name == "stats" {
            return Ok(StatsArgs::from_arg_matches(m)?);
        }
    }
    anyhow::bail!("stats: cannot find its arguments on the command line")
}

/// `stats`: one table, or live tables (see the module's comment).
pub async fn live_stats(ctx: &mut Ctx, a: LiveStatsArgs) -> anyhow::Result<i32> {
    let tty = std::io::stdout().is_terminal();
    if a.no_stream || !(tty || a.watch) {
        return stats(ctx, a.args).await;
    }
    let mut args = a.args;
    loop {
        if tty {
            // Home and clear the screen, then draw the table.
            print!("\x1b[H\x1b[2J");
        }
        stats(ctx, args).await?;
        std::io::stdout().flush()?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        args = again()?;
    }
}
