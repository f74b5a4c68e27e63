//! TransRate (Huang et al., "Frustratingly Easy Transferability Estimation", ICML 2022): the
//! mutual information between features and labels, estimated with coding rates.
//!
//! With Z the features centred by their global mean and Z_c the (globally centred) rows of class c:
//!
//!   R(Z)  = 1/2 logdet(I + Z^T Z / (n eps))
//!   TransRate = R(Z) - 1/C sum_c R(Z_c)            (R(Z_c) with n_c in place of n)
//!
//! exactly as the paper's listing and Transfer-Learning-Library's tllib/ranking/transrate.py; the
//! scatters Z^T Z and Z_c^T Z_c come from the streaming statistics (stats::ClassMoments). C
//! counts the classes that have images. A class with one image has a rank-one scatter, and
//! I + Z_c^T Z_c / eps stays positive definite, so no NaN can arise from it.

use tch::{Kind, Tensor};

use super::{torch_err, Metric, Needs};
use crate::error::{Error, Result};
use crate::stats::ClassMoments;

pub struct TransRate {
    pub eps: f64,
}

const NAME: &str = "transrate";

impl Metric for TransRate {
    fn name(&self) -> &'static str {
        NAME
    }

    fn needs(&self) -> Needs {
        Needs {
            second_moments: true,
        }
    }

    fn score(&self, stats: &ClassMoments) -> Result<f64> {
        let te = torch_err(NAME);
        let n = stats.total();
        if n == 0 {
            return Err(Error::Metric {
                metric: NAME,
                message: "no images were scored".into(),
            });
        }
        let r_all =
            coding_rate(stats.centred_scatter().map_err(&te)?, n as f64, self.eps).map_err(&te)?;
        let mut r_within = 0.0;
        let mut present = 0usize;
        for (class, &n_c) in stats.counts().iter().enumerate() {
            if n_c == 0 {
                continue;
            }
            let scatter = stats.class_scatter_about_global_mean(class).map_err(&te)?;
            r_within += coding_rate(scatter, n_c as f64, self.eps).map_err(&te)?;
            present += 1;
        }
        Ok(r_all - r_within / present as f64)
    }
}

/// R = 1/2 logdet(I + scatter / (n eps)) for a (D, D) f64 scatter matrix Z^T Z of n rows,
/// which is consumed (overwritten in place: at D = 2048 each copy is 32 MB).
///
/// Cholesky gives the log-determinant at a third of the cost of an eigendecomposition, reading
/// only the lower triangle. If rounding has left the matrix not numerically positive definite
/// (possible only for extreme eps), the eigenvalues of the scatter, clipped at zero, give it.
pub fn coding_rate(mut scatter: Tensor, n: f64, eps: f64) -> Result<f64, tch::TchError> {
    let _ = scatter.f_div_scalar_(n * eps)?;
    let _ = scatter.f_diagonal(0, 0, 1)?.f_add_scalar_(1.0)?;
    let (chol, info) = scatter.f_linalg_cholesky_ex(false, false)?;
    if info.f_int64_value(&[])? == 0 {
        let logdet = chol
            .f_diagonal(0, 0, 1)?
            .f_log()?
            .f_sum(Kind::Double)?
            .f_double_value(&[])?
            * 2.0;
        return Ok(0.5 * logdet);
    }
    let _ = scatter.f_diagonal(0, 0, 1)?.f_sub_scalar_(1.0)?;
    let eig = scatter.f_linalg_eigvalsh("L")?.f_clamp_min(0.0)?;
    Ok(0.5 * eig.f_log1p()?.f_sum(Kind::Double)?.f_double_value(&[])?)
}
