//! The cut strategies `recommend.cut` can name, as data: which layer score each maximises and the
//! margin within which two layers' scores say nothing about which fine-tunes better when the run
//! has no fold scores to tell. Which one is the default, and how each fared, comes from the
//! graded benchmark (docs/benchmark.md, research/benchmark/graded/score.py), never from a
//! user's data.

use crate::config::{ClassWeight, Config, Normalize, TransRateConfig, TransRateScale};
use crate::metrics::{self, Metric, TransRate};

/// The layer score a strategy maximises.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CutScore {
    /// The run's primary metric (the published behaviour: with TransRate, the deepest layer).
    Primary,
    /// A metric `metrics:` knows, with its options from the config.
    Metric(&'static str),
    /// A TransRate configuration of the strategy's own, scored under its own name.
    TransRate {
        name: &'static str,
        options: TransRateConfig,
    },
    /// No score: the deepest (last listed) layer, what a practitioner does without a tool.
    Deepest,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Strategy {
    pub name: &'static str,
    pub score: CutScore,
    /// Without fold scores, layers within this much of the best score are reported as
    /// alternatives.
    pub margin: f64,
    pub summary: &'static str,
}

/// The subspace the `subspace` strategy compares layers in, and its eps (relative to the
/// features' mean squared norm: `scale: trace`).
pub const SUBSPACE_K: usize = 32;
pub const SUBSPACE_EPS: f64 = 1e-2;

pub const STRATEGIES: &[Strategy] = &[
    Strategy {
        name: "ncm",
        score: CutScore::Metric("ncm"),
        margin: 0.01,
        summary: "the layer with the best leave-one-out nearest-class-mean accuracy",
    },
    Strategy {
        name: "transrate_z",
        score: CutScore::Metric("transrate_z"),
        margin: 2.0,
        summary: "the layer whose TransRate stands furthest above that of permuted labels",
    },
    Strategy {
        name: "knn",
        score: CutScore::Metric("knn"),
        margin: 0.01,
        summary: "the layer with the best leave-one-out k-NN accuracy",
    },
    Strategy {
        name: "sfda",
        score: CutScore::Metric("sfda"),
        margin: 0.01,
        summary: "the layer with the best SFDA score",
    },
    Strategy {
        name: "logme",
        score: CutScore::Metric("logme"),
        margin: 0.1,
        summary: "the layer with the best LogME evidence per image",
    },
    Strategy {
        name: "subspace",
        score: CutScore::TransRate {
            name: "transrate_subspace",
            options: TransRateConfig {
                eps: SUBSPACE_EPS,
                scale: TransRateScale::Trace,
                per_rank: false,
                class_weight: ClassWeight::Uniform,
                normalize: Normalize::None,
                subspace: Some(SUBSPACE_K),
            },
        },
        margin: 1.0,
        summary: "the layer with the best TransRate in its top principal directions (every layer measured in the same number of dimensions)",
    },
    Strategy {
        name: "primary",
        score: CutScore::Primary,
        margin: 5.0,
        summary: "the layer with the best primary-metric score (with TransRate: nearly always the deepest)",
    },
    Strategy {
        name: "deepest",
        score: CutScore::Deepest,
        margin: 0.0,
        summary: "the deepest listed layer, reading no score (the benchmark's baseline)",
    },
];

/// What `recommend.cut` defaults to: the strategy the graded benchmark's leave-one-task-out
/// selection chose (src/recommend/evidence.json `defaults.cut`; a test holds them equal).
pub const DEFAULT_STRATEGY: &str = "ncm";

impl Strategy {
    pub fn by_name(name: &str) -> Result<&'static Strategy, String> {
        STRATEGIES.iter().find(|s| s.name == name).ok_or_else(|| {
            let known: Vec<&str> = STRATEGIES.iter().map(|s| s.name).collect();
            format!(
                "unknown cut strategy `{name}` in `recommend`; known: {}",
                known.join(", ")
            )
        })
    }

    /// The name of the score column the strategy reads (the primary metric's for `deepest`,
    /// whose choice reads none).
    pub fn cut_metric<'a>(&self, primary: &'a str) -> &'a str {
        match self.score {
            CutScore::Primary | CutScore::Deepest => primary,
            CutScore::Metric(name) | CutScore::TransRate { name, .. } => name,
        }
    }

    /// How the sentence names that score.
    pub fn cut_metric_label(&self, primary: &str) -> String {
        match self.score {
            CutScore::Primary | CutScore::Deepest => metrics::label(primary),
            CutScore::Metric(name) => metrics::label(name),
            CutScore::TransRate { options, .. } => format!(
                "TransRate in the top {} principal directions",
                options.subspace.unwrap_or_default()
            ),
        }
    }

    /// The metric the run must compute for this strategy, unless the config asks for it
    /// already (None for `primary` and `deepest`).
    pub fn metric(&self, config: &Config) -> Option<Box<dyn Metric>> {
        match self.score {
            CutScore::Primary | CutScore::Deepest => None,
            CutScore::Metric(name) => metrics::by_name(name, config),
            CutScore::TransRate { name, options } => {
                Some(Box::new(TransRate::variant(name, &options)))
            }
        }
    }
}
