//! From scores to a decision: the best (model, layer) by the primary metric, said in words, and
//! for each model the layer to cut at.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{score_of, ResultRow};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recommendation {
    pub model: String,
    pub layer: String,
    pub metric: String,
    pub score: f64,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cut {
    pub layer: String,
    pub score: f64,
}

/// The recommendation and the per-model cuts; the first of equal scores wins. `results` must
/// not be empty (a run always scores at least one layer).
pub fn rank(results: &[ResultRow], metric: &str) -> (Recommendation, BTreeMap<String, Cut>) {
    let mut cuts: BTreeMap<String, Cut> = BTreeMap::new();
    let mut best: Option<&ResultRow> = None;
    for row in results {
        let score = score_of(row, metric);
        if best.is_none_or(|b| score > score_of(b, metric)) {
            best = Some(row);
        }
        let better = cuts.get(&row.model).is_none_or(|c| score > c.score);
        if better {
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
        Some(row) => Recommendation {
            model: row.model.clone(),
            layer: row.layer.clone(),
            metric: metric.to_owned(),
            score: score_of(row, metric),
            text: format!(
                "Fine-tune {}: keep everything up to {} and re-train what follows ({} {:.4})",
                row.model,
                row.layer,
                metric,
                score_of(row, metric)
            ),
        },
        None => Recommendation {
            model: String::new(),
            layer: String::new(),
            metric: metric.to_owned(),
            score: f64::NAN,
            text: "No layer was scored".to_owned(),
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
        let (rec, cuts) = rank(&rows, "transrate");
        assert_eq!(
            (rec.model.as_str(), rec.layer.as_str(), rec.score),
            ("a", "l2", 3.0)
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
}
