//! The identities statistics are filed under. A dataset is its class list and, for every image,
//! its path under the root, size and modification time: changing, adding or removing an image
//! changes the fingerprint, and so does `max_per_class`. A model is the sha256 of its file, its
//! preprocessing and its precision.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

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

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The identities of the models' statistics, in order. A model read from a manifest brings its
/// file's hash, checked when the manifest was read; each other distinct file is hashed once,
/// the files in parallel: hashing is most of the time a cached run takes (a zoo's files run to
/// gigabytes), and zoos list one file under several configurations.
pub fn model_keys(specs: &[ModelSpec], precision: Precision) -> Result<Vec<ModelKey>> {
    use rayon::prelude::*;
    let mut paths: Vec<&std::path::Path> = specs
        .iter()
        .filter(|s| s.sha256.is_none())
        .map(|s| s.path.as_path())
        .collect();
    paths.sort();
    paths.dedup();
    let hashes: Vec<std::io::Result<String>> = paths
        .par_iter()
        .map(|p| crate::zoo::sha256_file(p))
        .collect();
    specs
        .iter()
        .map(|spec| {
            if let Some(sha256) = &spec.sha256 {
                return Ok(model_key(spec, sha256.clone(), precision));
            }
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

/// A model's identity for its statistics: another file, preprocessing or precision is another
/// model.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ModelKey {
    pub name: String,
    pub sha256: String,
    /// The input geometry, normalisation and layout, as text.
    pub preprocessing: String,
    pub precision: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::InputConfig;

    fn spec(name: &str, path: &std::path::Path, sha256: Option<&str>) -> ModelSpec {
        ModelSpec {
            name: name.into(),
            path: path.to_owned(),
            manifest: None,
            input: InputConfig {
                size: 8,
                resize: None,
                interpolation: Default::default(),
                mean: [0.0; 3],
                std: [1.0; 3],
            },
            layout: Default::default(),
            layers: vec!["a".into()],
            head: None,
            pretrained: None,
            sha256: sha256.map(Into::into),
        }
    }

    #[test]
    fn a_manifest_checked_hash_is_reused_and_other_files_are_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("m.pt");
        std::fs::write(&file, b"abc").unwrap();
        // Not a file: a key made from it must come from the hash the spec brings.
        let gone = dir.path().join("gone.pt");
        let keys = model_keys(
            &[spec("a", &gone, Some("feed")), spec("b", &file, None)],
            Precision::F32,
        )
        .unwrap();
        assert_eq!(keys[0].sha256, "feed");
        assert_eq!(
            keys[1].sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let err = model_keys(&[spec("c", &gone, None)], Precision::F32).unwrap_err();
        assert!(err.to_string().contains("gone.pt"), "{err}");
    }
}
