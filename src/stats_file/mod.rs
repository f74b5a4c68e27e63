//! Statistics as files. Every statistic of a pass is a sum, so what a pass gathered can be
//! written down, read back and added to other sums exactly: a checkpoint that a killed run
//! resumes from, a cache entry that a later run with one more model reuses, a shard that a
//! cluster job writes and a merge job adds up.
//!
//! A file holds one or more models' `ModelStats` and says exactly what they cover: the dataset
//! (class list and a fingerprint of every image's path, size and modification time), the shard,
//! each model's file hash, preprocessing and precision, each layer's store. `format.rs` is the
//! byte layout (versioned, checksummed, written atomically); `fingerprint.rs` makes the
//! identities; `cache.rs` is the folder of reusable entries.

mod cache;
mod file;
mod fingerprint;
mod format;

pub use cache::Cache;
pub use file::{
    read, write, FileInfo, LayerMeta, ModelEntry, Progress, Shard, SkipRecord, StatsFile,
};
pub use fingerprint::{dataset_id, hex, model_keys, DatasetId, ModelKey};
pub use format::FORMAT_VERSION;
