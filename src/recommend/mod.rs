//! The advice: which model to fine-tune and where to cut it, said in words with how far the
//! benchmark says it can be trusted.
//!
//! Two questions, two rules. The model comes from the primary metric (its best layer's score),
//! as the table ranks them. The cut inside a model comes from a `Strategy`, because the
//! published metrics all grow with depth and width: their argmax is the deepest layer whatever
//! the target, which fine-tuning contradicts. A strategy names the layer score it maximises;
//! layers whose scores are within that strategy's noise margin of the best are reported as
//! alternatives rather than ranked as if the difference meant something. How reliable each
//! strategy was on held-out benchmark targets comes from `evidence.json`, written by
//! research/benchmark/score.py, never from this run.

mod evidence;
mod strategy;

pub use evidence::{Evidence, StrategyEvidence};
pub use strategy::{CutScore, Strategy, DEFAULT_STRATEGY, STRATEGIES};

use std::collections::BTreeMap;

use serde::Serialize;

/// One scored (model, layer), as the recommendation reads it.
#[derive(Debug, Clone, Copy)]
pub struct LayerScores<'a> {
    pub model: &'a str,
    pub layer: &'a str,
    pub scores: &'a BTreeMap<String, f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recommendation {
    pub model: Option<String>,
    /// None when no layer score exists for the strategy (e.g. the primary metric scores whole
    /// models and the strategy's score was not computed).
    pub layer: Option<String>,
    /// The metric that chose the model (the primary metric).
    pub metric: String,
    /// The model's score by `metric`.
    pub score: Option<f64>,
    /// The strategy that chose the cut, and the layer score it maximised.
    pub strategy: String,
    pub cut_metric: String,
    /// Other layers of the model within the strategy's noise margin of the chosen one,
    /// shallow to deep as the config lists them.
    pub alternatives: Vec<String>,
    /// What the benchmark measured for this strategy on targets it was not tuned on.
    pub reliability: Option<StrategyEvidence>,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cut {
    pub layer: String,
    /// The strategy's score of that layer.
    pub score: f64,
    /// Other layers of the model whose scores cannot be told apart from the chosen one's.
    pub alternatives: Vec<String>,
}

/// The recommendation and each model's cut. `per_model` says the primary metric scores whole
/// models (NCE, LEEP): the model is still chosen by it, the cut by the strategy's score when it
/// was computed. Rows without the needed score are left out; the first of equal scores wins.
pub fn recommend(
    rows: &[LayerScores],
    primary: &str,
    per_model: bool,
    strategy: &Strategy,
    evidence: Option<&StrategyEvidence>,
) -> (Recommendation, BTreeMap<String, Cut>) {
    let cut_metric = strategy.cut_metric(primary);
    let mut models: Vec<&str> = Vec::new();
    for r in rows {
        if !models.contains(&r.model) {
            models.push(r.model);
        }
    }
    let mut cuts = BTreeMap::new();
    let mut ranges: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for model in &models {
        let layers: Vec<(&str, f64)> = rows
            .iter()
            .filter(|r| r.model == *model)
            .filter_map(|r| r.scores.get(cut_metric).map(|&s| (r.layer, s)))
            .filter(|(_, s)| s.is_finite())
            .collect();
        if let Some((cut, within)) = choose(&layers, strategy.margin) {
            cuts.insert((*model).to_owned(), cut);
            ranges.insert(*model, within);
        }
    }
    // The model: its best layer by the primary metric (the table's order).
    let mut best: Option<(&str, f64)> = None;
    for r in rows {
        if let Some(&s) = r.scores.get(primary) {
            if best.is_none_or(|(_, b)| s > b) {
                best = Some((r.model, s));
            }
        }
    }
    let reliability = evidence.cloned();
    let base = |text: String, model: Option<String>, score: Option<f64>| Recommendation {
        model,
        layer: None,
        metric: primary.to_owned(),
        score,
        strategy: strategy.name.to_owned(),
        cut_metric: cut_metric.to_owned(),
        alternatives: Vec::new(),
        reliability: reliability.clone(),
        text,
    };
    let recommendation = match best {
        None => base(format!("No layer has a {primary} score"), None, None),
        Some((model, score)) => match cuts.get(model) {
            Some(cut) => Recommendation {
                layer: Some(cut.layer.clone()),
                alternatives: cut.alternatives.clone(),
                text: sentence(model, primary, score, cut, &ranges[model], strategy, evidence),
                ..base(String::new(), Some(model.to_owned()), Some(score))
            },
            None if per_model => base(
                format!(
                    "Fine-tune {model} ({primary} {score:.4}); {primary} scores whole models, so choose the cut with a layer metric"
                ),
                Some(model.to_owned()),
                Some(score),
            ),
            None => base(
                format!(
                    "Fine-tune {model} ({primary} {score:.4}); no layer has a {cut_metric} score to choose the cut"
                ),
                Some(model.to_owned()),
                Some(score),
            ),
        },
    };
    (recommendation, cuts)
}

/// The layer with the best score, and every layer within `margin` of it (the chosen one
/// included) in the given order.
fn choose<'a>(layers: &[(&'a str, f64)], margin: f64) -> Option<(Cut, Vec<&'a str>)> {
    let mut best: Option<(&str, f64)> = None;
    for &(layer, s) in layers {
        if best.is_none_or(|(_, b)| s > b) {
            best = Some((layer, s));
        }
    }
    let (layer, score) = best?;
    let within: Vec<&str> = layers
        .iter()
        .filter(|(l, s)| *l == layer || *s >= score - margin)
        .map(|(l, _)| *l)
        .collect();
    let alternatives = within
        .iter()
        .filter(|l| **l != layer)
        .map(|l| (*l).to_owned())
        .collect();
    Some((
        Cut {
            layer: layer.to_owned(),
            score,
            alternatives,
        },
        within,
    ))
}

/// "Fine-tune M: keep everything up to L and re-train what follows", with the layers the
/// scores cannot separate and the benchmark's measure of how far to trust it.
fn sentence(
    model: &str,
    primary: &str,
    score: f64,
    cut: &Cut,
    within: &[&str],
    strategy: &Strategy,
    evidence: Option<&StrategyEvidence>,
) -> String {
    let mut text = format!(
        "Fine-tune {model} ({primary} {score:.4}): keep everything up to {} and re-train what follows",
        cut.layer
    );
    if let [first, .., last] = within {
        // The config lists layers shallow to deep: the two ends of the range are the cuts that
        // differ most in what they keep.
        text += &format!(
            ".\n{} are within noise of each other by {}: the scores cannot separate them; if you can afford two fine-tuning runs, try {first} and {last}",
            list(within),
            strategy.cut_metric_label(primary),
        );
    }
    if let Some(e) = evidence {
        text += &format!(".\n{}", e.statement(strategy.name));
    }
    text.push('.');
    text
}

fn list(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests;
