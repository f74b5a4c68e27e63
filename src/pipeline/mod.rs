//! The single pass: every image decoded once, every model run on it, every requested layer's
//! pooled activations folded into its statistics, then every metric scored.
//!
//! `gather` finds what the cache already holds (src/stats_file), runs the pass (`pass.rs`) for
//! the rest only, on one or several devices, with checkpoints, and writes the new statistics
//! back. `merge` adds up the shard files of a split run instead. `finish` scores either. Nothing
//! per image is kept, so memory is the models, a few batches in flight and the statistics.

mod checkpoint;
mod finite_check;
mod job;
pub mod loader;
mod memory;
mod outcome;
mod part;
mod pass;
mod progress;
mod score_cache;
mod scoring;
mod stop;
mod stopwatch;
mod stores;

pub use loader::DECODE_THREAD;
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
use crate::stats::ModelStats;
use crate::stats_file::{
    self, Cache, DatasetId, FileInfo, LayerMeta, ModelEntry, ModelKey, Shard, StatsFile,
};
use crate::zoo::{ModelSpec, SourceLogits};
pub use memory::{RowBudget, Spiller};
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
    let cache = plan.cache.as_deref().map(Cache::new);
    let keep = plan.cache_writable();
    if let (Some(cache), true) = (&cache, keep) {
        let removed = cache.sweep();
        if removed > 0 {
            tracing::info!(
                "cache {}: removed {removed} temporary file(s) that killed runs left",
                cache.dir.display()
            );
        }
    }
    let mut statistics = StatsReport {
        cache: plan.cache.clone(),
        ..StatsReport::default()
    };

    // What the cache holds, per model: usable layers by name, and the rest to compute.
    let mut keys = Vec::with_capacity(plan.models.len());
    let mut cached: Vec<Option<(ModelEntry, FileInfo)>> = Vec::with_capacity(plan.models.len());
    let mut todo: Vec<(usize, ModelSpec)> = Vec::new();
    let mut cache_spiller = Spiller::new(memory::file_rows_budget(plan));
    let model_keys = stats_file::model_keys(&plan.models, plan.precision)?;
    for ((i, spec), key) in plan.models.iter().enumerate().zip(model_keys) {
        let entry = cache
            .as_ref()
            .and_then(|c| c.load(&key, &dataset, plan.shard, &kind, plan.device));
        let missing: Vec<String> = match &entry {
            Some((e, _)) if source_covered(&layout, e) => spec
                .layers
                .iter()
                .filter(|l| !cached_layer(&layout, e, l))
                .cloned()
                .collect(),
            _ => spec.layers.clone(),
        };
        for layer in spec.layers.iter().filter(|l| !missing.contains(l)) {
            statistics.reused.push(format!("{}/{layer}", spec.name));
        }
        if !missing.is_empty() {
            for layer in &missing {
                statistics.computed.push(format!("{}/{layer}", spec.name));
            }
            let mut sub = spec.clone();
            sub.layers = missing;
            todo.push((i, sub));
        }
        keys.push(key);
        cached.push(entry);
        // Cache entries are read whole: their rows spill as a pass's would.
        cache_spiller.spill_over(
            cached
                .iter_mut()
                .flatten()
                .flat_map(|(e, _)| e.stats.stores_mut()),
        )?;
    }
    if !statistics.reused.is_empty() {
        tracing::info!(
            "cache {}: reused {} (model, layer) pair(s): {}",
            plan.cache
                .as_deref()
                .map_or(String::new(), |p| p.display().to_string()),
            statistics.reused.len(),
            statistics.reused.join(", ")
        );
    }

    let sample = match layout.sample_size() {
        0 => None,
        max => Some(dataset::sample_flags(&folder, max)),
    };
    let mut fresh: Vec<Option<ModelEntry>> = (0..plan.models.len()).map(|_| None).collect();
    let (mut skipped, mut load_s, mut pass_s, mut accumulator_bytes) = (None, 0.0, 0.0, 0);
    let mut loads = Vec::new();
    let mut device_times = Vec::new();
    let mut decoding = None;
    let mut checkpoints = Vec::new();
    if !todo.is_empty() {
        if !statistics.reused.is_empty() {
            tracing::info!("computing {}", statistics.computed.join(", "));
        }
        let job = job::Job {
            plan,
            items: &items,
            keys: todo.iter().map(|(i, _)| keys[*i].clone()).collect(),
            specs: todo.iter().map(|(_, s)| s.clone()).collect(),
            layout: &layout,
            dataset: &dataset,
            classes: folder.classes.len(),
            sample: sample.as_deref(),
        };
        let out = pass::run(&job, progress)?;
        statistics.resumed_files = out.resumed_files;
        load_s = out.load_s;
        loads = out.loads;
        device_times = out.device_times;
        decoding = Some(out.decoding);
        pass_s = out.pass_s;
        accumulator_bytes = out.accumulator_bytes;
        skipped = Some(out.skipped);
        checkpoints = out.checkpoints;
        for ((i, _), entry) in todo.iter().zip(out.models) {
            fresh[*i] = Some(entry);
        }
    }
    let skipped: Vec<Skip> = match skipped {
        Some(s) => s,
        None => cached
            .iter()
            .flatten()
            .next()
            .map(|(_, info)| info.skipped.iter().map(Skip::from).collect())
            .unwrap_or_default(),
    };
    let info = FileInfo {
        dataset: dataset.clone(),
        shard: plan.shard,
        progress: None,
        skipped: skipped.iter().map(Into::into).collect(),
        device_kind: kind.clone(),
        pass_s,
    };

    let mut models = Vec::with_capacity(plan.models.len());
    let mut all_kept = true;
    for (((spec, key), cached), fresh) in plan.models.iter().zip(keys).zip(cached).zip(fresh) {
        let mut entry = assemble(spec, key, cached.map(|(e, _)| e), fresh, plan.device)?;
        let computed = statistics
            .computed
            .iter()
            .any(|c| c.starts_with(&format!("{}/", spec.name)));
        if let (Some(cache), true, true) = (&cache, keep, computed) {
            // A full or failing cache costs the next run its reuse, never this run its pass.
            if let Err(e) = cache.store(&mut entry, info.clone(), plan.device) {
                all_kept = false;
                tracing::warn!(
                    "{e}: model `{}`'s statistics are not kept in the cache, the run goes on; \
                     free space there or give `cache:` another folder",
                    spec.name
                );
            }
        }
        models.push(entry);
    }
    // Only now are the statistics safe (in the cache, or about to be scored): other runs'
    // checkpoints (other shards sharing the folder) are not ours to remove. Where the cache
    // could not keep them, the checkpoints stay until the report is written by a later run.
    if all_kept {
        for path in checkpoints {
            let _ = std::fs::remove_file(path);
        }
    }
    // Nor the folders, once empty (another shard's checkpoint keeps them; its writer makes
    // them again if need be).
    let _ = std::fs::remove_dir(&plan.checkpoints).and_then(|()| {
        plan.checkpoints
            .parent()
            .map_or(Ok(()), std::fs::remove_dir)
    });
    if todo.is_empty() {
        // Nothing ran: what the statistics read from the cache take.
        accumulator_bytes = models.iter().map(|m| m.stats.bytes()).sum();
    }
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
        statistics,
    })
}

/// Whether a cache entry holds the source statistics the metrics need (a model without source
/// logits needs none).
fn source_covered(layout: &Layout, entry: &ModelEntry) -> bool {
    match entry.source_logits {
        SourceLogits::Missing(_) => true,
        SourceLogits::Unwanted => !layout.wants_source(),
        _ => layout.covers_source(entry.stats.source.as_ref()),
    }
}

fn cached_layer(layout: &Layout, entry: &ModelEntry, layer: &str) -> bool {
    entry
        .layers
        .iter()
        .position(|m| m.name == layer)
        .is_some_and(|i| layout.covers_layer(&entry.stats.layers[i]))
}

/// One model's statistics in the plan's layer order, from the cache and the pass; layers the
/// cache held beyond the plan's stay in the entry (after them), so rewriting it loses nothing.
fn assemble(
    spec: &ModelSpec,
    key: ModelKey,
    cached: Option<ModelEntry>,
    fresh: Option<ModelEntry>,
    device: tch::Device,
) -> Result<ModelEntry> {
    let torch = |e| Error::torch(&spec.name, "reading cached statistics", e);
    let mut pool: Vec<(
        LayerMeta,
        Vec<(crate::stats::Transform, crate::stats::ClassMoments)>,
    )> = Vec::new();
    let mut source = None;
    let mut source_logits = SourceLogits::Unwanted;
    // The cache file holds exactly these statistics only if the pass added none.
    let file = match (&cached, &fresh) {
        (Some(c), None) => c.file.clone(),
        _ => None,
    };
    if let Some(mut c) = cached {
        let mut stats = c.stats.to_device(device).map_err(torch)?;
        pool.extend(c.layers.drain(..).zip(stats.layers.drain(..)));
        source = stats.source.take();
        source_logits = c.source_logits;
    }
    if let Some(f) = fresh {
        // Fresh statistics replace cached ones of the same layer.
        let fresh_names: Vec<String> = f.layers.iter().map(|l| l.name.clone()).collect();
        pool.retain(|(m, _)| !fresh_names.contains(&m.name));
        pool.extend(f.layers.into_iter().zip(f.stats.layers));
        if f.stats.source.is_some() || matches!(f.source_logits, SourceLogits::Missing(_)) {
            source = f.stats.source;
            source_logits = f.source_logits;
        } else if source.is_none() {
            source_logits = f.source_logits;
        }
    }
    let mut layers = Vec::new();
    let mut metas = Vec::new();
    for name in &spec.layers {
        let i = pool
            .iter()
            .position(|(m, _)| &m.name == name)
            .ok_or_else(|| Error::MissingStatistics {
                model: spec.name.clone(),
                layer: name.clone(),
            })?;
        let (m, l) = pool.remove(i);
        metas.push(m);
        layers.push(l);
    }
    for (m, l) in pool {
        metas.push(m);
        layers.push(l);
    }
    Ok(ModelEntry {
        key,
        layers: metas,
        source_logits,
        stats: ModelStats { layers, source },
        file,
    })
}

/// Adds up a complete set of shard files (`zoo-select score`): same images, same models, each
/// shard of 1..N exactly once; with `check_images`, of the images the config's folder holds now.
pub fn merge(plan: &Plan, paths: &[PathBuf], check_images: bool) -> Result<Gathered> {
    let start = Instant::now();
    plan.check_output()?;
    if paths.is_empty() {
        return Err(Error::Shards("no statistics files given".into()));
    }
    // Listed first, so that stale files fail before they are read.
    let images_now = if check_images {
        images_now(plan)?
    } else {
        None
    };
    let mut files: Vec<(PathBuf, StatsFile)> = Vec::with_capacity(paths.len());
    let mut spiller = Spiller::new(memory::file_rows_budget(plan));
    for path in paths {
        let file = stats_file::read(path, plan.device)?;
        if let Some(now) = &images_now {
            check_images_now(path, &file.info.dataset, now)?;
        }
        files.push((path.clone(), file));
        // Every shard's rows together can outgrow memory where each one fitted its pass.
        spiller.spill_over(
            files
                .iter_mut()
                .flat_map(|(_, f)| f.models.iter_mut())
                .flat_map(|m| m.stats.stores_mut()),
        )?;
    }
    let expected: Vec<ModelKey> = stats_file::model_keys(&plan.models, plan.precision)?;
    let (first_path, first) = (files[0].0.clone(), files[0].1.info.clone());
    let count = match first.shard {
        Some(s) => s.count,
        None => 1,
    };
    let mut seen: Vec<Option<&Path>> = vec![None; count];
    for (path, file) in &files {
        let foreign = |what: String| {
            Error::Shards(format!(
                "{} is not a shard of the same run as {}: {what}",
                path.display(),
                first_path.display()
            ))
        };
        if file.info.progress.is_some() {
            return Err(Error::Shards(format!(
                "{} is an unfinished pass's checkpoint; run its `zoo-select pass` again to finish it",
                path.display()
            )));
        }
        if file.info.dataset.fingerprint != first.dataset.fingerprint
            || file.info.dataset.classes != first.dataset.classes
        {
            return Err(foreign("its images differ".into()));
        }
        let shard = file.info.shard.unwrap_or(Shard { index: 1, count: 1 });
        if shard.count != count {
            return Err(foreign(format!("it is shard {shard}, of another split")));
        }
        if let Some(other) = seen[shard.index - 1] {
            return Err(Error::Shards(format!(
                "shard {shard} is given twice: {} and {}",
                other.display(),
                path.display()
            )));
        }
        seen[shard.index - 1] = Some(path);
    }
    let missing: Vec<String> = seen
        .iter()
        .enumerate()
        .filter(|(_, p)| p.is_none())
        .map(|(i, _)| format!("{}/{count}", i + 1))
        .collect();
    if !missing.is_empty() {
        return Err(Error::Shards(format!(
            "shard(s) {} missing; run `zoo-select pass --config {} --shard k/{count}` for each",
            missing.join(", "),
            plan.config_path.display()
        )));
    }
    // Shard order, so the sums are added in the same order whatever the command line's.
    files.sort_by_key(|(_, f)| f.info.shard.map_or(1, |s| s.index));
    let mut models: Vec<Option<ModelEntry>> = (0..expected.len()).map(|_| None).collect();
    let mut skipped = Vec::new();
    let mut pass_s = 0.0;
    for (path, file) in files.iter_mut() {
        skipped.extend(file.info.skipped.iter().map(Skip::from));
        pass_s += file.info.pass_s;
        for (key, spec) in expected.iter().zip(&plan.models) {
            let Some(i) = file.models.iter().position(|m| &m.key == key) else {
                let why = match file.models.iter().find(|m| m.key.name == key.name) {
                    Some(m) => key_mismatch(&m.key, key),
                    None => "it has none".to_owned(),
                };
                return Err(Error::Shards(format!(
                    "{} has no statistics of model `{}` as the config gives it: {why}; run its pass again",
                    path.display(),
                    spec.name
                )));
            };
            let mut entry = file.models.remove(i);
            entry.stats = select_layers(&mut entry, spec).map_err(|m| {
                Error::Shards(format!("{}: model `{}`: {m}", path.display(), spec.name))
            })?;
            let slot = &mut models[expected.iter().position(|k| k == key).unwrap_or(0)];
            match slot {
                Some(total) => total
                    .stats
                    .merge(&mut entry.stats)
                    .map_err(|e| Error::torch(&spec.name, "adding up the shards' statistics", e))?,
                None => *slot = Some(entry),
            }
        }
    }
    skipped.sort_by(|a, b| a.path.cmp(&b.path));
    let mut dataset = first.dataset.clone();
    dataset.covered = dataset.fingerprint.clone();
    dataset.covered_files = dataset.files;
    let info = FileInfo {
        dataset,
        shard: None,
        progress: None,
        skipped: skipped.iter().map(Into::into).collect(),
        device_kind: first.device_kind.clone(),
        pass_s,
    };
    let models: Vec<ModelEntry> = models.into_iter().flatten().collect();
    let accumulator_bytes = models.iter().map(|m| m.stats.bytes()).sum();
    Ok(Gathered {
        info,
        models,
        empty_classes: Vec::new(),
        load_s: start.elapsed().as_secs_f64(),
        loads: Vec::new(),
        device_times: Vec::new(),
        decoding: None,
        pass_s,
        accumulator_bytes,
        statistics: StatsReport {
            shards: paths.to_vec(),
            ..StatsReport::default()
        },
    })
}

/// The images the config's folder holds now, which statistics files must be of, or the report
/// would give old statistics as this config's. A folder that is not there (files scored on
/// another machine) is said, and the files are scored as they are; any other listing error
/// stops the run.
fn images_now(plan: &Plan) -> Result<Option<DatasetId>> {
    let cfg = &plan.dataset;
    if let Err(e) = std::fs::metadata(&cfg.root) {
        tracing::warn!(
            "cannot check the statistics files against the images: {} ({e}); scoring them as they are",
            cfg.root.display()
        );
        return Ok(None);
    }
    let folder = dataset::open(cfg)?;
    Ok(Some(stats_file::dataset_id(&folder, &folder.items)))
}

fn check_images_now(path: &Path, made: &DatasetId, now: &DatasetId) -> Result<()> {
    if made.fingerprint == now.fingerprint {
        return Ok(());
    }
    Err(Error::Shards(format!(
        "{} is of other images than {} holds now ({} images in {} classes then, {} in {} now: \
         images added, removed or changed, or another `max_per_class`); run the passes again, \
         score with the config they were made with, or, for images copied without their \
         modification times, pass --no-image-check",
        path.display(),
        now.root.display(),
        made.files,
        made.classes.len(),
        now.files,
        now.classes.len()
    )))
}

/// What differs between the model a file holds and the one the config gives.
fn key_mismatch(file: &ModelKey, config: &ModelKey) -> String {
    let short = |h: &str| h.get(..12).unwrap_or(h).to_owned();
    if file.sha256 != config.sha256 {
        format!(
            "another model file (sha256 {}..., the config's is {}...)",
            short(&file.sha256),
            short(&config.sha256)
        )
    } else if file.preprocessing != config.preprocessing {
        format!(
            "another preprocessing ({}; the config's: {})",
            crate::config::preprocessing_in_words(&file.preprocessing),
            crate::config::preprocessing_in_words(&config.preprocessing)
        )
    } else {
        format!(
            "another precision ({}; the config's: {})",
            file.precision, config.precision
        )
    }
}

/// The entry's statistics restricted to the spec's layers, in its order.
fn select_layers(entry: &mut ModelEntry, spec: &ModelSpec) -> Result<ModelStats, String> {
    let mut layers = Vec::new();
    let mut metas = Vec::new();
    let mut pool: Vec<_> = entry
        .layers
        .drain(..)
        .zip(std::mem::take(&mut entry.stats.layers))
        .collect();
    for name in &spec.layers {
        let i = pool
            .iter()
            .position(|(m, _)| &m.name == name)
            .ok_or_else(|| {
                format!("no statistics of layer `{name}`; run the pass again with this config")
            })?;
        let (m, l) = pool.remove(i);
        metas.push(m);
        layers.push(l);
    }
    entry.layers = metas;
    Ok(ModelStats {
        layers,
        source: entry.stats.source.take(),
    })
}

/// Writes a shard's statistics to `<output>/shard-k-of-N.zss` (`zoo-select pass`).
pub fn write_shard(plan: &Plan, gathered: Gathered) -> Result<PathBuf> {
    let name = match plan.shard {
        Some(s) => format!("shard-{}-of-{}.zss", s.index, s.count),
        None => "shard-1-of-1.zss".to_owned(),
    };
    let path = plan.output.join(name);
    let mut file = StatsFile {
        info: gathered.info,
        models: gathered.models,
    };
    for (m, spec) in file.models.iter_mut().zip(&plan.models) {
        let keep = spec.layers.len();
        m.layers.truncate(keep);
        m.stats.layers.truncate(keep);
    }
    stats_file::write(&path, &mut file)?;
    Ok(path)
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
            .map_or(m.layers.len(), |s| s.layers.len());
        m.layers.truncate(n);
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
    let scores = plan
        .cache
        .as_deref()
        .map(|dir| score_cache::ScoreCache::new(dir, plan));
    let results = scoring::score(&plan.metrics, &mut gathered.models, scores.as_ref())?;
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
