//! SFDA (Shao et al., "Not All Models Are Equal: Predicting Model Transferability in a
//! Self-challenging Fisher Space", ECCV 2022), as the authors' code computes it
//! (TencentARC/SFDA `metrics.py`, `SFDA_Score`), on the rows of the same class-stratified sample
//! k-NN reads:
//!
//! 1. a regularised Fisher discriminant: within-class covariance S_w (biased, weighted by the
//!    class priors), shrunk towards tr(S_w)/d I by lam = max(exp(-5 lambda_max(S_w)), 1e-10),
//!    lambda_max by three double power steps; class scores x S_w,lam^-1 m_c^T - m_c S_w,lam^-1
//!    m_c^T / 2 + log pi_c, softmax;
//! 2. "self-challenging": the probabilities go through a second softmax, and every image moves
//!    towards the mean of the other classes' means by one minus its softened probability of its
//!    own class (ConfMix);
//! 3. the discriminant refitted on the moved features with the same lam; the score is the mean
//!    probability of the true class.
//!
//! What the authors' code does that the paper does not say (tests/oracles/sample_metrics.md):
//! no log in the final score (their comment: "ignored in case of instability"), the double
//! softmax, and every eigenvector of the Fisher problem kept, so the projection drops out and
//! step 1 is shrinkage LDA, computed here by a Cholesky solve with S_w,lam. We follow the code.
//! Where d approaches the number of images the shrinkage reaches its floor and the score
//! saturates at 1, as the authors' code does.

use tch::{Kind, Tensor};

use super::metric::{score_sample, torch_err, Metric, SampleRows};
use crate::error::{Error, Result};
use crate::stats::{ClassMoments, Needs};

pub struct Sfda {
    /// Rows of the sample (`sample.max_images`, shared with k-NN).
    pub max_images: usize,
}

const SHRINK_A: f64 = 5.0;
const SHRINK_FLOOR: f64 = 1e-10;
const POWER_STEPS: usize = 3;

/// Class probabilities of the shrinkage discriminant fitted on (x, y), and the shrinkage used.
fn fit_proba(
    x: &Tensor,
    y: &Tensor,
    classes: i64,
    shrinkage: Option<f64>,
) -> Result<(Tensor, f64), tch::TchError> {
    let (n, d) = (x.size()[0], x.size()[1]);
    let opts = (Kind::Double, x.device());
    let counts =
        Tensor::f_zeros([classes], opts)?.f_index_add(0, y, &Tensor::f_ones([n], opts)?)?;
    let sums = Tensor::f_zeros([classes, d], opts)?.f_index_add(0, y, x)?;
    let means = sums.f_div(&counts.f_view([-1, 1])?)?;
    let priors = counts.f_div_scalar(n as f64)?;
    // S_w = sum_c pi_c cov_biased(X_c) = (1/n) (X - M_y)^T (X - M_y).
    let xc = x.f_sub(&means.f_index_select(0, y)?)?;
    let sw = xc
        .f_transpose(0, 1)?
        .f_matmul(&xc)?
        .f_div_scalar(n as f64)?;
    let lam = match shrinkage {
        Some(s) => s,
        None => {
            let mut v = sw.f_sum_dim_intlist(&[1i64][..], false, Kind::Double)?;
            let mut u = v.shallow_clone();
            for _ in 0..POWER_STEPS {
                let t = sw.f_mv(&v)?;
                u = t.f_div_scalar(t.f_norm()?.f_double_value(&[])?)?;
                let t = sw.f_mv(&u)?;
                v = t.f_div_scalar(t.f_norm()?.f_double_value(&[])?)?;
            }
            let lambda_max = v.f_dot(&sw.f_mv(&u)?)?.f_double_value(&[])?;
            (-SHRINK_A * lambda_max).exp().max(SHRINK_FLOOR)
        }
    };
    let mu = sw.f_trace()?.f_double_value(&[])? / d as f64;
    let sw_s = sw.f_mul_scalar(1.0 - lam)?;
    let _ = sw_s.f_diagonal(0, 0, 1)?.f_add_scalar_(lam * mu)?;
    // coef = M S_w,lam^-1 (all eigenvectors of the Fisher problem: V V^T = S_w,lam^-1).
    let coef = Tensor::f_linalg_solve(&sw_s, &means.f_transpose(0, 1)?, true)?.f_transpose(0, 1)?;
    let intercept = means
        .f_mul(&coef)?
        .f_sum_dim_intlist(&[1i64][..], false, Kind::Double)?
        .f_mul_scalar(-0.5)?
        .f_add(&priors.f_log()?)?;
    let scores = x.f_matmul(&coef.f_transpose(0, 1)?)?.f_add(&intercept)?;
    Ok((scores.f_softmax(1, Kind::Double)?, lam))
}

impl Sfda {
    fn score(&self, rows: &Tensor, labels: &[i64]) -> Result<f64, tch::TchError> {
        let device = rows.device();
        // Classes as they appear in the sample, renumbered 0..C-1.
        let mut present: Vec<i64> = labels.to_vec();
        present.sort_unstable();
        present.dedup();
        let y: Vec<i64> = labels
            .iter()
            .map(|l| present.binary_search(l).unwrap_or(0) as i64)
            .collect();
        let c = present.len() as i64;
        let n = y.len() as i64;
        let x = rows.f_to_kind(Kind::Double)?;
        let y = Tensor::f_from_slice(&y)?.f_to_device(device)?;
        let (prob, lam) = fit_proba(&x, &y, c, None)?;
        let soft = prob.f_softmax(1, Kind::Double)?;
        let opts = (Kind::Double, device);
        let counts = Tensor::f_zeros([c], opts)?.f_index_add(0, &y, &Tensor::f_ones([n], opts)?)?;
        let means = Tensor::f_zeros([c, x.size()[1]], opts)?
            .f_index_add(0, &y, &x)?
            .f_div(&counts.f_view([-1, 1])?)?;
        let others = means
            .f_sum_dim_intlist(&[0i64][..], true, Kind::Double)?
            .f_sub(&means)?
            .f_div_scalar((c - 1) as f64)?;
        let p = soft.f_gather(1, &y.f_view([-1, 1])?, false)?;
        let mixed = x.f_mul(&p)?.f_add(
            &others
                .f_index_select(0, &y)?
                .f_mul(&p.f_neg()?.f_add_scalar(1.0)?)?,
        )?;
        let (prob, _) = fit_proba(&mixed, &y, c, Some(lam))?;
        prob.f_gather(1, &y.f_view([-1, 1])?, false)?
            .f_mean(Kind::Double)?
            .f_double_value(&[])
    }
}

impl Metric for Sfda {
    fn name(&self) -> &str {
        "sfda"
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
        let (labels, rows) = (rows.labels, rows.x);
        let mut present = labels.to_vec();
        present.sort_unstable();
        present.dedup();
        let classes = present.len();
        if classes < 2 {
            return Some(Err(Error::Degenerate {
                metric: "sfda".into(),
                message: format!("{classes} class(es) in the sample; SFDA needs at least 2"),
                numerical: false,
            }));
        }
        Some(self.score(rows, labels).map_err(torch_err("sfda")))
    }
}
