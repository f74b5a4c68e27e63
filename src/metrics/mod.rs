//! Transferability metrics, one file each, all computed exactly from the statistics of the single
//! pass, at its end.
//!
//! A metric says which statistics it needs (so the pipeline allocates only those) and how to
//! finish them into a score, higher meaning "transfers better". Layer metrics (TransRate, LogME,
//! H-scores, GBC, k-NN, SFDA) score each (model, layer) from its `ClassMoments`; source metrics
//! (NCE, LEEP) score a model from its classifier's predictions (`SourceStats`), the same for all
//! its layers; relative metrics (NCTI) finish each (model, layer) into raw terms and score a row
//! only against all the run's candidate rows (`Relative`). Adding a metric is one file plus one
//! line in `build`.

pub mod degenerate;
mod gbc;
mod hscore;
mod hscore_shrink;
mod knn;
mod leep;
mod logme;
mod nce;
mod ncti;
mod sfda;
mod spectral;
mod transrate;

pub use gbc::Gbc;
pub use hscore::HScore;
pub use hscore_shrink::ShrinkageHScore;
pub use knn::Knn;
pub use leep::Leep;
pub use logme::LogMe;
pub use nce::Nce;
pub use ncti::Ncti;
pub use sfda::Sfda;
pub use transrate::{coding_rate, TransRate};

use crate::config::Config;
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

/// Every metric `metrics:` accepts, in the order `all` lists them.
pub const KNOWN: &[&str] = &[
    "transrate",
    "logme",
    "hscore",
    "hscore_shrink",
    "nce",
    "leep",
    "gbc",
    "knn",
    "sfda",
    "ncti",
];

/// The metrics a config asks for, in its order (the first is the primary one); `all` is every
/// metric, TransRate first.
pub fn build(config: &Config) -> Result<Vec<Box<dyn Metric>>, String> {
    let names: Vec<&str> = if config.metrics.iter().any(|m| m == "all") {
        if config.metrics.len() > 1 {
            return Err("`metrics: all` cannot be combined with other names".into());
        }
        KNOWN.to_vec()
    } else {
        config.metrics.iter().map(String::as_str).collect()
    };
    let mut out: Vec<Box<dyn Metric>> = Vec::new();
    for name in names {
        let metric: Box<dyn Metric> = match name {
            "transrate" => Box::new(TransRate::new(&config.transrate)),
            "logme" => Box::new(LogMe),
            "hscore" => Box::new(HScore),
            "hscore_shrink" => Box::new(ShrinkageHScore),
            "nce" => Box::new(Nce),
            "leep" => Box::new(Leep),
            "gbc" => Box::new(Gbc),
            "knn" => Box::new(Knn {
                k: config.knn.k,
                max_images: config.sample.max_images,
            }),
            "sfda" => Box::new(Sfda {
                max_images: config.sample.max_images,
            }),
            "ncti" => Box::new(Ncti {
                max_images: config.sample.max_images,
            }),
            other => {
                return Err(format!(
                    "unknown metric `{other}` in `metrics`; known: {}, or `all`",
                    KNOWN.join(", ")
                ));
            }
        };
        if out.iter().any(|m| m.name() == metric.name()) {
            return Err(format!("`metrics` lists `{name}` twice"));
        }
        out.push(metric);
    }
    // Further TransRate configurations, scored from the same statistics in the same pass (their
    // options were checked with the config).
    for (name, options) in &config.transrate_variants {
        if KNOWN.contains(&name.as_str()) || name == "all" {
            return Err(format!(
                "`transrate_variants` cannot use the metric name `{name}`"
            ));
        }
        out.push(Box::new(TransRate::variant(name, options)));
    }
    Ok(out)
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
