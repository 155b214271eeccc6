//! The pull's progress display: one line per layer with a bar, bytes, rate and ETA,
//! redrawn in place on a terminal; on anything else, one plain line per change of state.

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

use berth_proto::berth::v1::{LayerProgress, LayerState};

use super::human_size;

const BAR: usize = 24;
const REDRAW: Duration = Duration::from_millis(100);

struct Row {
    digest: String,
    total: u64,
    done: u64,
    state: LayerState,
    /// When downloading started, for the rate.
    since: Option<Instant>,
}

/// Every layer's latest state, and the drawing of it.
pub struct Board {
    rows: Vec<Row>,
    by_digest: HashMap<String, usize>,
    tty: bool,
    drawn: usize,
    last_draw: Option<Instant>,
}

fn short(digest: &str) -> &str {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    &hex[..hex.len().min(12)]
}

fn state_name(s: LayerState) -> &'static str {
    match s {
        LayerState::Unspecified => "unknown",
        LayerState::Waiting => "waiting",
        LayerState::Downloading => "downloading",
        LayerState::Verifying => "verifying",
        LayerState::Unpacking => "unpacking",
        LayerState::Done => "done",
        LayerState::AlreadyPresent => "already present",
    }
}

impl Board {
    pub fn new(tty: bool) -> Board {
        Board {
            rows: Vec::new(),
            by_digest: HashMap::new(),
            tty,
            drawn: 0,
            last_draw: None,
        }
    }

    /// Takes in one event; returns the plain line to print for it, if any (non-TTY mode
    /// prints a line when a layer changes state).
    pub fn update(&mut self, p: &LayerProgress, now: Instant) -> Option<String> {
        let state = LayerState::try_from(p.state).unwrap_or(LayerState::Unspecified);
        let i = *self.by_digest.entry(p.digest.clone()).or_insert_with(|| {
            self.rows.push(Row {
                digest: p.digest.clone(),
                total: p.total_bytes,
                done: 0,
                state: LayerState::Unspecified,
                since: None,
            });
            self.rows.len() - 1
        });
        let row = &mut self.rows[i];
        let changed = row.state != state;
        if state == LayerState::Downloading && row.since.is_none() {
            row.since = Some(now);
        }
        row.total = p.total_bytes;
        row.done = p.done_bytes;
        row.state = state;
        changed.then(|| {
            format!(
                "{}: {} ({})",
                short(&row.digest),
                state_name(state),
                human_size(row.total)
            )
        })
    }

    /// (bytes done, bytes in all) over the layers.
    pub fn totals(&self) -> (u64, u64) {
        self.rows
            .iter()
            .fold((0, 0), |(d, t), r| (d + r.done.min(r.total), t + r.total))
    }

    pub fn layers(&self) -> usize {
        self.rows.len()
    }

    /// Bytes this pull actually downloaded (not those already present).
    pub fn downloaded(&self) -> u64 {
        self.rows
            .iter()
            .filter(|r| r.state != LayerState::AlreadyPresent)
            .map(|r| r.done.min(r.total))
            .sum()
    }

    fn line(row: &Row, now: Instant) -> String {
        let fraction = if row.total == 0 {
            1.0
        } else {
            row.done as f64 / row.total as f64
        };
        let filled = ((fraction * BAR as f64) as usize).min(BAR);
        let bar = format!("[{}{}]", "=".repeat(filled), " ".repeat(BAR - filled));
        let mut text = format!(
            "{}: {:<15} {bar} {:>9}/{:<9}",
            short(&row.digest),
            state_name(row.state),
            human_size(row.done),
            human_size(row.total)
        );
        if let (LayerState::Downloading, Some(since)) = (row.state, row.since) {
            let secs = now.duration_since(since).as_secs_f64().max(0.001);
            let rate = row.done as f64 / secs;
            text.push_str(&format!(" {}/s", human_size(rate as u64)));
            if rate > 0.0 && row.total > row.done {
                text.push_str(&format!(" ETA {:.0}s", (row.total - row.done) as f64 / rate));
            }
        }
        text
    }

    /// Redraws every line in place (TTY only), at most every 100 ms unless `force`.
    pub fn draw(&mut self, out: &mut impl Write, now: Instant, force: bool) {
        if !self.tty || (!force && self.last_draw.is_some_and(|t| now.duration_since(t) < REDRAW)) {
            return;
        }
        self.last_draw = Some(now);
        let mut text = String::new();
        if self.drawn > 0 {
            text.push_str(&format!("\x1b[{}A", self.drawn));
        }
        for row in &self.rows {
            text.push_str("\r\x1b[2K");
            text.push_str(&Board::line(row, now));
            text.push('\n');
        }
        let (done, total) = self.totals();
        text.push_str(&format!(
            "\r\x1b[2K{}: {}/{}\n",
            super::count(self.layers(), "layer"),
            human_size(done),
            human_size(total)
        ));
        self.drawn = self.rows.len() + 1;
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ev(digest: &str, total: u64, done: u64, state: LayerState) -> LayerProgress {
        LayerProgress {
            digest: digest.into(),
            total_bytes: total,
            done_bytes: done,
            state: state as i32,
        }
    }

    #[test]
    fn aggregates_layers_and_prints_state_changes() {
        let mut b = Board::new(false);
        let t = Instant::now();
        let a = "sha256:aaaaaaaaaaaaaaaa";
        let c = "sha256:cccccccccccccccc";
        assert!(b.update(&ev(a, 1000, 0, LayerState::Waiting), t).is_some());
        assert!(b
            .update(&ev(c, 500, 500, LayerState::AlreadyPresent), t)
            .unwrap()
            .contains("already present"));
        assert!(b.update(&ev(a, 1000, 0, LayerState::Downloading), t).is_some());
        assert!(
            b.update(&ev(a, 1000, 400, LayerState::Downloading), t).is_none(),
            "bytes alone are quiet"
        );
        assert_eq!(b.totals(), (900, 1500));
        let done = b.update(&ev(a, 1000, 1000, LayerState::Done), t).unwrap();
        assert_eq!(done, "aaaaaaaaaaaa: done (1kB)");
        assert_eq!(b.totals(), (1500, 1500));
        assert_eq!((b.layers(), b.downloaded()), (2, 1000));
        let mut out = Vec::new();
        b.draw(&mut out, t, true);
        assert!(out.is_empty(), "no drawing off a terminal");
    }

    #[test]
    fn tty_redraws_in_place() {
        let mut b = Board::new(true);
        let t = Instant::now();
        b.update(&ev("sha256:aa", 2000, 0, LayerState::Downloading), t);
        b.update(&ev("sha256:bb", 10, 0, LayerState::Waiting), t);
        let mut out = Vec::new();
        b.draw(&mut out, t, true);
        b.update(
            &ev("sha256:aa", 2000, 1000, LayerState::Downloading),
            t + Duration::from_secs(1),
        );
        b.draw(&mut out, t + Duration::from_secs(1), false);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("\x1b[3A"), "cursor goes back up over all lines: {text:?}");
        assert!(text.contains("2 layers: 1kB/2.01kB"), "{text:?}");
        assert!(text.contains("1kB/s") && text.contains("ETA 1s"), "{text:?}");
        assert!(text.contains("[============            ]"), "{text:?}");
    }
}
