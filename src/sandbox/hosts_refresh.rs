//! berthd's upkeep of name groups (see `hosts_group`): the hosts files of a group's ready
//! pods rewritten whenever one of them starts, stops or goes.

use std::path::Path;

use super::hosts_group::{group_of, render};
use super::lifecycle::Sandboxes;
use super::{SandboxFilter, SandboxRecord, SandboxState};

impl Sandboxes {
    /// Rewrites the hosts file of every ready pod in `group`.
    pub(super) fn refresh_hosts_group(&self, group: &str) {
        let members: Vec<SandboxRecord> = self
            .list(&SandboxFilter {
                state: Some(SandboxState::Ready),
                ..Default::default()
            })
            .into_iter()
            .filter(|r| group_of(r) == Some(group))
            .collect();
        for (m, content) in members.iter().zip(render(group, &members)) {
            let path = self.files_dir(&m.id).join("hosts");
            if let Err(e) = write_in_place(&path, &content) {
                tracing::warn!(sandbox = %m.id, error = %e, "updating the pod's hosts file");
            }
        }
    }
}

/// Rewrites the file through its inode: containers bind-mount it, so a new file (rename)
/// would not reach them.
fn write_in_place(path: &Path, content: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new().write(true).truncate(true).open(path)?;
    f.write_all(content.as_bytes())
}
