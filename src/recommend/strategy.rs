//! The cut strategies `recommend.cut` can name, as data: which layer score each maximises and the
//! margin within which two layers' scores say nothing about which fine-tunes better when the run
//! has no fold scores to tell. Which one is the default, and how each fared, comes from the
//! graded benchmark (docs/benchmark.md, research/benchmark/graded/score.py), never from a
//! user's data. The default, `auto`, is two strategies: where to cut depends on how many images
//! will re-train what follows the cut, and the benchmark chose a different score with few
//! images a class than with many.

use crate::config::{ClassWeight, Config, Normalize, TransRateConfig, TransRateScale};
use crate::metrics::{self, Metric, TransRate};

use super::evidence::SWITCH;

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
    /// Strategy `few` below `SWITCH` images a class, `many` from there on.
    ByImages {
        few: &'static Strategy,
        many: &'static Strategy,
    },
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

const NCM: Strategy = Strategy {
    name: "ncm",
    score: CutScore::Metric("ncm"),
    margin: 0.01,
    summary: "the layer with the best leave-one-out nearest-class-mean accuracy",
};

const TRANSRATE_Z: Strategy = Strategy {
    name: "transrate_z",
    score: CutScore::Metric("transrate_z"),
    margin: 2.0,
    summary: "the layer whose TransRate stands furthest above that of permuted labels",
};

pub const STRATEGIES: &[Strategy] = &[
    Strategy {
        name: "auto",
        score: CutScore::ByImages {
            few: &NCM,
            many: &TRANSRATE_Z,
        },
        margin: 0.0,
        summary: "`ncm` up to 77 images a class, `transrate_z` from 78: what the graded benchmark chose for few and for many",
    },
    NCM,
    TRANSRATE_Z,
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

/// What `recommend.cut` defaults to: the strategies the graded benchmark's leave-one-task-out
/// selection chose per regime (src/recommend/evidence.json `defaults.cut`; a test holds them
/// equal).
pub const DEFAULT_STRATEGY: &str = "auto";

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

    /// The strategy a run with this many images a class follows: itself, or for `auto` the
    /// one for its regime (`SWITCH`).
    pub fn resolve(&self, images_per_class: f64) -> &Strategy {
        match self.score {
            CutScore::ByImages { few, .. } if images_per_class < SWITCH => few,
            CutScore::ByImages { many, .. } => many,
            _ => self,
        }
    }

    /// The strategies a run may follow, whatever its images a class.
    fn branches(&self) -> Vec<&Strategy> {
        match self.score {
            CutScore::ByImages { .. } => vec![self.resolve(0.0), self.resolve(f64::INFINITY)],
            _ => vec![self],
        }
    }

    /// The name of the score column the strategy reads (the primary metric's for `deepest`,
    /// whose choice reads none; for `auto`, the one its regime reads: call `resolve` first).
    pub fn cut_metric<'a>(&self, primary: &'a str) -> &'a str {
        match self.score {
            CutScore::Primary | CutScore::Deepest | CutScore::ByImages { .. } => primary,
            CutScore::Metric(name) | CutScore::TransRate { name, .. } => name,
        }
    }

    /// How the sentence names that score.
    pub fn cut_metric_label(&self, primary: &str) -> String {
        match self.score {
            CutScore::Primary | CutScore::Deepest | CutScore::ByImages { .. } => {
                metrics::label(primary)
            }
            CutScore::Metric(name) => metrics::label(name),
            CutScore::TransRate { options, .. } => format!(
                "TransRate in the top {} principal directions",
                options.subspace.unwrap_or_default()
            ),
        }
    }

    /// The metrics the run must compute for this strategy, unless the config asks for them
    /// already (none for `primary` and `deepest`; both regimes' for `auto`, since the images
    /// a class are known only once the pass has counted them).
    pub fn metrics(&self, config: &Config) -> Vec<Box<dyn Metric>> {
        self.branches()
            .into_iter()
            .filter_map(|s| match s.score {
                CutScore::Primary | CutScore::Deepest | CutScore::ByImages { .. } => None,
                CutScore::Metric(name) => metrics::by_name(name, config),
                CutScore::TransRate { name, options } => {
                    Some(Box::new(TransRate::variant(name, &options)) as Box<dyn Metric>)
                }
            })
            .collect()
    }
}
