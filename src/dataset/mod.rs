//! The target task: an ImageFolder tree of labelled images, and how each image becomes the
//! pixels a model sees.
//!
//! `folder` lists the images and their labels without opening them; `preprocess` decodes one
//! image once (JPEGs with `jpeg`, libjpeg-turbo as PIL) and cuts it to every input geometry the
//! zoo needs. `open` is where a run reads its images from.

mod folder;
mod jpeg;
mod preprocess;
mod resample;
mod sample;
mod shard;

pub(crate) use folder::class_list;
pub use folder::{scan, single_images, ImageFolder, Item, TWO_PER_CLASS};
pub use preprocess::{decode, fit, load, load_into, Geometry};
pub use sample::sample_flags;
pub use shard::shard_items;

/// The one entry point of a data source: the images a dataset config names, listed and
/// labelled (an ImageFolder tree today; another source would be another arm here).
pub fn open(config: &crate::config::DatasetConfig) -> crate::error::Result<ImageFolder> {
    scan(&config.root, config.max_per_class)
}

/// An image that was left out of the statistics, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Skip {
    pub path: std::path::PathBuf,
    pub reason: String,
}

/// A seeded xorshift64 generator: random test inputs without a dependency.
#[cfg(test)]
fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}
