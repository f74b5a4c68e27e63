//! The single pass: every image decoded once, every model run on it, every requested layer's
//! pooled activations folded into its statistics, then every metric scored.
//!
//! `gather` finds what the cache already holds (src/stats_file), runs the pass (`pass.rs`) for
//! the rest only, on one or several devices, with checkpoints, and writes the new statistics
//! back. `merge` adds up the shard files of a split run instead. `finish` scores either. Nothing
//! per image is kept, so memory is the models, a few batches in flight and the statistics.

mod assemble;
mod checkpoint;
mod finite_check;
mod job;
pub mod loader;
mod memory;
mod merge;
mod outcome;
mod part;
mod pass;
mod progress;
mod score_cache;
mod scoring;
mod stop;
mod stopwatch;
mod stores;

pub use loader::{quiet_decoder_panics, DECODE_THREAD};
pub use merge::{merge, write_shard};
pub use outcome::{
    DeviceTime, Gathered, LayerResult, ModelLoad, Outcome, StatsReport, Steps, Timing,
};
pub use progress::{Progress, Silent};
pub use stop::stop_flag;

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::dataset::{self, ImageFolder, Skip};
use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::stats_file::{self, DatasetId, FileInfo, Shard};

use assemble::CacheUse;
use stores::Layout;

/// The one-command path: gather, then score.
pub fn run(plan: &Plan, progress: &dyn Progress) -> Result<Outcome> {
    let start = Instant::now();
    let gathered = gather(plan, progress)?;
    finish(plan, gathered, start)
}

/// Lists the images (this shard's only, with `--shard`) and identifies them.
fn images(plan: &Plan) -> Result<(ImageFolder, Vec<dataset::Item>, DatasetId)> {
    let folder = dataset::open(&plan.dataset)?;
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
    let items = match plan.shard {
        Some(Shard { index, count }) => dataset::shard_items(&folder.items, index, count),
        None => folder.items.clone(),
    };
    tracing::info!(
        "{} files in {} classes under {}{}",
        items.len(),
        folder.classes.len(),
        folder.root.display(),
        plan.shard
            .map_or(String::new(), |s| format!(" (shard {s})"))
    );
    let id = stats_file::dataset_id(&folder, &items);
    Ok((folder, items, id))
}

/// The statistics of every model and layer of the plan: from the cache where it holds them,
/// from a pass (resumed from its checkpoint, if any) for the rest.
pub fn gather(plan: &Plan, progress: &dyn Progress) -> Result<Gathered> {
    let start = Instant::now();
    plan.check_writable()?;
    let (folder, items, dataset) = images(plan)?;
    let layout = Layout::new(&plan.metrics);
    let kind = crate::device::kind(plan.device);
    let cache = CacheUse::open(plan);
    let mut found = cache.lookup(plan, &layout, &dataset, &kind)?;
    let mut ran = None;
    if !found.todo.is_empty() {
        if !found.statistics.reused.is_empty() {
            tracing::info!("computing {}", found.statistics.computed.join(", "));
        }
        let sample = match layout.sample_size() {
            0 => None,
            max => Some(dataset::sample_flags(&folder, max)),
        };
        let job = job::Job {
            plan,
            items: &items,
            keys: found
                .todo
                .iter()
                .map(|(i, _)| found.keys[*i].clone())
                .collect(),
            specs: found.todo.iter().map(|(_, s)| s.clone()).collect(),
            layout: &layout,
            dataset: &dataset,
            classes: folder.classes.len(),
            sample: sample.as_deref(),
        };
        let out = pass::run(&job, progress)?;
        found.statistics.resumed_files = out.resumed_files;
        ran = Some(out);
    }
    let skipped: Vec<Skip> = match &ran {
        Some(out) => out.skipped.clone(),
        None => found.skipped_before(),
    };
    let pass_s = ran.as_ref().map_or(0.0, |o| o.pass_s);
    let info = FileInfo {
        dataset: dataset.clone(),
        shard: plan.shard,
        progress: None,
        skipped: skipped.iter().map(Into::into).collect(),
        device_kind: kind,
        pass_s,
    };
    let (fresh, checkpoints) = match &mut ran {
        Some(out) => (
            std::mem::take(&mut out.models),
            std::mem::take(&mut out.checkpoints),
        ),
        None => (Vec::new(), Vec::new()),
    };
    let (models, all_kept) = cache.keep(plan, &mut found, fresh, &info)?;
    remove_checkpoints(plan, checkpoints, all_kept);
    let accumulator_bytes = match &ran {
        Some(out) => out.accumulator_bytes,
        // Nothing ran: what the statistics read from the cache take.
        None => models.iter().map(|m| m.stats.bytes()).sum(),
    };
    let ran = ran.map(|o| (o.load_s, o.loads, o.device_times, o.decoding));
    let (load_s, loads, device_times, decoding) = match ran {
        Some((l, loads, times, decoding)) => (l, loads, times, Some(decoding)),
        None => (0.0, Vec::new(), Vec::new(), None),
    };
    Ok(Gathered {
        info,
        models,
        empty_classes: folder.empty_classes.clone(),
        load_s: load_s.max(start.elapsed().as_secs_f64() - pass_s),
        loads,
        device_times,
        decoding,
        pass_s,
        accumulator_bytes,
        statistics: found.statistics,
    })
}

/// Only once the statistics are safe (in the cache, or about to be scored) do this pass's
/// checkpoints go; other runs' (other shards sharing the folder) are not ours to remove. Where
/// the cache could not keep them, they stay until a later run writes the report.
fn remove_checkpoints(plan: &Plan, checkpoints: Vec<PathBuf>, all_kept: bool) {
    if all_kept {
        for path in checkpoints {
            let _ = std::fs::remove_file(path);
        }
    }
    // The folders too, once empty (another shard's checkpoint keeps them; its writer makes
    // them again if need be).
    let _ = std::fs::remove_dir(&plan.checkpoints).and_then(|()| {
        plan.checkpoints
            .parent()
            .map_or(Ok(()), std::fs::remove_dir)
    });
}

/// Scores gathered statistics into an outcome.
pub fn finish(plan: &Plan, mut gathered: Gathered, start: Instant) -> Result<Outcome> {
    let classes = gathered.info.dataset.classes.clone();
    let per_class = match gathered.models.first() {
        Some(m) if !m.stats.layers.is_empty() => m.stats.first(0).counts().to_vec(),
        _ => vec![0; classes.len()],
    };
    check_classes(&gathered.info.dataset.root, &classes, &per_class)?;
    for m in &mut gathered.models {
        // Layers a cache entry holds beyond the plan's are not scored.
        let n = plan
            .models
            .iter()
            .find(|s| s.name == m.key.name)
            .map_or(m.stats.layers.len(), |s| s.layers.len());
        m.stats.layers.truncate(n);
    }
    let spilled_bytes = gathered
        .models
        .iter()
        .filter_map(|m| m.stats.source.as_ref())
        .map(|s| s.spilled_bytes())
        .sum();
    let host_bytes = gathered.models.iter().map(|m| m.stats.host_bytes()).sum();
    let spilled_rows_bytes = gathered
        .models
        .iter()
        .map(|m| m.stats.spilled_rows_bytes())
        .sum();
    let score_start = Instant::now();
    let folds = plan.folds_for(crate::recommend::images_per_class(&per_class));
    let scores = plan
        .cache
        .as_deref()
        .map(|dir| score_cache::ScoreCache::new(dir, plan, &folds));
    let results = scoring::score(&plan.metrics, &mut gathered.models, scores.as_ref(), &folds)?;
    let score_s = score_start.elapsed().as_secs_f64();
    let images: u64 = per_class.iter().sum();
    Ok(Outcome {
        root: gathered.info.dataset.root.clone(),
        classes,
        per_class,
        skipped: gathered.info.skipped.iter().map(Skip::from).collect(),
        empty_classes: gathered.empty_classes,
        results,
        accumulator_bytes: gathered.accumulator_bytes,
        host_bytes,
        spilled_bytes,
        spilled_rows_bytes,
        device: plan.device_label(),
        timing: Timing {
            load_s: gathered.load_s,
            pass_s: gathered.pass_s,
            models: gathered.loads,
            devices: gathered.device_times,
            decoding: gathered.decoding,
            score_s,
            total_s: start.elapsed().as_secs_f64(),
            images_per_s: if gathered.pass_s > 0.0 {
                images as f64 / gathered.pass_s
            } else {
                0.0
            },
        },
        statistics: gathered.statistics,
    })
}

fn check_classes(root: &Path, classes: &[String], per_class: &[u64]) -> Result<()> {
    let usable: Vec<String> = classes
        .iter()
        .zip(per_class)
        .filter(|(_, &n)| n > 0)
        .map(|(c, _)| c.clone())
        .collect();
    for (class, _) in classes.iter().zip(per_class).filter(|(_, &n)| n == 0) {
        tracing::warn!("class `{class}` has no usable image; it is left out of the scores");
    }
    if usable.len() < 2 {
        return Err(Error::TooFewClasses {
            root: root.to_owned(),
            found: usable.len(),
            names: dataset::class_list(&usable),
        });
    }
    Ok(())
}
