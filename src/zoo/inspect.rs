//! What `zoo-select layers` shows: every submodule of a model, how often forward calls it,
//! whether it can be tapped, the shape of its output for a probe image, and which names the
//! selectors `stages` and `all` pick.

use std::path::Path;

use tch::{Device, Kind, Tensor};

use super::model::load_tapped;
use super::spec::is_block;
use crate::error::{Error, Result};
use crate::taps;

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LayerRow {
    pub name: String,
    pub calls: usize,
    /// Why it cannot be tapped, if it cannot.
    pub untappable: Option<String>,
    /// Output shape (last call) for one size x size image; None if it cannot be tapped.
    pub shape: Option<Vec<i64>>,
    /// One of the manifest's stages (`layers: stages`).
    pub stage: bool,
    /// Selected by `layers: all`.
    pub block: bool,
}

/// The rows of the model at `path`, probed with a blank `size` x `size` RGB image on the CPU.
pub fn inspect(name: &str, path: &Path, size: u32, stages: &[String]) -> Result<Vec<LayerRow>> {
    let listing = taps::layers(path)?;
    if listing.iter().all(|l| l.calls == 0) {
        return Err(Error::FrozenModel {
            model: name.to_owned(),
            path: path.to_owned(),
        });
    }
    let tappable: Vec<String> = listing
        .iter()
        .filter(|l| l.calls > 0 && l.untappable.is_none())
        .map(|l| l.name.clone())
        .collect();
    let module = load_tapped(name, path, &tappable, Device::Cpu)?;
    let s = size as i64;
    let blank = Tensor::f_zeros([1, 3, s, s], (Kind::Float, Device::Cpu))
        .map_err(|e| Error::torch(name, "making the probe input", e))?;
    let (_, outputs) = module
        .run(name, &blank, tappable.len())
        .map_err(|e| match e {
            Error::Torch {
                model,
                context,
                message,
            } => Error::Torch {
                model,
                context,
                message: format!(
                    "{message} (is {size} the model's input size? set it with --input-size)"
                ),
            },
            other => other,
        })?;
    let mut shapes = tappable.iter().zip(outputs.iter().map(Tensor::size));
    let mut next_shape = |n: &str| shapes.find(|(t, _)| t.as_str() == n).map(|(_, s)| s);
    Ok(listing
        .iter()
        .map(|l| LayerRow {
            name: l.name.clone(),
            calls: l.calls,
            untappable: l.untappable.clone(),
            shape: if l.calls > 0 && l.untappable.is_none() {
                next_shape(&l.name)
            } else {
                None
            },
            stage: stages.contains(&l.name),
            block: is_block(l, &listing),
        })
        .collect())
}
