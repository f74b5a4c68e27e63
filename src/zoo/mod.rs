//! The models of a run: where their specs come from (inline config entries, manifests written by
//! scripts/export_zoo.py, whole zoo folders), how they are loaded once, rewritten to expose the
//! requested layers and placed on the run's device, and how a model's layers are inspected.
//!
//! A model's metadata (input geometry, mean, std, stages, head) is data in a manifest, not code,
//! so any TorchScript classifier works without Python.

mod capacity;
mod inspect;
mod manifest;
mod model;
mod module_cache;
mod spec;

pub use capacity::{params_after, params_total};
pub use inspect::{inspect, LayerRow};
pub use manifest::{sha256_file, Manifest};
pub use model::{inference_module, Features, SourceLogits, ZooModel};
pub use module_cache::{ModuleCache, ModuleKey, Prepared};
pub use spec::{blocks, resolve, select, ModelSpec};

use crate::dataset::Geometry;

/// A model name as a file name (cache entries, kept modules): anything but letters, digits, `-`,
/// `_` and `.` becomes `_`.
pub fn file_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The distinct input geometries of a zoo, in first-use order: each image is fitted once per
/// geometry and that tensor feeds every model sharing it.
pub fn geometries(models: &[ZooModel]) -> Vec<Geometry> {
    let mut out: Vec<Geometry> = Vec::new();
    for m in models {
        if !out.contains(&m.geometry) {
            out.push(m.geometry);
        }
    }
    out
}
