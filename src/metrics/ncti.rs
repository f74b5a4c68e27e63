//! NCTI (Wang, Luo, Zheng, Huang, Baktashmotlagh, ICCV 2023), as the authors' code computes it
//! (BUserName/NCTI: `metrics.py`, `NCTI_Score`, for the terms; `evaluate_metric_group1_cpu.py`
//! for the zoo-level combination), on the rows of the same class-stratified sample k-NN and
//! SFDA read. Three neural-collapse proxies of a (model, layer):
//!
//! 1. the rows reduced by exact PCA to f = min(64, n - 1, d) dimensions, shrinkage
//!    s = max(exp(-sum of the first 32 explained variances), 1e-10);
//! 2. scikit-learn's linear discriminant fitted on them: the `svd` solver (tol 1e-4) when s is
//!    at its floor, else the `eigen` solver with shrinkage s; H its projection (n x min(C-1, f)),
//!    P its class probabilities;
//! 3. seli = the nuclear norm of H centred (SELI geometry, higher is better), ncc = the mean
//!    probability of the true class (nearest-centre classifier, higher is better),
//!    vc = log sum_c of the nuclear norms of P's rows of class c (within-class variability,
//!    lower is better).
//!
//! NCTI has no score of one layer: each term is min-max normalised over the candidates, then
//! NCTI = ncc' + seli' - vc'. Here the candidates are every (model, layer) row of the run
//! (`Relative`), so a row's score moves when candidates are added or removed.
//!
//! What the authors' code does (tests/oracles/sample_metrics.md, section 4; the paper's
//! text was not retrieved, so its weights and normalisation are unverified), and what is
//! followed here: the branch between the two discriminants,
//! chosen by absolute variances, so by the feature scale (followed; the two branches scale H
//! differently, so seli of rows on different branches are in different units); sklearn's PCA
//! with its `auto` (randomized) solver, which raises below 64 rows or dimensions (not followed:
//! exact PCA, f capped at n - 1 and d); a term constant over the zoo gives 0/0 = NaN there
//! (here it contributes 0); `--alpha` parsed but unused (no weights here either). Classes with
//! no row in the sample are left out, as SFDA leaves them out.

use tch::{Kind, TchError, Tensor};

use super::metric::{Metric, Relative};
use crate::error::{Error, Result};
use crate::stats::{ClassMoments, Needs};

pub struct Ncti {
    /// Rows of the sample (`sample.max_images`, shared with k-NN and SFDA).
    pub max_images: usize,
}

/// The authors' constants (sample_metrics.py).
const PCA_DIMS: i64 = 64;
const VAR_DIMS: i64 = 32;
const SHRINK_FLOOR: f64 = 1e-10;
const LDA_SVD_TOL: f64 = 1e-4;

/// The raw terms, in the order of the authors' return value.
const TERMS: &[&str] = &["seli", "ncc", "vc"];

/// Why a layer has no terms: libtorch failed, the rows admit no discriminant, or the sample
/// has too few images or classes for one.
enum Failure {
    Torch(TchError),
    Degenerate(String),
    TooFew(String),
}

impl From<TchError> for Failure {
    fn from(e: TchError) -> Self {
        Failure::Torch(e)
    }
}

impl From<Failure> for Error {
    fn from(f: Failure) -> Self {
        let (message, numerical) = match f {
            Failure::Torch(e) => return super::metric::torch_err("ncti")(e),
            Failure::Degenerate(message) => (message, true),
            Failure::TooFew(message) => (message, false),
        };
        Error::Degenerate {
            metric: "ncti".into(),
            message,
            numerical,
        }
    }
}

/// The classes present in the sample, renumbered 0..C-1: each row's class, each class's rows
/// and counts.
struct Classes {
    y: Tensor,
    members: Vec<Tensor>,
    counts: Tensor,
}

impl Classes {
    fn new(labels: &[i64], device: tch::Device) -> Result<Classes, Failure> {
        let mut present: Vec<i64> = labels.to_vec();
        present.sort_unstable();
        present.dedup();
        let mut rows: Vec<Vec<i64>> = vec![Vec::new(); present.len()];
        let mut y = Vec::with_capacity(labels.len());
        for (i, l) in labels.iter().enumerate() {
            let c = present.binary_search(l).unwrap_or(0);
            rows[c].push(i as i64);
            y.push(c as i64);
        }
        let counts: Vec<f64> = rows.iter().map(|r| r.len() as f64).collect();
        Ok(Classes {
            y: Tensor::f_from_slice(&y)?.f_to_device(device)?,
            members: rows
                .iter()
                .map(|r| Tensor::f_from_slice(r)?.f_to_device(device))
                .collect::<Result<_, _>>()?,
            counts: Tensor::f_from_slice(&counts)?.f_to_device(device)?,
        })
    }

    fn len(&self) -> i64 {
        self.members.len() as i64
    }

    /// Class means (C, f) of the rows of `z`, and the priors n_c / n.
    fn means(&self, z: &Tensor) -> Result<(Tensor, Tensor), TchError> {
        let (n, f) = (z.size()[0], z.size()[1]);
        let sums = Tensor::f_zeros([self.len(), f], (Kind::Double, z.device()))?
            .f_index_add(0, &self.y, z)?;
        Ok((
            sums.f_div(&self.counts.f_view([-1, 1])?)?,
            self.counts.f_div_scalar(n as f64)?,
        ))
    }
}

/// (1 - s) cov + s tr(cov)/f I: sklearn's `shrunk_covariance`.
fn shrink(cov: &Tensor, s: f64) -> Result<Tensor, TchError> {
    let mu = cov.f_trace()?.f_double_value(&[])? / cov.size()[0] as f64;
    let out = cov.f_mul_scalar(1.0 - s)?;
    let _ = out.f_diagonal(0, 0, 1)?.f_add_scalar_(s * mu)?;
    Ok(out)
}

/// The biased covariance (1/n) A^T A of rows already centred.
fn gram(centred: &Tensor) -> Result<Tensor, TchError> {
    centred
        .f_transpose(0, 1)?
        .f_matmul(centred)?
        .f_div_scalar(centred.size()[0] as f64)
}

/// softmax(z coef^T + intercept), row-wise.
fn proba(z: &Tensor, coef: &Tensor, intercept: &Tensor) -> Result<Tensor, TchError> {
    z.f_matmul(&coef.f_transpose(0, 1)?)?
        .f_add(intercept)?
        .f_softmax(1, Kind::Double)
}

/// sklearn `LinearDiscriminantAnalysis(solver='eigen', shrinkage=s)`: (fit_transform,
/// predict_proba). S_w = sum_c pi_c shrink(cov_c) = shrink(sum_c pi_c cov_c) (the trace is
/// linear); the generalised eigenproblem (S_t - S_w) v = w S_w v through the Cholesky factor of
/// S_w, as scipy's `eigh(a, b)`.
fn lda_eigen(z: &Tensor, k: &Classes, s: f64) -> Result<(Tensor, Tensor), Failure> {
    let f = z.size()[1];
    let (means, priors) = k.means(z)?;
    let sw = shrink(&gram(&z.f_sub(&means.f_index_select(0, &k.y)?)?)?, s)?;
    let st = shrink(
        &gram(&z.f_sub(&z.f_mean_dim(&[0i64][..], true, Kind::Double)?)?)?,
        s,
    )?;
    let (l, info) = sw.f_linalg_cholesky_ex(false, false)?;
    if info.f_int64_value(&[])? != 0 {
        return Err(Failure::Degenerate(
            "the shrunk within-class covariance is not positive definite".into(),
        ));
    }
    let eye = Tensor::f_eye(f, (Kind::Double, z.device()))?;
    let linv = l.f_linalg_solve_triangular(&eye, false, true, false)?;
    let c = linv
        .f_matmul(&st.f_sub(&sw)?)?
        .f_matmul(&linv.f_transpose(0, 1)?)?;
    let c = c.f_add(&c.f_transpose(0, 1)?)?.f_mul_scalar(0.5)?;
    // Ascending eigenvalues: the discriminant directions are the last ones.
    let (_, u) = c.f_linalg_eigh("L")?;
    let v = linv.f_transpose(0, 1)?.f_matmul(&u)?;
    let keep = (k.len() - 1).min(f);
    let proj = z.f_matmul(&v.f_narrow(1, f - keep, keep)?)?;
    // All f eigenvectors: V V^T = S_w^-1.
    let coef = means.f_matmul(&v)?.f_matmul(&v.f_transpose(0, 1)?)?;
    let intercept = means
        .f_mul(&coef)?
        .f_sum_dim_intlist(&[1i64][..], false, Kind::Double)?
        .f_mul_scalar(-0.5)?
        .f_add(&priors.f_log()?)?;
    Ok((proj, proba(z, &coef, &intercept)?))
}

/// How many of the descending values exceed `bound`.
fn count_above(values: &Tensor, bound: f64) -> Result<i64, TchError> {
    values.f_gt(bound)?.f_sum(Kind::Int64)?.f_int64_value(&[])
}

/// sklearn `LinearDiscriminantAnalysis(solver='svd')` (`_solve_svd`, tol 1e-4): (fit_transform,
/// predict_proba). Within-class rows scaled to unit standard deviation, whitened by their SVD,
/// then the class means' SVD in that space.
fn lda_svd(z: &Tensor, k: &Classes) -> Result<(Tensor, Tensor), Failure> {
    let (n, c) = (z.size()[0], k.len());
    let (means, priors) = k.means(z)?;
    let within = z.f_sub(&means.f_index_select(0, &k.y)?)?;
    let xbar = priors.f_view([1, -1])?.f_matmul(&means)?;
    let std = within.f_std_correction(&[0i64][..], 0i64, true)?;
    let std = std.f_where_scalarother(&std.f_ne(0.0)?, 1.0)?;
    let scaled = within
        .f_div(&std)?
        .f_mul_scalar((1.0 / (n - c) as f64).sqrt())?;
    let (_, s, v) = scaled.f_svd(true, true)?;
    let rank = count_above(&s, LDA_SVD_TOL)?;
    if rank == 0 {
        return Err(Failure::Degenerate(
            "no within-class variation above sklearn's tolerance".into(),
        ));
    }
    // (f, rank): columns of V over std, each over its singular value.
    let scalings = v
        .f_narrow(1, 0, rank)?
        .f_div(&std.f_view([-1, 1])?)?
        .f_div(&s.f_narrow(0, 0, rank)?.f_view([1, -1])?)?;
    let centred_means = means.f_sub(&xbar)?;
    let weights = priors
        .f_mul_scalar(n as f64 / (c - 1) as f64)?
        .f_sqrt()?
        .f_view([-1, 1])?;
    let between = centred_means.f_mul(&weights)?.f_matmul(&scalings)?;
    let (_, s2, v2) = between.f_svd(true, true)?;
    let top = s2.f_double_value(&[0])?;
    let rank2 = count_above(&s2, LDA_SVD_TOL * top)?;
    if rank2 == 0 {
        return Err(Failure::Degenerate("every class has the same mean".into()));
    }
    let scalings = scalings.f_matmul(&v2.f_narrow(1, 0, rank2)?)?;
    let cm = centred_means.f_matmul(&scalings)?;
    let coef = cm.f_matmul(&scalings.f_transpose(0, 1)?)?;
    let intercept = cm
        .f_square()?
        .f_sum_dim_intlist(&[1i64][..], false, Kind::Double)?
        .f_mul_scalar(-0.5)?
        .f_add(&priors.f_log()?)?
        .f_sub(&xbar.f_matmul(&coef.f_transpose(0, 1)?)?.f_view([-1])?)?;
    let keep = (c - 1).min(scalings.size()[1]);
    let proj = z.f_sub(&xbar)?.f_matmul(&scalings.f_narrow(1, 0, keep)?)?;
    Ok((proj, proba(z, &coef, &intercept)?))
}

/// The nuclear norm (sum of the singular values) of a matrix.
fn nuclear(m: &Tensor) -> Result<f64, TchError> {
    m.f_linalg_norm_ord_str("nuc", &[0i64, 1][..], false, None::<Kind>)?
        .f_double_value(&[])
}

/// (seli, ncc, vc) of the rows `x` (n, d) in f64.
fn raw_terms(x: &Tensor, k: &Classes) -> Result<Vec<f64>, Failure> {
    let (n, d) = (x.size()[0], x.size()[1]);
    let f = PCA_DIMS.min(n - 1).min(d);
    let centred = x.f_sub(&x.f_mean_dim(&[0i64][..], true, Kind::Double)?)?;
    let (u, s, _) = centred.f_svd(true, true)?;
    let s = s.f_narrow(0, 0, f)?;
    let z = u.f_narrow(1, 0, f)?.f_mul(&s.f_view([1, -1])?)?;
    let variance = s
        .f_narrow(0, 0, VAR_DIMS.min(f))?
        .f_square()?
        .f_div_scalar((n - 1) as f64)?
        .f_sum(Kind::Double)?
        .f_double_value(&[])?;
    let shrinkage = (-variance).exp().max(SHRINK_FLOOR);
    let (h, p) = if shrinkage == SHRINK_FLOOR {
        lda_svd(&z, k)?
    } else {
        lda_eigen(&z, k, shrinkage)?
    };
    let seli = nuclear(&h.f_sub(&h.f_mean_dim(&[0i64][..], true, Kind::Double)?)?)?;
    let ncc = p
        .f_gather(1, &k.y.f_view([-1, 1])?, false)?
        .f_mean(Kind::Double)?
        .f_double_value(&[])?;
    let mut spread = 0.0;
    for rows in &k.members {
        spread += nuclear(&p.f_index_select(0, rows)?)?;
    }
    Ok(vec![seli, ncc, spread.ln()])
}

/// Min-max normalised to [0, 1]; a constant term is 0 everywhere (0/0 in the authors' code).
fn min_max(values: &[f64]) -> Vec<f64> {
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let span = hi - lo;
    values
        .iter()
        .map(|v| if span == 0.0 { 0.0 } else { (v - lo) / span })
        .collect()
}

impl Metric for Ncti {
    fn name(&self) -> &str {
        "ncti"
    }

    fn needs(&self) -> Needs {
        Needs {
            sample: self.max_images,
            ..Needs::default()
        }
    }

    fn relative(&self) -> Option<&dyn Relative> {
        Some(self)
    }
}

impl Relative for Ncti {
    fn term_names(&self) -> &'static [&'static str] {
        TERMS
    }

    fn terms(&self, stats: &ClassMoments) -> Result<Vec<f64>> {
        let (rows, labels) = stats.sample_rows().map_err(Failure::from)?;
        let device = stats.shift().device();
        let k = Classes::new(&labels, device)?;
        let n = labels.len() as i64;
        if k.len() < 2 {
            return Err(Failure::TooFew(format!(
                "{} class(es) in the sample; NCTI's discriminant needs at least 2",
                k.len()
            ))
            .into());
        }
        if n <= k.len() {
            return Err(Failure::TooFew(format!(
                "{n} sampled image(s) in {} classes; NCTI needs more images than classes",
                k.len()
            ))
            .into());
        }
        let x = rows
            .f_to_device(device)
            .and_then(|r| r.f_to_kind(Kind::Double))
            .map_err(Failure::from)?;
        Ok(raw_terms(&x, &k)?)
    }

    fn combine(&self, rows: &[Vec<f64>]) -> Result<Vec<f64>> {
        if let Some(bad) = rows.iter().find(|r| r.len() != TERMS.len()) {
            return Err(Error::Metric {
                metric: "ncti".into(),
                message: format!("{} terms given, expected {}", bad.len(), TERMS.len()),
            });
        }
        let column = |j: usize| min_max(&rows.iter().map(|r| r[j]).collect::<Vec<_>>());
        let (seli, ncc, vc) = (column(0), column(1), column(2));
        Ok((0..rows.len()).map(|i| ncc[i] + seli[i] - vc[i]).collect())
    }

    fn combination(&self) -> &'static str {
        concat!(
            "each term (seli, ncc, vc) min-max normalised over the run's candidate (model, layer) ",
            "rows, then ncc + seli - vc: a row's score depends on the other candidates"
        )
    }
}
