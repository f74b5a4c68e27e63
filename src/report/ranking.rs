//! From scores to a decision: the best (model, layer) by the primary metric, said in words, and
//! for each model the layer to cut at.

use std::collections::BTreeMap;

use serde::Serialize;

use super::ResultRow;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recommendation {
    pub model: Option<String>,
    /// None when the metric scores whole models (NCE, LEEP): it cannot choose a cut.
    pub layer: Option<String>,
    pub metric: String,
    pub score: Option<f64>,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cut {
    pub layer: String,
    pub score: f64,
}

/// The recommendation and, for a metric that scores layers, each model's best cut; the first
/// of equal scores wins. Rows without a score for `metric` are left out. `per_model` says the
/// metric scores whole models (the same value on every layer).
pub fn rank(
    results: &[ResultRow],
    metric: &str,
    per_model: bool,
) -> (Recommendation, BTreeMap<String, Cut>) {
    let mut cuts: BTreeMap<String, Cut> = BTreeMap::new();
    let mut best: Option<(&ResultRow, f64)> = None;
    for row in results {
        let Some(&score) = row.scores.get(metric) else {
            continue;
        };
        if best.is_none_or(|(_, b)| score > b) {
            best = Some((row, score));
        }
        if !per_model && cuts.get(&row.model).is_none_or(|c| score > c.score) {
            cuts.insert(
                row.model.clone(),
                Cut {
                    layer: row.layer.clone(),
                    score,
                },
            );
        }
    }
    let recommendation = match best {
        Some((row, score)) if per_model => Recommendation {
            model: Some(row.model.clone()),
            layer: None,
            metric: metric.to_owned(),
            score: Some(score),
            text: format!(
                "Fine-tune {} ({metric} {score:.4}); {metric} scores whole models, so choose the cut with a layer metric",
                row.model
            ),
        },
        Some((row, score)) => Recommendation {
            model: Some(row.model.clone()),
            layer: Some(row.layer.clone()),
            metric: metric.to_owned(),
            score: Some(score),
            text: format!(
                "Fine-tune {}: keep everything up to {} and re-train what follows ({metric} {score:.4})",
                row.model, row.layer
            ),
        },
        None => Recommendation {
            model: None,
            layer: None,
            metric: metric.to_owned(),
            score: None,
            text: format!("No layer has a {metric} score"),
        },
    };
    (recommendation, cuts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(model: &str, layer: &str, score: f64) -> ResultRow {
        ResultRow {
            model: model.into(),
            layer: layer.into(),
            dim: 4,
            n: 10,
            scores: [("transrate".to_owned(), score)].into(),
            notes: Default::default(),
        }
    }

    #[test]
    fn best_pair_and_cut_per_model() {
        let rows = [
            row("a", "l1", 1.0),
            row("a", "l2", 3.0),
            row("b", "l1", 2.5),
            row("b", "l2", 3.0),
        ];
        let (rec, cuts) = rank(&rows, "transrate", false);
        assert_eq!(
            (rec.model.as_deref(), rec.layer.as_deref(), rec.score),
            (Some("a"), Some("l2"), Some(3.0))
        );
        assert_eq!(
            rec.text,
            "Fine-tune a: keep everything up to l2 and re-train what follows (transrate 3.0000)"
        );
        assert_eq!(
            cuts["a"],
            Cut {
                layer: "l2".into(),
                score: 3.0
            }
        );
        assert_eq!(
            cuts["b"],
            Cut {
                layer: "l2".into(),
                score: 3.0
            }
        );
    }

    #[test]
    fn model_metrics_choose_no_cut() {
        let rows = [
            row("a", "l1", 1.0),
            row("a", "l2", 1.0),
            row("b", "l1", 2.0),
        ];
        let (rec, cuts) = rank(&rows, "transrate", true);
        assert_eq!((rec.model.as_deref(), rec.layer), (Some("b"), None));
        assert!(cuts.is_empty());
        let (rec, _) = rank(&rows, "leep", false);
        assert_eq!(
            (rec.model, rec.text.as_str()),
            (None, "No layer has a leep score")
        );
    }
}
