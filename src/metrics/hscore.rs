//! H-score (Bao et al., "An Information-Theoretic Approach to Transferability in Task Transfer
//! Learning", ICIP 2019): tr(cov(f)^+ cov(E[f | y])), how much of the features' variance the
//! class means explain, as Transfer-Learning-Library's tllib/ranking/hscore.py computes it.
//!
//! With n images, class means mu_c and mean mu (both covariances share the 1/(n-1), so it
//! cancels): cov(f) = Z^T Z / (n-1), cov(E[f|y]) = sum_c n_c (mu_c - mu)(mu_c - mu)^T / (n-1).
//! The pseudo-inverse drops eigenvalues of cov(f) below 1e-10 of the largest: below that, f64
//! rounding of a covariance built from sums is all there is (numpy's default 1e-15 would invert
//! that noise when features outnumber images).

use tch::{Kind, TchError, Tensor};

use super::metric::{torch_err, Metric};
use super::spectral::trace_pinv_product;
use crate::error::Result;
use crate::stats::{ClassMoments, Needs};

pub struct HScore;

const NAME: &str = "hscore";
pub(crate) const RCOND: f64 = 1e-10;

impl Metric for HScore {
    fn name(&self) -> &str {
        NAME
    }

    fn needs(&self) -> Needs {
        Needs {
            total_second: true,
            ..Needs::default()
        }
    }

    fn score_layer(&self, stats: &ClassMoments) -> Option<Result<f64>> {
        Some(hscore(stats).map_err(torch_err(NAME)))
    }
}

fn hscore(stats: &ClassMoments) -> Result<f64, TchError> {
    let n = stats.total() as f64;
    let cov_f = stats.centred_scatter()?.f_div_scalar(n - 1.0)?;
    trace_pinv_product(&cov_f, &between_class_covariance(stats)?, RCOND)
}

/// sum_c n_c (mu_c - mu)(mu_c - mu)^T / (n - 1), (D, D).
pub(crate) fn between_class_covariance(stats: &ClassMoments) -> Result<Tensor, TchError> {
    let n = stats.total() as f64;
    let centred = stats
        .class_means()?
        .f_sub(&stats.mean()?.f_view([1, -1])?)?; // (C, D)
    let counts: Vec<f64> = stats.counts().iter().map(|&c| c as f64).collect();
    let w = Tensor::f_from_slice(&counts)?
        .f_to_device(centred.device())?
        .f_view([-1, 1])?;
    centred
        .f_transpose(0, 1)?
        .f_matmul(&centred.f_mul(&w)?)?
        .f_div_scalar(n - 1.0)?
        .f_to_kind(Kind::Double)
}
