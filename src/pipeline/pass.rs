//! The pass over the images for the models (and layers) whose statistics are not cached: the
//! loader decodes each image once; one thread per device owns that device's copy of the models
//! and folds its batches (batch i goes to part i mod D) into its own statistics; the parts are
//! added up at the end. Each part checkpoints itself every `checkpoint_every` and when a stop
//! is requested (SIGINT, SIGTERM), so a killed or stopped run resumes where it was.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crossbeam_channel::Receiver;
use tch::{Device, Kind, Tensor};

use super::checkpoint::{self, PartMeta, Restored};
use super::loader::{self, Batch, DecodingTime, Message};
use super::memory::{self, RowBudget, Spiller};
use super::stopwatch::Stopwatch;
use super::stores::Layout;
use super::outcome::{DeviceTime, ModelLoad};
use super::progress::Progress;
use super::stop::stop_flag;
use crate::dataset::{Geometry, Item, Skip};
use crate::device::{start_download, upload_staged, Fence};
use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::stats::{BatchLabels, ModelStats};
use crate::stats_file::{DatasetId, FileInfo, LayerMeta, ModelEntry, ModelKey, Progress as Done};
use crate::zoo::{ModelSpec, ModuleCache, ZooModel};

/// Batches decoded ahead of each device thread.
const PREFETCH: usize = 4;
/// Batches between checks for NaN/Inf in the statistics (queued behind a batch, read when it lands).
const FINITE_CHECK_EVERY: usize = 16;
const WARN_SKIPS: usize = 20;

pub struct Job<'a> {
    pub plan: &'a Plan,
    pub items: &'a [Item],
    /// The models to run, with only the layers to compute.
    pub specs: Vec<ModelSpec>,
    pub keys: Vec<ModelKey>,
    pub layout: &'a Layout,
    pub dataset: &'a DatasetId,
    pub classes: usize,
    /// Per image of the listing, whether a row sample keeps its features.
    pub sample: Option<&'a [bool]>,
}

pub struct Output {
    /// In `specs` order, on the plan's first device.
    pub models: Vec<ModelEntry>,
    pub skipped: Vec<Skip>,
    pub load_s: f64,
    pub loads: Vec<ModelLoad>,
    pub device_times: Vec<DeviceTime>,
    pub decoding: DecodingTime,
    pub pass_s: f64,
    /// Files a checkpoint had already folded in.
    pub resumed_files: usize,
    pub accumulator_bytes: usize,
    /// This pass's checkpoint files, to remove once its statistics are safe elsewhere.
    pub checkpoints: Vec<PathBuf>,
}

/// How one device part ended.
enum PartEnd {
    Finished(Box<Part>),
    /// Stopped on request after checkpointing `files_done` files in all.
    Stopped {
        files_done: usize,
    },
    Failed(Error),
}

struct Part {
    stats: Vec<ModelStats>,
    skipped: Vec<Skip>,
    files_done: usize,
    index: usize,
    /// What its checkpoint would say now.
    info: FileInfo,
    time: DeviceTime,
}

/// Loads every model of the job onto `device`, one after another: loading two at once on this
/// 2-core machine took longer than one after another (1.04 s against 0.98 s for three ResNet-18),
/// their probes' OpenMP threads contending for the cores.
fn load_models(
    job: &Job,
    device: Device,
    modules: Option<&ModuleCache>,
) -> Result<(Vec<ZooModel>, Vec<ModelLoad>)> {
    let mut models = Vec::with_capacity(job.specs.len());
    let mut loads = Vec::with_capacity(job.specs.len());
    for (spec, key) in job.specs.iter().zip(&job.keys) {
        let t = Instant::now();
        let model = ZooModel::load_with(
            spec,
            device,
            job.layout.wants_source(),
            job.plan.precision,
            modules.map(|m| (m, key.sha256.as_str())),
        )?;
        loads.push(ModelLoad {
            model: spec.name.clone(),
            device: crate::device::label(device),
            seconds: t.elapsed().as_secs_f64(),
            cached_module: model.cached_module,
            optimized: model.optimized,
        });
        models.push(model);
    }
    Ok((models, loads))
}

pub fn run(job: &Job, progress: &dyn Progress) -> Result<Output> {
    let plan = job.plan;
    let start = Instant::now();
    let parts = plan.devices.len();
    let batch_size = plan.batch_size;
    let identities: Vec<(ModelKey, Vec<String>)> = job
        .keys
        .iter()
        .cloned()
        .zip(job.specs.iter().map(|s| s.layers.clone()))
        .collect();
    let key = checkpoint::run_key(
        job.dataset,
        plan.shard,
        batch_size,
        parts,
        &identities,
        &job.layout.describe(),
    );
    let paths: Vec<PathBuf> = (0..parts)
        .map(|d| checkpoint::part_path(&plan.checkpoints, &key, d, parts))
        .collect();
    let mut restored: Vec<Option<Restored>> = paths
        .iter()
        .map(|p| checkpoint::restore(p, &job.keys))
        .collect();
    let done: Vec<usize> = restored
        .iter()
        .map(|r| {
            r.as_ref()
                .and_then(|r| r.info.progress)
                .map_or(0, |p| p.batches_done)
        })
        .collect();
    let resumed_files: usize = restored
        .iter()
        .flatten()
        .filter_map(|r| r.info.progress)
        .map(|p| p.files_done)
        .sum();
    if resumed_files > 0 {
        tracing::info!(
            "resuming from the checkpoint in {}: {resumed_files} of {} files already done",
            plan.checkpoints.display(),
            job.items.len()
        );
    }
    let (stale, bytes) = checkpoint::others(&plan.checkpoints, &key);
    if stale > 0 {
        tracing::info!(
            "{stale} checkpoint file(s) of other passes in {} ({:.1} MiB: another config's, or \
             from before the images changed); delete them if those runs will not be resumed",
            plan.checkpoints.display(),
            bytes as f64 / (1024.0 * 1024.0)
        );
    }

    // Loading runs the models' probes on this thread.
    crate::taps::run_graphs_unoptimised();
    // How busy the machine is while the models load decides libtorch's threads for the pass.
    let load = crate::threading::Load::now();
    // Rewritten modules are kept beside the statistics they serve.
    let modules = plan.cache.as_deref().map(|dir| {
        let modules = ModuleCache::in_cache(dir);
        if plan.cache_can_be_written() {
            modules
        } else {
            modules.read_only()
        }
    });
    let mut models: Vec<Vec<ZooModel>> = Vec::with_capacity(parts);
    let mut loads = Vec::new();
    for device in &plan.devices {
        // Once per process and device, so that no model's load time carries it.
        crate::device::start(*device).map_err(|e| Error::torch_op("starting the device", e))?;
        let (on_device, timed) = load_models(job, *device, modules.as_ref())?;
        models.push(on_device);
        loads.extend(timed);
    }
    let row_budget = memory::check(job, &models[0])?;
    // Held for the pass: dropping it gives scoring libtorch's threads back.
    let _gpu_threads = match (plan.threads, &load) {
        (Some(threads), _) => {
            tch::set_num_threads(threads as i32);
            None
        }
        (None, load) => {
            let one = crate::threading::GpuPassThreads::one_if_all_gpus(&plan.devices);
            if let (None, Some(load)) = (&one, load) {
                crate::threading::fit_to_load(load);
            }
            one
        }
    };
    let mut stats: Vec<Vec<ModelStats>> = Vec::with_capacity(parts);
    for (d, device_models) in models.iter().enumerate() {
        stats.push(match restored[d].take() {
            Some(r) => {
                let mut moved = Vec::new();
                for (mut s, m) in r.stats.into_iter().zip(device_models) {
                    moved.push(
                        s.to_device(plan.devices[d])
                            .map_err(|e| Error::torch(&m.name, "restoring the checkpoint", e))?,
                    );
                }
                restored[d] = Some(Restored {
                    stats: Vec::new(),
                    info: r.info,
                });
                moved
            }
            None => device_models
                .iter()
                .map(|m| job.layout.allocate(m, job.classes))
                .collect::<Result<Vec<_>>>()?,
        });
    }
    let accumulator_bytes = stats[0].iter().map(ModelStats::bytes).sum();
    tracing::info!(
        "statistics for {} (model, layer) pairs: {:.1} MiB per device",
        job.specs.iter().map(|s| s.layers.len()).sum::<usize>(),
        accumulator_bytes as f64 / (1024.0 * 1024.0)
    );
    let meta = PartMeta {
        keys: &job.keys,
        layers: models[0]
            .iter()
            .map(|m| {
                m.layers
                    .iter()
                    .enumerate()
                    .map(|(i, l)| LayerMeta {
                        name: l.clone(),
                        dim: m.dims[i],
                        params_after: m.params_after.get(i).copied().flatten(),
                    })
                    .collect()
            })
            .collect(),
        source: models[0].iter().map(|m| m.source.clone()).collect(),
    };
    let load_s = start.elapsed().as_secs_f64();

    let pass_start = Instant::now();
    progress.begin(job.items.len());
    progress.advance(resumed_files);
    let geometries = Geometry::distinct(job.specs.iter().map(|s| &s.input));
    let abort = AtomicBool::new(false);
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..parts)
        .map(|_| crossbeam_channel::bounded(PREFETCH))
        .unzip();
    let (ends, decoding): (Vec<PartEnd>, DecodingTime) = std::thread::scope(|scope| {
        let geoms = &geometries;
        let done = &done;
        // Pinned staging memory serves a CPU part as well as a GPU one.
        let staging_for = plan
            .devices
            .iter()
            .copied()
            .find(|d| d.is_cuda())
            .unwrap_or(Device::Cpu);
        let producer = scope.spawn(move || {
            loader::produce(
                job.items,
                geoms,
                batch_size,
                plan.workers,
                staging_for,
                senders,
                done,
            )
        });
        // Part 0 runs on the calling thread, the others on their own: glibc gives every other
        // thread its own malloc arena, whose large blocks are mmapped and unmapped per batch,
        // so a single-device pass off the main thread ran 1.5 times slower (see allocator.rs).
        let mut parts_iter = receivers
            .into_iter()
            .zip(models)
            .zip(stats)
            .zip(restored)
            .enumerate()
            .map(|(d, (((rx, models), stats), restored))| {
                let ctx = PartContext {
                    job,
                    index: d,
                    path: &paths[d],
                    meta: &meta,
                    geometries: geoms,
                    abort: &abort,
                    progress,
                    rows: &row_budget,
                };
                (ctx, rx, models, stats, restored.map(|r| r.info))
            });
        let first = parts_iter.next();
        let handles: Vec<_> = parts_iter
            .map(|(ctx, rx, models, stats, info)| {
                scope.spawn(move || ctx.run(rx, models, stats, info))
            })
            .collect();
        let mut ends = Vec::with_capacity(parts);
        if let Some((ctx, rx, models, stats, info)) = first {
            ends.push(ctx.run(rx, models, stats, info));
        }
        ends.extend(handles.into_iter().map(|h| {
            h.join().unwrap_or_else(|_| {
                PartEnd::Failed(Error::Worker("a device thread panicked".into()))
            })
        }));
        // A producer that panicked has already failed the parts; its times are then unknown.
        (ends, producer.join().unwrap_or_default())
    });
    progress.finish();

    let mut finished = Vec::with_capacity(parts);
    let mut stopped = 0;
    let mut interrupted = false;
    for end in ends {
        match end {
            PartEnd::Finished(p) => {
                stopped += p.files_done;
                finished.push(p);
            }
            PartEnd::Stopped { files_done } => {
                interrupted = true;
                stopped += files_done;
            }
            PartEnd::Failed(e) => return Err(e),
        }
    }
    if interrupted {
        // A part that reached its end before the stop keeps that end for the next run.
        for part in &mut finished {
            checkpoint::save(
                &paths[part.index],
                part.info.clone(),
                &meta,
                &mut part.stats,
            )?;
        }
        return Err(Error::Interrupted {
            done: stopped,
            total: job.items.len(),
            checkpoint: plan.checkpoints.clone(),
        });
    }
    let mut parts_iter = finished.into_iter();
    let Some(mut total) = parts_iter.next() else {
        return Err(Error::Worker("no device part finished".into()));
    };
    let mut device_times = vec![total.time.clone()];
    for mut part in parts_iter {
        for ((mine, theirs), spec) in total.stats.iter_mut().zip(&mut part.stats).zip(&job.specs) {
            mine.merge(theirs)
                .map_err(|e| Error::torch(&spec.name, "adding up the devices' statistics", e))?;
        }
        total.skipped.append(&mut part.skipped);
        device_times.push(part.time.clone());
    }
    for t in &device_times {
        let (w, c) = (&t.wall, &t.cpu);
        tracing::debug!(
            "{}: {} batches; waited {:.2} s for batches, queued for {:.2} s ({:.2} s of CPU), waited {:.2} s for the device, settled for {:.2} s ({:.2} s of CPU), {:.2} s checkpointing",
            t.device,
            t.batches,
            w.waiting_for_batches_s,
            w.queueing_s,
            c.queueing_s,
            w.waiting_for_device_s,
            w.settling_s,
            c.settling_s,
            w.checkpoints_s
        );
    }
    total.skipped.sort_by(|a, b| a.path.cmp(&b.path));
    let models = total
        .stats
        .into_iter()
        .zip(&job.keys)
        .zip(meta.layers.into_iter().zip(meta.source))
        .map(|((stats, key), (layers, source_logits))| ModelEntry {
            key: key.clone(),
            layers,
            source_logits,
            stats,
            file: None,
        })
        .collect();
    Ok(Output {
        models,
        skipped: total.skipped,
        load_s,
        loads,
        device_times,
        decoding,
        pass_s: pass_start.elapsed().as_secs_f64(),
        resumed_files,
        accumulator_bytes,
        checkpoints: paths,
    })
}

struct PartContext<'a> {
    job: &'a Job<'a>,
    index: usize,
    path: &'a PathBuf,
    meta: &'a PartMeta<'a>,
    geometries: &'a [Geometry],
    abort: &'a AtomicBool,
    progress: &'a dyn Progress,
    /// What this part's feature rows may keep in host memory before it spills them.
    rows: &'a RowBudget,
}

impl PartContext<'_> {
    fn run(
        &self,
        rx: Receiver<Message>,
        models: Vec<ZooModel>,
        mut stats: Vec<ModelStats>,
        restored: Option<FileInfo>,
    ) -> PartEnd {
        let plan = self.job.plan;
        let device = plan.devices[self.index];
        // The setting is per thread, and this may be a new one.
        crate::taps::run_graphs_unoptimised();
        let (mut progress, mut skipped, earlier_s) = match restored {
            Some(info) => (
                info.progress.unwrap_or(self.fresh()),
                info.skipped.iter().map(Skip::from).collect::<Vec<_>>(),
                info.pass_s,
            ),
            None => (self.fresh(), Vec::new(), 0.0),
        };
        let geometry_of: Vec<usize> = models
            .iter()
            .map(|m| {
                self.geometries
                    .iter()
                    .position(|g| *g == m.geometry)
                    .unwrap_or(0)
            })
            .collect();
        let started = Instant::now();
        let mut last_checkpoint = Instant::now();
        let every = plan.checkpoint_every;
        let stop = stop_flag();
        let info = |progress: Done, skipped: &[Skip]| FileInfo {
            dataset: self.job.dataset.clone(),
            shard: plan.shard,
            progress: Some(progress),
            skipped: skipped.iter().map(Into::into).collect(),
            device_kind: crate::device::kind(device),
            pass_s: earlier_s + started.elapsed().as_secs_f64(),
        };
        let fail = |e: Error| {
            self.abort.store(true, Ordering::SeqCst);
            PartEnd::Failed(e)
        };
        // The fence after the last batch queued, and that batch's number: on a GPU the host
        // queues batch i, then waits for batch i-1 only, so the GPU always has work.
        let mut in_flight: Option<(Fence, u64)> = None;
        // Whether the last checkpoint failed: a folder that stays full is said once.
        let mut checkpoint_failing = false;
        let mut finite_check: Option<FiniteCheck> = None;
        let mut folded = 0usize;
        let mut time = DeviceTime {
            device: crate::device::label(device),
            ..DeviceTime::default()
        };
        let mut spiller = Spiller::new(self.rows.clone());
        // A restored checkpoint brings its rows back into memory.
        if let Err(e) = spiller.spill_over(stats.iter_mut().flat_map(ModelStats::stores_mut)) {
            return fail(e);
        }
        let mut watch = Stopwatch::start();
        for message in rx {
            watch.lap(&mut time, |s| &mut s.waiting_for_batches_s);
            if self.abort.load(Ordering::SeqCst) {
                return PartEnd::Failed(Error::Worker("another device failed".into()));
            }
            let batch = match message {
                Message::Batch(b) => b,
                Message::End => {
                    if let Err(e) = land(in_flight.take(), u64::MAX, &mut stats).and_then(|()| {
                        spiller.spill_over(stats.iter_mut().flat_map(ModelStats::stores_mut))
                    }) {
                        return fail(e);
                    }
                    watch.lap(&mut time, |s| &mut s.waiting_for_device_s);
                    time.batches = progress.batches_done;
                    if spiller.written > 0 {
                        tracing::info!(
                            "device part {}: {} of feature rows spilled to disk beyond the memory budget",
                            self.index + 1,
                            memory::gib(spiller.written)
                        );
                    }
                    if let Err(e) = check_finite(&models, &stats, device) {
                        return fail(e);
                    }
                    tracing::debug!(
                        "device part {} of {} ({}): {} batches, {} files",
                        self.index + 1,
                        plan.devices.len(),
                        crate::device::label(device),
                        progress.batches_done,
                        progress.files_done
                    );
                    return PartEnd::Finished(Box::new(Part {
                        info: info(progress, &skipped),
                        stats,
                        skipped,
                        files_done: progress.files_done,
                        index: self.index,
                        time,
                    }));
                }
                Message::Failed(reason) => return fail(Error::Worker(reason)),
            };
            if let Err(e) = self.fold(&batch, device, &models, &geometry_of, &mut stats, &mut time)
            {
                return fail(e);
            }
            folded += 1;
            if folded.is_multiple_of(crate::allocator::RELEASE_EVERY) {
                crate::allocator::release_freed_memory();
            }
            if folded.is_multiple_of(FINITE_CHECK_EVERY) && finite_check.is_none() {
                match FiniteCheck::queue(&stats, batch.index as u64) {
                    Ok(check) => finite_check = check,
                    Err(e) => return fail(Error::torch_op("checking the statistics", e)),
                }
            }
            let fence = match Fence::record(device) {
                Ok(f) => f,
                Err(e) => return fail(Error::torch_op("marking the batch on the device", e)),
            };
            watch.lap(&mut time, |s| &mut s.queueing_s);
            let previous = in_flight.take();
            // On the CPU a batch is done when its calls return; on a GPU the previous batch is
            // done once its fence has passed.
            let landed = match (&fence, &previous) {
                (None, _) => Some(batch.index as u64),
                (Some(_), previous) => previous.as_ref().map(|(_, serial)| *serial),
            };
            in_flight = fence.map(|f| (f, batch.index as u64));
            if let Err(e) = wait(previous) {
                return fail(e);
            }
            watch.lap(&mut time, |s| &mut s.waiting_for_device_s);
            if let Some(serial) = landed {
                if let Err(e) = settle(serial, &mut stats) {
                    return fail(e);
                }
                if let Some(check) = finite_check.take_if(|c| c.serial <= serial) {
                    if let Err(e) = check.read(&models) {
                        return fail(e);
                    }
                }
            }
            watch.lap(&mut time, |s| &mut s.settling_s);
            // Only rows already landed (settled) are in the classes to spill.
            if let Err(e) = spiller.spill_over(stats.iter_mut().flat_map(ModelStats::stores_mut)) {
                return fail(e);
            }
            watch.lap(&mut time, |s| &mut s.spilling_s);
            for skip in &batch.skipped {
                if skipped.len() < WARN_SKIPS {
                    tracing::warn!("skipped {}: {}", skip.path.display(), skip.reason);
                } else if skipped.len() == WARN_SKIPS {
                    tracing::warn!("more files skipped; report.json lists them all");
                }
                skipped.push(skip.clone());
            }
            progress.batches_done += 1;
            progress.files_done += batch.files;
            self.progress.advance(batch.files);
            let stopping = stop.load(Ordering::SeqCst);
            if stopping || last_checkpoint.elapsed() >= every {
                let _span = tracing::debug_span!("checkpoint", part = self.index).entered();
                let t = Instant::now();
                if let Err(e) = land(in_flight.take(), u64::MAX, &mut stats) {
                    return fail(e);
                }
                match checkpoint::save(self.path, info(progress, &skipped), self.meta, &mut stats) {
                    Ok(()) => {
                        checkpoint_failing = false;
                        tracing::debug!(
                            "checkpoint of part {} after {} files written in {:.3} s",
                            self.index + 1,
                            progress.files_done,
                            t.elapsed().as_secs_f64()
                        )
                    }
                    // Stopping, the checkpoint was the only place the work could go.
                    Err(e) if stopping => {
                        return fail(Error::Output {
                            path: self.job.plan.checkpoints.clone(),
                            reason: format!(
                                "the checkpoint of the {} files done could not be written ({e}); \
                                 a later run resumes from the last one written, if any: free \
                                 space there first",
                                progress.files_done
                            ),
                        })
                    }
                    // A checkpoint is insurance: the pass, whose statistics are in memory, goes
                    // on, and the next checkpoint tries again.
                    Err(e) => {
                        if !checkpoint_failing {
                            tracing::warn!(
                                "{e}: no checkpoint of part {} now, the pass goes on (an \
                                 interruption before the next one would lose its work); free \
                                 space in {}",
                                self.index + 1,
                                self.job.plan.checkpoints.display()
                            );
                        }
                        checkpoint_failing = true;
                    }
                }
                last_checkpoint = Instant::now();
                watch.lap(&mut time, |s| &mut s.checkpoints_s);
            }
            if stopping {
                return PartEnd::Stopped {
                    files_done: progress.files_done,
                };
            }
        }
        fail(Error::Worker(
            "image decoding stopped before the end of the images".into(),
        ))
    }

    fn fresh(&self) -> Done {
        Done {
            device: self.index,
            devices: self.job.plan.devices.len(),
            batch_size: self.job.plan.batch_size,
            batches_done: 0,
            files_done: 0,
        }
    }

    fn fold(
        &self,
        batch: &Batch,
        device: Device,
        models: &[ZooModel],
        geometry_of: &[usize],
        stats: &mut [ModelStats],
        time: &mut DeviceTime,
    ) -> Result<()> {
        if batch.labels.is_empty() {
            return Ok(());
        }
        let mut watch = Stopwatch::start();
        let _span = tracing::debug_span!("batch", index = batch.index, images = batch.labels.len())
            .entered();
        let inputs = to_device(batch, device)
            .map_err(|e| Error::torch_op("moving a batch to the device", e))?;
        let mut labels = BatchLabels::new(&batch.labels, device)
            .map_err(|e| Error::torch_op("moving labels to the device", e))?
            .numbered(batch.index as u64);
        if let Some(keep) = self.job.sample {
            let (positions, ids): (Vec<i64>, Vec<u32>) = batch
                .ids
                .iter()
                .enumerate()
                .filter(|(_, &id)| keep.get(id as usize).copied().unwrap_or(false))
                .map(|(p, &id)| (p as i64, id))
                .unzip();
            labels = labels
                .with_sample(&positions, ids, device)
                .map_err(|e| Error::torch_op("moving the sample's rows to the device", e))?;
        }
        watch.lap(time, |s| &mut s.uploading_s);
        for ((model, model_stats), &g) in models.iter().zip(stats.iter_mut()).zip(geometry_of) {
            let _span = tracing::debug_span!("model", name = %model.name).entered();
            let features = model.run(&model.normalise(&inputs[g])?)?;
            watch.lap(time, |s| &mut s.forwards_s);
            model_stats
                .update(
                    &features.layers,
                    features.source.as_ref(),
                    &labels,
                    &batch.labels,
                )
                .map_err(|e| Error::torch(&model.name, "updating the statistics", e))?;
            watch.lap(time, |s| &mut s.statistics_s);
        }
        Ok(())
    }
}

/// One (B, 3, size, size) float tensor in [0, 1] per geometry, on the device.
fn to_device(batch: &Batch, device: Device) -> Result<Vec<Tensor>, tch::TchError> {
    batch
        .pixels
        .iter()
        .map(|pixels| {
            // (B, H, W, 3) bytes seen as (B, 3, H, W): channels-last, which oneDNN's
            // convolutions run 1.3 to 2 times faster than contiguous NCHW on CPU.
            upload_staged(pixels, device)?
                .f_permute([0, 3, 1, 2])?
                .f_to_kind(Kind::Float)?
                .f_div_scalar_(255.0)
        })
        .collect()
}

/// Waits for the batch behind `fence` and makes the host rows of batches up to `done` readable.
fn land(fence: Option<(Fence, u64)>, done: u64, stats: &mut [ModelStats]) -> Result<()> {
    wait(fence)?;
    settle(done, stats)
}

/// Waits for the batch behind `fence`, if any.
fn wait(fence: Option<(Fence, u64)>) -> Result<()> {
    match fence {
        Some((fence, _)) => fence
            .wait()
            .map_err(|e| Error::torch_op("waiting for the device", e)),
        None => Ok(()),
    }
}

/// Makes the host rows of batches up to `done`, which the device has finished, readable.
fn settle(done: u64, stats: &mut [ModelStats]) -> Result<()> {
    for s in stats.iter_mut() {
        s.settle(done)
            .map_err(|e| Error::torch_op("copying feature rows to the host", e))?;
    }
    Ok(())
}

/// A check that every layer's sums are still finite, queued behind a batch: its flags come back
/// to host memory with that batch, so a NaN stops the run a batch or two after it appears without
/// the host ever waiting for the device to read them.
struct FiniteCheck {
    serial: u64,
    /// (models x layers,) u8 in host memory once batch `serial` is done: 1 where finite.
    flags: Tensor,
}

impl FiniteCheck {
    /// The check behind batch `serial` (None when there are no layers to check).
    fn queue(stats: &[ModelStats], serial: u64) -> Result<Option<FiniteCheck>, tch::TchError> {
        let flags = stats
            .iter()
            .flat_map(|s| (0..s.layers.len()).map(|i| s.first(i).finite()))
            .collect::<Result<Vec<Tensor>, _>>()?;
        if flags.is_empty() {
            return Ok(None);
        }
        let flags = Tensor::f_stack(&flags, 0)?.f_to_kind(Kind::Uint8)?;
        Ok(Some(FiniteCheck {
            serial,
            flags: start_download(&flags)?.tensor,
        }))
    }

    /// Its verdict, once batch `serial` is done: the first (model, layer) that is not finite.
    fn read(&self, models: &[ZooModel]) -> Result<()> {
        let layers = models
            .iter()
            .flat_map(|m| m.layers.iter().map(move |l| (m, l)));
        for (i, (model, layer)) in layers.enumerate() {
            let finite = self
                .flags
                .f_int64_value(&[i as i64])
                .map_err(|e| Error::torch(&model.name, "checking the statistics", e))?;
            if finite == 0 {
                return Err(Error::NonFinite {
                    model: model.name.clone(),
                    layer: layer.clone(),
                });
            }
        }
        Ok(())
    }
}

/// The same check at once: queued, waited for and read.
fn check_finite(models: &[ZooModel], stats: &[ModelStats], device: Device) -> Result<()> {
    let check = FiniteCheck::queue(stats, u64::MAX)
        .map_err(|e| Error::torch_op("checking the statistics", e))?;
    let Some(check) = check else {
        return Ok(());
    };
    let fence =
        Fence::record(device).map_err(|e| Error::torch_op("marking the check on the device", e))?;
    wait(fence.map(|f| (f, u64::MAX)))?;
    check.read(models)
}
