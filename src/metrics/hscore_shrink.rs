//! The shrinkage H-score (Ibrahim, Ponomareva and Mazumder, "Newer is not always better:
//! Rethinking transferability metrics, their peculiarities, stability and performance", ICLR
//! 2023): the H-score with the features' covariance replaced by its Ledoit-Wolf shrinkage, which
//! stays well conditioned when features outnumber images.
//!
//! With Z the centred features (n x d), S = Z^T Z / n and mu = tr(S) / d, the Ledoit-Wolf
//! coefficient as scikit-learn's LedoitWolf computes it:
//!   delta_ = |S|_F^2,  beta = (sum_i |z_i|^4 / n - delta_) / (d n),
//!   delta = (delta_ - 2 mu tr(S) + d mu^2) / d,  alpha = min(beta, delta) / delta (0 if beta = 0),
//! the shrunk covariance S_a = (1 - alpha) S + alpha mu I, and
//!   H = tr(S_a^+ (1 - alpha) cov(E[f | y])),  cov(E[f|y]) = sum_c n_c (mu_c - mu)(mu_c - mu)^T / (n - 1)
//! as Transfer-Learning-Library's `regularized_h_score` (thuml PR #184, which cites the paper)
//! computes it, 1/n inside S_a and 1/(n-1) in the class-mean covariance included; the
//! pseudo-inverse uses H-score's 1e-10 cutoff (with alpha > 0, S_a is invertible anyway). One
//! feature (d = 1) gets alpha = 0, as in scikit-learn. sum |z|^4 comes from two extra
//! accumulators (sum |x|^4 and sum |x|^2 x), so the estimate streams.

use tch::{Kind, TchError, Tensor};

use super::hscore::{between_class_covariance, RCOND};
use super::metric::{scalar, torch_err, Metric};
use super::spectral::trace_pinv_product;
use crate::error::Result;
use crate::stats::{ClassMoments, Needs};

pub struct ShrinkageHScore;

const NAME: &str = "hscore_shrink";

impl Metric for ShrinkageHScore {
    fn name(&self) -> &str {
        NAME
    }

    fn needs(&self) -> Needs {
        Needs {
            total_second: true,
            fourth: true,
            ..Needs::default()
        }
    }

    fn score_layer(&self, stats: &ClassMoments) -> Option<Result<f64>> {
        Some(shrink_hscore(stats).map_err(torch_err(NAME)))
    }
}

/// The Ledoit-Wolf shrinkage coefficient and shrunk covariance of the features.
pub fn ledoit_wolf(stats: &ClassMoments) -> Result<(f64, Tensor), TchError> {
    let n = stats.total() as f64;
    let d = stats.dim() as f64;
    let s = stats.centred_scatter()?.f_div_scalar(n)?;
    let trace = scalar(s.f_trace()?)?;
    let mu = trace / d;
    let delta_ = scalar(s.f_square()?.f_sum(Kind::Double)?)?;
    let beta = (stats.centred_fourth()? / n - delta_) / (d * n);
    let delta = (delta_ - 2.0 * mu * trace + d * mu * mu) / d;
    let b = beta.min(delta);
    let alpha = if d == 1.0 || b == 0.0 { 0.0 } else { b / delta };
    let shrunk = s.f_mul_scalar(1.0 - alpha)?;
    let _ = shrunk.f_diagonal(0, 0, 1)?.f_add_scalar_(alpha * mu)?;
    Ok((alpha, shrunk))
}

fn shrink_hscore(stats: &ClassMoments) -> Result<f64, TchError> {
    let (alpha, shrunk) = ledoit_wolf(stats)?;
    let between = between_class_covariance(stats)?.f_mul_scalar(1.0 - alpha)?;
    trace_pinv_product(&shrunk, &between, RCOND)
}
