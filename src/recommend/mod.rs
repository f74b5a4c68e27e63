//! The advice: which model to fine-tune and where to cut it, said in words, with this run's
//! own uncertainty and how far the benchmark says the rules can be trusted.
//!
//! Two questions, two rules, both data (model_rule.rs, strategy.rs). The model comes from a
//! model rule: each model stands for its best layer by the rule's score. The cut inside a model
//! comes from a cut strategy, because the published metrics grow with depth and width: their
//! argmax is the deepest, widest layer whatever the target. The defaults read scores that do
//! not grow with width, chosen held out on the graded benchmark. Candidates this run cannot
//! tell apart (noise.rs: twice the standard error of their difference, from the jackknife's
//! fold scores) are named as such rather than ranked as if the difference meant something.
//! The benchmark's figures come from `evidence.json`, never from this run.

mod evidence;
mod model_rule;
mod noise;
mod reliability;
mod strategy;

pub use evidence::{
    images_per_class, regime_for, Ceiling, Defaults, Evidence, Figures, Regimes, Selection, SWITCH,
};
pub use model_rule::{ModelRule, ModelScore, DEFAULT_MODEL_RULE, MODEL_RULES};
pub use noise::{choose, Candidate, Choice, SEPARATION};
pub use reliability::Reliability;
pub use strategy::{CutScore, Strategy, DEFAULT_STRATEGY, STRATEGIES};

use std::collections::BTreeMap;

use serde::Serialize;

use crate::metrics;

/// One scored (model, layer), as the recommendation reads it.
#[derive(Debug, Clone, Copy)]
pub struct LayerScores<'a> {
    pub model: &'a str,
    pub layer: &'a str,
    pub scores: &'a BTreeMap<String, f64>,
    /// Scores without each fold of the sample, for the metrics that have them.
    pub folds: &'a BTreeMap<String, Vec<f64>>,
}

/// What the advice is asked with.
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    pub primary: &'a str,
    /// The primary metric scores whole models (NCE, LEEP).
    pub per_model: bool,
    pub rule: &'a ModelRule,
    pub strategy: &'a Strategy,
    pub evidence: Option<&'a Evidence>,
    /// Usable images a class, on average: which benchmark regime speaks for this run.
    pub images_per_class: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recommendation {
    pub model: Option<String>,
    /// None when no layer score exists for the strategy.
    pub layer: Option<String>,
    /// The model rule and the metric it read.
    pub model_rule: String,
    pub metric: String,
    /// The model's score by `metric`, at its best layer `score_layer`, with its standard error.
    pub score: Option<f64>,
    pub score_layer: Option<String>,
    pub score_se: Option<f64>,
    /// Other models this run cannot tell apart from the chosen one by `metric`.
    pub models_within_noise: Vec<String>,
    /// Share of leave-one-fold-out rescorings in which the chosen model stays first.
    pub stays_first: Option<f64>,
    /// The strategy that chose the cut, the layer score it maximised, and the cut's score.
    pub strategy: String,
    pub cut_metric: String,
    pub cut_score: Option<f64>,
    pub cut_se: Option<f64>,
    /// Other layers of the model within noise of the chosen one, shallow to deep.
    pub alternatives: Vec<String>,
    /// What the benchmark measured for these rules, in the regime closest to this run.
    pub reliability: Option<Reliability>,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cut {
    pub layer: String,
    /// The strategy's score of that layer, and its standard error.
    pub score: f64,
    pub se: Option<f64>,
    /// Other layers of the model whose scores cannot be told apart from the chosen one's.
    pub alternatives: Vec<String>,
    /// Share of leave-one-fold-out rescorings in which this layer stays the model's best.
    pub stays_first: Option<f64>,
}

/// The recommendation and each model's cut. Rows without the needed score are left out; the
/// first of equal scores wins.
pub fn recommend(rows: &[LayerScores], ask: &Ask) -> (Recommendation, BTreeMap<String, Cut>) {
    let asked = ask.strategy.name;
    let ask = &Ask {
        strategy: ask.strategy.resolve(ask.images_per_class),
        ..*ask
    };
    let cut_metric = ask.strategy.cut_metric(ask.primary);
    let model_metric = ask.rule.metric(ask.primary);
    let mut models: Vec<&str> = Vec::new();
    for r in rows {
        if !models.contains(&r.model) {
            models.push(r.model);
        }
    }
    let cuts: BTreeMap<String, Cut> = models
        .iter()
        .filter_map(|m| Some(((*m).to_owned(), cut_of(rows, m, cut_metric, ask.strategy)?)))
        .collect();
    // Each model by its best layer's score.
    let best_layers: Vec<LayerScores> = models
        .iter()
        .filter_map(|m| best_row(rows, m, model_metric))
        .collect();
    let candidates: Vec<Candidate> = best_layers
        .iter()
        .map(|r| candidate(r, r.model, model_metric))
        .collect();
    let reliability = ask.evidence.map(|e| {
        Reliability::of(
            e,
            &format!("{model_metric}/best"),
            cut_metric,
            ask.images_per_class,
        )
    });
    let mut rec = Recommendation {
        model: None,
        layer: None,
        model_rule: ask.rule.name.to_owned(),
        metric: model_metric.to_owned(),
        score: None,
        score_layer: None,
        score_se: None,
        models_within_noise: Vec::new(),
        stays_first: None,
        strategy: asked.to_owned(),
        cut_metric: cut_metric.to_owned(),
        cut_score: None,
        cut_se: None,
        alternatives: Vec::new(),
        reliability,
        text: String::new(),
    };
    let Some(choice) = choose(&candidates, 0.0) else {
        rec.text = format!("No layer has a {model_metric} score");
        return (rec, cuts);
    };
    let pick = best_layers[choice.best];
    rec.model = Some(pick.model.to_owned());
    rec.score = Some(candidates[choice.best].score);
    rec.score_layer = Some(pick.layer.to_owned());
    rec.score_se = choice.se;
    rec.stays_first = choice.stays_first;
    rec.models_within_noise = choice
        .within
        .iter()
        .filter(|&&i| i != choice.best)
        .map(|&i| best_layers[i].model.to_owned())
        .collect();
    if let Some(cut) = cuts.get(pick.model) {
        rec.layer = Some(cut.layer.clone());
        rec.cut_score = Some(cut.score);
        rec.cut_se = cut.se;
        rec.alternatives = cut.alternatives.clone();
    }
    rec.text = words::sentence(&rec, rows, ask);
    (rec, cuts)
}

/// The model's row with the best score by `metric`.
fn best_row<'a>(rows: &[LayerScores<'a>], model: &str, metric: &str) -> Option<LayerScores<'a>> {
    let mut best: Option<(LayerScores, f64)> = None;
    for r in rows.iter().filter(|r| r.model == model) {
        if let Some(&s) = r.scores.get(metric).filter(|s| s.is_finite()) {
            if best.as_ref().is_none_or(|(_, b)| s > *b) {
                best = Some((*r, s));
            }
        }
    }
    best.map(|(r, _)| r)
}

fn candidate<'a>(r: &LayerScores<'a>, name: &'a str, metric: &str) -> Candidate<'a> {
    Candidate {
        name,
        score: r.scores.get(metric).copied().unwrap_or(f64::NAN),
        folds: r.folds.get(metric).map(Vec::as_slice),
    }
}

/// The model's cut by the strategy, with the layers within noise of it.
fn cut_of(rows: &[LayerScores], model: &str, metric: &str, strategy: &Strategy) -> Option<Cut> {
    let layers: Vec<&LayerScores> = rows.iter().filter(|r| r.model == model).collect();
    if strategy.score == CutScore::Deepest {
        let last = layers.last()?;
        return Some(Cut {
            layer: last.layer.to_owned(),
            score: last.scores.get(metric).copied().unwrap_or(f64::NAN),
            se: None,
            alternatives: Vec::new(),
            stays_first: None,
        });
    }
    let scored: Vec<&LayerScores> = layers
        .into_iter()
        .filter(|r| r.scores.get(metric).is_some_and(|s| s.is_finite()))
        .collect();
    let candidates: Vec<Candidate> = scored
        .iter()
        .map(|r| candidate(r, r.layer, metric))
        .collect();
    let choice = choose(&candidates, strategy.margin)?;
    Some(Cut {
        layer: candidates[choice.best].name.to_owned(),
        score: candidates[choice.best].score,
        se: choice.se,
        alternatives: choice
            .within
            .iter()
            .filter(|&&i| i != choice.best)
            .map(|&i| candidates[i].name.to_owned())
            .collect(),
        stays_first: choice.stays_first,
    })
}

mod words {
    //! The sentence a user reads.

    use super::*;

    pub fn sentence(rec: &Recommendation, rows: &[LayerScores], ask: &Ask) -> String {
        let model = rec.model.as_deref().unwrap_or_default();
        let label = metrics::label(&rec.metric);
        let cut_label = ask.strategy.cut_metric_label(ask.primary);
        let mut text = match &rec.layer {
            Some(layer) => format!(
                "Fine-tune {model}: keep everything up to {layer} and re-train what follows"
            ),
            None if ask.per_model && rec.metric == ask.primary => format!(
                "Fine-tune {model}; {} scores whole models, so choose the cut with a layer metric",
                rec.metric
            ),
            None => format!(
                "Fine-tune {model}; no layer has a {} score to choose the cut",
                rec.cut_metric
            ),
        };
        text += &format!(
            ".\n{model} has the best {label}: {}",
            value(rec.score, rec.score_se, rec.score_layer.as_deref())
        );
        if let (Some(layer), Some(score)) = (&rec.layer, rec.cut_score) {
            if ask.strategy.score != CutScore::Deepest {
                text += &format!(
                    "; {layer} has its best {cut_label}: {}",
                    value(Some(score), rec.cut_se, None)
                );
            }
        }
        if let Some(share) = rec.stays_first.filter(|s| *s < 1.0) {
            text += &format!(
                ".\n{model} stays first in {:.0}% of the rescorings that leave out one fold of the images",
                100.0 * share
            );
        }
        if !rec.models_within_noise.is_empty() {
            text += &format!(
                ".\nBy {label}, this run cannot tell {} apart from {model} (the differences are within twice their standard error); if you can afford two fine-tuning runs, try {model} and {}",
                list(&rec.models_within_noise.iter().map(String::as_str).collect::<Vec<_>>()),
                rec.models_within_noise[0]
            );
        }
        if let Some(layer) = &rec.layer {
            if !rec.alternatives.is_empty() {
                let order: Vec<&str> = rows
                    .iter()
                    .filter(|r| r.model == model)
                    .map(|r| r.layer)
                    .collect();
                let mut within: Vec<&str> = rec.alternatives.iter().map(String::as_str).collect();
                within.sort_by_key(|l| order.iter().position(|o| o == l));
                // The alternative furthest in depth from the pick differs most in what it keeps.
                let pos = |l: &str| order.iter().position(|o| *o == l).unwrap_or(0) as i64;
                let far = rec
                    .alternatives
                    .iter()
                    .max_by_key(|a| (pos(a) - pos(layer)).abs())
                    .map_or("", String::as_str);
                // Each alternative is compared with the pick, not with the others: two of them
                // may well be told apart.
                let verb = if within.len() == 1 { "is" } else { "are" };
                text += &format!(
                    ".\n{} {verb} within noise of {layer} by {cut_label}; if you can afford two fine-tuning runs, try {layer} and {far}",
                    list(&within)
                );
            }
        }
        if let Some(line) = rec
            .reliability
            .as_ref()
            .and_then(|r| r.statement(&label, &cut_label))
        {
            text += &format!(".\n{line}");
        }
        text.push('.');
        text
    }

    /// "0.912 ± 0.008 at layer3"
    fn value(score: Option<f64>, se: Option<f64>, layer: Option<&str>) -> String {
        let Some(score) = score else {
            return "no score".into();
        };
        let mut s = match se {
            Some(se) => format!("{} ± {}", round(score, se), round(se, se)),
            None => format!("{score:.4}"),
        };
        if let Some(layer) = layer {
            s += &format!(" at {layer}");
        }
        s
    }

    /// The value to two significant digits of its standard error (at least 3 decimals).
    fn round(v: f64, se: f64) -> String {
        let digits = if se > 0.0 {
            (1 - se.log10().floor() as i32).clamp(0, 8) as usize
        } else {
            4
        };
        format!("{v:.digits$}")
    }

    pub fn list(items: &[&str]) -> String {
        match items {
            [] => String::new(),
            [one] => (*one).to_owned(),
            [init @ .., last] => format!("{} and {last}", init.join(", ")),
        }
    }
}

#[cfg(test)]
mod tests;
