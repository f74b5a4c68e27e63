//! How much a layer's features vary, per image: the total and within-class scatter traces
//! against the features' mean squared norm. What the degenerate-feature rule
//! (metrics/degenerate.rs) judges; `ClassMoments::spread` computes it from the sums, `of_rows`
//! from sampled rows.

use tch::{Kind, TchError, Tensor};

/// Per image: the trace of the total and of the within-class scatter, and the mean squared norm
/// of the raw features (the scale both are judged against).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    pub total: f64,
    pub within: f64,
    pub mean_square: f64,
}

impl Spread {
    /// The spread of raw feature rows (m, D) labelled by `labels`.
    pub fn of_rows(rows: &Tensor, labels: &[i64]) -> Result<Spread, TchError> {
        let x = rows.f_to_kind(Kind::Double)?;
        let n = labels.len().max(1) as f64;
        let mean_square = x.f_square()?.f_sum(Kind::Double)?.f_double_value(&[])? / n;
        let centred = |t: &Tensor| -> Result<f64, TchError> {
            let mean = t.f_mean_dim(&[0i64][..], true, Kind::Double)?;
            t.f_sub(&mean)?
                .f_square()?
                .f_sum(Kind::Double)?
                .f_double_value(&[])
        };
        let total = centred(&x)? / n;
        let mut within = 0.0;
        let mut classes: Vec<i64> = labels.to_vec();
        classes.sort_unstable();
        classes.dedup();
        for c in classes {
            let idx: Vec<i64> = (0..labels.len() as i64)
                .filter(|&i| labels[i as usize] == c)
                .collect();
            let idx = Tensor::f_from_slice(&idx)?.f_to_device(x.device())?;
            within += centred(&x.f_index_select(0, &idx)?)?;
        }
        Ok(Spread {
            total,
            within: within / n,
            mean_square,
        })
    }
}
