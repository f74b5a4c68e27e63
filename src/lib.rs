//! zoo-select: which pretrained model of a zoo to fine-tune, and where to cut it, for a target
//! image task, from one pass over its labelled images.
pub mod error;
pub mod taps;

pub use error::{Error, Result};
