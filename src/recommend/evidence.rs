//! What the graded benchmark measured for the advice's rules on fine-tuned ground truth
//! (docs/benchmark.md), embedded in the binary so that the advice can say how far to trust it.
//! evidence.json is written by `research/benchmark/graded/score.py --write`, never by hand.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

/// A rule's figures over the benchmark's cases of one regime: accuracy points lost against the
/// best choice (mean and worst case), the mean weighted Kendall tau of its scores against
/// fine-tuned accuracy, and (cuts) the share of cases whose chosen cut was within seed noise
/// of the best.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Figures {
    pub cases: usize,
    pub mean: Option<f64>,
    pub worst: Option<f64>,
    pub wtau: Option<f64>,
    #[serde(default)]
    pub within_noise: Option<f64>,
}

/// The same figures with few images a class (`scarce`, 20) and many (`full`, 300).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Regimes {
    pub scarce: Option<Figures>,
    pub full: Option<Figures>,
}

/// The rules the held-out selection chose, per regime (`scarce`, `full`): the model rule's
/// metric (read at each model's `model_layer`) and the cut rule's.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Defaults {
    pub model: BTreeMap<String, String>,
    pub model_layer: String,
    pub cut: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Ceiling {
    pub model: Regimes,
    pub cut: Regimes,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Evidence {
    pub benchmark: String,
    /// The benchmark protocol's hash (research/benchmark/graded/suite.py).
    pub protocol: String,
    /// Fine-tuning runs the figures rest on.
    pub runs: usize,
    pub targets: BTreeMap<String, usize>,
    pub defaults: Defaults,
    /// The images a class at which the defaults switch from the scarce regime's rules to the
    /// full one's (`SWITCH`; a test holds them equal).
    #[serde(default)]
    pub switch_images_per_class: Option<f64>,
    /// Every fixed model rule, `<metric>/best`, and the `most_params` baseline.
    pub model_rules: BTreeMap<String, Regimes>,
    /// Every fixed cut rule by its metric, and the `deepest` and `middle` baselines.
    pub cut_rules: BTreeMap<String, Regimes>,
    /// One fine-tuning seed predicting the others: what no score can beat.
    pub ceiling: Ceiling,
    /// The held-out figures of the procedure that chose the defaults (leave one task out).
    pub selection: Option<Selection>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Selection {
    pub model: Regimes,
    pub cut: Regimes,
}

/// Where the scarce regime (20 images a class) ends and the full one (300) begins: their
/// geometric mean, about 77. No benchmark run lies between, so the switch is a midpoint on the
/// scale that data sizes grow on, not a measured boundary (docs/benchmark.md says so).
pub const SWITCH: f64 = 77.459_666_924_148_34; // sqrt(20 * 300)

/// The regime whose figures and rules speak for a run with this many images a class.
pub fn regime_for(images_per_class: f64) -> &'static str {
    if images_per_class < SWITCH {
        "scarce"
    } else {
        "full"
    }
}

/// A run's images a class: the mean over the classes that have any, the figure the regime is
/// chosen by (before scoring, for which scores get fold scores, and in the report).
pub fn images_per_class(per_class: &[u64]) -> f64 {
    let usable: Vec<u64> = per_class.iter().copied().filter(|&n| n > 0).collect();
    usable.iter().sum::<u64>() as f64 / usable.len().max(1) as f64
}

impl Evidence {
    /// The embedded figures; None only if the file were malformed (a test guards it).
    pub fn embedded() -> Option<&'static Evidence> {
        static PARSED: OnceLock<Option<Evidence>> = OnceLock::new();
        PARSED
            .get_or_init(|| serde_json::from_str(include_str!("evidence.json")).ok())
            .as_ref()
    }
}

impl Regimes {
    pub fn get(&self, regime: &str) -> Option<&Figures> {
        match regime {
            "scarce" => self.scarce.as_ref(),
            _ => self.full.as_ref(),
        }
    }
}
