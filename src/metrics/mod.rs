//! Transferability metrics, one file each, all computed from the same per-(model, layer)
//! statistics at the end of the single pass.
//!
//! A metric says which statistics it needs (so the pipeline allocates only those) and turns a
//! finished store into a score, higher meaning "transfers better". Adding a metric is one file
//! plus one line in `build`.

mod transrate;

pub use transrate::{coding_rate, TransRate};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::stats::ClassMoments;

/// The statistics a metric reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    /// Per-class second-moment matrices, (C, D, D).
    pub second_moments: bool,
}

impl Needs {
    pub fn union(self, other: Needs) -> Needs {
        Needs {
            second_moments: self.second_moments || other.second_moments,
        }
    }
}

pub trait Metric: Send + Sync {
    /// The name used in the config, the table, report.json and scores.csv.
    fn name(&self) -> &'static str;
    fn needs(&self) -> Needs;
    /// The score of one (model, layer), from its finished statistics.
    fn score(&self, stats: &ClassMoments) -> Result<f64>;
}

/// Every metric name `metrics:` accepts.
pub const KNOWN: &[&str] = &["transrate"];

/// The metrics a config asks for, in its order (the first is the primary one).
pub fn build(config: &Config) -> Result<Vec<Box<dyn Metric>>, String> {
    let mut out: Vec<Box<dyn Metric>> = Vec::new();
    for name in &config.metrics {
        let metric: Box<dyn Metric> = match name.as_str() {
            "transrate" => Box::new(TransRate {
                eps: config.transrate.eps,
            }),
            other => {
                return Err(format!(
                    "unknown metric `{other}` in `metrics`; known: {}",
                    KNOWN.join(", ")
                ));
            }
        };
        if out.iter().any(|m| m.name() == metric.name()) {
            return Err(format!("`metrics` lists `{name}` twice"));
        }
        out.push(metric);
    }
    Ok(out)
}

pub(crate) fn torch_err(metric: &'static str) -> impl Fn(tch::TchError) -> Error {
    move |e| Error::Metric {
        metric,
        message: crate::error::torch_message(&e),
    }
}
