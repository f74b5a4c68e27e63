//! The single pass: every image decoded once, every model run on it, every requested layer's
//! pooled activations folded into its statistics, then every metric scored.
//!
//! Threads: the loader (`loader.rs`) decodes on the CPU workers and feeds a bounded channel; the
//! calling thread owns the models and the device and consumes batches in order. Nothing per image
//! is kept, so memory is the models, a few batches in flight and the statistics.

mod loader;
mod progress;
mod scoring;
mod stores;

pub use loader::DECODE_THREAD;
pub use progress::{Progress, Silent};

use std::path::PathBuf;
use std::time::Instant;

use crossbeam_channel::Receiver;
use tch::{Device, Kind, Tensor};

use crate::dataset::{self, Geometry, ImageFolder, Skip};
use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::stats::BatchLabels;
use crate::zoo::{self, ZooModel};
use loader::{Batch, Message};
use stores::ModelStats;

/// Batches decoded ahead of the device thread.
const PREFETCH: usize = 4;
/// Batches between checks for NaN/Inf in the statistics (each check waits for the device).
const FINITE_CHECK_EVERY: usize = 16;

/// Everything a report needs from a finished run.
pub struct Outcome {
    pub root: PathBuf,
    pub classes: Vec<String>,
    /// Usable images per class.
    pub per_class: Vec<u64>,
    pub skipped: Vec<Skip>,
    pub empty_classes: Vec<String>,
    pub results: Vec<LayerResult>,
    pub accumulator_bytes: usize,
    /// Disk used for LEEP's softmax rows.
    pub spilled_bytes: u64,
    pub device: String,
    pub timing: Timing,
}

pub struct LayerResult {
    pub model: String,
    pub layer: String,
    pub dim: usize,
    pub n: u64,
    /// Parameter elements fine-tuning re-trains above this layer, if the model's listing
    /// places it.
    pub params_after: Option<u64>,
    /// (metric, score) in the plan's metric order.
    pub scores: Vec<(String, f64)>,
    /// (metric, why it has no score here), e.g. NCE for a model without source logits.
    pub notes: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Timing {
    pub load_s: f64,
    pub pass_s: f64,
    pub score_s: f64,
    pub total_s: f64,
    pub images_per_s: f64,
}

pub fn run(plan: &Plan, progress: &dyn Progress) -> Result<Outcome> {
    let start = Instant::now();
    let cfg = &plan.config;
    let folder = dataset::scan(&cfg.dataset.root, cfg.dataset.max_per_class)?;
    for class in &folder.empty_classes {
        tracing::warn!("class folder `{class}` has no files; it is left out");
    }
    if folder.stray_files > 0 {
        tracing::warn!(
            "{} file(s) directly under {} belong to no class; ignored",
            folder.stray_files,
            folder.root.display()
        );
    }
    tracing::info!(
        "{} files in {} classes under {}",
        folder.items.len(),
        folder.classes.len(),
        folder.root.display()
    );

    crate::taps::run_graphs_unoptimised();
    let layout = stores::Plan::new(&plan.metrics);
    let models = plan
        .models
        .iter()
        .map(|m| ZooModel::load(m, plan.device, layout.wants_source(), plan.config.precision))
        .collect::<Result<Vec<_>>>()?;
    let mut stats = models
        .iter()
        .map(|m| layout.allocate(m, folder.classes.len()))
        .collect::<Result<Vec<_>>>()?;
    let accumulator_bytes: usize = stats.iter().map(ModelStats::bytes).sum();
    tracing::info!(
        "statistics for {} (model, layer) pairs: {:.1} MiB",
        models.iter().map(|m| m.layers.len()).sum::<usize>(),
        mib(accumulator_bytes)
    );
    let load_s = start.elapsed().as_secs_f64();

    let pass_start = Instant::now();
    progress.begin(folder.items.len());
    let skipped = pass(plan, &folder, &models, &mut stats, progress)?;
    progress.finish();
    let pass_s = pass_start.elapsed().as_secs_f64();

    let per_class = stats[0].first(0).counts().to_vec();
    check_classes(&folder, &per_class)?;
    let spilled_bytes = stats
        .iter()
        .filter_map(|s| s.source.as_ref())
        .map(|s| s.spilled_bytes())
        .sum();
    let score_start = Instant::now();
    let results = scoring::score(&plan.metrics, &models, &mut stats)?;
    let score_s = score_start.elapsed().as_secs_f64();
    let images: u64 = per_class.iter().sum();
    Ok(Outcome {
        root: folder.root.clone(),
        classes: folder.classes.clone(),
        per_class,
        skipped,
        empty_classes: folder.empty_classes.clone(),
        results,
        accumulator_bytes,
        spilled_bytes,
        device: crate::device::label(plan.device),
        timing: Timing {
            load_s,
            pass_s,
            score_s,
            total_s: start.elapsed().as_secs_f64(),
            images_per_s: images as f64 / pass_s.max(1e-9),
        },
    })
}

/// Runs the loader and the device loop; returns the skipped files.
fn pass(
    plan: &Plan,
    folder: &ImageFolder,
    models: &[ZooModel],
    stats: &mut [ModelStats],
    progress: &dyn Progress,
) -> Result<Vec<Skip>> {
    let geometries = zoo::geometries(models);
    let (tx, rx) = crossbeam_channel::bounded(PREFETCH);
    let batch_size = plan.config.batch_size;
    std::thread::scope(|scope| {
        let geoms = &geometries;
        scope.spawn(move || loader::produce(&folder.items, geoms, batch_size, plan.workers, tx));
        // `rx` moves into `consume` and is dropped when it returns, which stops the loader.
        consume(rx, plan.device, models, &geometries, stats, progress)
    })
}

fn consume(
    rx: Receiver<Message>,
    device: Device,
    models: &[ZooModel],
    geometries: &[Geometry],
    stats: &mut [ModelStats],
    progress: &dyn Progress,
) -> Result<Vec<Skip>> {
    let geometry_of: Vec<usize> = models
        .iter()
        .map(|m| {
            geometries
                .iter()
                .position(|g| *g == m.geometry)
                .unwrap_or(0)
        })
        .collect();
    let mut skipped = Vec::new();
    for message in rx {
        let batch = match message {
            Message::Batch(b) => b,
            Message::Failed(reason) => return Err(Error::Worker(reason)),
        };
        for skip in &batch.skipped {
            warn_skip(skipped.len(), skip);
            skipped.push(skip.clone());
        }
        if !batch.labels.is_empty() {
            let _span =
                tracing::debug_span!("batch", index = batch.index, images = batch.labels.len())
                    .entered();
            let inputs = to_device(&batch, geometries, device)
                .map_err(|e| Error::torch_op("moving a batch to the device", e))?;
            let labels = BatchLabels::new(&batch.labels, device)
                .map_err(|e| Error::torch_op("moving labels to the device", e))?;
            for ((model, model_stats), &g) in models.iter().zip(stats.iter_mut()).zip(&geometry_of)
            {
                let _span = tracing::debug_span!("model", name = %model.name).entered();
                let features = model.run(&model.normalise(&inputs[g])?)?;
                model_stats.update(model, &features, &labels, &batch.labels)?;
            }
            if (batch.index + 1) % FINITE_CHECK_EVERY == 0 {
                check_finite(models, stats)?;
            }
        }
        progress.advance(batch.files);
    }
    if skipped.len() > WARN_SKIPS {
        tracing::warn!(
            "{} more file(s) skipped; report.json lists them all",
            skipped.len() - WARN_SKIPS
        );
    }
    check_finite(models, stats)?;
    Ok(skipped)
}

const WARN_SKIPS: usize = 20;

fn warn_skip(already: usize, skip: &Skip) {
    if already < WARN_SKIPS {
        tracing::warn!("skipped {}: {}", skip.path.display(), skip.reason);
    }
}

/// One (B, 3, size, size) float tensor in [0, 1] per geometry, on the device.
fn to_device(
    batch: &Batch,
    geometries: &[Geometry],
    device: Device,
) -> Result<Vec<Tensor>, tch::TchError> {
    let rows = batch.labels.len() as i64;
    geometries
        .iter()
        .zip(&batch.pixels)
        .map(|(g, pixels)| {
            let s = g.size as i64;
            // (B, H, W, 3) bytes seen as (B, 3, H, W): channels-last, which oneDNN's
            // convolutions run 1.3 to 2 times faster than contiguous NCHW on CPU.
            Tensor::f_from_slice(pixels)?
                .f_view([rows, s, s, 3])?
                .f_to_device(device)?
                .f_permute([0, 3, 1, 2])?
                .f_to_kind(Kind::Float)?
                .f_div_scalar(255.0)
        })
        .collect()
}

fn check_finite(models: &[ZooModel], stats: &[ModelStats]) -> Result<()> {
    for (model, model_stats) in models.iter().zip(stats) {
        for (i, layer) in model.layers.iter().enumerate() {
            let finite = model_stats
                .first(i)
                .all_finite()
                .map_err(|e| Error::torch(&model.name, "checking the statistics", e))?;
            if !finite {
                return Err(Error::NonFinite {
                    model: model.name.clone(),
                    layer: layer.clone(),
                });
            }
        }
    }
    Ok(())
}

fn check_classes(folder: &ImageFolder, per_class: &[u64]) -> Result<()> {
    let usable: Vec<String> = folder
        .classes
        .iter()
        .zip(per_class)
        .filter(|(_, &n)| n > 0)
        .map(|(c, _)| c.clone())
        .collect();
    for (class, _) in folder
        .classes
        .iter()
        .zip(per_class)
        .filter(|(_, &n)| n == 0)
    {
        tracing::warn!("class `{class}` has no usable image; it is left out of the scores");
    }
    if usable.len() < 2 {
        return Err(Error::TooFewClasses {
            root: folder.root.clone(),
            found: usable.len(),
            names: dataset::class_list(&usable),
        });
    }
    Ok(())
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}
