//! GBC, the Gaussian Bhattacharyya coefficient (Pandy et al., "Transferability Estimation using
//! Bhattacharyya Class Separability", CVPR 2022), with diagonal Gaussians as in the reference
//! code (google-research stable_transfer, gbc.py): each class c is N(mu_c, diag(v_c)) with its
//! mean and population variance, floored at 1e-4 as the reference does; for classes i != j,
//! with v = (v_i + v_j) / 2,
//!   D_B = 1/8 sum (mu_i - mu_j)^2 / v + 1/2 (sum ln v - 1/2 (sum ln v_i + sum ln v_j))
//! and GBC = - sum over ordered pairs i != j of exp(-D_B): less overlap, higher score.
//!
//! The floor is absolute, so GBC depends on the features' scale (a one-image class, or a
//! feature constant within a class, gets variance 1e-4). The reference applies a 64-component
//! PCA first; zoo-select scores the pooled features as they are.

use tch::{Kind, TchError, Tensor};

use super::metric::{scalar, torch_err, Metric};
use crate::error::Result;
use crate::stats::{ClassMoments, Needs};

pub struct Gbc;

const NAME: &str = "gbc";
const VARIANCE_FLOOR: f64 = 1e-4;

impl Metric for Gbc {
    fn name(&self) -> &str {
        NAME
    }

    fn needs(&self) -> Needs {
        Needs {
            class_squares: true,
            ..Needs::default()
        }
    }

    fn score_layer(&self, stats: &ClassMoments) -> Option<Result<f64>> {
        Some(gbc(stats).map_err(torch_err(NAME)))
    }
}

fn gbc(stats: &ClassMoments) -> Result<f64, TchError> {
    let present: Vec<i64> = stats.present().map(|c| c as i64).collect();
    let idx = Tensor::f_from_slice(&present)?.f_to_device(stats.shift().device())?;
    let means = stats.class_means()?.f_index_select(0, &idx)?; // (K, D)
    let vars = stats
        .class_variances()?
        .f_index_select(0, &idx)?
        .f_clamp_min(VARIANCE_FLOOR)?;
    let half_log_vars = vars
        .f_log()?
        .f_sum_dim_intlist(&[1i64][..], false, Kind::Double)?
        .f_mul_scalar(0.5)?; // (K,)
    let mut total = 0.0;
    for i in 0..present.len() as i64 {
        let avg = vars
            .f_add(&vars.f_select(0, i)?.f_view([1, -1])?)?
            .f_mul_scalar(0.5)?;
        let diff2 = means
            .f_sub(&means.f_select(0, i)?.f_view([1, -1])?)?
            .f_square()?;
        let mahalanobis = diff2
            .f_div(&avg)?
            .f_sum_dim_intlist(&[1i64][..], false, Kind::Double)?;
        let log_avg = avg
            .f_log()?
            .f_sum_dim_intlist(&[1i64][..], false, Kind::Double)?;
        let logs = log_avg
            .f_sub(&half_log_vars)?
            .f_sub(&half_log_vars.f_select(0, i)?)?;
        let distance = mahalanobis
            .f_mul_scalar(0.125)?
            .f_add(&logs.f_mul_scalar(0.5)?)?;
        let coefficients = distance.f_neg()?.f_exp()?;
        // Every other class j != i.
        total += scalar(coefficients.f_sum(Kind::Double)?)? - scalar(coefficients.f_select(0, i)?)?;
    }
    Ok(-total)
}
