//! What the benchmark measured for each cut strategy on targets it was not tuned on
//! (leave-one-target-out), embedded in the binary so the advice can say how far to trust it.
//! evidence.json is written by `research/benchmark/score.py --write`, never by hand.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct StrategyEvidence {
    /// (task, regime) targets the figures average over, each scored held out.
    pub targets: usize,
    /// Mean accuracy points lost against the best cut, held out.
    pub regret_points: f64,
    /// Mean weighted Kendall tau of the strategy's layer scores against fine-tuned accuracy.
    pub weighted_tau: f64,
    /// The same statistic for one fine-tuning seed predicting the others: the noise ceiling.
    pub ceiling_weighted_tau: f64,
    /// Share of held-out cases where the chosen cut or an alternative was within the seed noise
    /// of the best cut.
    pub alternatives_cover: f64,
    /// The same figures for the middle candidate layer, a cut that reads no feature: the
    /// baseline a strategy has to beat.
    pub middle_weighted_tau: f64,
    pub middle_regret_points: f64,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Evidence {
    /// The benchmark protocol's hash (research/benchmark/common.py).
    pub protocol: String,
    pub strategies: BTreeMap<String, StrategyEvidence>,
}

impl Evidence {
    /// The embedded figures; None only if the file were malformed (a test guards it).
    pub fn embedded() -> Option<&'static Evidence> {
        static PARSED: OnceLock<Option<Evidence>> = OnceLock::new();
        PARSED
            .get_or_init(|| serde_json::from_str(include_str!("evidence.json")).ok())
            .as_ref()
    }

    pub fn strategy(&self, name: &str) -> Option<&StrategyEvidence> {
        self.strategies.get(name)
    }
}

impl StrategyEvidence {
    /// What a user can act on: the strategy's held-out record, and plainly when the middle
    /// layer did better.
    pub fn statement(&self, strategy: &str) -> String {
        let mut text = format!(
            "How sure: on {} held-out benchmark targets the `{strategy}` cut lost {:.1} accuracy points on average against the best cut (weighted tau {:.2} over cuts; fine-tuning seeds agree with each other at {:.2}), and the cut or an alternative was within seed noise of the best in {:.0}% of cases (docs/benchmark.md)",
            self.targets,
            self.regret_points,
            self.weighted_tau,
            self.ceiling_weighted_tau,
            100.0 * self.alternatives_cover
        );
        if self.middle_weighted_tau > self.weighted_tau {
            text += &format!(
                ". There the middle of the candidate layers did better ({:.1} points lost, tau {:.2}): treat the cut as a hint and compare it with a mid-depth one",
                self.middle_regret_points, self.middle_weighted_tau
            );
        }
        text
    }
}
