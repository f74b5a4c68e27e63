//! The models of a run: TorchScript files loaded once, rewritten to expose the requested layers,
//! and placed on the run's device.
//!
//! A model's metadata (input geometry, mean, std, layers) is data from the config, not code, so
//! any TorchScript classifier works without Python.

mod model;

pub use model::{Features, ZooModel};

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
