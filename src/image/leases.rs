//! Which containers use which images. A container leases its image (and its image
//! volumes' images) when it is created and releases them when it is removed; an image
//! with a lease cannot be removed, so its layers never vanish under a container. Leases
//! are taken and checked under the naming lock, so a removal and a create that race see
//! each other: either the image is gone before the create resolves it, or the removal
//! finds the lease.

use std::collections::HashMap;
use std::sync::Mutex;

/// Image ids by the container holding them.
#[derive(Default)]
pub(super) struct Leases {
    by_holder: Mutex<HashMap<String, Vec<String>>>,
}

impl Leases {
    pub(super) fn add(&self, holder: &str, image: &str) {
        let mut map = self.by_holder.lock().unwrap_or_else(|p| p.into_inner());
        let held = map.entry(holder.to_string()).or_default();
        if !held.iter().any(|i| i == image) {
            held.push(image.to_string());
        }
    }

    pub(super) fn release(&self, holder: &str) {
        self.by_holder.lock().unwrap_or_else(|p| p.into_inner()).remove(holder);
    }

    /// The holders of `image`, sorted.
    fn holders(&self, image: &str) -> Vec<String> {
        let map = self.by_holder.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<String> = map
            .iter()
            .filter(|(_, ids)| ids.iter().any(|i| i == image))
            .map(|(h, _)| h.clone())
            .collect();
        out.sort();
        out
    }

    /// Refuses an image that a container holds, naming the container.
    pub(super) fn check_unused(&self, image: &str) -> Result<(), String> {
        let holders = self.holders(image);
        match holders.as_slice() {
            [] => Ok(()),
            [one, ..] => Err(format!(
                "image {image} is used by container {one}{}; remove the container first",
                if holders.len() > 1 {
                    format!(" and {} more", holders.len() - 1)
                } else {
                    String::new()
                }
            )),
        }
    }
}
