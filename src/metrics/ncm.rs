//! NCM: the leave-one-out accuracy of the nearest-class-mean classifier on the pretrained
//! features, the classifier few-shot learning reads features with (Bendou et al., "EASY", 2022).
//! It asks what fine-tuning's first step asks, whether a linear readout separates the classes,
//! with nothing fitted that could grow with the number of dimensions.
//!
//! On the rows of the same class-stratified sample k-NN reads (all images up to
//! `sample.max_images`): every image is assigned the class whose mean is nearest in Euclidean
//! distance, its own class's mean taken without it. Since x - (n_c mu_c - x) / (n_c - 1) =
//! n_c / (n_c - 1) (x - mu_c), that is the distance to the full mean scaled by n_c / (n_c - 1);
//! an image alone in its class has no mean of its own to be near and counts as wrong. Equal
//! distances: the class listed first. The score is the fraction assigned right. Computed in
//! f64 on rows centred by their mean (the distances do not change; the rounding does), so it
//! equals the NumPy reference (tests/oracles/sample_metrics.py).

use tch::{Kind, Tensor};

use super::metric::{score_sample, torch_err, Metric, SampleRows};
use crate::error::{Error, Result};
use crate::stats::{ClassMoments, Needs};

pub struct Ncm {
    /// Rows of the sample (`sample.max_images`, shared with k-NN).
    pub max_images: usize,
}

const NAME: &str = "ncm";
/// Rows per tile: a (TILE, C) block of distances at a time.
const TILE: i64 = 4096;

impl Metric for Ncm {
    fn name(&self) -> &str {
        NAME
    }

    fn needs(&self) -> Needs {
        Needs {
            sample: self.max_images,
            ..Needs::default()
        }
    }

    fn score_layer(&self, stats: &ClassMoments) -> Option<Result<f64>> {
        score_sample(self, stats)
    }

    fn score_rows(&self, rows: &SampleRows) -> Option<Result<f64>> {
        Some(match accuracy(rows.x, rows.labels) {
            Ok(None) => Err(Error::Degenerate {
                metric: NAME.into(),
                message: "fewer than two classes among the sampled images".into(),
                numerical: false,
            }),
            Ok(Some(score)) => Ok(score),
            Err(e) => Err(torch_err(NAME)(e)),
        })
    }
}

/// The leave-one-out nearest-class-mean accuracy of rows `x` (m, D) labelled `labels`; None
/// with fewer than two classes present.
pub fn accuracy(x: &Tensor, labels: &[i64]) -> Result<Option<f64>, tch::TchError> {
    let device = x.device();
    let opts = (Kind::Double, device);
    let m = labels.len() as i64;
    let classes = labels.iter().copied().max().unwrap_or(0) + 1;
    let mut counts = vec![0f64; classes as usize];
    for &l in labels {
        counts[l as usize] += 1.0;
    }
    if counts.iter().filter(|&&n| n > 0.0).count() < 2 {
        return Ok(None);
    }
    let x = x.f_to_kind(Kind::Double)?;
    let x = x.f_sub(&x.f_mean_dim(&[0i64][..], true, Kind::Double)?)?;
    let y = Tensor::f_from_slice(labels)?.f_to_device(device)?;
    let n = Tensor::f_from_slice(&counts)?.f_to_device(device)?;
    let sums = Tensor::f_zeros([classes, x.size()[1]], opts)?.f_index_add(0, &y, &x)?;
    let means = sums.f_div(&n.f_clamp_min(1.0)?.f_view([-1, 1])?)?;
    let mean_sq = means
        .f_square()?
        .f_sum_dim_intlist(&[1i64][..], false, Kind::Double)?;
    // Classes without sampled images are no candidates; an image's own class weighs its
    // distance by (n_c / (n_c - 1))^2, infinite for a class of one.
    let absent = n.f_eq(0.0)?;
    let own_factor = n
        .f_div(&n.f_sub_scalar(1.0)?)?
        .f_square()?
        .f_where_scalarother(&n.f_gt(1.0)?, f64::INFINITY)?;
    let mut correct = 0i64;
    let mut lo = 0;
    while lo < m {
        let b = TILE.min(m - lo);
        let xt = x.f_narrow(0, lo, b)?;
        let yt = y.f_narrow(0, lo, b)?.f_view([-1, 1])?;
        let mut dist = xt
            .f_square()?
            .f_sum_dim_intlist(&[1i64][..], true, Kind::Double)?
            .f_sub(&xt.f_matmul(&means.f_transpose(0, 1)?)?.f_mul_scalar(2.0)?)?
            .f_add(&mean_sq.f_view([1, -1])?)?
            .f_clamp_min(0.0)?;
        let own = dist.f_gather(1, &yt, false)?.f_mul(
            &own_factor
                .f_index_select(0, &yt.f_view([-1])?)?
                .f_view([-1, 1])?,
        )?;
        let _ = dist.f_scatter_(1, &yt, &own)?;
        let _ = dist.f_masked_fill_(&absent.f_view([1, -1])?, f64::INFINITY)?;
        // argmin returns the first of equal values.
        let predicted = dist.f_argmin(1, true)?;
        correct += predicted
            .f_eq_tensor(&yt)?
            .f_sum(Kind::Int64)?
            .f_int64_value(&[])?;
        lo += b;
    }
    Ok(Some(correct as f64 / m as f64))
}
