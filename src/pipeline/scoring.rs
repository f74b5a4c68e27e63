//! The end of the pass: every metric finishes its statistics into scores. Source metrics (NCE,
//! LEEP) are scored once per model and shown on each of its layers; a model without source
//! logits gets a note instead of a score. Relative metrics (NCTI) first finish every row into
//! raw terms; their scores come last, from the terms of all the run's rows together, so they
//! are the same whether the statistics came from one pass, the cache or merged shards.
//!
//! A metric undefined on one row because of its data (a NaN, a matrix that is not positive
//! definite: features that barely vary, from a dead layer or near-identical images; too few
//! sampled images) leaves that row without its score, with a note saying why and a warning, and
//! the run goes on: one degenerate layer must not cost the report of the whole zoo, and no score
//! is better than a wrong one. Any other failure (memory, the GPU) stops the run.

use crate::error::{Error, Result};
use crate::metrics::jackknife::{self, Folds};
use crate::metrics::{degenerate, read_sample, Metric};
use crate::stats_file::ModelEntry;
use crate::zoo::SourceLogits;

use super::outcome::LayerResult;
use super::score_cache::ScoreCache;

pub fn score(
    metrics: &[Box<dyn Metric>],
    models: &mut [ModelEntry],
    kept: Option<&ScoreCache>,
    folds: &Folds,
) -> Result<Vec<LayerResult>> {
    let mut results = Vec::new();
    for entry in models.iter_mut() {
        let file = kept.zip(entry.file.clone());
        let layers: Vec<String> = entry
            .stats
            .layers
            .iter()
            .map(|l| l.meta.name.clone())
            .collect();
        if let Some(rows) = file.as_ref().and_then(|(k, f)| k.load(f, &layers)) {
            tracing::debug!(
                "model `{}`: scores kept from an earlier run",
                entry.key.name
            );
            for row in &rows {
                row.warn_again();
            }
            results.extend(rows);
            continue;
        }
        let rows = score_model(metrics, entry, folds)?;
        if let Some((k, f)) = &file {
            k.store(f, &rows);
        }
        results.extend(rows);
    }
    combine(metrics, &mut results)?;
    Ok(results)
}

/// One model's rows: its layer metrics' scores and its relative metrics' terms.
fn score_model(
    metrics: &[Box<dyn Metric>],
    entry: &mut ModelEntry,
    folds: &Folds,
) -> Result<Vec<LayerResult>> {
    let mut results = Vec::new();
    let model = Model {
        name: entry.key.name.clone(),
        source: entry.source_logits.clone(),
    };
    let model_stats = &mut entry.stats;
    let _span = tracing::debug_span!("score", model = %model.name).entered();
    let from_source = source_scores(metrics, model_stats, &model);
    let model_stats = &*model_stats;
    for (i, meta) in model_stats.layers.iter().map(|l| &l.meta).enumerate() {
        let layer = &meta.name;
        let _span = tracing::debug_span!("layer", name = %layer).entered();
        let first = model_stats.first(i);
        let mut result = LayerResult {
            model: model.name.clone(),
            layer: layer.clone(),
            dim: first.dim(),
            n: first.total(),
            params_after: meta.params_after,
            scores: Vec::new(),
            notes: Vec::new(),
            sample_rows: first.sample_len().map(|n| n as u64),
            terms: Vec::new(),
            folds: Vec::new(),
        };
        for m in metrics {
            let score = match from_source.iter().find(|(name, _)| *name == m.name()) {
                Some((_, Ok(v))) => Ok(*v),
                Some((_, Err(note))) => {
                    result.notes.push((m.name().to_owned(), note.clone()));
                    continue;
                }
                None => {
                    let store =
                        model_stats
                            .store(i, m.transform())
                            .ok_or_else(|| Error::Metric {
                                metric: m.name().to_owned(),
                                message: "its statistics were not gathered".into(),
                            })?;
                    if let Some(why) = degenerate::check(store)
                        .map_err(|e| in_context(torch_failure(m.name(), e), &model, layer))?
                    {
                        result.no_score(m.name(), (why, false));
                        continue;
                    }
                    if let Some(relative) = m.relative() {
                        let terms = match relative.terms(store) {
                            Ok(terms) => terms,
                            Err(e) => {
                                let why = failure(e).map_err(|e| in_context(e, &model, layer))?;
                                result.no_score(m.name(), why);
                                continue;
                            }
                        };
                        if let Some(bad) = terms.iter().find(|t| !t.is_finite()) {
                            result.no_score(m.name(), (format!("a term is {bad}"), true));
                            continue;
                        }
                        let names = relative.term_names().iter().map(|n| (*n).to_owned());
                        result
                            .terms
                            .push((m.name().to_owned(), names.zip(terms).collect()));
                        continue;
                    }
                    match m.score_layer(store) {
                        Some(r) => r,
                        None => continue,
                    }
                }
            };
            let score = match score {
                Ok(score) => score,
                Err(e) => {
                    let why = failure(e).map_err(|e| in_context(e, &model, layer))?;
                    result.no_score(m.name(), why);
                    continue;
                }
            };
            if !score.is_finite() {
                result.no_score(m.name(), (format!("the score is {score}"), true));
                continue;
            }
            result.scores.push((m.name().to_owned(), score));
            if folds.every_layer.iter().any(|name| name == m.name()) {
                add_folds(&mut result, m.as_ref(), model_stats, i, folds.folds)
                    .map_err(|e| in_context(e, &model, layer))?;
            }
        }
        results.push(result);
    }
    add_best_layer_folds(metrics, &mut results, model_stats, folds, &model)?;
    Ok(results)
}

/// The source metrics' scores of the model, the same on each of its layers; a note where the
/// model has no source logits.
fn source_scores<'m>(
    metrics: &'m [Box<dyn Metric>],
    stats: &mut crate::stats::ModelStats,
    model: &Model,
) -> Vec<(&'m str, Result<f64, String>)> {
    let mut out = Vec::new();
    for m in metrics {
        let score = match stats.source.as_mut() {
            Some(source) => m.score_source(source).map(|r| r.map_err(|e| e.to_string())),
            None if m.needs().source() => Some(Err(no_source_reason(&model.source))),
            None => None,
        };
        if let Some(score) = score {
            out.push((m.name(), score));
        }
    }
    out
}

/// The model's score: fold scores of its best layer only, the one that stands for the model.
fn add_best_layer_folds(
    metrics: &[Box<dyn Metric>],
    results: &mut [LayerResult],
    stats: &crate::stats::ModelStats,
    folds: &Folds,
    model: &Model,
) -> Result<()> {
    for m in metrics
        .iter()
        .filter(|m| folds.best_layer.iter().any(|n| n == m.name()))
    {
        if let Some(i) = best_row(results, m.name()) {
            let layer = results[i].layer.clone();
            add_folds(&mut results[i], m.as_ref(), stats, i, folds.folds)
                .map_err(|e| in_context(e, model, &layer))?;
        }
    }
    Ok(())
}

/// The row with the best score by `metric` (the first of equal ones).
fn best_row(results: &[LayerResult], metric: &str) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for (i, r) in results.iter().enumerate() {
        if let Some(&(_, s)) = r.scores.iter().find(|(n, _)| n == metric) {
            if best.is_none_or(|(_, b)| s > b) {
                best = Some((i, s));
            }
        }
    }
    best.map(|(i, _)| i)
}

/// The metric's leave-one-fold-out scores of layer `i`, onto its row (none where the metric
/// does not read the sample or a fold leaves it without a score).
fn add_folds(
    result: &mut LayerResult,
    metric: &dyn Metric,
    stats: &crate::stats::ModelStats,
    i: usize,
    folds: usize,
) -> Result<()> {
    if let Some(store) = stats.store(i, metric.transform()) {
        if let Some(left_out) = fold_scores(metric, store, folds)? {
            result.folds.push((metric.name().to_owned(), left_out));
        }
    }
    Ok(())
}

/// A sample metric's scores without each fold; None for other metrics and where a fold leaves
/// the metric without a score.
fn fold_scores(
    metric: &dyn Metric,
    store: &crate::stats::ClassMoments,
    folds: usize,
) -> Result<Option<Vec<f64>>> {
    if store.sample_len().is_none() {
        return Ok(None);
    }
    let (rows, labels, ids) = read_sample(store).map_err(|e| torch_failure(metric.name(), e))?;
    jackknife::leave_fold_out(metric, &rows, &labels, &ids, folds)
}

/// The relative metrics' scores: every row's terms against all the others', then each row's
/// scores back in the metrics' order.
fn combine(metrics: &[Box<dyn Metric>], results: &mut [LayerResult]) -> Result<()> {
    let mut any = false;
    for m in metrics {
        let Some(relative) = m.relative() else {
            continue;
        };
        let (rows, terms): (Vec<usize>, Vec<Vec<f64>>) = results
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                let (_, t) = r.terms.iter().find(|(name, _)| name == m.name())?;
                Some((i, t.iter().map(|(_, v)| *v).collect()))
            })
            .unzip();
        let scores = relative.combine(&terms)?;
        for (i, score) in rows.into_iter().zip(scores) {
            let r = &mut results[i];
            if !score.is_finite() {
                r.no_score(m.name(), (format!("the score is {score}"), true));
                continue;
            }
            r.scores.push((m.name().to_owned(), score));
        }
        any = true;
    }
    if any {
        let order = |name: &str| metrics.iter().position(|m| m.name() == name);
        for r in results.iter_mut() {
            r.scores.sort_by_key(|(name, _)| order(name));
        }
    }
    Ok(())
}

/// Why a metric has no score on a row (and whether the cause is numerical), or the error that
/// stops the run: only what the metrics know to come from the row's data is a property of the
/// row; memory, CUDA and every other failure is not (metrics/metric.rs, `torch_err`).
fn failure(e: Error) -> Result<(String, bool)> {
    match e {
        Error::Degenerate {
            message, numerical, ..
        } => Ok((message, numerical)),
        other => Err(other),
    }
}

impl LayerResult {
    /// The warnings `no_score` gave when these scores were computed, for a run that reads
    /// them from the score cache.
    fn warn_again(&self) {
        for (metric, note) in self
            .notes
            .iter()
            .filter(|(_, n)| n.starts_with("no score: "))
        {
            tracing::warn!(
                "{metric}: model `{}` layer `{}`: {note}",
                self.model,
                self.layer
            );
        }
    }

    /// `metric` failed on this row: a note in the report, a warning now.
    fn no_score(&mut self, metric: &str, (why, numerical): (String, bool)) {
        let hint = if numerical {
            " (features that barely vary, from a dead layer or near-identical images, do this)"
        } else {
            ""
        };
        let note = format!("no score: {why}{hint}");
        tracing::warn!(
            "{metric}: model `{}` layer `{}`: {note}",
            self.model,
            self.layer
        );
        self.notes.push((metric.to_owned(), note));
    }
}

fn no_source_reason(source: &SourceLogits) -> String {
    match source {
        SourceLogits::Missing(why) => format!("no source logits: {why}"),
        _ => "no source logits".to_owned(),
    }
}

/// What a message needs to name the model.
struct Model {
    name: String,
    source: SourceLogits,
}

/// The check's own arithmetic failing is not a property of the data: it stops the run.
fn torch_failure(metric: &str, e: tch::TchError) -> Error {
    Error::Metric {
        metric: metric.to_owned(),
        message: crate::error::torch_message(&e),
    }
}

fn in_context(e: Error, model: &Model, layer: &str) -> Error {
    match e {
        Error::Metric { metric, message } => Error::Metric {
            metric,
            message: format!("model `{}` layer `{layer}`: {message}", model.name),
        },
        other => other,
    }
}
