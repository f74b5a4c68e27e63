//! Per-class count, sum and (optionally) second-moment matrix of feature vectors, in f64, on the
//! device where the features are made, so each batch is folded in without a host round trip.
//!
//! The centred scatter is recovered at the end as a difference of sums, `S - n mu mu^T`, which
//! loses digits when features sit far from the origin (a layer whose activations average 1000
//! with spread 1 loses six). So the store keeps its sums about a shift K, the mean of the first
//! batch it sees: it holds sum (x - K) and sum (x - K)(x - K)^T, and every centred quantity is
//! the same whatever K is. Stores with different shifts convert exactly when they merge.

use std::ops::AddAssign;

use tch::{Device, Kind, TchError, Tensor};

use super::BatchLabels;

pub struct ClassMoments {
    counts: Vec<u64>,
    /// (D,): K, set by the first batch; None while the store is empty.
    shift: Option<Tensor>,
    /// (C, D): sum of (x - K) over each class.
    sums: Tensor,
    /// (C, D, D): sum of (x - K)(x - K)^T over each class.
    second: Option<Tensor>,
}

fn kd(t: &Tensor) -> Result<Tensor, TchError> {
    t.f_to_kind(Kind::Double)
}

impl ClassMoments {
    pub fn new(
        classes: usize,
        dim: usize,
        second_moments: bool,
        device: Device,
    ) -> Result<Self, TchError> {
        let (c, d) = (classes as i64, dim as i64);
        let opts = (Kind::Double, device);
        Ok(ClassMoments {
            counts: vec![0; classes],
            shift: None,
            sums: Tensor::f_zeros([c, d], opts)?,
            second: if second_moments {
                Some(Tensor::f_zeros([c, d, d], opts)?)
            } else {
                None
            },
        })
    }

    /// Folds in a batch of feature vectors, (B, D) of any float kind, labelled by `batch`.
    pub fn update(&mut self, features: &Tensor, batch: &BatchLabels) -> Result<(), TchError> {
        let x = kd(features)?;
        if x.size() != [batch.labels.size()[0], self.dim() as i64] {
            return Err(TchError::Shape(format!(
                "features {:?} do not match {} labels of dimension {}",
                x.size(),
                batch.labels.size()[0],
                self.dim()
            )));
        }
        if x.size()[0] == 0 {
            return Ok(());
        }
        let shift = match &self.shift {
            Some(k) => k.shallow_clone(),
            None => {
                let k = x.f_mean_dim(&[0i64][..], false, Kind::Double)?;
                self.shift = Some(k.shallow_clone());
                k
            }
        };
        let y = x.f_sub(&shift)?;
        let _ = self.sums.f_index_add_(0, &batch.labels, &y)?;
        for ((class, rows), n) in batch.groups.iter().zip(&batch.counts) {
            self.counts[*class] += n;
            if let Some(second) = &mut self.second {
                let yc = match rows {
                    Some(idx) => y.f_index_select(0, idx)?,
                    None => y.shallow_clone(),
                };
                let _ = second
                    .f_select(0, *class as i64)?
                    .f_addmm_(&yc.f_transpose(0, 1)?, &yc)?;
            }
        }
        Ok(())
    }

    /// Adds the statistics of another store of the same shape (fed other images).
    pub fn merge(&mut self, other: &ClassMoments) -> Result<(), TchError> {
        if self.sums.size() != other.sums.size() || self.second.is_some() != other.second.is_some()
        {
            return Err(TchError::Shape(format!(
                "cannot merge statistics of shape {:?} (second moments: {}) with {:?} (second moments: {})",
                self.sums.size(),
                self.second.is_some(),
                other.sums.size(),
                other.second.is_some()
            )));
        }
        let Some(other_shift) = &other.shift else {
            return Ok(()); // nothing to add
        };
        let device = self.sums.device();
        let other_shift = other_shift.f_to_device(device)?;
        // x - K = (x - K') + (K' - K): other's sums move by delta = K' - K.
        let delta = match &self.shift {
            Some(shift) => Some(other_shift.f_sub(shift)?),
            None => {
                self.shift = Some(other_shift);
                None
            }
        };
        self.add_converted(other, delta.as_ref())
    }

    /// Adds `other`'s sums re-expressed about this store's shift (`delta` = K_other - K_self).
    fn add_converted(
        &mut self,
        other: &ClassMoments,
        delta: Option<&Tensor>,
    ) -> Result<(), TchError> {
        let device = self.sums.device();
        let s = other.sums.f_to_device(device)?;
        let counts: Vec<f64> = other.counts.iter().map(|&n| n as f64).collect();
        let n = Tensor::f_from_slice(&counts)?.f_to_device(device)?;
        let c = n.size()[0];
        let shifted_sums = match delta {
            Some(d) => s.f_add(&n.f_view([c, 1])?.f_mul(&d.f_view([1, -1])?)?)?,
            None => s.shallow_clone(),
        };
        if let (Some(mine), Some(theirs)) = (&mut self.second, &other.second) {
            let mut add = theirs.f_to_device(device)?;
            if let Some(d) = delta {
                let dim = d.size()[0];
                // S + s d^T + d s^T + n d d^T, for every class at once.
                let s_dt = s.f_view([c, dim, 1])?.f_mul(&d.f_view([1, 1, dim])?)?;
                let ddt = d.f_outer(d)?.f_view([1, dim, dim])?;
                add = add
                    .f_add(&s_dt)?
                    .f_add(&s_dt.f_transpose(1, 2)?)?
                    .f_add(&n.f_view([c, 1, 1])?.f_mul(&ddt)?)?;
            }
            let _ = mine.f_add_(&add)?;
        }
        let _ = self.sums.f_add_(&shifted_sums)?;
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        Ok(())
    }

    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    pub fn classes(&self) -> usize {
        self.counts.len()
    }

    pub fn dim(&self) -> usize {
        self.sums.size()[1] as usize
    }

    pub fn has_second_moments(&self) -> bool {
        self.second.is_some()
    }

    /// The mean of all features, relative to the shift (what the centring formulas need).
    fn shifted_mean(&self) -> Result<Tensor, TchError> {
        let n = self.total().max(1) as f64;
        self.sums
            .f_sum_dim_intlist(&[0i64][..], false, Kind::Double)?
            .f_div_scalar(n)
    }

    /// The mean feature vector, (D,).
    pub fn mean(&self) -> Result<Tensor, TchError> {
        let m = self.shifted_mean()?;
        match &self.shift {
            Some(k) => m.f_add(k),
            None => Ok(m),
        }
    }

    /// Z^T Z for Z the features centred by their global mean, (D, D). Needs second moments.
    pub fn centred_scatter(&self) -> Result<Tensor, TchError> {
        let second = self.second_moments()?;
        let m = self.shifted_mean()?;
        let mut total = second.f_sum_dim_intlist(&[0i64][..], false, Kind::Double)?;
        let _ = total.f_addr_(&m.f_mul_scalar(-(self.total() as f64))?, &m)?;
        Ok(total)
    }

    /// Z_c^T Z_c for the rows of class `class` centred by the GLOBAL mean, (D, D), a fresh
    /// tensor: S_c - s_c m^T - m s_c^T + n_c m m^T = S_c + (n_c m - s_c) m^T - m s_c^T.
    /// Needs second moments.
    pub fn class_scatter_about_global_mean(&self, class: usize) -> Result<Tensor, TchError> {
        let second = self.second_moments()?;
        let m = self.shifted_mean()?;
        let s_c = self.sums.f_select(0, class as i64)?;
        let s_cc = second.f_select(0, class as i64)?;
        let mut out = Tensor::f_empty_like(&s_cc)?;
        out.f_copy_(&s_cc)?;
        let _ = out.f_addr_(&m.f_mul_scalar(self.counts[class] as f64)?.f_sub(&s_c)?, &m)?;
        let _ = out.f_addr_(&m.f_neg()?, &s_c)?;
        Ok(out)
    }

    fn second_moments(&self) -> Result<&Tensor, TchError> {
        self.second.as_ref().ok_or_else(|| {
            TchError::Kind("these statistics were gathered without second moments".into())
        })
    }

    /// Bytes held by the tensors: 8 (C D + C D^2 + D), the bound documented in the README.
    pub fn bytes(&self) -> usize {
        let numel = |t: &Tensor| t.size().iter().product::<i64>() as usize;
        8 * (numel(&self.sums) + self.second.as_ref().map_or(0, numel) + self.dim())
    }

    /// False as soon as a NaN or an infinity has reached the sums.
    pub fn all_finite(&self) -> Result<bool, TchError> {
        Ok(self.sums.f_isfinite()?.f_all()?.f_int64_value(&[])? != 0)
    }
}

/// `a += &b` is `a.merge(&b)`. It panics only if the two stores differ in shape, which no input
/// can cause: stores are made by the pipeline, one shape per (model, layer).
impl AddAssign<&ClassMoments> for ClassMoments {
    fn add_assign(&mut self, other: &ClassMoments) {
        if let Err(e) = self.merge(other) {
            panic!("{e}");
        }
    }
}
