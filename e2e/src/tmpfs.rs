//! Small filesystems that fill up: a tmpfs of a given size mounted over a runtime's root, so
//! that a pull or a container really meets a full disk.

use std::path::{Path, PathBuf};

use crate::workload::Env;

/// A tmpfs mounted over a directory, detached when dropped (also when the test fails).
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`mount -o size=`, e.g. `24m`) over `dir`.
    pub fn mount(dir: &Path, size: &str) -> Tmpfs {
        mount(dir, size);
        Tmpfs(dir.to_path_buf())
    }
}

/// Mounts a tmpfs of `size` over `dir`, for as long as something else keeps it.
fn mount(dir: &Path, size: &str) {
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "berth-e2e-full"])
        .arg(dir)
        .status()
        .expect("mount");
    assert!(ok.success(), "mount tmpfs on {}", dir.display());
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = crate::sys::umount_detach(&self.0);
    }
}

impl Env {
    /// Moves the runtime's root onto a tmpfs of `size` (the runtime stopped, the tmpfs
    /// mounted, the runtime restarted and reconnected) and pulls the test image into it.
    /// The mount goes with the runtime's directory (its drop detaches every mount there).
    pub async fn root_on_tmpfs(&mut self, size: &str) {
        self.berthd.stop();
        mount(self.berthd.root(), size);
        self.berthd.restart().await.expect("restart on the tmpfs");
        self.cri = crate::cri::Cri::connect(self.berthd.socket()).await.expect("reconnect");
        let image = self.image.clone();
        self.cri.pull(&image, None).await.expect("pull onto the tmpfs");
    }
}
