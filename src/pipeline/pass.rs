//! The pass over the images for the models (and layers) whose statistics are not cached: the
//! loader decodes each image once; one thread per device owns that device's copy of the models
//! and folds its batches (batch i goes to part i mod D) into its own statistics; the parts are
//! added up at the end. Each part checkpoints itself every `checkpoint_every` and when a stop
//! is requested (SIGINT, SIGTERM), so a killed or stopped run resumes where it was.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use tch::Device;

use super::checkpoint::{self, PartMeta, Restored};
use super::job::Job;
use super::loader::{self, DecodingTime};
use super::memory;
use super::outcome::{DeviceTime, ModelLoad};
use super::part::{Part, PartContext, PartEnd};
use super::progress::Progress;
use crate::dataset::{Geometry, Skip};
use crate::error::{Error, Result};
use crate::stats::ModelStats;
use crate::stats::RowBudget;
use crate::stats_file::{ModelEntry, ModelKey};
use crate::zoo::{ModuleCache, ZooModel};

/// Batches decoded ahead of each device thread.
const PREFETCH: usize = 4;

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

/// Loads every model of the job onto `device`, one after another: loading two at once was no
/// faster, their probes' OpenMP threads contending for the cores.
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
    let mut resume = Resume::find(job);
    // Loading runs the models' probes on this thread.
    crate::taps::run_graphs_unoptimised();
    // How busy the machine is while the models load decides libtorch's threads for the pass.
    let load = crate::threading::Load::now();
    let (models, loads) = load_all(job)?;
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
    let stats = allocate(job, &models, &mut resume.restored)?;
    let accumulator_bytes = stats[0].iter().map(ModelStats::bytes).sum();
    tracing::info!(
        "statistics for {} (model, layer) pairs: {:.1} MiB per device",
        job.specs.iter().map(|s| s.layers.len()).sum::<usize>(),
        accumulator_bytes as f64 / (1024.0 * 1024.0)
    );
    let meta = part_meta(job, &models[0]);
    let load_s = start.elapsed().as_secs_f64();

    let pass_start = Instant::now();
    progress.begin(job.items.len());
    progress.advance(resume.files);
    let restored = std::mem::take(&mut resume.restored);
    let parts = Parts {
        job,
        resume: &resume,
        meta: &meta,
        rows: &row_budget,
        progress,
    };
    let (ends, decoding) = parts.run(models, stats, restored);
    progress.finish();
    let total = add_up(job, ends, &resume.paths, &meta)?;
    let models = total
        .stats
        .into_iter()
        .zip(&job.keys)
        .zip(meta.source)
        .map(|((stats, key), source_logits)| ModelEntry {
            key: key.clone(),
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
        device_times: total.times,
        decoding,
        pass_s: pass_start.elapsed().as_secs_f64(),
        resumed_files: resume.files,
        accumulator_bytes,
        checkpoints: resume.paths,
    })
}

/// Where each device part's checkpoint lives and what it holds, if this pass ran before.
struct Resume {
    paths: Vec<PathBuf>,
    restored: Vec<Option<Restored>>,
    /// Batches each part had done.
    done: Vec<usize>,
    /// Files the checkpoints had done, all parts together.
    files: usize,
}

impl Resume {
    fn find(job: &Job) -> Resume {
        let plan = job.plan;
        let parts = plan.devices.len();
        let identities: Vec<(ModelKey, Vec<String>)> = job
            .keys
            .iter()
            .cloned()
            .zip(job.specs.iter().map(|s| s.layers.clone()))
            .collect();
        let key = checkpoint::run_key(
            job.dataset,
            plan.shard,
            plan.batch_size,
            parts,
            &identities,
            &job.layout.describe(),
        );
        let paths: Vec<PathBuf> = (0..parts)
            .map(|d| checkpoint::part_path(&plan.checkpoints, &key, d, parts))
            .collect();
        let restored: Vec<Option<Restored>> = paths
            .iter()
            .map(|p| checkpoint::restore(p, &job.keys))
            .collect();
        let progress = |r: &Option<Restored>| r.as_ref().and_then(|r| r.info.progress);
        let done = restored
            .iter()
            .map(|r| progress(r).map_or(0, |p| p.batches_done))
            .collect();
        let files = restored
            .iter()
            .filter_map(progress)
            .map(|p| p.files_done)
            .sum();
        if files > 0 {
            tracing::info!(
                "resuming from the checkpoint in {}: {files} of {} files already done",
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
        Resume {
            paths,
            restored,
            done,
            files,
        }
    }
}

/// Every model on every device of the plan, the rewritten modules from the cache's
/// `modules/` where it keeps them.
fn load_all(job: &Job) -> Result<(Vec<Vec<ZooModel>>, Vec<ModelLoad>)> {
    let plan = job.plan;
    let modules = plan.cache.as_deref().map(|dir| {
        let modules = ModuleCache::in_cache(dir);
        if plan.cache_can_be_written() {
            modules
        } else {
            modules.read_only()
        }
    });
    let mut models = Vec::with_capacity(plan.devices.len());
    let mut loads = Vec::new();
    for device in &plan.devices {
        // Once per process and device, so that no model's load time carries it.
        crate::device::start(*device).map_err(|e| Error::torch_op("starting the device", e))?;
        let (on_device, timed) = load_models(job, *device, modules.as_ref())?;
        models.push(on_device);
        loads.extend(timed);
    }
    Ok((models, loads))
}

/// Each part's statistics: its checkpoint's, moved to its device, or new ones.
fn allocate(
    job: &Job,
    models: &[Vec<ZooModel>],
    restored: &mut [Option<Restored>],
) -> Result<Vec<Vec<ModelStats>>> {
    let mut stats = Vec::with_capacity(models.len());
    for (d, device_models) in models.iter().enumerate() {
        stats.push(match restored[d].take() {
            Some(r) => {
                let mut moved = Vec::new();
                for (mut s, m) in r.stats.into_iter().zip(device_models) {
                    moved.push(
                        s.to_device(job.plan.devices[d])
                            .map_err(|e| Error::torch(&m.name, "restoring the checkpoint", e))?,
                    );
                }
                // Its progress stays, for the part to resume from.
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
    Ok(stats)
}

/// What a checkpoint says of the models besides their statistics.
fn part_meta<'a>(job: &'a Job, models: &[ZooModel]) -> PartMeta<'a> {
    PartMeta {
        keys: &job.keys,
        source: models.iter().map(|m| m.source.clone()).collect(),
    }
}

/// The device parts of one pass, and the decoding that feeds them.
struct Parts<'a> {
    job: &'a Job<'a>,
    resume: &'a Resume,
    meta: &'a PartMeta<'a>,
    rows: &'a RowBudget,
    progress: &'a dyn Progress,
}

impl Parts<'_> {
    /// Runs the loader and one thread per device part to the end of the images or a stop.
    fn run(
        &self,
        models: Vec<Vec<ZooModel>>,
        stats: Vec<Vec<ModelStats>>,
        restored: Vec<Option<Restored>>,
    ) -> (Vec<PartEnd>, DecodingTime) {
        let (job, plan) = (self.job, self.job.plan);
        let geometries = Geometry::distinct(job.specs.iter().map(|s| &s.input));
        let abort = AtomicBool::new(false);
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..plan.devices.len())
            .map(|_| crossbeam_channel::bounded(PREFETCH))
            .unzip();
        std::thread::scope(|scope| {
            let geoms = &geometries;
            let done = &self.resume.done;
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
                    plan.batch_size,
                    plan.workers,
                    staging_for,
                    senders,
                    done,
                )
            });
            let mut parts = receivers
                .into_iter()
                .zip(models)
                .zip(stats)
                .zip(restored)
                .enumerate()
                .map(|(d, (((rx, models), stats), restored))| {
                    let ctx = PartContext {
                        job,
                        index: d,
                        path: &self.resume.paths[d],
                        meta: self.meta,
                        geometries: geoms,
                        abort: &abort,
                        progress: self.progress,
                        rows: self.rows,
                    };
                    (ctx, rx, models, stats, restored.map(|r| r.info))
                });
            // Part 0 runs on the calling thread, the others on their own: glibc gives every
            // other thread its own malloc arena, whose large blocks are mmapped and unmapped per
            // batch, so a single-device pass off the main thread ran slower (allocator.rs).
            let first = parts.next();
            let handles: Vec<_> = parts
                .map(|(ctx, rx, models, stats, info)| {
                    let index = ctx.index;
                    (index, scope.spawn(move || ctx.run(rx, models, stats, info)))
                })
                .collect();
            let mut ends = Vec::with_capacity(plan.devices.len());
            if let Some((ctx, rx, models, stats, info)) = first {
                ends.push(ctx.run(rx, models, stats, info));
            }
            ends.extend(handles.into_iter().map(|(part, h)| {
                h.join()
                    .unwrap_or_else(|_| PartEnd::Failed(Error::DevicePanicked { part: part + 1 }))
            }));
            // A producer that panicked has already failed the parts; its times are then unknown.
            (ends, producer.join().unwrap_or_default())
        })
    }
}

/// The parts' statistics added up, their skipped files and times; at a stop, every part that
/// had finished checkpointed too, and `Interrupted`.
struct Total {
    stats: Vec<ModelStats>,
    skipped: Vec<Skip>,
    times: Vec<DeviceTime>,
}

fn add_up(job: &Job, ends: Vec<PartEnd>, paths: &[PathBuf], meta: &PartMeta) -> Result<Total> {
    let mut finished: Vec<Box<Part>> = Vec::with_capacity(ends.len());
    let (mut files, mut interrupted, mut failure) = (0, false, None);
    for end in ends {
        match end {
            PartEnd::Finished(p) => {
                files += p.files_done;
                finished.push(p);
            }
            PartEnd::Stopped { files_done } => {
                interrupted = true;
                files += files_done;
            }
            // The part that failed first says why; the others only stopped for it.
            PartEnd::Failed(Error::AnotherPartFailed) => {
                failure.get_or_insert(Error::AnotherPartFailed);
            }
            PartEnd::Failed(e) => {
                if matches!(failure, None | Some(Error::AnotherPartFailed)) {
                    failure = Some(e);
                }
            }
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    if interrupted {
        // A part that reached its end before the stop keeps that end for the next run.
        for part in &mut finished {
            checkpoint::save(&paths[part.index], part.info.clone(), meta, &mut part.stats)?;
        }
        return Err(Error::Interrupted {
            done: files,
            total: job.items.len(),
            checkpoint: job.plan.checkpoints.clone(),
        });
    }
    let mut parts = finished.into_iter();
    let Some(first) = parts.next() else {
        return Err(Error::Decoding("no device part received a batch".into()));
    };
    let Part {
        mut stats,
        mut skipped,
        time,
        ..
    } = *first;
    let mut times = vec![time];
    for mut part in parts {
        for ((mine, theirs), spec) in stats.iter_mut().zip(&mut part.stats).zip(&job.specs) {
            mine.merge(theirs)
                .map_err(|e| Error::torch(&spec.name, "adding up the devices' statistics", e))?;
        }
        skipped.append(&mut part.skipped);
        times.push(part.time);
    }
    for t in &times {
        log_time(t);
    }
    skipped.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Total {
        stats,
        skipped,
        times,
    })
}

fn log_time(t: &DeviceTime) {
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
