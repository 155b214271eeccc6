//! Which containers use which images. A container leases its image (and its image
//! volumes' images) when it is created and releases them when it is removed; an image
//! with a lease cannot be removed, so its layers never vanish under a container. Leases
//! are taken and checked under the naming lock, so a removal and a create that race see
//! each other: either the image is gone before the create resolves it, or the removal
//! finds the lease.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{ImageError, ImageRecord, Images};

/// Image ids by the container holding them.
#[derive(Default)]
pub(super) struct Leases {
    by_holder: Mutex<HashMap<String, Vec<String>>>,
}

impl Leases {
    fn add(&self, holder: &str, image: &str) {
        let mut map = self.by_holder.lock().unwrap_or_else(|p| p.into_inner());
        let held = map.entry(holder.to_string()).or_default();
        if !held.iter().any(|i| i == image) {
            held.push(image.to_string());
        }
    }

    fn release(&self, holder: &str) {
        self.by_holder.lock().unwrap_or_else(|p| p.into_inner()).remove(holder);
    }

    /// The holders of `image`, sorted.
    pub(super) fn holders(&self, image: &str) -> Vec<String> {
        let map = self.by_holder.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<String> = map
            .iter()
            .filter(|(_, ids)| ids.iter().any(|i| i == image))
            .map(|(h, _)| h.clone())
            .collect();
        out.sort();
        out
    }
}

impl Images {
    /// Resolves `name` (as [`Images::resolve`]) and leases the image to `holder`.
    pub fn lease(&self, holder: &str, name: &str) -> Option<ImageRecord> {
        let _naming = self.naming.lock().unwrap_or_else(|p| p.into_inner());
        let record = self.resolve(name)?;
        self.leases.add(holder, &record.id);
        Some(record)
    }

    /// Ends every lease of `holder`.
    pub fn release(&self, holder: &str) {
        self.leases.release(holder);
    }

    /// Refuses to remove an image that a container holds (called under the naming lock).
    pub(super) fn check_unused(&self, record: &ImageRecord) -> Result<(), ImageError> {
        let holders = self.leases.holders(&record.id);
        match holders.as_slice() {
            [] => Ok(()),
            [one, ..] => Err(ImageError::InUse(format!(
                "image {} is in use by container {one}{}; remove the container first",
                record.id,
                if holders.len() > 1 {
                    format!(" and {} more", holders.len() - 1)
                } else {
                    String::new()
                }
            ))),
        }
    }
}
