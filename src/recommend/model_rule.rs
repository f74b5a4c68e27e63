//! How the model is chosen, as data: the layer score each rule reads, each model standing for
//! its best layer by it. Raw TransRate grows with width and rank and, with few images, prefers
//! a network that memorised random labels; the default reads a score that does not grow with
//! width, chosen on the graded benchmark by leave-one-task-out (docs/benchmark.md).

use crate::config::Config;
use crate::metrics::{self, Metric};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ModelScore {
    /// The run's primary metric (the first of `metrics:`), the published way.
    Primary,
    /// A metric `metrics:` knows, with its options from the config.
    Metric(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelRule {
    pub name: &'static str,
    pub score: ModelScore,
    pub summary: &'static str,
}

pub const MODEL_RULES: &[ModelRule] = &[
    ModelRule {
        name: "knn",
        score: ModelScore::Metric("knn"),
        summary: "the model whose best layer has the best leave-one-out k-NN accuracy",
    },
    ModelRule {
        name: "ncm",
        score: ModelScore::Metric("ncm"),
        summary: "the model whose best layer has the best nearest-class-mean accuracy",
    },
    ModelRule {
        name: "transrate_z",
        score: ModelScore::Metric("transrate_z"),
        summary: "the model whose best layer's TransRate stands furthest above permuted labels'",
    },
    ModelRule {
        name: "sfda",
        score: ModelScore::Metric("sfda"),
        summary: "the model whose best layer has the best SFDA score",
    },
    ModelRule {
        name: "logme",
        score: ModelScore::Metric("logme"),
        summary: "the model whose best layer has the best LogME evidence",
    },
    ModelRule {
        name: "primary",
        score: ModelScore::Primary,
        summary: "the model whose best layer has the best primary-metric score (published TransRate by default)",
    },
];

/// What `recommend.model` defaults to: the rule the graded benchmark's leave-one-task-out
/// selection chose (src/recommend/evidence.json `defaults.model`; a test holds them equal).
pub const DEFAULT_MODEL_RULE: &str = "knn";

impl ModelRule {
    pub fn by_name(name: &str) -> Result<&'static ModelRule, String> {
        MODEL_RULES.iter().find(|r| r.name == name).ok_or_else(|| {
            let known: Vec<&str> = MODEL_RULES.iter().map(|r| r.name).collect();
            format!(
                "unknown model rule `{name}` in `recommend.model`; known: {}",
                known.join(", ")
            )
        })
    }

    /// The score column the rule reads.
    pub fn metric<'a>(&self, primary: &'a str) -> &'a str {
        match self.score {
            ModelScore::Primary => primary,
            ModelScore::Metric(name) => name,
        }
    }

    /// The metric the run must compute for this rule, unless the config asks for it already.
    pub fn required(&self, config: &Config) -> Option<Box<dyn Metric>> {
        match self.score {
            ModelScore::Primary => None,
            ModelScore::Metric(name) => metrics::by_name(name, config),
        }
    }
}
