//! The statistics checked for NaN and infinity during the pass, without the host waiting for the
//! device: a NaN from one bad image or a diverging layer stops the run a batch or two after it
//! appears, naming the (model, layer), rather than poisoning every score at the end.

use tch::{Device, Kind, Tensor};

use crate::device::{start_download, Fence};
use crate::error::{Error, Result};
use crate::stats::ModelStats;
use crate::zoo::ZooModel;

/// A check that every layer's sums are still finite, queued behind a batch: its flags come back
/// to host memory with that batch, so a NaN stops the run a batch or two after it appears without
/// the host ever waiting for the device to read them.
pub(super) struct FiniteCheck {
    pub serial: u64,
    /// (models x layers,) u8 in host memory once batch `serial` is done: 1 where finite.
    flags: Tensor,
}

impl FiniteCheck {
    /// The check behind batch `serial` (None when there are no layers to check).
    pub fn queue(stats: &[ModelStats], serial: u64) -> Result<Option<FiniteCheck>, tch::TchError> {
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
    pub fn read(&self, models: &[ZooModel]) -> Result<()> {
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
pub(super) fn check_finite(
    models: &[ZooModel],
    stats: &[ModelStats],
    device: Device,
) -> Result<()> {
    let check = FiniteCheck::queue(stats, u64::MAX)
        .map_err(|e| Error::torch_op("checking the statistics", e))?;
    let Some(check) = check else {
        return Ok(());
    };
    let fence =
        Fence::record(device).map_err(|e| Error::torch_op("marking the check on the device", e))?;
    if let Some(fence) = fence {
        fence
            .wait()
            .map_err(|e| Error::torch_op("waiting for the device", e))?;
    }
    check.read(models)
}
