//! What the pipeline hands on: a finished run's results (`Outcome`, one `LayerResult` per
//! (model, layer)), the statistics gathered before scoring (`Gathered`) and where the time went.
//! A leaf: every other module of the pipeline, and the report, read these types; none of them
//! is read back from here.

use std::path::PathBuf;

use crate::dataset::Skip;
use crate::stats_file::{FileInfo, ModelEntry};

use super::loader;

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
    /// Host memory held by feature rows at the end of the pass.
    pub host_bytes: usize,
    /// Disk used for LEEP's softmax rows.
    pub spilled_bytes: u64,
    /// Disk used by per-class feature rows spilled beyond `memory_budget`, at the end.
    pub spilled_rows_bytes: u64,
    pub device: String,
    pub timing: Timing,
    pub statistics: StatsReport,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
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
    /// Rows of the image sample the sample-level metrics (k-NN) read, if any.
    pub sample_rows: Option<u64>,
    /// (relative metric, its raw (term, value)s here), in the plan's metric order: what the
    /// metric's score of this row was combined from, with every other row's.
    pub terms: Vec<(String, Vec<(String, f64)>)>,
    /// (metric, its score without each fold of the sample in turn), for the metrics the advice
    /// reads that read the sample (metrics/jackknife.rs); empty with `folds: 0`.
    #[serde(default)]
    pub folds: Vec<(String, Vec<f64>)>,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Timing {
    pub load_s: f64,
    pub pass_s: f64,
    pub score_s: f64,
    pub total_s: f64,
    pub images_per_s: f64,
    /// Each model loaded for the pass (none when the statistics were all cached).
    pub models: Vec<ModelLoad>,
    /// Where each device thread's pass time went.
    pub devices: Vec<DeviceTime>,
    /// Where the decoding side's time went (none when no pass ran).
    pub decoding: Option<loader::DecodingTime>,
}

/// Where one device thread's time went during the pass: what bounds the pass is where it spent
/// the most. Waiting for batches: decoding is slower than the device (more `workers`, smaller
/// images). Queueing: the host's own per-batch work (on the CPU, the whole forward pass and the
/// statistics), split into uploading the batches, the forwards and the statistics (on a GPU, the
/// time to queue their kernels, unless one of them waits for the device). Waiting for the
/// device: a GPU busy with the batches queued (the best case). Settling: filing the feature rows
/// that came back from the device in host memory; spilling: writing rows beyond the memory
/// budget to disk. `cpu` holds the same steps on the device thread's CPU clock: a step far
/// longer on the wall was waiting, not working.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct DeviceTime {
    pub device: String,
    pub batches: usize,
    #[serde(flatten)]
    pub wall: Steps,
    pub cpu: Steps,
}

/// The device thread's steps, in seconds.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Steps {
    pub waiting_for_batches_s: f64,
    pub queueing_s: f64,
    pub uploading_s: f64,
    pub forwards_s: f64,
    pub statistics_s: f64,
    pub waiting_for_device_s: f64,
    pub settling_s: f64,
    pub spilling_s: f64,
    pub checkpoints_s: f64,
}

/// How long one model took to be ready on one device, whether its rewritten module came from
/// the module cache, and whether TorchScript optimised it for inference.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelLoad {
    pub model: String,
    pub device: String,
    pub seconds: f64,
    pub cached_module: bool,
    pub optimized: bool,
}

/// Where the statistics came from.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct StatsReport {
    pub cache: Option<PathBuf>,
    /// `model/layer` pairs read from the cache.
    pub reused: Vec<String>,
    /// `model/layer` pairs this run's pass computed.
    pub computed: Vec<String>,
    /// Files a checkpoint had already folded in when this run started.
    pub resumed_files: usize,
    /// Shard files merged (`zoo-select score`).
    pub shards: Vec<PathBuf>,
}

/// The statistics of every model of a plan, gathered by a pass or read from files.
pub struct Gathered {
    pub info: FileInfo,
    /// In the plan's order, each with the plan's layers in order.
    pub models: Vec<ModelEntry>,
    pub empty_classes: Vec<String>,
    pub load_s: f64,
    pub loads: Vec<ModelLoad>,
    pub device_times: Vec<DeviceTime>,
    pub decoding: Option<loader::DecodingTime>,
    pub pass_s: f64,
    pub accumulator_bytes: usize,
    pub statistics: StatsReport,
}
