//! This run's own uncertainty: how much a sample metric's score would move with other images
//! of the same target. The sampled images are split into K folds by their position in the
//! listing (SplitMix64 of the position, modulo K: the same fold on every run, shard and
//! machine), and the metric is recomputed K times, each time without one fold. The
//! delete-a-group jackknife turns those K scores into a standard error, and because every
//! model and layer is scored on the same folds, the difference of two candidates gets one too:
//! what says whether the first candidate is first beyond this run's noise.
//!
//! No second pass and no extra statistics: the folds are subsets of the sample rows the metric
//! reads anyway. Only metrics that read the sample (`Metric::score_rows`) have fold scores.

use tch::Tensor;

use super::metric::{torch_err, Metric, SampleRows};
use super::transrate_z::splitmix;
use crate::error::Result;

/// Which scores get leave-one-fold-out values: the advice's, in `folds` folds (fewer than 2:
/// none). The cut's score on every layer (cuts are compared within a model); the model's score
/// only on each model's best layer by it, the one that stands for the model (k-NN rescored on
/// every layer would cost as many times more).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Folds {
    pub folds: usize,
    pub every_layer: Vec<String>,
    pub best_layer: Vec<String>,
}

/// The fold of the image at listing position `id`.
pub fn fold_of(id: u32, folds: usize) -> usize {
    (splitmix(&mut u64::from(id)) % folds as u64) as usize
}

/// The metric's score without each non-empty fold in turn (at most K values, at least 2), or
/// None when the metric does not read the sample or has no score without some fold (its
/// degenerate cases: the caller reports no standard error rather than a wrong one).
pub fn leave_fold_out(
    metric: &dyn Metric,
    rows: &Tensor,
    labels: &[i64],
    ids: &[u32],
    folds: usize,
) -> Result<Option<Vec<f64>>> {
    if folds < 2 {
        return Ok(None);
    }
    let fold: Vec<usize> = ids.iter().map(|&id| fold_of(id, folds)).collect();
    let mut out = Vec::with_capacity(folds);
    for k in 0..folds {
        let keep: Vec<i64> = (0..fold.len())
            .filter(|&i| fold[i] != k)
            .map(|i| i as i64)
            .collect();
        if keep.len() == fold.len() {
            // An empty fold (fewer images than folds) is no group of the jackknife.
            continue;
        }
        let index = Tensor::f_from_slice(&keep)
            .and_then(|t| t.f_to_device(rows.device()))
            .map_err(torch_err(metric.name()))?;
        let part = rows
            .f_index_select(0, &index)
            .map_err(torch_err(metric.name()))?;
        let part_labels: Vec<i64> = keep.iter().map(|&i| labels[i as usize]).collect();
        let part_ids: Vec<u32> = keep.iter().map(|&i| ids[i as usize]).collect();
        match metric.score_rows(&SampleRows {
            x: &part,
            labels: &part_labels,
            ids: &part_ids,
        }) {
            None => return Ok(None),
            Some(Ok(v)) if v.is_finite() => out.push(v),
            Some(Ok(_)) => return Ok(None),
            Some(Err(crate::error::Error::Degenerate { .. })) => return Ok(None),
            Some(Err(e)) => return Err(e),
        }
    }
    Ok((out.len() >= 2).then_some(out))
}

/// The delete-a-group jackknife standard error of a statistic from its K leave-one-fold-out
/// values: sqrt((K - 1) / K * sum_k (v_k - mean)^2).
pub fn standard_error(left_out: &[f64]) -> f64 {
    let k = left_out.len() as f64;
    if k < 2.0 {
        return f64::NAN;
    }
    let mean = left_out.iter().sum::<f64>() / k;
    ((k - 1.0) / k * left_out.iter().map(|v| (v - mean).powi(2)).sum::<f64>()).sqrt()
}

/// The standard error of the difference of two candidates scored on the same folds.
pub fn difference_error(a: &[f64], b: &[f64]) -> f64 {
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    standard_error(&d)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The jackknife of the mean is the textbook standard error of the mean: with K folds of
    /// equal size m/K, the leave-fold-out means v_k give sqrt((K-1)/K sum (v_k - v)^2) =
    /// s / sqrt(m) exactly when each fold holds one value (K = m).
    #[test]
    fn the_jackknife_of_a_mean_is_its_standard_error() {
        let x = [1.0, 4.0, 2.0, 8.0, 5.0];
        let m = x.len() as f64;
        let mean = x.iter().sum::<f64>() / m;
        let left_out: Vec<f64> = (0..x.len())
            .map(|i| (x.iter().sum::<f64>() - x[i]) / (m - 1.0))
            .collect();
        let s2 = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (m - 1.0);
        assert!((standard_error(&left_out) - (s2 / m).sqrt()).abs() < 1e-12);
    }

    #[test]
    fn a_difference_that_moves_in_step_has_no_error() {
        let a = [1.0, 2.0, 3.0];
        let b = [0.5, 1.5, 2.5];
        assert_eq!(difference_error(&a, &b), 0.0);
        assert!(standard_error(&a) > 0.0);
    }

    #[test]
    fn folds_are_balanced_and_fixed() {
        let mut count = [0usize; 5];
        for id in 0..10_000u32 {
            count[fold_of(id, 5)] += 1;
        }
        assert!(
            count.iter().all(|&c| (1900..=2100).contains(&c)),
            "{count:?}"
        );
        // Fixed by the position alone: SplitMix64's first outputs for seeds 0, 1, 2 (the
        // first is the published test value of the generator), modulo 5.
        assert_eq!(
            [fold_of(0, 5), fold_of(1, 5), fold_of(2, 5)],
            [
                (0xE220_A839_7B1D_CDAFu64 % 5) as usize,
                (0x910A_2DEC_8902_5CC1u64 % 5) as usize,
                (0x9758_35DE_1C97_56CEu64 % 5) as usize,
            ]
        );
    }
}
