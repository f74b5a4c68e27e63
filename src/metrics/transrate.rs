//! TransRate (Huang et al., "Frustratingly Easy Transferability Estimation", ICML 2022): the
//! mutual information between features and labels, estimated with coding rates.
//!
//! With Z the features centred by their global mean and Z_c the (globally centred) rows of class c:
//!
//!   R(Z)  = 1/2 logdet(I + Z^T Z / (n eps))
//!   TransRate = R(Z) - 1/C sum_c R(Z_c)            (R(Z_c) with n_c in place of n)
//!
//! exactly as the paper's listing and Transfer-Learning-Library's tllib/ranking/transrate.py; the
//! scatter Z^T Z comes from the streaming statistics (stats::ClassMoments), and each R(Z_c) from
//! the class's rows (its n_c x n_c Gram matrix) or its scatter, whichever is smaller. C
//! counts the classes that have images. A class with one image has a rank-one scatter, and
//! I + Z_c^T Z_c / eps stays positive definite, so no NaN can arise from it.
//!
//! Options (the defaults give the formula above), all exact from the same statistics:
//! - `normalize: l2`: x / |x| for every feature vector before accumulation;
//! - `scale: trace`: Z / r with r^2 = tr(Z^T Z) / n, the mean squared norm, before the rates, so
//!   eps is relative to the features' scale;
//! - `per_rank: true`: both R(Z) and every R(Z_c) divided by the numerical rank of Z, counted
//!   as numpy.linalg.matrix_rank(Z^T Z / n) does (eigenvalues above lambda_max * d * f64::EPSILON),
//!   as the TransRate authors' code does;
//! - `class_weight: count`: sum_c (n_c / n) R(Z_c) in place of the mean over classes;
//! - `subspace: k`: Z and every Z_c projected on the top-k eigenvectors of Z^T Z before the rates
//!   (P^T Z^T Z P and P^T Z_c^T Z_c P), so that every layer is measured in k dimensions: the
//!   published rate grows with the width of the layer, which decides any comparison of layers.

use tch::{Kind, Tensor};

use super::metric::{scalar, torch_err, Metric};
use crate::config::{ClassWeight, Normalize, TransRateConfig, TransRateScale};
use crate::error::{Error, Result};
use crate::stats::{logdet_identity_plus, ClassMoments, Needs, Transform};

pub struct TransRate {
    /// `transrate`, or a variant's name.
    pub name: String,
    pub options: TransRateConfig,
}

const NAME: &str = "transrate";

impl TransRate {
    pub fn new(options: &TransRateConfig) -> TransRate {
        TransRate {
            name: NAME.to_owned(),
            options: *options,
        }
    }

    /// Another configuration, reported under its own name.
    pub fn variant(name: &str, options: &TransRateConfig) -> TransRate {
        TransRate {
            name: name.to_owned(),
            options: *options,
        }
    }

    /// The published formula with this eps.
    pub fn plain(eps: f64) -> TransRate {
        TransRate::new(&TransRateConfig {
            eps,
            ..TransRateConfig::default()
        })
    }

    fn score(&self, stats: &ClassMoments) -> Result<f64, tch::TchError> {
        let o = &self.options;
        let n = stats.total() as f64;
        let scatter = stats.centred_scatter()?;
        let mean_sq_norm = scalar(scatter.f_trace()?)? / n;
        let scale = match o.scale {
            TransRateScale::Trace if mean_sq_norm > 0.0 => mean_sq_norm,
            _ => 1.0,
        };
        // The top-k principal directions, (D, k); None keeps all D.
        let basis = match o.subspace {
            Some(k) if k < stats.dim() => Some(top_eigenvectors(&scatter, k)?),
            _ => None,
        };
        let project = |s: Tensor| -> Result<Tensor, tch::TchError> {
            match &basis {
                Some(p) => p.f_transpose(0, 1)?.f_matmul(&s)?.f_matmul(p),
                None => Ok(s),
            }
        };
        let scatter = project(scatter)?;
        let rank = if o.per_rank {
            numerical_rank(&scatter, n, scatter.size()[0] as usize)? as f64
        } else {
            1.0
        };
        let r_all = coding_rate(scatter.f_div_scalar(scale)?, n, o.eps)? / rank.max(1.0);
        let present: Vec<usize> = stats.present().collect();
        let mut r_within = 0.0;
        for &class in &present {
            let n_c = stats.counts()[class] as f64;
            let weight = match o.class_weight {
                ClassWeight::Uniform => 1.0 / present.len() as f64,
                ClassWeight::Count => n_c / n,
            };
            // R(Z_c / sqrt(scale)) = 1/2 logdet(I + Z_c^T Z_c / (n_c eps scale)), from the
            // class's rows or its scatter, whichever the statistics keep.
            let logdet = stats.class_logdet(class, n_c * o.eps * scale, basis.as_ref())?;
            r_within += weight * 0.5 * logdet / rank.max(1.0);
        }
        Ok(r_all - r_within)
    }
}

impl Metric for TransRate {
    fn name(&self) -> &str {
        &self.name
    }

    fn needs(&self) -> Needs {
        Needs {
            class_second: true,
            ..Needs::default()
        }
    }

    fn transform(&self) -> Transform {
        transform_of(self.options.normalize)
    }

    fn score_layer(&self, stats: &ClassMoments) -> Option<Result<f64>> {
        if stats.total() == 0 {
            return Some(Err(Error::Degenerate {
                metric: self.name.clone(),
                message: "no images were scored".into(),
                numerical: false,
            }));
        }
        Some(self.score(stats).map_err(torch_err(&self.name)))
    }
}

/// R = 1/2 logdet(I + scatter / (n eps)) for a (D, D) f64 scatter matrix Z^T Z of n rows,
/// which is consumed (overwritten in place: a copy of a wide layer's scatter is large).
///
/// Cholesky gives the log-determinant at a third of the cost of an eigendecomposition, reading
/// only the lower triangle. If rounding has left the matrix not numerically positive definite
/// (possible only for extreme eps), the eigenvalues of the scatter, clipped at zero, give it.
/// What `normalize:` does to the features before they are accumulated.
pub(super) fn transform_of(normalize: Normalize) -> Transform {
    match normalize {
        Normalize::None => Transform::Raw,
        Normalize::L2 => Transform::L2,
    }
}

pub fn coding_rate(scatter: Tensor, n: f64, eps: f64) -> Result<f64, tch::TchError> {
    Ok(0.5 * logdet_identity_plus(scatter, n * eps)?)
}

/// The eigenvectors of the k largest eigenvalues of a symmetric (D, D) matrix, as (D, k) columns.
fn top_eigenvectors(scatter: &Tensor, k: usize) -> Result<Tensor, tch::TchError> {
    let (_, vectors) = scatter.f_linalg_eigh("L")?;
    let d = vectors.size()[1];
    // eigh orders the eigenvalues ascending: the last k columns.
    vectors.f_narrow(1, d - k as i64, k as i64)?.f_contiguous()
}

/// The numerical rank of the n x d matrix Z from Z^T Z, as numpy.linalg.matrix_rank(Z^T Z / n):
/// eigenvalues above lambda_max * d * eps. (matrix_rank(Z) itself, which compares singular
/// values with sigma_max * max(n, d) * eps, cannot be had from Z^T Z: its eigenvalues carry
/// rounding noise near lambda_max * eps, i.e. singular values near 1.5e-8 sigma_max.)
pub fn numerical_rank(scatter: &Tensor, _n: f64, d: usize) -> Result<usize, tch::TchError> {
    let values = scatter.f_linalg_eigvalsh("L")?.f_abs()?;
    let threshold = scalar(values.f_max()?)? * d as f64 * f64::EPSILON;
    Ok(values
        .f_gt(threshold)?
        .f_sum(Kind::Int64)?
        .f_int64_value(&[])? as usize)
}
