//! Naming images (`tag`) and reading their build history from the image config.

use serde::Deserialize;

use super::reference::{Digest, Reference};
use super::service::{ImageError, Images};
use super::ImageRecord;

/// One step of an image's history, aligned with its layers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HistoryEntry {
    pub created: String,
    pub created_by: String,
    pub author: String,
    pub comment: String,
    pub empty_layer: bool,
    /// The layer blob this step produced; `None` for an empty layer.
    pub layer: Option<String>,
    /// Unpacked bytes of that layer.
    pub size: u64,
}

#[derive(Debug, Deserialize, Default)]
struct ConfigHistory {
    #[serde(default)]
    history: Vec<RawEntry>,
}

#[derive(Debug, Deserialize, Default)]
struct RawEntry {
    #[serde(default)]
    created: Option<String>,
    #[serde(default)]
    created_by: Option<String>,
    #[serde(default)]
    author: Option<String>,
    #[serde(default)]
    comment: Option<String>,
    #[serde(default)]
    empty_layer: bool,
}

impl Images {
    /// Gives the image `source` names the name `target` (normalised, e.g. `app` is
    /// `docker.io/library/app:latest`). A tag another image holds moves to this one.
    pub async fn tag(&self, source: &str, target: &str) -> Result<(ImageRecord, String), ImageError> {
        let reference = Reference::parse(target)?;
        if reference.digest.is_some() {
            return Err(ImageError::Invalid(format!(
                "cannot tag with {target:?}: a tag may not carry a digest"
            )));
        }
        let tag = reference
            .tagged()
            .ok_or_else(|| ImageError::Invalid(format!("{target:?} names no tag")))?;
        let _no_gc = self.gc_lock.read().await;
        let record = self
            .resolve(source)
            .ok_or_else(|| ImageError::NotFound(source.to_string()))?;
        let record = self.record_named(record, std::slice::from_ref(&tag), &[])?;
        Ok((record, tag))
    }

    /// The image's history, oldest first. Steps that made no layer are marked empty; a
    /// config without history gets one anonymous step per layer.
    pub fn history(&self, name: &str) -> Result<(ImageRecord, Vec<HistoryEntry>), ImageError> {
        let record = self
            .resolve(name)
            .ok_or_else(|| ImageError::NotFound(name.to_string()))?;
        let config = self.content.read(&Digest::parse(&record.id)?)?;
        let parsed: ConfigHistory = serde_json::from_slice(&config)
            .map_err(|e| ImageError::Internal(format!("{}: stored config is not valid: {e}", record.id)))?;
        let sizes: Vec<u64> = record
            .chain_ids
            .iter()
            .map(|c| Digest::parse(c).map(|c| self.snapshots.usage(&c).bytes).unwrap_or(0))
            .collect();
        Ok((record.clone(), align(parsed.history, &record.layers, &sizes)))
    }
}

/// Pairs each non-empty history step with the next layer. Layers the history does not
/// account for get anonymous steps of their own.
fn align(history: Vec<RawEntry>, layers: &[String], sizes: &[u64]) -> Vec<HistoryEntry> {
    let mut out = Vec::with_capacity(history.len().max(layers.len()));
    let mut next = 0;
    for raw in history {
        let mut entry = HistoryEntry {
            created: raw.created.unwrap_or_default(),
            created_by: raw.created_by.unwrap_or_default(),
            author: raw.author.unwrap_or_default(),
            comment: raw.comment.unwrap_or_default(),
            empty_layer: raw.empty_layer,
            ..Default::default()
        };
        if !raw.empty_layer {
            if let Some(layer) = layers.get(next) {
                entry.layer = Some(layer.clone());
                entry.size = sizes.get(next).copied().unwrap_or(0);
                next += 1;
            } else {
                entry.empty_layer = true;
            }
        }
        out.push(entry);
    }
    for (i, layer) in layers.iter().enumerate().skip(next) {
        out.push(HistoryEntry {
            layer: Some(layer.clone()),
            size: sizes.get(i).copied().unwrap_or(0),
            ..Default::default()
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(by: &str, empty: bool) -> RawEntry {
        RawEntry {
            created_by: Some(by.into()),
            empty_layer: empty,
            ..Default::default()
        }
    }

    #[test]
    fn history_aligns_with_layers() {
        let layers = vec!["sha256:a".to_string(), "sha256:b".to_string()];
        let h = align(
            vec![raw("ADD rootfs", false), raw("ENV X=1", true), raw("RUN make", false)],
            &layers,
            &[10, 20],
        );
        assert_eq!(h.len(), 3);
        assert_eq!((h[0].layer.as_deref(), h[0].size), (Some("sha256:a"), 10));
        assert!(h[1].empty_layer && h[1].layer.is_none());
        assert_eq!((h[2].layer.as_deref(), h[2].size), (Some("sha256:b"), 20));

        // No history: one anonymous step per layer.
        let h = align(vec![], &layers, &[1, 2]);
        assert_eq!(h.len(), 2);
        assert!(h.iter().all(|e| e.created_by.is_empty() && !e.empty_layer));

        // A history claiming more layers than there are: the extra steps are empty.
        let h = align(
            vec![raw("a", false), raw("b", false), raw("c", false)],
            &layers,
            &[1, 2],
        );
        assert!(h[2].empty_layer && h[2].layer.is_none());
    }
}
