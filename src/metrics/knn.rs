//! k-NN: the leave-one-out accuracy of a k-nearest-neighbour classifier on the pretrained
//! features (Sorkhei et al., "k-NN as a Simple and Effective Estimator of Transferability",
//! 2025, which found it ahead of 22 other metrics across 16 datasets and 42,000 fine-tuning
//! runs).
//!
//! On the rows of a fixed, class-stratified sample of the images (`dataset::sample_flags`, at
//! most `sample.max_images`): each row put on the unit sphere (a zero row stays zero), similarity
//! the dot product, every image classified by the majority label among its k most similar other
//! images (equal similarities: the image listed first), ties in the vote broken by the most
//! similar neighbour carrying one of the tied labels. The score is the fraction classified
//! right. Computed in tiles of rows on the statistics' device, in f64, so it equals the NumPy
//! reference (tests/oracles/sample_metrics.py) exactly.

use tch::{Kind, Tensor};

use super::metric::{score_sample, torch_err, Metric, SampleRows};
use crate::error::{Error, Result};
use crate::stats::{ClassMoments, Needs};

pub struct Knn {
    pub k: usize,
    /// Rows of the sample (`sample.max_images`).
    pub max_images: usize,
}

/// Rows per tile: a (TILE, m) f64 similarity block and its sort at a time.
const TILE: i64 = 1024;

impl Knn {
    fn score(&self, rows: &Tensor, labels: &[i64]) -> Result<f64, tch::TchError> {
        let device = rows.device();
        let m = labels.len() as i64;
        let x = rows.f_to_kind(Kind::Double)?;
        let norms = x
            .f_square()?
            .f_sum_dim_intlist(&[1i64][..], true, Kind::Double)?
            .f_sqrt()?;
        let norms = norms.f_where_scalarother(&norms.f_gt(0.0)?, 1.0)?;
        let xn = x.f_div(&norms)?;
        let xt = xn.f_transpose(0, 1)?;
        let y = Tensor::f_from_slice(labels)?.f_to_device(device)?;
        let classes = labels.iter().copied().max().unwrap_or(0) + 1;
        let k = (self.k as i64).min(m - 1);
        let mut correct = 0i64;
        let mut lo = 0;
        while lo < m {
            let b = TILE.min(m - lo);
            let mut sim = xn.f_narrow(0, lo, b)?.f_matmul(&xt)?;
            // Leave each image out of its own neighbours.
            let own = Tensor::f_arange_start(lo, lo + b, (Kind::Int64, device))?.f_view([-1, 1])?;
            let _ = sim.f_scatter_value_(1, &own, f64::NEG_INFINITY)?;
            // A stable descending sort: equal similarities keep the listing order.
            let (_, order) = sim.f_sort_stable(true, 1, true)?;
            let nearest = order.f_narrow(1, 0, k)?;
            let votes_for = y
                .f_index_select(0, &nearest.f_flatten(0, -1)?)?
                .f_view([b, k])?;
            let counts = Tensor::f_zeros([b, classes], (Kind::Int64, device))?.f_scatter_add(
                1,
                &votes_for,
                &Tensor::f_ones([b, k], (Kind::Int64, device))?,
            )?;
            let best = counts.f_amax(&[1i64][..], true)?;
            let tied = counts.f_gather(1, &votes_for, false)?.f_eq_tensor(&best)?;
            // The first (most similar) neighbour whose label is among the most voted.
            let rank =
                Tensor::f_arange_start_step(k, 0, -1, (Kind::Int64, device))?.f_view([1, -1])?;
            let first = tied
                .f_to_kind(Kind::Int64)?
                .f_mul(&rank)?
                .f_argmax(1, true)?;
            let predicted = votes_for.f_gather(1, &first, false)?.f_view([-1])?;
            correct += predicted
                .f_eq_tensor(&y.f_narrow(0, lo, b)?)?
                .f_sum(Kind::Int64)?
                .f_int64_value(&[])?;
            lo += b;
        }
        Ok(correct as f64 / m as f64)
    }
}

impl Metric for Knn {
    fn name(&self) -> &str {
        "knn"
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
        if labels.len() < 2 {
            return Some(Err(Error::Degenerate {
                metric: "knn".into(),
                message: format!("{} sampled image(s); k-NN needs at least 2", labels.len()),
                numerical: false,
            }));
        }
        Some(self.score(rows, labels).map_err(torch_err("knn")))
    }
}
