//! Streaming sufficient statistics of pooled features, one store per (model, layer).
//!
//! Every metric is computed from these sums at the end of the pass, so memory does not grow with
//! the number of images: O(C D) for the per-class sums plus O(C D^2) for the per-class second
//! moments, which only metrics that need them (TransRate) ask for. Stores fed disjoint parts of
//! the data merge with `+=` into the store of the whole.

mod batch_labels;
mod class_moments;

pub use batch_labels::BatchLabels;
pub use class_moments::ClassMoments;
