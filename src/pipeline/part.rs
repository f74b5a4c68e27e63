//! One device part of the pass: the thread that owns a device's copy of the models folds the
//! batches sent to it (batch i goes to part i mod D) into its own statistics, spills rows beyond
//! its memory share, checks the sums stay finite, checkpoints, and ends with its statistics, a
//! stop, or the error that failed it (and, through `abort`, the other parts).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crossbeam_channel::Receiver;
use tch::{Device, Kind, Tensor};

use super::checkpoint::{Checkpointer, PartMeta};
use super::finite_check::{check_finite, FiniteCheck};
use super::job::Job;
use super::loader::{Batch, Message};
use super::memory;
use super::outcome::DeviceTime;
use super::progress::Progress;
use super::stop::stop_flag;
use super::stopwatch::Stopwatch;
use crate::dataset::{Geometry, Skip};
use crate::device::{upload_staged, Fence};
use crate::error::{Error, Result};
use crate::stats::{BatchLabels, ModelStats};
use crate::stats::{RowBudget, Spiller};
use crate::stats_file::{FileInfo, Progress as Done};
use crate::zoo::ZooModel;

/// Batches between checks for NaN/Inf in the statistics (queued behind a batch, read when it lands).
const FINITE_CHECK_EVERY: usize = 16;
const WARN_SKIPS: usize = 20;

/// How one device part ended.
pub(super) enum PartEnd {
    Finished(Box<Part>),
    /// Stopped on request after checkpointing `files_done` files in all.
    Stopped {
        files_done: usize,
    },
    Failed(Error),
}

pub(super) struct Part {
    pub stats: Vec<ModelStats>,
    pub skipped: Vec<Skip>,
    pub files_done: usize,
    pub index: usize,
    /// What its checkpoint would say now.
    pub info: FileInfo,
    pub time: DeviceTime,
}

pub(super) struct PartContext<'a> {
    pub job: &'a Job<'a>,
    pub index: usize,
    pub path: &'a Path,
    pub meta: &'a PartMeta<'a>,
    pub geometries: &'a [Geometry],
    pub abort: &'a AtomicBool,
    pub progress: &'a dyn Progress,
    /// What this part's feature rows may keep in host memory before it spills them.
    pub rows: &'a RowBudget,
}

/// What a part carries from one batch to the next.
struct State<'a> {
    stats: Vec<ModelStats>,
    progress: Done,
    skipped: Vec<Skip>,
    /// Pass seconds of the checkpoint this part resumed from.
    earlier_s: f64,
    started: Instant,
    in_flight: InFlight,
    finite_check: Option<FiniteCheck>,
    folded: usize,
    time: DeviceTime,
    spiller: Spiller,
    watch: Stopwatch,
    checkpoints: Checkpointer<'a>,
    /// Each model's input geometry, by index into the context's `geometries`.
    geometry_of: Vec<usize>,
}

impl PartContext<'_> {
    pub fn run(
        &self,
        rx: Receiver<Message>,
        models: Vec<ZooModel>,
        stats: Vec<ModelStats>,
        restored: Option<FileInfo>,
    ) -> PartEnd {
        match self.drive(rx, &models, stats, restored) {
            Ok(end) => end,
            Err(e) => {
                self.abort.store(true, Ordering::SeqCst);
                PartEnd::Failed(e)
            }
        }
    }

    fn drive(
        &self,
        rx: Receiver<Message>,
        models: &[ZooModel],
        stats: Vec<ModelStats>,
        restored: Option<FileInfo>,
    ) -> Result<PartEnd> {
        // The setting is per thread, and this may be a new one.
        crate::taps::run_graphs_unoptimised();
        let mut state = self.start(models, stats, restored)?;
        for message in rx {
            state.lap(|s| &mut s.waiting_for_batches_s);
            if self.abort.load(Ordering::SeqCst) {
                return Err(Error::AnotherPartFailed);
            }
            match message {
                Message::Batch(batch) => {
                    if let Some(end) = self.step(&mut state, models, &batch)? {
                        return Ok(end);
                    }
                }
                Message::End => return self.end(state, models),
                Message::Failed(reason) => return Err(Error::Decoding(reason)),
            }
        }
        Err(Error::Decoding(
            "the images ended before their last batch".into(),
        ))
    }

    fn start<'s>(
        &'s self,
        models: &[ZooModel],
        mut stats: Vec<ModelStats>,
        restored: Option<FileInfo>,
    ) -> Result<State<'s>> {
        let plan = self.job.plan;
        let (progress, skipped, earlier_s) = match restored {
            Some(info) => (
                info.progress.unwrap_or(self.fresh()),
                info.skipped.iter().map(Skip::from).collect::<Vec<_>>(),
                info.pass_s,
            ),
            None => (self.fresh(), Vec::new(), 0.0),
        };
        let geometry_of = models
            .iter()
            .map(|m| {
                self.geometries
                    .iter()
                    .position(|g| *g == m.geometry)
                    .unwrap_or(0)
            })
            .collect();
        let mut spiller = Spiller::new(self.rows.clone());
        // A restored checkpoint brings its rows back into memory.
        spiller.spill_over(stats.iter_mut().flat_map(ModelStats::stores_mut))?;
        Ok(State {
            stats,
            progress,
            skipped,
            earlier_s,
            started: Instant::now(),
            in_flight: InFlight::default(),
            finite_check: None,
            folded: 0,
            time: DeviceTime {
                device: crate::device::label(self.device()),
                ..DeviceTime::default()
            },
            spiller,
            watch: Stopwatch::start(),
            checkpoints: Checkpointer::new(
                self.path,
                &plan.checkpoints,
                self.index,
                plan.checkpoint_every,
            ),
            geometry_of,
        })
    }

    fn device(&self) -> Device {
        self.job.plan.devices[self.index]
    }

    /// What this part's checkpoint says now.
    fn info(&self, state: &State) -> FileInfo {
        FileInfo {
            dataset: self.job.dataset.clone(),
            shard: self.job.plan.shard,
            progress: Some(state.progress),
            skipped: state.skipped.iter().map(Into::into).collect(),
            device_kind: crate::device::kind(self.device()),
            pass_s: state.earlier_s + state.started.elapsed().as_secs_f64(),
        }
    }

    /// Folds one batch in; Some at a stop.
    fn step(
        &self,
        state: &mut State,
        models: &[ZooModel],
        batch: &Batch,
    ) -> Result<Option<PartEnd>> {
        let device = self.device();
        self.fold(
            batch,
            device,
            models,
            &state.geometry_of,
            &mut state.stats,
            &mut state.time,
        )?;
        state.folded += 1;
        if state.folded.is_multiple_of(crate::allocator::RELEASE_EVERY) {
            crate::allocator::release_freed_memory();
        }
        if state.folded.is_multiple_of(FINITE_CHECK_EVERY) && state.finite_check.is_none() {
            state.finite_check = FiniteCheck::queue(&state.stats, batch.index as u64)
                .map_err(|e| Error::torch_op("checking the statistics", e))?;
        }
        let fence = Fence::record(device)
            .map_err(|e| Error::torch_op("marking the batch on the device", e))?;
        state.lap(|s| &mut s.queueing_s);
        let landed = state.in_flight.push(fence, batch.index as u64)?;
        state.lap(|s| &mut s.waiting_for_device_s);
        if let Some(serial) = landed {
            settle(serial, &mut state.stats)?;
            if let Some(check) = state.finite_check.take_if(|c| c.serial <= serial) {
                check.read(models)?;
            }
        }
        state.lap(|s| &mut s.settling_s);
        // Only rows already landed (settled) are in the classes to spill.
        state
            .spiller
            .spill_over(state.stats.iter_mut().flat_map(ModelStats::stores_mut))?;
        state.lap(|s| &mut s.spilling_s);
        self.count(state, batch);
        let stopping = stop_flag().load(Ordering::SeqCst);
        if state.checkpoints.due(stopping) {
            let _span = tracing::debug_span!("checkpoint", part = self.index).entered();
            state.in_flight.land_all(&mut state.stats)?;
            let info = self.info(state);
            state
                .checkpoints
                .save(info, self.meta, &mut state.stats, stopping)?;
            state.lap(|s| &mut s.checkpoints_s);
        }
        Ok(stopping.then_some(PartEnd::Stopped {
            files_done: state.progress.files_done,
        }))
    }

    /// The batch's files done, and its skipped files said (the first few) and kept.
    fn count(&self, state: &mut State, batch: &Batch) {
        for skip in &batch.skipped {
            if state.skipped.len() < WARN_SKIPS {
                tracing::warn!("skipped {}: {}", skip.path.display(), skip.reason);
            } else if state.skipped.len() == WARN_SKIPS {
                tracing::warn!("more files skipped; report.json lists them all");
            }
            state.skipped.push(skip.clone());
        }
        state.progress.batches_done += 1;
        state.progress.files_done += batch.files;
        self.progress.advance(batch.files);
    }

    /// The part's last batch is in: everything landed and checked.
    fn end(&self, mut state: State, models: &[ZooModel]) -> Result<PartEnd> {
        state.in_flight.land_all(&mut state.stats)?;
        state
            .spiller
            .spill_over(state.stats.iter_mut().flat_map(ModelStats::stores_mut))?;
        state.lap(|s| &mut s.waiting_for_device_s);
        state.time.batches = state.progress.batches_done;
        if state.spiller.written > 0 {
            tracing::info!(
                "device part {}: {} of feature rows spilled to disk beyond the memory budget",
                self.index + 1,
                memory::gib(state.spiller.written)
            );
        }
        check_finite(models, &state.stats, self.device())?;
        tracing::debug!(
            "device part {} of {} ({}): {} batches, {} files",
            self.index + 1,
            self.job.plan.devices.len(),
            crate::device::label(self.device()),
            state.progress.batches_done,
            state.progress.files_done
        );
        Ok(PartEnd::Finished(Box::new(Part {
            info: self.info(&state),
            files_done: state.progress.files_done,
            index: self.index,
            stats: state.stats,
            skipped: state.skipped,
            time: state.time,
        })))
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

impl State<'_> {
    /// Adds the time since the last lap to `step`, on both clocks.
    fn lap(&mut self, step: fn(&mut super::outcome::Steps) -> &mut f64) {
        self.watch.lap(&mut self.time, step);
    }
}

/// The batch queued last and the fence behind it. On a GPU the host queues batch i, then waits
/// for batch i-1 only, so that the GPU always has work; on the CPU a batch is done when its
/// calls return, and there is no fence.
#[derive(Default)]
struct InFlight(Option<(Fence, u64)>);

impl InFlight {
    /// Takes the fence of batch `serial`, just queued, and waits for the one before it. Returns
    /// the batch now landed: this one on the CPU, the previous one (if any) on a GPU.
    fn push(&mut self, fence: Option<Fence>, serial: u64) -> Result<Option<u64>> {
        let previous = self.0.take();
        let landed = match (&fence, &previous) {
            (None, _) => Some(serial),
            (Some(_), previous) => previous.as_ref().map(|(_, s)| *s),
        };
        self.0 = fence.map(|f| (f, serial));
        wait(previous)?;
        Ok(landed)
    }

    /// Waits for everything queued and makes every row readable.
    fn land_all(&mut self, stats: &mut [ModelStats]) -> Result<()> {
        wait(self.0.take())?;
        settle(u64::MAX, stats)
    }
}

/// One (B, 3, size, size) float tensor in [0, 1] per geometry, on the device.
fn to_device(batch: &Batch, device: Device) -> Result<Vec<Tensor>, tch::TchError> {
    batch
        .pixels
        .iter()
        .map(|pixels| {
            // (B, H, W, 3) bytes seen as (B, 3, H, W): channels-last, which oneDNN's
            // convolutions run faster than contiguous NCHW on CPU (docs/performance.md).
            upload_staged(pixels, device)?
                .f_permute([0, 3, 1, 2])?
                .f_to_kind(Kind::Float)?
                .f_div_scalar_(255.0)
        })
        .collect()
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
