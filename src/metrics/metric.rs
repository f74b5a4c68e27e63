//! What a metric is to the rest of the program: the `Metric` trait (what statistics it needs,
//! how it finishes them into a score), `Relative` for a metric scored only against all the
//! run's rows, and how a libtorch failure inside a metric is told apart from a property of the
//! data.

use tch::Tensor;

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
    /// A sample metric's score of the rows (m, D) of sampled images and their labels, on the
    /// statistics' device: what `score_layer` computes from the whole sample, and what the
    /// jackknife recomputes on part of it. None for metrics of moments.
    fn score_rows(&self, _rows: &SampleRows) -> Option<Result<f64>> {
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

/// Rows of sampled images: features (m, D) on the statistics' device, labels, and each image's
/// position in the listing (what fixes its fold and, for `transrate_z`, its shuffled labels).
pub struct SampleRows<'a> {
    pub x: &'a Tensor,
    pub labels: &'a [i64],
    pub ids: &'a [u32],
}

/// The statistics' sample: its rows on the statistics' device, their labels and listing
/// positions, in listing order.
pub(crate) fn read_sample(
    stats: &ClassMoments,
) -> std::result::Result<(Tensor, Vec<i64>, Vec<u32>), tch::TchError> {
    let (rows, labels) = stats.sample_rows()?;
    Ok((
        rows.f_to_device(stats.shift().device())?,
        labels,
        stats.sample_ids()?,
    ))
}

/// `score_layer` of a sample metric: `score_rows` on the statistics' whole sample.
pub(crate) fn score_sample(metric: &dyn Metric, stats: &ClassMoments) -> Option<Result<f64>> {
    match read_sample(stats) {
        Ok((x, labels, ids)) => metric.score_rows(&SampleRows {
            x: &x,
            labels: &labels,
            ids: &ids,
        }),
        Err(e) => Some(Err(torch_err(metric.name())(e))),
    }
}
