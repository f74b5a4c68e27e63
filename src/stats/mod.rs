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
mod row_sample;
mod source;
mod spill;
mod spiller;
mod staging;

pub use batch_labels::{BatchLabels, Sample};
pub use class_moments::{ClassMoments, Spread};
pub use class_second::logdet_identity_plus;
pub use model_stats::ModelStats;
pub use row_sample::RowSample;
pub use source::SourceStats;
pub use spill::{Array, SpillFile, SPILL_PREFIX};
pub use spiller::{RowBudget, Spiller};

/// The statistics a set of metrics reads, beyond per-class counts and sums.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    /// The feature rows of a fixed subsample of at most this many images (0: none): k-NN.
    pub sample: usize,
    /// Per-class second-moment matrices, (C, D, D): TransRate.
    pub class_second: bool,
    /// The total second-moment matrix, (D, D): LogME, H-scores.
    pub total_second: bool,
    /// Per-class sums of squares, (C, D): GBC's diagonal Gaussians.
    pub class_squares: bool,
    /// Sum of |x|^4 and of |x|^2 x: the Ledoit-Wolf shrinkage.
    pub fourth: bool,
    /// Counts of (argmax source class, target class): NCE.
    pub source_hard: bool,
    /// Source softmax rows: LEEP.
    pub source_soft: bool,
}

impl Needs {
    pub fn union(self, o: Needs) -> Needs {
        Needs {
            sample: self.sample.max(o.sample),
            class_second: self.class_second || o.class_second,
            total_second: self.total_second || o.total_second,
            class_squares: self.class_squares || o.class_squares,
            fourth: self.fourth || o.fourth,
            source_hard: self.source_hard || o.source_hard,
            source_soft: self.source_soft || o.source_soft,
        }
    }

    pub fn features(&self) -> bool {
        self.class_second
            || self.total_second
            || self.class_squares
            || self.fourth
            || self.sample > 0
    }

    pub fn source(&self) -> bool {
        self.source_hard || self.source_soft
    }
}

/// What is done to each pooled feature vector before it is accumulated.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Transform {
    Raw,
    /// x / |x|: TransRate's `normalize: l2`.
    L2,
}

impl Transform {
    /// Applies the transform to the rows of (B, D) features, or to one (D,) vector.
    pub fn apply(self, x: &tch::Tensor) -> Result<tch::Tensor, tch::TchError> {
        match self {
            Transform::Raw => Ok(x.shallow_clone()),
            // As torch.nn.functional.normalize: x / max(|x|, 1e-12), so a zero vector stays zero.
            Transform::L2 => {
                let norm = x
                    .f_square()?
                    .f_sum_dim_intlist(&[-1i64][..], true, x.kind())?
                    .f_sqrt()?;
                x.f_div(&norm.f_clamp_min(1e-12)?)
            }
        }
    }
}
