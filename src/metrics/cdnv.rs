//! CDNV, the class-distance normalised variance (Galanti et al., "On the Role of Neural
//! Collapse in Transfer Learning", ICLR 2022), debiased for few images per class as Bendou et
//! al. (2022) debias class-mean distances. Features whose classes are tight around means far
//! apart need little re-training; the score does not grow with the number of dimensions the way
//! a rate or an evidence does, because it is a ratio of two squared lengths.
//!
//! From the per-class counts, sums and sums of squares (the moments GBC keeps): for each class c
//! with at least two images, its mean mu_c and its variance V_c = sum |x - mu_c|^2 / (n_c - 1)
//! (unbiased, summed over the dimensions). For each pair of such classes, the squared distance
//! of their means has expectation |m_i - m_j|^2 + V_i / n_i + V_j / n_j, so
//!
//!   D_ij   = |mu_i - mu_j|^2 - V_i / n_i - V_j / n_j       (unbiased)
//!   CDNV_ij = (V_i + V_j) / (2 max(D_ij, (V_i + V_j) / (2 CAP)))
//!   cdnv   = -log10(mean over pairs i < j of CDNV_ij)
//!
//! Higher is better. CAP bounds a pair whose means cannot be told apart at all (the debiased
//! distance is zero or negative) at CDNV = CAP, so that one such pair weighs heavily in the mean
//! but does not make it infinite.

use tch::{Kind, TchError, Tensor};

use super::metric::{scalar, torch_err, Metric};
use crate::error::{Error, Result};
use crate::stats::{ClassMoments, Needs};

pub struct Cdnv;

const NAME: &str = "cdnv";
/// The largest CDNV one pair of classes contributes.
pub const CAP: f64 = 1e3;

impl Metric for Cdnv {
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
        let usable: Vec<i64> = (0..stats.classes())
            .filter(|&c| stats.counts()[c] >= 2)
            .map(|c| c as i64)
            .collect();
        if usable.len() < 2 {
            return Some(Err(Error::Degenerate {
                metric: NAME.into(),
                message: format!(
                    "{} class(es) with two or more images; CDNV needs two such classes",
                    usable.len()
                ),
                numerical: false,
            }));
        }
        Some(cdnv(stats, &usable).map_err(torch_err(NAME)))
    }
}

fn cdnv(stats: &ClassMoments, usable: &[i64]) -> Result<f64, TchError> {
    let device = stats.shift().device();
    let idx = Tensor::f_from_slice(usable)?.f_to_device(device)?;
    let means = stats.class_means()?.f_index_select(0, &idx)?; // (K, D)
    let n: Vec<f64> = usable
        .iter()
        .map(|&c| stats.counts()[c as usize] as f64)
        .collect();
    let n = Tensor::f_from_slice(&n)?.f_to_device(device)?;
    // Population variance summed over dimensions, made unbiased.
    let variance = stats
        .class_variances()?
        .f_index_select(0, &idx)?
        .f_sum_dim_intlist(&[1i64][..], false, Kind::Double)?
        .f_mul(&n)?
        .f_div(&n.f_sub_scalar(1.0)?)?; // (K,)
    let noise = variance.f_div(&n)?; // V_c / n_c
    let k = usable.len() as i64;
    let mut total = 0.0;
    for i in 0..k - 1 {
        let rest = k - i - 1;
        let others = means.f_narrow(0, i + 1, rest)?;
        let distance = others
            .f_sub(&means.f_select(0, i)?.f_view([1, -1])?)?
            .f_square()?
            .f_sum_dim_intlist(&[1i64][..], false, Kind::Double)?
            .f_sub(&noise.f_narrow(0, i + 1, rest)?)?
            .f_sub(&noise.f_select(0, i)?)?;
        let spread = variance
            .f_narrow(0, i + 1, rest)?
            .f_add(&variance.f_select(0, i)?)?
            .f_mul_scalar(0.5)?; // (V_i + V_j) / 2
        let floor = spread.f_div_scalar(CAP)?;
        let ratio = spread.f_div(&distance.f_maximum(&floor)?)?;
        // A pair of constant classes at the same point: 0 / 0, as far apart as they can be.
        let ratio = ratio.f_nan_to_num(CAP, CAP, 0.0)?;
        total += scalar(ratio.f_sum(Kind::Double)?)?;
    }
    let pairs = (k * (k - 1) / 2) as f64;
    Ok(-(total / pairs).log10())
}
