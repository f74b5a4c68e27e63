//! The cache: a folder of statistics files, one per (model, dataset, shard, device kind), each
//! holding the layers computed so far. A run reads the entries of its models, computes only
//! the layers (and models) they lack, and writes the entries back with the union, so adding a
//! model or a layer costs only its own pass. An entry that cannot be used (damaged, of another
//! format version, of another file) is recomputed with a warning, never trusted.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tch::Device;

use super::fingerprint::hex;
use super::{DatasetId, FileInfo, ModelEntry, ModelKey, Shard, StatsFile};
use crate::error::Result;

pub struct Cache {
    pub dir: PathBuf,
}

impl Cache {
    pub fn new(dir: &Path) -> Cache {
        Cache {
            dir: dir.to_owned(),
        }
    }

    /// Where the entry of `key` over `dataset`'s covered images lives.
    pub fn entry_path(
        &self,
        key: &ModelKey,
        dataset: &DatasetId,
        shard: Option<Shard>,
        device_kind: &str,
    ) -> PathBuf {
        let mut h = Sha256::new();
        h.update(format!(
            "{}\n{}\n{shard:?}\n{device_kind}\n",
            dataset.fingerprint, dataset.covered
        ));
        h.update(format!(
            "{}\n{}\n{}\n{}\n",
            key.name, key.sha256, key.preprocessing, key.precision
        ));
        let hash = hex(&h.finalize());
        self.dir.join(format!(
            "{}-{}.zss",
            crate::zoo::file_name(&key.name),
            &hash[..16]
        ))
    }

    /// The cached statistics of `key`, if a usable entry exists.
    pub fn load(
        &self,
        key: &ModelKey,
        dataset: &DatasetId,
        shard: Option<Shard>,
        device_kind: &str,
        device: Device,
    ) -> Option<(ModelEntry, FileInfo)> {
        let path = self.entry_path(key, dataset, shard, device_kind);
        if !path.exists() {
            return None;
        }
        let usable = |file: &StatsFile| {
            file.info.dataset == *dataset
                && file.info.shard == shard
                && file.info.progress.is_none()
                && file.models.len() == 1
                && file.models[0].key == *key
        };
        match super::read(&path, device) {
            Ok(mut file) if usable(&file) => {
                let entry = file.models.pop()?;
                Some((entry, file.info))
            }
            Ok(_) => {
                tracing::warn!(
                    "cache entry {} is for other images or another model; recomputing",
                    path.display()
                );
                None
            }
            Err(e) => {
                tracing::warn!("cache entry unusable, recomputing: {e}");
                None
            }
        }
    }

    /// Writes (or replaces) the entry of one model.
    /// Keeps `entry`'s statistics, lent to the writer and given back whether or not they could
    /// be written: the cache is a convenience, and statistics it cannot keep are still this
    /// run's to score.
    pub fn store(&self, entry: &mut ModelEntry, info: FileInfo) -> Result<()> {
        let path = self.entry_path(&entry.key, &info.dataset, info.shard, &info.device_kind);
        let lent = ModelEntry {
            key: entry.key.clone(),
            layers: entry.layers.clone(),
            source_logits: entry.source_logits.clone(),
            stats: std::mem::take(&mut entry.stats),
        };
        let mut file = StatsFile {
            info,
            models: vec![lent],
        };
        let written = super::write(&path, &mut file);
        for back in file.models {
            entry.stats = back.stats;
        }
        written
    }
}
