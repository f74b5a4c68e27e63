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
//! over NULLS shuffled labellings y_p. TransRate = R(Z) - W(y), and R(Z) does not depend on the
//! labels, so this is TransRate's z-score against its shuffled-label null; `per_rank` divides
//! every term by the same rank and drops out; `subspace` is not applied.
//!
//! Each image's shuffled label is fixed by its listing position alone: under labelling p, the
//! image at position i takes the label found at quantile u = SplitMix64(p << 32 | i) / 2^64 of
//! the sample's sorted labels. So the shuffled labels keep the classes' proportions, every
//! machine draws the same ones (the NumPy reference writes the arithmetic out), and, what the
//! jackknife needs, leaving images out leaves the others' shuffled labels nearly unchanged:
//! the null's Monte-Carlo noise does not enter the fold scores' spread as if it were the data's.

use tch::{Kind, Tensor};

use super::metric::{score_sample, torch_err, Metric, SampleRows};
use crate::config::{ClassWeight, TransRateConfig, TransRateScale};
use crate::error::{Error, Result};
use crate::stats::{logdet_identity_plus, ClassMoments, Needs, Transform};

pub struct TransRateZ {
    pub options: TransRateConfig,
    /// Rows of the sample (`sample.max_images`, shared with k-NN).
    pub max_images: usize,
}

const NAME: &str = "transrate_z";
pub const NULLS: u64 = 16;

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
        super::transrate::transform_of(self.options.normalize)
    }

    fn score_layer(&self, stats: &ClassMoments) -> Option<Result<f64>> {
        score_sample(self, stats)
    }

    fn score_rows(&self, rows: &SampleRows) -> Option<Result<f64>> {
        Some(match self.z(rows.x, rows.labels, rows.ids) {
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
    /// The z-score of rows `x` (m, D) labelled `labels`, the images at listing positions
    /// `ids`; None when the shuffled labellings' rates do not vary.
    pub fn z(&self, x: &Tensor, labels: &[i64], ids: &[u32]) -> Result<Option<f64>, tch::TchError> {
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
        let mut sorted = labels.to_vec();
        sorted.sort_unstable();
        let mut shuffled = Vec::with_capacity(NULLS as usize);
        for p in 0..NULLS {
            let null: Vec<i64> = ids.iter().map(|&id| null_label(&sorted, p, id)).collect();
            shuffled.push(self.within(&z, &null)?);
        }
        let mean = shuffled.iter().sum::<f64>() / shuffled.len() as f64;
        let var =
            shuffled.iter().map(|w| (w - mean).powi(2)).sum::<f64>() / (shuffled.len() - 1) as f64;
        let sd = var.sqrt();
        if !sd.is_finite() || sd <= 0.0 {
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
pub(crate) fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The label of the image at listing position `id` under shuffled labelling `p`: the one at
/// quantile SplitMix64(p << 32 | id) / 2^64 of the sorted labels.
fn null_label(sorted: &[i64], p: u64, id: u32) -> i64 {
    let key = splitmix(&mut ((p << 32) | u64::from(id)));
    sorted[((u128::from(key) * sorted.len() as u128) >> 64) as usize]
}
