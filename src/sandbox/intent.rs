//! What a sandbox is about to become, written before `run` makes it: `run` writes the record
//! to `<state>/sandboxes/<id>/intent.json` first (and again once the infra process is up),
//! so the start-up sweep can take down what a crash in the middle left behind.

use std::path::Path;

use super::SandboxRecord;

pub(super) const INTENT: &str = "intent.json";

/// Records `rec` as being set up in its directory `dir`.
pub(super) fn write_intent(dir: &Path, rec: &SandboxRecord) -> std::io::Result<()> {
    let json = serde_json::to_vec(rec).map_err(std::io::Error::other)?;
    std::fs::write(dir.join(INTENT), json)
}

/// Adds the infra process to the intent, so a sweep can stop it. Best effort: a failure
/// here only narrows what a sweep after a crash can find.
pub(super) fn write_infra(dir: &Path, rec: &SandboxRecord, pid: u32, started: u64) {
    let mut rec = rec.clone();
    rec.infra_pid = Some(pid);
    rec.infra_start = started;
    if let Err(e) = write_intent(dir, &rec) {
        tracing::warn!(sandbox = %rec.id, error = %e, "recording the infra process");
    }
}
