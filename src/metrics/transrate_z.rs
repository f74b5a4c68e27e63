//! TransRate calibrated against shuffled labels: how far the real labels' TransRate stands
//! above the TransRate of the same features with the class labels permuted, in units of the
//! permutations' spread. The published rate grows with the width and the rank of a layer
//! whatever the labels are; permuted labels grow with them just as the real ones do, so the
//! difference cancels that growth, and features that fit any labelling (a network that
//! memorised random labels, a wide random one) score near zero.
//!
//! On the rows of the sample k-NN reads, with TransRate's configured eps, scale, class weights
//! and normalisation (`transrate:`), Z the rows centred by their mean:
//!
//!   W(y) = sum_c w_c R(Z_c),  R(Z_c) = 1/2 logdet(I + Z_c^T Z_c / (n_c eps))
//!   transrate_z = (mean_p W(y_p) - W(y)) / sd_p W(y_p)       (sd with ddof 1)
//!
//! over PERMUTATIONS fixed permutations y_p of the labels. TransRate = R(Z) - W(y), and R(Z)
//! does not depend on the labels, so this is TransRate's z-score against its permutation null;
//! `per_rank` divides every term by the same rank and drops out; `subspace` is not applied.
//! The permutations are Fisher-Yates shuffles driven by SplitMix64 seeded with the permutation's
//! number, written out in the NumPy reference (tests/oracles/sample_metrics.py), so both draw
//! the same ones on every machine.

use tch::{Kind, Tensor};

use super::metric::{torch_err, Metric};
use crate::config::{ClassWeight, Normalize, TransRateConfig, TransRateScale};
use crate::error::{Error, Result};
use crate::stats::{logdet_identity_plus, ClassMoments, Needs, Transform};

pub struct TransRateZ {
    pub options: TransRateConfig,
    /// Rows of the sample (`sample.max_images`, shared with k-NN).
    pub max_images: usize,
}

const NAME: &str = "transrate_z";
pub const PERMUTATIONS: u64 = 16;

impl Metric for TransRateZ {
    fn name(&self) -> &str {
        NAME
    }

    fn needs(&self) -> Needs {
        Needs {
            sample: self.max_images,
            ..Needs::default()
        }
    }

    fn transform(&self) -> Transform {
        match self.options.normalize {
            Normalize::None => Transform::Raw,
            Normalize::L2 => Transform::L2,
        }
    }

    fn score_layer(&self, stats: &ClassMoments) -> Option<Result<f64>> {
        let scored = stats.sample_rows().and_then(|(rows, labels)| {
            let x = rows.f_to_device(stats.shift().device())?;
            self.z(&x, &labels)
        });
        Some(match scored {
            Ok(Some(z)) => Ok(z),
            Ok(None) => Err(Error::Degenerate {
                metric: NAME.into(),
                message: "TransRate is the same under every permutation of the labels".into(),
                numerical: false,
            }),
            Err(e) => Err(torch_err(NAME)(e)),
        })
    }
}

impl TransRateZ {
    /// The z-score of rows `x` (m, D) labelled `labels`; None when the permutations' rates do
    /// not vary.
    pub fn z(&self, x: &Tensor, labels: &[i64]) -> Result<Option<f64>, tch::TchError> {
        let x = x.f_to_kind(Kind::Double)?;
        let mut z = x.f_sub(&x.f_mean_dim(&[0i64][..], true, Kind::Double)?)?;
        let m = labels.len();
        if let TransRateScale::Trace = self.options.scale {
            let mean_sq = z.f_square()?.f_sum(Kind::Double)?.f_double_value(&[])? / m as f64;
            if mean_sq > 0.0 {
                z = z.f_div_scalar(mean_sq.sqrt())?;
            }
        }
        let real = self.within(&z, labels)?;
        let mut shuffled = Vec::with_capacity(PERMUTATIONS as usize);
        for p in 0..PERMUTATIONS {
            let mut permuted = labels.to_vec();
            shuffle(&mut permuted, p);
            shuffled.push(self.within(&z, &permuted)?);
        }
        let mean = shuffled.iter().sum::<f64>() / shuffled.len() as f64;
        let var = shuffled.iter().map(|w| (w - mean).powi(2)).sum::<f64>()
            / (shuffled.len() - 1) as f64;
        let sd = var.sqrt();
        if !(sd > 0.0) || !sd.is_finite() {
            return Ok(None);
        }
        Ok(Some((mean - real) / sd))
    }

    /// W(y) = sum_c w_c R(Z_c), each rate from the smaller of the class's Gram and scatter.
    fn within(&self, z: &Tensor, labels: &[i64]) -> Result<f64, tch::TchError> {
        let classes = labels.iter().copied().max().unwrap_or(0) as usize + 1;
        let mut members: Vec<Vec<i64>> = vec![Vec::new(); classes];
        for (i, &l) in labels.iter().enumerate() {
            members[l as usize].push(i as i64);
        }
        let present = members.iter().filter(|c| !c.is_empty()).count() as f64;
        let (m, d) = (labels.len() as f64, z.size()[1]);
        let mut total = 0.0;
        for rows in members.iter().filter(|c| !c.is_empty()) {
            let n_c = rows.len() as f64;
            let idx = Tensor::f_from_slice(rows)?.f_to_device(z.device())?;
            let zc = z.f_index_select(0, &idx)?;
            let gram = if (rows.len() as i64) < d {
                zc.f_matmul(&zc.f_transpose(0, 1)?)?
            } else {
                zc.f_transpose(0, 1)?.f_matmul(&zc)?
            };
            let weight = match self.options.class_weight {
                ClassWeight::Uniform => 1.0 / present,
                ClassWeight::Count => n_c / m,
            };
            total += weight * 0.5 * logdet_identity_plus(gram, n_c * self.options.eps)?;
        }
        Ok(total)
    }
}

/// SplitMix64 (Steele et al. 2014), the generator behind the permutations.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Fisher-Yates shuffle number `seed` of `items`.
pub fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut state = seed;
    for i in (1..items.len()).rev() {
        let j = (splitmix(&mut state) % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}
