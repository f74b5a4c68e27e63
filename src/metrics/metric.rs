//! What a metric is to the rest of the program: the `Metric` trait (what statistics it needs,
//! how it finishes them into a score), `Relative` for a metric scored only against all the
//! run's rows, and how a libtorch failure inside a metric is told apart from a property of the
//! data.

use crate::error::{Error, Result};
use crate::stats::{ClassMoments, Needs, SourceStats, Transform};

pub trait Metric: Send + Sync {
    /// The name used in the config, the table, report.json and scores.csv.
    fn name(&self) -> &str;
    fn needs(&self) -> Needs;
    /// What is done to the pooled features before they are accumulated for this metric.
    fn transform(&self) -> Transform {
        Transform::Raw
    }
    /// A layer metric's score of one (model, layer); None for source metrics.
    fn score_layer(&self, _stats: &ClassMoments) -> Option<Result<f64>> {
        None
    }
    /// A source metric's score of one model; None for layer metrics.
    fn score_source(&self, _stats: &mut SourceStats) -> Option<Result<f64>> {
        None
    }
    /// A relative metric: its score of a row exists only against the other candidate rows.
    fn relative(&self) -> Option<&dyn Relative> {
        None
    }
}

/// A metric without a score of one (model, layer) on its own (NCTI normalises its terms over the
/// zoo): each row's statistics give raw terms, and the scores of all the run's candidate rows
/// come from their terms together, once every row has been finished.
pub trait Relative: Send + Sync {
    /// The raw terms' names, in the order `terms` gives them.
    fn term_names(&self) -> &'static [&'static str];
    /// The raw terms of one (model, layer).
    fn terms(&self, stats: &ClassMoments) -> Result<Vec<f64>>;
    /// The scores of the rows whose terms are given, in the same order.
    fn combine(&self, rows: &[Vec<f64>]) -> Result<Vec<f64>>;
    /// What the score of a row is relative to, for the report.
    fn combination(&self) -> &'static str;
}

/// A libtorch error of a metric's arithmetic. Linear algebra refusing the matrix it was given
/// (singular, not positive definite, no convergence) is a property of the row's features;
/// anything else (memory, a CUDA or cuBLAS failure) is not, and stops the run.
pub(crate) fn torch_err(metric: &str) -> impl Fn(tch::TchError) -> Error + '_ {
    move |e| {
        let message = crate::error::torch_message(&e);
        const DATA: [&str; 4] = [
            "singular",
            "positive-definite",
            "failed to converge",
            "ill-conditioned",
        ];
        if DATA.iter().any(|w| message.contains(w)) {
            Error::Degenerate {
                metric: metric.to_owned(),
                message,
                numerical: true,
            }
        } else {
            Error::Metric {
                metric: metric.to_owned(),
                message,
            }
        }
    }
}

pub(crate) fn scalar(t: tch::Tensor) -> Result<f64, tch::TchError> {
    t.f_double_value(&[])
}
