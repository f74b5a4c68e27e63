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
mod model_hints;
mod module_cache;
mod source_logits;
mod spec;

pub use capacity::{params_after, params_total};
pub use inspect::{inspect, LayerRow};
pub use manifest::{sha256_file, Manifest};
pub use model::{inference_module, Features, ZooModel};
pub use module_cache::{file_name, ModuleCache, ModuleKey, Prepared};
pub use source_logits::SourceLogits;
pub use spec::{blocks, resolve, select, ModelSpec};

use crate::dataset::Geometry;

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
