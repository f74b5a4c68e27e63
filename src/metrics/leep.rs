//! LEEP, the log expected empirical prediction (Nguyen et al., "LEEP: A New Measure to Evaluate
//! Transferability of Learned Representations", ICML 2020). With theta_i the source softmax of
//! image i, the empirical joint P(y, z) = 1/n sum_{i: y_i = y} theta_i(z), P(y | z) =
//! P(y, z) / P(z), and
//!   LEEP = 1/n sum_i log sum_z P(y_i | z) theta_i(z).
//! P(y | z) is known only at the end, so the rows theta_i are read back from the spill file of
//! `SourceStats` (N x C_s x 4 bytes on disk). A model without source logits has no LEEP.

use tch::{Kind, Tensor};

use super::metric::{torch_err, Metric};
use crate::error::Result;
use crate::stats::{Needs, SourceStats};

pub struct Leep;

const NAME: &str = "leep";
const CHUNK: usize = 4096;

impl Metric for Leep {
    fn name(&self) -> &str {
        NAME
    }

    fn needs(&self) -> Needs {
        Needs {
            source_soft: true,
            ..Needs::default()
        }
    }

    fn score_source(&self, stats: &mut SourceStats) -> Option<Result<f64>> {
        let joint = stats.soft_joint()?;
        Some(leep(joint, stats).map_err(torch_err(NAME)))
    }
}

fn leep(
    joint: Result<Tensor, tch::TchError>,
    stats: &mut SourceStats,
) -> Result<f64, tch::TchError> {
    let joint = joint?.f_to_device(tch::Device::Cpu)?; // (C, C_s)
    let pz = joint.f_sum_dim_intlist(&[0i64][..], true, Kind::Double)?;
    // A source class no image predicts has P(z) = 0 and theta(z) = 0 everywhere: it adds 0.
    let conditional = joint.f_div(&pz.f_clamp_min(f64::MIN_POSITIVE)?)?;
    let n = stats.images() as f64;
    let mut total = 0.0;
    stats.for_each_rows(CHUNK, |labels, theta| {
        let y = Tensor::f_from_slice(labels)?;
        let expected = theta
            .f_to_kind(Kind::Double)?
            .f_mul(&conditional.f_index_select(0, &y)?)?;
        total += expected
            .f_sum_dim_intlist(&[1i64][..], false, Kind::Double)?
            .f_log()?
            .f_sum(Kind::Double)?
            .f_double_value(&[])?;
        Ok(())
    })?;
    Ok(total / n)
}
