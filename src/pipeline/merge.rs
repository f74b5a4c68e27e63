//! Statistics that come as shard files: `zoo-select pass --shard k/N` writes one per task, and
//! `zoo-select score` adds a complete set up, refusing files of other images, models, splits or
//! preprocessing with the reason, before anything is scored.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::dataset::{self, Skip};
use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::stats::{ModelStats, Spiller};
use crate::stats_file::{self, DatasetId, FileInfo, ModelEntry, ModelKey, Shard, StatsFile};
use crate::zoo::ModelSpec;

use super::memory;
use super::outcome::{Gathered, StatsReport};

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
    let mut files = read_shards(plan, paths, images_now.as_ref())?;
    let expected: Vec<ModelKey> = stats_file::model_keys(&plan.models, plan.precision)?;
    let first = check_complete(plan, &files)?;
    // Shard order, so the sums are added in the same order whatever the command line's.
    files.sort_by_key(|(_, f)| f.info.shard.map_or(1, |s| s.index));
    let (models, mut skipped, pass_s) = add_shards(plan, &expected, &mut files)?;
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
    let mut pool = std::mem::take(&mut entry.stats.layers);
    for name in &spec.layers {
        let i = pool
            .iter()
            .position(|l| &l.meta.name == name)
            .ok_or_else(|| {
                format!("no statistics of layer `{name}`; run the pass again with this config")
            })?;
        layers.push(pool.remove(i));
    }
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
        m.stats.layers.truncate(spec.layers.len());
    }
    stats_file::write(&path, &mut file)?;
    Ok(path)
}

/// Every model's statistics added up over the shard files (in shard order), their skipped
/// files and pass time.
fn add_shards(
    plan: &Plan,
    expected: &[ModelKey],
    files: &mut [(PathBuf, StatsFile)],
) -> Result<(Vec<ModelEntry>, Vec<Skip>, f64)> {
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
    Ok((models.into_iter().flatten().collect(), skipped, pass_s))
}

/// The shard files read, each checked against the images now when `now` is given; their rows
/// spill as a pass's would.
fn read_shards(
    plan: &Plan,
    paths: &[PathBuf],
    now: Option<&DatasetId>,
) -> Result<Vec<(PathBuf, StatsFile)>> {
    let mut files: Vec<(PathBuf, StatsFile)> = Vec::with_capacity(paths.len());
    let mut spiller = Spiller::new(memory::file_rows_budget(plan));
    for path in paths {
        let file = stats_file::read(path, plan.device)?;
        if let Some(now) = now {
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
    Ok(files)
}

/// Every file a finished shard of one split of the same images, each shard exactly once;
/// returns the first file's description.
fn check_complete(plan: &Plan, files: &[(PathBuf, StatsFile)]) -> Result<FileInfo> {
    let (first_path, first) = (files[0].0.clone(), files[0].1.info.clone());
    let count = match first.shard {
        Some(s) => s.count,
        None => 1,
    };
    let mut seen: Vec<Option<&Path>> = vec![None; count];
    for (path, file) in files {
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
    Ok(first)
}
