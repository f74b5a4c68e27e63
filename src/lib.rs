//! zoo-select: which pretrained model of a zoo to fine-tune, and where to cut it, for a target
//! image task, from one pass over its labelled images.
//!
//! The binary (src/main.rs, src/cli/) parses arguments and prints; everything else is here:
//! `config` and `plan` describe a run, `dataset` lists and preprocesses images, `zoo` loads the
//! models, `taps` captures their layers, `pipeline` makes the pass, `stats` accumulates,
//! `stats_file` keeps statistics as files (cache, checkpoints, shards), `metrics` scores,
//! `recommend` turns scores into advice, `report` ranks and writes the results;
//! `numerics` asks MKL for reproducible arithmetic.

pub mod allocator;
pub mod atomic_file;
pub mod config;
pub mod dataset;
pub mod device;
pub mod error;
pub mod metrics;
pub mod numerics;
pub mod pipeline;
pub mod plan;
pub mod recommend;
pub mod report;
pub mod stats;
pub mod stats_file;
pub mod taps;
pub mod threading;
pub mod zoo;

pub use error::{Error, Result};
