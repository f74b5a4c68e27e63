//! Streaming sufficient statistics, gathered in the single pass and read by every metric at the
//! end, so memory does not grow with the number of images.
//!
//! Per (model, layer): `ClassMoments`, the per-class counts and sums of the pooled features plus
//! whichever second- and fourth-order sums the requested metrics need (`Needs`); each class's
//! second moment (TransRate) is kept as its rows or as its scatter, whichever is smaller
//! (`class_second.rs`: the one place that knows both), its rows spilled to disk beyond
//! `memory_budget` (`spill.rs`). Per model:
//! `SourceStats`, what the source classifier's predictions say about the target labels (NCE,
//! LEEP). Stores fed disjoint parts of the data merge with `+=` into the store of the whole.

mod batch_labels;
mod class_moments;
mod class_second;
mod model_stats;
mod needs;
mod row_sample;
mod source;
mod spill;
mod spiller;
mod spread;
mod staging;
mod transform;

pub use batch_labels::{BatchLabels, Sample};
pub use class_moments::ClassMoments;
pub use class_second::logdet_identity_plus;
pub use model_stats::{LayerMeta, LayerStats, ModelStats};
pub use needs::Needs;
pub use row_sample::RowSample;
pub use source::SourceStats;
pub use spill::{Array, SpillFile, SPILL_PREFIX};
pub use spiller::{RowBudget, Spiller};
pub use spread::Spread;
pub use transform::Transform;
