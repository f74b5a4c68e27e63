//! The identities statistics are filed under. A dataset is its class list and, for every image,
//! its path under the root, size and modification time: changing, adding or removing an image
//! changes the fingerprint, and so does `max_per_class`. A model is the sha256 of its file, its
//! preprocessing and its precision.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::ModelKey;
use crate::config::Precision;
use crate::dataset::{ImageFolder, Item};
use crate::error::{Error, Result};
use crate::zoo::ModelSpec;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetId {
    pub root: std::path::PathBuf,
    pub classes: Vec<String>,
    /// Of every image listed (all shards).
    pub fingerprint: String,
    pub files: usize,
    /// Of the images this file's statistics cover (its shard; all of them otherwise).
    pub covered: String,
    pub covered_files: usize,
}

/// The identity of `folder`'s listing and of the part of it, `covered`, that a pass reads.
pub fn dataset_id(folder: &ImageFolder, covered: &[Item]) -> DatasetId {
    DatasetId {
        root: folder.root.clone(),
        classes: folder.classes.clone(),
        fingerprint: fingerprint(folder, &folder.items),
        files: folder.items.len(),
        covered: fingerprint(folder, covered),
        covered_files: covered.len(),
    }
}

fn fingerprint(folder: &ImageFolder, items: &[Item]) -> String {
    let mut h = Sha256::new();
    for class in &folder.classes {
        h.update(class.as_bytes());
        h.update(b"\n");
    }
    for item in items {
        let rel = item.path.strip_prefix(&folder.root).unwrap_or(&item.path);
        h.update(rel.to_string_lossy().as_bytes());
        match std::fs::metadata(&item.path) {
            Ok(m) => {
                let mtime = m
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos());
                h.update(format!("\0{}\0{}\0{}\n", item.label, m.len(), mtime).as_bytes());
            }
            Err(_) => h.update(format!("\0{}\0unreadable\n", item.label).as_bytes()),
        }
    }
    hex(&h.finalize())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The identities of the models' statistics, in order. Each distinct file is hashed once, the
/// files in parallel: hashing is most of the time a cached run takes (a zoo's files run to
/// gigabytes), and zoos list one file under several configurations.
pub fn model_keys(specs: &[ModelSpec], precision: Precision) -> Result<Vec<ModelKey>> {
    use rayon::prelude::*;
    let mut paths: Vec<&std::path::Path> = specs.iter().map(|s| s.path.as_path()).collect();
    paths.sort();
    paths.dedup();
    let hashes: Vec<std::io::Result<String>> = paths
        .par_iter()
        .map(|p| crate::zoo::sha256_file(p))
        .collect();
    specs
        .iter()
        .map(|spec| {
            let at = paths
                .binary_search(&spec.path.as_path())
                .unwrap_or_default();
            match &hashes[at] {
                Ok(sha256) => Ok(model_key(spec, sha256.clone(), precision)),
                Err(e) => Err(Error::ModelLoad {
                    model: spec.name.clone(),
                    path: spec.path.clone(),
                    reason: e.to_string(),
                }),
            }
        })
        .collect()
}

fn model_key(spec: &ModelSpec, sha256: String, precision: Precision) -> ModelKey {
    ModelKey {
        name: spec.name.clone(),
        sha256,
        preprocessing: format!("{:?} {:?}", spec.input, spec.layout),
        precision: format!("{precision:?}").to_lowercase(),
    }
}
