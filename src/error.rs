//! The library's one error type. Every variant is something a user can act on, so each message
//! names the model, layer, file or key at fault and, where there is one, the next step. The binary
//! prints it on one line and exits 1; nothing in the library panics on bad input.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("config {path}: {message}")]
    Config { path: PathBuf, message: String },

    #[error("manifest {}: {message}", .path.display())]
    Manifest { path: PathBuf, message: String },

    #[error("manifest {} does not exist; {hint}", .path.display())]
    ManifestMissing { path: PathBuf, hint: String },

    #[error("dataset {root}: {message}")]
    Dataset { root: PathBuf, message: String },

    #[error(
        "dataset {root}: {found} class(es) with usable images{names}; at least two are needed to \
         compare classes"
    )]
    TooFewClasses {
        root: PathBuf,
        found: usize,
        names: String,
    },

    #[error("model `{model}`: cannot load {path}: {reason}")]
    ModelLoad {
        model: String,
        path: PathBuf,
        reason: String,
    },

    #[error(
        "model `{model}` has no submodule `{layer}`{}; use `zoo-select layers {}` to list names",
        nearby_hint(.nearby),
        .path.display()
    )]
    LayerNotFound {
        model: String,
        layer: String,
        nearby: Vec<String>,
        path: PathBuf,
    },

    #[error(
        "model `{model}` ({}) is frozen (torch.jit.freeze) or has no submodules: its forward calls \
         no submodule to tap; export it with torch.jit.script or torch.jit.trace without freezing",
        .path.display()
    )]
    FrozenModel { model: String, path: PathBuf },

    /// The first forward on a blank image failed for a reason the input explains.
    #[error(
        "model `{model}`: its forward fails on {size} x {size} RGB images ({message}); {hint}"
    )]
    ModelInput {
        model: String,
        size: u32,
        message: String,
        hint: String,
    },

    #[error("model `{model}`: layer `{layer}` cannot be tapped: {reason}")]
    LayerNotTappable {
        model: String,
        layer: String,
        reason: String,
    },

    #[error("model `{model}`: layer `{layer}` gives a tensor of shape {shape:?}; expected (N, C, H, W), (N, T, C) or (N, C)")]
    UnsupportedShape {
        model: String,
        layer: String,
        shape: Vec<i64>,
    },

    #[error(
        "model `{model}`: layer `{layer}` produced NaN or Inf activations; check the model file \
         and the input normalisation (mean/std) in the config"
    )]
    NonFinite { model: String, layer: String },

    #[error("device `{requested}`: {reason}")]
    Device { requested: String, reason: String },

    #[error("model `{model}`: {context}: {message}")]
    Torch {
        model: String,
        context: &'static str,
        message: String,
    },

    /// A libtorch failure outside any one model (moving a batch to the device, ...).
    #[error("{context}: {message}")]
    TorchOp {
        context: &'static str,
        message: String,
    },

    #[error("{context} {}: {source}", .path.display())]
    Io {
        context: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{metric}: {message}")]
    Metric { metric: String, message: String },

    /// A metric undefined on one row's statistics, because of the data: too few images or
    /// classes, or (`numerical`) a singular, not positive definite or non-finite result from
    /// features that barely vary. The row gets a note; the run goes on.
    #[error("{metric}: {message}")]
    Degenerate {
        metric: String,
        message: String,
        numerical: bool,
    },

    /// The decoding side failed or ended early: the pass cannot go on without its images.
    #[error("image decoding stopped: {0}")]
    Decoding(String),

    /// A device part stopped because another one failed; that one's error is the cause, and
    /// the pass reports it instead.
    #[error("stopped because another device part failed")]
    AnotherPartFailed,

    /// A device thread panicked: a bug, not a property of the input.
    #[error("the device thread of part {part} panicked; this is a bug: please report it with the log of the run with -v")]
    DevicePanicked { part: usize },

    /// A (model, layer) the plan asks for has no statistics after the pass: a bug.
    #[error("no statistics for {model}/{layer} after the pass; this is a bug: please report it, and run again with --no-cache meanwhile")]
    MissingStatistics { model: String, layer: String },

    #[error(
        "the statistics would need {need} but the memory budget is {budget}{why}; use fewer \
         layers or models, a smaller `dataset.max_per_class`, or a larger `memory_budget` (GiB)"
    )]
    Memory {
        need: String,
        budget: String,
        why: String,
    },

    #[error(
        "{reason}; free disk space in {}, or give a larger `memory_budget` (GiB), fewer layers \
         or models, or a smaller `dataset.max_per_class`",
        .dir.display()
    )]
    Spill { dir: PathBuf, reason: String },

    #[error("statistics file {}: {message}", .path.display())]
    StatsFile { path: PathBuf, message: String },

    /// A set of shard files that does not make one whole.
    #[error("shards: {0}")]
    Shards(String),

    #[error("output folder {}: {reason}; choose another with --output (or `output:` in the config)", .path.display())]
    Output { path: PathBuf, reason: String },

    #[error(
        "interrupted after {done} of {total} images; the statistics so far are in {}: run the same command again to resume",
        .checkpoint.display()
    )]
    Interrupted {
        done: usize,
        total: usize,
        checkpoint: PathBuf,
    },
}

fn nearby_hint(nearby: &[String]) -> String {
    if nearby.is_empty() {
        String::new()
    } else {
        format!(
            " (did you mean {}?)",
            nearby
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// libtorch's messages carry a C++ backtrace after the first line; users need only that line.
pub fn torch_message(err: &tch::TchError) -> String {
    let text = match err {
        tch::TchError::Torch(msg) => msg.as_str(),
        other => return other.to_string(),
    };
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("unknown libtorch error")
        .to_owned()
}

impl Error {
    pub fn torch(model: &str, context: &'static str, err: tch::TchError) -> Self {
        Error::Torch {
            model: model.to_owned(),
            context,
            message: torch_message(&err),
        }
    }

    pub fn torch_op(context: &'static str, err: tch::TchError) -> Self {
        Error::TorchOp {
            context,
            message: torch_message(&err),
        }
    }

    pub fn io(context: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            context,
            path: path.into(),
            source,
        }
    }
}
