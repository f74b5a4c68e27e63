//! The report of a run: its ranked (model, layer) rows, the recommendation and what the run
//! did, built from the pipeline's outcome; what the table, report.json, scores.csv and
//! scores.svg all show.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::config::TransRateConfig;
use crate::dataset::Skip;
use crate::metrics::jackknife::standard_error;
use crate::pipeline::{Outcome, StatsReport, Timing};
use crate::plan::Plan;
use crate::recommend::{
    images_per_class, recommend, Ask, Cut, Evidence, LayerScores, Recommendation,
};
use crate::zoo::ModelSpec;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub tool: &'static str,
    pub version: &'static str,
    pub config: PathBuf,
    pub device: String,
    /// The models as resolved: file, manifest, input, layout, layers, head.
    pub models: Vec<ModelSpec>,
    pub dataset: DatasetReport,
    /// The metrics computed; the first is the primary one.
    pub metrics: Vec<String>,
    /// Metrics whose score of a row is relative to the run's other candidate rows (NCTI), with
    /// how it is combined from the rows' raw terms (`results[].terms`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub relative: BTreeMap<String, String>,
    pub transrate: TransRateConfig,
    pub results: Vec<ResultRow>,
    pub recommendation: Recommendation,
    /// For each model, the layer to cut at by the cut strategy, with its alternatives.
    pub layer_cuts: BTreeMap<String, Cut>,
    pub memory: Memory,
    pub timing: Timing,
    /// Where the statistics came from: cache, checkpoint, shards.
    pub statistics: StatsReport,
    pub finished_unix: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct DatasetReport {
    pub root: PathBuf,
    /// Classes with usable images, in label order.
    pub classes: Vec<String>,
    /// Usable images.
    pub images: u64,
    pub per_class: Vec<u64>,
    pub skipped: Vec<Skip>,
    pub empty_classes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ResultRow {
    pub model: String,
    pub layer: String,
    /// False for a model with random weights (its manifest says so): a baseline, not a
    /// candidate anyone fine-tunes by choice.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pretrained: Option<bool>,
    pub dim: usize,
    pub n: u64,
    /// Parameter elements that fine-tuning re-trains when the model is cut here: every module
    /// that runs after this layer, the source head included (null where it cannot be counted).
    pub params_after: Option<u64>,
    pub scores: BTreeMap<String, f64>,
    /// Why a requested metric has no score here (e.g. LEEP for a model without source logits).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub notes: BTreeMap<String, String>,
    /// Images of the class-stratified sample whose rows k-NN, SFDA and NCTI read
    /// (`sample.max_images`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample_rows: Option<u64>,
    /// The raw terms a relative metric's score of this row was combined from, per metric.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub terms: BTreeMap<String, BTreeMap<String, f64>>,
    /// This run's jackknife standard error of the advice's scores (`folds`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub errors: BTreeMap<String, f64>,
    /// Those scores without each fold of the sample in turn, from which the errors come.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub folds: BTreeMap<String, Vec<f64>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Memory {
    /// Bytes of statistics on the device (per device part) when the pass starts.
    pub accumulator_bytes: usize,
    /// Bytes of feature rows in host memory at the end (classes kept as rows).
    pub host_bytes: usize,
    /// Bytes of disk used for LEEP's softmax rows (N x C_s x 4 per model, plus labels).
    pub spilled_bytes: u64,
    /// Bytes of disk holding per-class feature rows at the end: those spilled beyond
    /// `memory_budget` (src/stats/spill.rs).
    pub spilled_rows_bytes: u64,
}

impl Report {
    pub fn new(plan: &Plan, outcome: Outcome) -> Report {
        let metrics: Vec<String> = plan.metrics.iter().map(|m| m.name().to_owned()).collect();
        let results: Vec<ResultRow> = outcome
            .results
            .into_iter()
            .map(|r| result_row(plan, r))
            .collect();
        let results = with_single_image_notes(results, &outcome.classes, &outcome.per_class);
        let per_model = plan.metrics.first().is_some_and(|m| m.needs().source());
        let rows: Vec<LayerScores> = results
            .iter()
            .map(|r| LayerScores {
                model: &r.model,
                layer: &r.layer,
                scores: &r.scores,
                folds: &r.folds,
            })
            .collect();
        let ask = Ask {
            primary: plan.primary_metric(),
            per_model,
            rule: plan.model_rule,
            strategy: plan.strategy,
            evidence: Evidence::embedded(),
            images_per_class: images_per_class(&outcome.per_class),
        };
        let (recommendation, layer_cuts) = recommend(&rows, &ask);
        let (classes, per_class): (Vec<_>, Vec<_>) = outcome
            .classes
            .into_iter()
            .zip(outcome.per_class)
            .filter(|(_, n)| *n > 0)
            .unzip();
        Report {
            tool: "zoo-select",
            version: env!("CARGO_PKG_VERSION"),
            config: plan.config_path.clone(),
            device: outcome.device,
            models: plan.models.clone(),
            dataset: DatasetReport {
                root: outcome.root,
                images: per_class.iter().sum(),
                classes,
                per_class,
                skipped: outcome.skipped,
                empty_classes: outcome.empty_classes,
            },
            metrics,
            relative: plan
                .metrics
                .iter()
                .filter_map(|m| Some((m.name().to_owned(), m.relative()?.combination().to_owned())))
                .collect(),
            transrate: plan.config.transrate,
            results,
            recommendation,
            layer_cuts,
            memory: Memory {
                accumulator_bytes: outcome.accumulator_bytes,
                host_bytes: outcome.host_bytes,
                spilled_bytes: outcome.spilled_bytes,
                spilled_rows_bytes: outcome.spilled_rows_bytes,
            },
            timing: outcome.timing,
            statistics: outcome.statistics,
            finished_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        }
    }

    pub fn primary_metric(&self) -> &str {
        &self.recommendation.metric
    }

    /// Rows ordered by the primary metric, best first (ties keep the config's order).
    pub fn ranked(&self) -> Vec<&ResultRow> {
        let metric = self.primary_metric();
        let mut rows: Vec<&ResultRow> = self.results.iter().collect();
        rows.sort_by(|a, b| score_of(b, metric).total_cmp(&score_of(a, metric)));
        rows
    }
}

/// One (model, layer) of the outcome as the report shows it.
fn result_row(plan: &Plan, r: crate::pipeline::LayerResult) -> ResultRow {
    ResultRow {
        pretrained: plan
            .models
            .iter()
            .find(|m| m.name == r.model)
            .and_then(|m| m.pretrained),
        errors: r
            .folds
            .iter()
            .map(|(m, f)| (m.clone(), standard_error(f)))
            .filter(|(_, e)| e.is_finite())
            .collect(),
        folds: r.folds.into_iter().collect(),
        model: r.model,
        layer: r.layer,
        dim: r.dim,
        n: r.n,
        params_after: r.params_after,
        scores: r.scores.into_iter().collect(),
        notes: r.notes.into_iter().collect(),
        sample_rows: r.sample_rows,
        terms: r
            .terms
            .into_iter()
            .map(|(m, t)| (m, t.into_iter().collect()))
            .collect(),
    }
}

/// A score that classes of one usable image make meaningless in part (k-NN, GBC) says so in
/// its row's notes; a row without the score keeps the note saying why.
fn with_single_image_notes(
    mut results: Vec<ResultRow>,
    classes: &[String],
    per_class: &[u64],
) -> Vec<ResultRow> {
    let singles: Vec<String> = classes
        .iter()
        .zip(per_class)
        .filter(|(_, &n)| n == 1)
        .map(|(c, _)| c.clone())
        .collect();
    let Some(said) = crate::dataset::single_images(&singles) else {
        return results;
    };
    for row in &mut results {
        for (metric, why) in crate::dataset::TWO_PER_CLASS {
            if row.scores.contains_key(metric) && !row.notes.contains_key(metric) {
                let note = format!(
                    "{said}; {why}, which biases the score: give each class two images or more \
                     (add images, or remove those classes' folders)"
                );
                row.notes.insert(metric.to_owned(), note);
            }
        }
    }
    results
}

pub(crate) fn score_of(row: &ResultRow, metric: &str) -> f64 {
    row.scores.get(metric).copied().unwrap_or(f64::NEG_INFINITY)
}
