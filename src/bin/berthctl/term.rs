//! The local terminal for `-t`: raw mode (restored when the guard drops, on every path
//! out of the command) and its size.

use rustix::termios::{self, OptionalActions, Termios};

/// Holds stdin's terminal in raw mode; puts the saved settings back on drop.
pub struct RawMode {
    saved: Termios,
}

impl RawMode {
    /// Switches stdin to raw mode when it is a terminal; `None` when it is not.
    pub fn enter() -> anyhow::Result<Option<RawMode>> {
        let stdin = std::io::stdin();
        if !termios::isatty(&stdin) {
            return Ok(None);
        }
        let saved = termios::tcgetattr(&stdin)?;
        let mut raw = saved.clone();
        raw.make_raw();
        termios::tcsetattr(&stdin, OptionalActions::Now, &raw)?;
        Ok(Some(RawMode { saved }))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin(), OptionalActions::Now, &self.saved);
    }
}

/// (columns, rows) of the terminal on stdout, else stdin; `None` without one.
pub fn size() -> Option<(u16, u16)> {
    let ws = termios::tcgetwinsize(std::io::stdout())
        .or_else(|_| termios::tcgetwinsize(std::io::stdin()))
        .ok()?;
    (ws.ws_col > 0 && ws.ws_row > 0).then_some((ws.ws_col, ws.ws_row))
}

/// The resize message of the Kubernetes channel protocols.
pub fn resize_json(cols: u16, rows: u16) -> Vec<u8> {
    format!("{{\"Width\":{cols},\"Height\":{rows}}}").into_bytes()
}
