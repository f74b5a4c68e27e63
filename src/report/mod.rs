//! What a run tells its user: the ranking, the recommendation in words, and the files
//! report.json (everything, machine-readable), scores.csv (one row per model, layer and metric)
//! and scores.svg (the primary score along each model's depth).

mod figure;
mod panel;
mod ranking;
mod svg_text;
mod write;

pub use crate::recommend::{Cut, Recommendation};
pub use ranking::{DatasetReport, Memory, Report, ResultRow};
pub use write::write_all;
