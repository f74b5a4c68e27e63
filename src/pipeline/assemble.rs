//! The cache's part of gathering: what it holds of each model of the plan (usable layers, and
//! the rest for the pass to compute), and each model's statistics put together again from the
//! cache and the pass, in the plan's layer order, and kept back in the cache.

use crate::dataset::Skip;
use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::stats::{LayerStats, ModelStats, Spiller};
use crate::stats_file::{self, Cache, DatasetId, FileInfo, ModelEntry, ModelKey};
use crate::zoo::{ModelSpec, SourceLogits};

use super::memory;
use super::outcome::StatsReport;
use super::stores::Layout;

/// The plan's cache, and whether this run may write it.
pub struct CacheUse {
    cache: Option<Cache>,
    writable: bool,
}

/// What the cache holds for the plan's models, and what is left to compute.
pub struct Found {
    /// Each model's statistics key, in the plan's order.
    pub keys: Vec<ModelKey>,
    cached: Vec<Option<(ModelEntry, FileInfo)>>,
    /// (index in the plan, the model with only the layers to compute).
    pub todo: Vec<(usize, ModelSpec)>,
    pub statistics: StatsReport,
}

impl Found {
    /// The skipped files the cached statistics recorded, for a run that made no pass.
    pub fn skipped_before(&self) -> Vec<Skip> {
        self.cached
            .iter()
            .flatten()
            .next()
            .map(|(_, info)| info.skipped.iter().map(Skip::from).collect())
            .unwrap_or_default()
    }
}

impl CacheUse {
    /// The plan's cache; a writable one is swept of what killed writers left.
    pub fn open(plan: &Plan) -> CacheUse {
        let cache = plan.cache.as_deref().map(Cache::new);
        let writable = plan.cache_writable();
        if let (Some(cache), true) = (&cache, writable) {
            let removed = cache.sweep();
            if removed > 0 {
                tracing::info!(
                    "cache {}: removed {removed} temporary file(s) that killed runs left",
                    cache.dir.display()
                );
            }
        }
        CacheUse { cache, writable }
    }

    /// What the cache holds, per model: usable layers by name, and the rest to compute.
    pub fn lookup(
        &self,
        plan: &Plan,
        layout: &Layout,
        dataset: &DatasetId,
        kind: &str,
    ) -> Result<Found> {
        let mut found = Found {
            keys: Vec::with_capacity(plan.models.len()),
            cached: Vec::with_capacity(plan.models.len()),
            todo: Vec::new(),
            statistics: StatsReport {
                cache: plan.cache.clone(),
                ..StatsReport::default()
            },
        };
        let mut spiller = Spiller::new(memory::file_rows_budget(plan));
        let keys = stats_file::model_keys(&plan.models, plan.precision)?;
        for ((i, spec), key) in plan.models.iter().enumerate().zip(keys) {
            let entry = self
                .cache
                .as_ref()
                .and_then(|c| c.load(&key, dataset, plan.shard, kind, plan.device));
            let missing: Vec<String> = match &entry {
                Some((e, _)) if source_covered(layout, e) => spec
                    .layers
                    .iter()
                    .filter(|l| !cached_layer(layout, e, l))
                    .cloned()
                    .collect(),
                _ => spec.layers.clone(),
            };
            let stats = &mut found.statistics;
            for layer in spec.layers.iter().filter(|l| !missing.contains(l)) {
                stats.reused.push(format!("{}/{layer}", spec.name));
            }
            if !missing.is_empty() {
                for layer in &missing {
                    stats.computed.push(format!("{}/{layer}", spec.name));
                }
                let mut sub = spec.clone();
                sub.layers = missing;
                found.todo.push((i, sub));
            }
            found.keys.push(key);
            found.cached.push(entry);
            // Cache entries are read whole: their rows spill as a pass's would.
            spiller.spill_over(
                found
                    .cached
                    .iter_mut()
                    .flatten()
                    .flat_map(|(e, _)| e.stats.stores_mut()),
            )?;
        }
        let reused = &found.statistics.reused;
        if !reused.is_empty() {
            tracing::info!(
                "cache {}: reused {} (model, layer) pair(s): {}",
                plan.cache
                    .as_deref()
                    .map_or(String::new(), |p| p.display().to_string()),
                reused.len(),
                reused.join(", ")
            );
        }
        Ok(found)
    }

    /// Every model's statistics from the cache and the pass (`fresh`, in `found.todo`'s order),
    /// the computed ones kept in the cache; and whether all of those were kept.
    pub fn keep(
        &self,
        plan: &Plan,
        found: &mut Found,
        fresh: Vec<ModelEntry>,
        info: &FileInfo,
    ) -> Result<(Vec<ModelEntry>, bool)> {
        let mut by_model: Vec<Option<ModelEntry>> = (0..plan.models.len()).map(|_| None).collect();
        for ((i, _), entry) in found.todo.iter().zip(fresh) {
            by_model[*i] = Some(entry);
        }
        let cached = std::mem::take(&mut found.cached);
        let keys = std::mem::take(&mut found.keys);
        let mut models = Vec::with_capacity(plan.models.len());
        let mut all_kept = true;
        for (((spec, key), cached), fresh) in plan.models.iter().zip(keys).zip(cached).zip(by_model)
        {
            let computed = fresh.is_some();
            let mut entry = assemble(spec, key, cached.map(|(e, _)| e), fresh, plan.device)?;
            if let (Some(cache), true, true) = (&self.cache, self.writable, computed) {
                // A full or failing cache costs the next run its reuse, never this run its pass.
                if let Err(e) = cache.store(&mut entry, info.clone(), plan.device) {
                    all_kept = false;
                    tracing::warn!(
                        "{e}: model `{}`'s statistics are not kept in the cache, the run goes \
                         on; free space there or give `cache:` another folder",
                        spec.name
                    );
                }
            }
            models.push(entry);
        }
        Ok((models, all_kept))
    }
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
        .stats
        .layers
        .iter()
        .find(|l| l.meta.name == layer)
        .is_some_and(|l| layout.covers_layer(&l.stores))
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
    let mut pool: Vec<LayerStats> = Vec::new();
    let mut source = None;
    let mut source_logits = SourceLogits::Unwanted;
    // The cache file holds exactly these statistics only if the pass added none.
    let file = match (&cached, &fresh) {
        (Some(c), None) => c.file.clone(),
        _ => None,
    };
    if let Some(mut c) = cached {
        let mut stats = c.stats.to_device(device).map_err(torch)?;
        pool.append(&mut stats.layers);
        source = stats.source.take();
        source_logits = c.source_logits;
    }
    if let Some(f) = fresh {
        // Fresh statistics replace cached ones of the same layer.
        let fresh_names: Vec<String> = f.stats.layers.iter().map(|l| l.meta.name.clone()).collect();
        pool.retain(|l| !fresh_names.contains(&l.meta.name));
        pool.extend(f.stats.layers);
        if f.stats.source.is_some() || matches!(f.source_logits, SourceLogits::Missing(_)) {
            source = f.stats.source;
            source_logits = f.source_logits;
        } else if source.is_none() {
            source_logits = f.source_logits;
        }
    }
    let mut layers = Vec::new();
    for name in &spec.layers {
        let i = pool
            .iter()
            .position(|l| &l.meta.name == name)
            .ok_or_else(|| Error::MissingStatistics {
                model: spec.name.clone(),
                layer: name.clone(),
            })?;
        layers.push(pool.remove(i));
    }
    layers.extend(pool);
    Ok(ModelEntry {
        key,
        source_logits,
        stats: ModelStats { layers, source },
        file,
    })
}
