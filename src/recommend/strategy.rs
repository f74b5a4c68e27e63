//! The cut strategies `recommend:` can name, as data: which layer score each maximises and the
//! margin within which two layers' scores say nothing about which fine-tunes better. Their
//! constants were chosen on the benchmark's targets, never on a user's (docs/benchmark.md, "Cut
//! selection, held out"); research/benchmark/score.py mirrors this table and checks that zoo-select
//! picks the cut it predicts.

use crate::config::{ClassWeight, Normalize, TransRateConfig, TransRateScale};
use crate::metrics::{LogMe, Metric, TransRate};

/// The layer score a strategy maximises.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CutScore {
    /// The run's primary metric (the published behaviour: with TransRate, the deepest layer).
    Primary,
    /// LogME, the Bayesian evidence per image of a linear model on the layer's features.
    LogMe,
    /// A TransRate configuration scored under its own name.
    TransRate {
        name: &'static str,
        options: TransRateConfig,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Strategy {
    pub name: &'static str,
    pub score: CutScore,
    /// Layers within this much of the best score are reported as alternatives: the smallest
    /// margin that, on the benchmark, put a cut within seed noise of the best among the chosen
    /// and its alternatives in at least 80 % of the cases (research/benchmark/score.py).
    pub margin: f64,
    pub summary: &'static str,
}

/// The subspace the `subspace` strategy compares layers in, and its eps (relative to the
/// features' mean squared norm: `scale: trace`).
pub const SUBSPACE_K: usize = 32;
pub const SUBSPACE_EPS: f64 = 1e-2;

pub const STRATEGIES: &[Strategy] = &[
    Strategy {
        name: "primary",
        score: CutScore::Primary,
        margin: 5.0,
        summary: "the layer with the best primary-metric score (with TransRate: nearly always the deepest)",
    },
    Strategy {
        name: "logme",
        score: CutScore::LogMe,
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
];

/// What `recommend:` defaults to: the strategy with the best held-out figures on the
/// benchmark (docs/benchmark.md).
pub const DEFAULT_STRATEGY: &str = "subspace";

impl Strategy {
    pub fn by_name(name: &str) -> Result<&'static Strategy, String> {
        STRATEGIES.iter().find(|s| s.name == name).ok_or_else(|| {
            let known: Vec<&str> = STRATEGIES.iter().map(|s| s.name).collect();
            format!(
                "unknown strategy `{name}` in `recommend`; known: {}",
                known.join(", ")
            )
        })
    }

    /// The name of the score column the strategy reads.
    pub fn cut_metric<'a>(&self, primary: &'a str) -> &'a str {
        match self.score {
            CutScore::Primary => primary,
            CutScore::LogMe => "logme",
            CutScore::TransRate { name, .. } => name,
        }
    }

    /// How the sentence names that score.
    pub fn cut_metric_label(&self, primary: &str) -> String {
        match self.score {
            CutScore::Primary => primary.to_owned(),
            CutScore::LogMe => "LogME".to_owned(),
            CutScore::TransRate { options, .. } => format!(
                "TransRate in the top {} principal directions",
                options.subspace.unwrap_or_default()
            ),
        }
    }

    /// The metric the run must compute for this strategy, unless the config asks for it
    /// already (None for `primary`).
    pub fn metric(&self) -> Option<Box<dyn Metric>> {
        match self.score {
            CutScore::Primary => None,
            CutScore::LogMe => Some(Box::new(LogMe)),
            CutScore::TransRate { name, options } => {
                Some(Box::new(TransRate::variant(name, &options)))
            }
        }
    }
}
