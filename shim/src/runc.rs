//! Invoking the OCI runtime (runc). Its own log (warnings) goes to `<bundle>/runc.log`,
//! so that only fatal errors reach stderr: for `create` that stderr is the container's.

use std::ffi::OsStr;
use std::process::Stdio;
use std::time::Duration;

use crate::fdio;
use crate::reaper::Reaper;

pub use berth_shim::oci::OciRuntime as Runc;

/// Runs a short command (start, kill, delete); the error is runc's stderr.
pub async fn run(runc: &Runc, reaper: &Reaper, args: &[&OsStr]) -> Result<(), String> {
    let what = args
        .first()
        .map(|a| a.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (err_r, err_w) = fdio::pipe().map_err(|e| format!("pipe: {e}"))?;
    let mut cmd = runc.command();
    cmd.args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(err_w);
    let (_, exited) = fdio::spawn(cmd, reaper).map_err(|e| format!("{}: {e}", runc.bin.display()))?;
    let mut stderr = Vec::new();
    if let Ok(rx) = fdio::receiver(err_r) {
        let _ = tokio::time::timeout(Duration::from_secs(60), fdio::read_capped(&rx, 16 * 1024, &mut stderr)).await;
    }
    match exited.await {
        Ok(0) => Ok(()),
        Ok(code) => Err(error_text(&stderr, &format!("runc {what} exited with {code}"))),
        Err(_) => Err(format!("runc {what}: exit status lost")),
    }
}

/// runc's stderr as one message, or `fallback` when it said nothing.
pub fn error_text(stderr: &[u8], fallback: &str) -> String {
    let text = String::from_utf8_lossy(stderr);
    let text = text.trim();
    if text.is_empty() {
        fallback.to_string()
    } else {
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Runs a runtime command to its end and returns what it printed on stdout; the error is
/// its stderr.
pub async fn output(mut cmd: std::process::Command, reaper: &Reaper) -> Result<Vec<u8>, String> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let (out_r, out_w) = fdio::pipe().map_err(|e| format!("pipe: {e}"))?;
    let (err_r, err_w) = fdio::pipe().map_err(|e| format!("pipe: {e}"))?;
    cmd.stdin(Stdio::null()).stdout(out_w).stderr(err_w);
    let (_, exited) = fdio::spawn(cmd, reaper).map_err(|e| format!("{program}: {e}"))?;
    let out_rx = fdio::receiver(out_r).map_err(|e| format!("pipe: {e}"))?;
    let err_rx = fdio::receiver(err_r).map_err(|e| format!("pipe: {e}"))?;
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let (_, _, code) = tokio::join!(
        fdio::read_capped(&out_rx, 64 * 1024, &mut stdout),
        fdio::read_capped(&err_rx, 16 * 1024, &mut stderr),
        exited
    );
    match code {
        Ok(0) => Ok(stdout),
        Ok(code) => Err(error_text(&stderr, &format!("{program} exited with {code}"))),
        Err(_) => Err(format!("{program}: exit status lost")),
    }
}
