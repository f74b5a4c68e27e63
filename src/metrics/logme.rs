//! LogME (You et al., "LogME: Practical Assessment of Pre-trained Models for Transfer Learning",
//! ICML 2021): for each target class, the log marginal evidence of a Bayesian linear model
//! y = F w + noise on the one-hot target, maximised over the prior precision alpha and the
//! noise precision beta, per image; the score is the mean over classes.
//!
//! As the paper's reference code (thuml/LogME, the ICML version): raw (uncentred) features F,
//! the eigendecomposition F^T F = V diag(s) V^T, then per class with b = F^T y and t = V^T b,
//! starting at alpha = beta = 1 and for at most 11 steps:
//!   gamma = sum s / (s + alpha/beta);  w = t beta / (alpha + beta s)   (w = V^T m)
//!   |m|^2 = |w|^2;  |y - F m|^2 = n_c - 2 w.t + sum s w^2
//!   alpha = gamma / (|m|^2 + 1e-5);  beta = (N - gamma) / (|y - F m|^2 + 1e-5)
//! stopping when alpha/beta moves by less than 1 %; then
//!   evidence = D/2 log alpha + N/2 log beta - 1/2 sum log(alpha + beta s)
//!              - beta/2 (|y - F m|^2 + 1e-5) - alpha/2 (|m|^2 + 1e-5) - N/2 log 2 pi.
//! Everything comes from F^T F and the per-class sums F^T Y: no image is kept.

use tch::Kind;

use super::metric::{torch_err, Metric};
use super::spectral::eigh;
use crate::error::Result;
use crate::stats::{ClassMoments, Needs};

pub struct LogMe;

const NAME: &str = "logme";
const EPSILON: f64 = 1e-5;
const MAX_STEPS: usize = 11;

impl Metric for LogMe {
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
        Some(logme(stats).map_err(torch_err(NAME)))
    }
}

fn logme(stats: &ClassMoments) -> Result<f64, tch::TchError> {
    let (values, vectors) = eigh(&stats.raw_second()?)?;
    // The reference takes singular values of F^T F: the magnitudes of its eigenvalues.
    let s: Vec<f64> = Vec::<f64>::try_from(values.f_abs()?)?;
    let sums = stats.raw_class_sums()?; // (C, D)
    let t_all = sums.f_matmul(&vectors)?.f_to_kind(Kind::Double)?; // row c: (V^T b_c)^T
    let n = stats.total() as f64;
    let d = stats.dim() as f64;
    let mut total = 0.0;
    let mut classes = 0usize;
    for class in stats.present() {
        let t: Vec<f64> = Vec::<f64>::try_from(t_all.f_select(0, class as i64)?)?;
        total += class_evidence(&s, &t, stats.counts()[class] as f64, n, d) / n;
        classes += 1;
    }
    Ok(total / classes as f64)
}

/// The maximised evidence of one class, from the eigenvalues `s` of F^T F and t = V^T F^T y.
fn class_evidence(s: &[f64], t: &[f64], n_c: f64, n: f64, d: f64) -> f64 {
    let (mut alpha, mut beta) = (1.0f64, 1.0f64);
    let mut lam = alpha / beta;
    let (mut alpha_de, mut beta_de) = (0.0, 0.0);
    for _ in 0..MAX_STEPS {
        let gamma: f64 = s.iter().map(|&si| si / (si + lam)).sum();
        let w: Vec<f64> = s
            .iter()
            .zip(t)
            .map(|(&si, &ti)| ti * beta / (alpha + beta * si))
            .collect();
        alpha_de = w.iter().map(|wi| wi * wi).sum();
        let fit: f64 = s.iter().zip(&w).map(|(&si, &wi)| si * wi * wi).sum();
        let cross: f64 = w.iter().zip(t).map(|(wi, ti)| wi * ti).sum();
        beta_de = n_c - 2.0 * cross + fit;
        alpha = gamma / (alpha_de + EPSILON);
        beta = (n - gamma) / (beta_de + EPSILON);
        let new_lam = alpha / beta;
        if ((new_lam - lam) / lam).abs() < 0.01 {
            break;
        }
        lam = new_lam;
    }
    let log_det: f64 = s.iter().map(|&si| (alpha + beta * si).ln()).sum();
    d / 2.0 * alpha.ln() + n / 2.0 * beta.ln()
        - 0.5 * log_det
        - beta / 2.0 * (beta_de + EPSILON)
        - alpha / 2.0 * (alpha_de + EPSILON)
        - n / 2.0 * (2.0 * std::f64::consts::PI).ln()
}
