//! Per-class count and sum of feature vectors, plus the second- and fourth-order sums the metrics
//! ask for, in f64, on the device where the features are made, so each batch is folded in
//! without a host round trip.
//!
//! Centred quantities are recovered at the end as differences of sums (`S - n mu mu^T`), which
//! lose digits when features sit far from the origin (a layer whose activations average 1000
//! with spread 1 loses six). So every sum is taken about a fixed shift K, given at construction
//! (the pipeline uses the features of a blank image, which sit where the data do): the store
//! holds sums of y = x - K, and stores merge only with stores of the same shift. Centred
//! quantities are the same whatever K is; raw ones add K back.

use std::ops::AddAssign;

use tch::{Kind, TchError, Tensor};

use super::{BatchLabels, Needs};

pub struct ClassMoments {
    counts: Vec<u64>,
    /// (D,): K.
    shift: Tensor,
    /// (C, D): sum of y over each class.
    sums: Tensor,
    /// (C, D, D): sum of y y^T over each class.
    class_second: Option<Tensor>,
    /// (D, D): sum of y y^T, kept only when `class_second` is not (it is their sum).
    total_second: Option<Tensor>,
    /// (C, D): sum of y * y over each class, kept only when `class_second` is not.
    class_squares: Option<Tensor>,
    /// (): sum of |y|^4, and (D,): sum of |y|^2 y.
    fourth: Option<(Tensor, Tensor)>,
}

fn zeros(shape: &[i64], like: &Tensor) -> Result<Tensor, TchError> {
    Tensor::f_zeros(shape, (Kind::Double, like.device()))
}

impl ClassMoments {
    /// An empty store for `classes` classes of features of the shift's length, on the shift's
    /// device, with the sums `needs` asks for.
    pub fn new(classes: usize, shift: &Tensor, needs: &Needs) -> Result<Self, TchError> {
        let shift = shift.f_to_kind(Kind::Double)?.f_flatten(0, -1)?;
        let (c, d) = (classes as i64, shift.size()[0]);
        let class_second = needs.class_second;
        Ok(ClassMoments {
            counts: vec![0; classes],
            sums: zeros(&[c, d], &shift)?,
            class_second: if class_second {
                Some(zeros(&[c, d, d], &shift)?)
            } else {
                None
            },
            total_second: if needs.total_second && !class_second {
                Some(zeros(&[d, d], &shift)?)
            } else {
                None
            },
            class_squares: if needs.class_squares && !class_second {
                Some(zeros(&[c, d], &shift)?)
            } else {
                None
            },
            fourth: if needs.fourth {
                Some((zeros(&[], &shift)?, zeros(&[d], &shift)?))
            } else {
                None
            },
            shift,
        })
    }

    /// Folds in a batch of feature vectors, (B, D) of any float kind, labelled by `batch`.
    pub fn update(&mut self, features: &Tensor, batch: &BatchLabels) -> Result<(), TchError> {
        let x = features.f_to_kind(Kind::Double)?;
        if x.size() != [batch.labels.size()[0], self.dim() as i64] {
            return Err(TchError::Shape(format!(
                "features {:?} do not match {} labels of dimension {}",
                x.size(),
                batch.labels.size()[0],
                self.dim()
            )));
        }
        let y = x.f_sub(&self.shift)?;
        let _ = self.sums.f_index_add_(0, &batch.labels, &y)?;
        for ((class, rows), n) in batch.groups.iter().zip(&batch.counts) {
            self.counts[*class] += n;
            if let Some(second) = &mut self.class_second {
                let yc = match rows {
                    Some(idx) => y.f_index_select(0, idx)?,
                    None => y.shallow_clone(),
                };
                let _ = second
                    .f_select(0, *class as i64)?
                    .f_addmm_(&yc.f_transpose(0, 1)?, &yc)?;
            }
        }
        let yt = y.f_transpose(0, 1)?;
        if let Some(total) = &mut self.total_second {
            let _ = total.f_addmm_(&yt, &y)?;
        }
        let y2 = y.f_square()?;
        if let Some(squares) = &mut self.class_squares {
            let _ = squares.f_index_add_(0, &batch.labels, &y2)?;
        }
        if let Some((q4, q3)) = &mut self.fourth {
            let r2 = y2.f_sum_dim_intlist(&[1i64][..], false, Kind::Double)?;
            let _ = q4.f_add_(&r2.f_square()?.f_sum(Kind::Double)?)?;
            let _ = q3.f_addmv_(&yt, &r2)?;
        }
        Ok(())
    }

    /// Adds the statistics of another store of the same shape and shift (fed other images).
    pub fn merge(&mut self, other: &ClassMoments) -> Result<(), TchError> {
        let same_parts = self.class_second.is_some() == other.class_second.is_some()
            && self.total_second.is_some() == other.total_second.is_some()
            && self.class_squares.is_some() == other.class_squares.is_some()
            && self.fourth.is_some() == other.fourth.is_some();
        if self.sums.size() != other.sums.size() || !same_parts {
            return Err(TchError::Shape(format!(
                "cannot merge statistics of shape {:?} with statistics of shape {:?} or other sums",
                self.sums.size(),
                other.sums.size()
            )));
        }
        if !self
            .shift
            .f_equal(&other.shift.f_to_device(self.shift.device())?)?
        {
            return Err(TchError::Shape(
                "cannot merge statistics taken about different shifts".into(),
            ));
        }
        let device = self.sums.device();
        let add = |mine: &mut Tensor, theirs: &Tensor| -> Result<(), TchError> {
            let _ = mine.f_add_(&theirs.f_to_device(device)?)?;
            Ok(())
        };
        add(&mut self.sums, &other.sums)?;
        for (mine, theirs) in [
            (self.class_second.as_mut(), other.class_second.as_ref()),
            (self.total_second.as_mut(), other.total_second.as_ref()),
            (self.class_squares.as_mut(), other.class_squares.as_ref()),
        ] {
            if let (Some(mine), Some(theirs)) = (mine, theirs) {
                add(mine, theirs)?;
            }
        }
        if let (Some((a4, a3)), Some((b4, b3))) = (&mut self.fourth, &other.fourth) {
            add(a4, b4)?;
            add(a3, b3)?;
        }
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

    /// Classes with at least one image.
    pub fn present(&self) -> impl Iterator<Item = usize> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, &n)| n > 0)
            .map(|(c, _)| c)
    }

    pub fn dim(&self) -> usize {
        self.sums.size()[1] as usize
    }

    pub fn shift(&self) -> &Tensor {
        &self.shift
    }

    fn missing(what: &str) -> TchError {
        TchError::Kind(format!("these statistics were gathered without {what}"))
    }

    /// The mean of all features about the shift, m (what the centring formulas need).
    fn shifted_mean(&self) -> Result<Tensor, TchError> {
        let n = self.total().max(1) as f64;
        self.sums
            .f_sum_dim_intlist(&[0i64][..], false, Kind::Double)?
            .f_div_scalar(n)
    }

    /// The mean feature vector, (D,).
    pub fn mean(&self) -> Result<Tensor, TchError> {
        self.shifted_mean()?.f_add(&self.shift)
    }

    /// The mean of each class, (C, D); zero rows for classes without images.
    pub fn class_means(&self) -> Result<Tensor, TchError> {
        let n: Vec<f64> = self.counts.iter().map(|&n| n.max(1) as f64).collect();
        let n = Tensor::f_from_slice(&n)?
            .f_to_device(self.sums.device())?
            .f_view([-1, 1])?;
        let shifted = self.sums.f_div(&n)?;
        let present: Vec<f64> = self
            .counts
            .iter()
            .map(|&n| if n > 0 { 1.0 } else { 0.0 })
            .collect();
        let present = Tensor::f_from_slice(&present)?
            .f_to_device(self.sums.device())?
            .f_view([-1, 1])?;
        shifted.f_add(&self.shift.f_view([1, -1])?)?.f_mul(&present)
    }

    /// Sum of y y^T over all images, (D, D), a fresh tensor.
    fn shifted_second(&self) -> Result<Tensor, TchError> {
        match (&self.class_second, &self.total_second) {
            (Some(per_class), _) => per_class.f_sum_dim_intlist(&[0i64][..], false, Kind::Double),
            (None, Some(total)) => total.f_copy_like(),
            (None, None) => Err(Self::missing("second moments")),
        }
    }

    /// Z^T Z for Z the features centred by their global mean, (D, D), a fresh tensor.
    pub fn centred_scatter(&self) -> Result<Tensor, TchError> {
        let m = self.shifted_mean()?;
        let mut s = self.shifted_second()?;
        let _ = s.f_addr_(&m.f_mul_scalar(-(self.total() as f64))?, &m)?;
        Ok(s)
    }

    /// F^T F for F the raw features, (D, D): S + s K^T + K s^T + n K K^T about the shift.
    pub fn raw_second(&self) -> Result<Tensor, TchError> {
        let s = self
            .sums
            .f_sum_dim_intlist(&[0i64][..], false, Kind::Double)?;
        let k = &self.shift;
        let mut out = self.shifted_second()?;
        let _ = out.f_addr_(&s.f_add(&k.f_mul_scalar(self.total() as f64)?)?, k)?;
        let _ = out.f_addr_(k, &s)?;
        Ok(out)
    }

    /// The raw per-class sums F^T Y, (C, D).
    pub fn raw_class_sums(&self) -> Result<Tensor, TchError> {
        let n: Vec<f64> = self.counts.iter().map(|&n| n as f64).collect();
        let n = Tensor::f_from_slice(&n)?
            .f_to_device(self.sums.device())?
            .f_view([-1, 1])?;
        self.sums.f_add(&n.f_mul(&self.shift.f_view([1, -1])?)?)
    }

    /// Z_c^T Z_c for the rows of class `class` centred by the GLOBAL mean, (D, D), a fresh
    /// tensor: S_c - s_c m^T - m s_c^T + n_c m m^T = S_c + (n_c m - s_c) m^T - m s_c^T.
    pub fn class_scatter_about_global_mean(&self, class: usize) -> Result<Tensor, TchError> {
        let second = self
            .class_second
            .as_ref()
            .ok_or_else(|| Self::missing("per-class second moments"))?;
        let m = self.shifted_mean()?;
        let s_c = self.sums.f_select(0, class as i64)?;
        let mut out = second.f_select(0, class as i64)?.f_copy_like()?;
        let _ = out.f_addr_(&m.f_mul_scalar(self.counts[class] as f64)?.f_sub(&s_c)?, &m)?;
        let _ = out.f_addr_(&m.f_neg()?, &s_c)?;
        Ok(out)
    }

    /// The population variance of each feature within each class, (C, D), clipped at zero;
    /// zero rows for classes without images.
    pub fn class_variances(&self) -> Result<Tensor, TchError> {
        let squares = match (&self.class_second, &self.class_squares) {
            (Some(second), _) => second.f_diagonal(0, 1, 2)?,
            (None, Some(sq)) => sq.shallow_clone(),
            (None, None) => return Err(Self::missing("per-class sums of squares")),
        };
        let n: Vec<f64> = self.counts.iter().map(|&n| n.max(1) as f64).collect();
        let n = Tensor::f_from_slice(&n)?
            .f_to_device(self.sums.device())?
            .f_view([-1, 1])?;
        let mean = self.sums.f_div(&n)?;
        squares
            .f_div(&n)?
            .f_sub(&mean.f_square()?)?
            .f_clamp_min(0.0)
    }

    /// Sum over images of |z|^4 for z = x - mean:
    /// Q4 - 4 q3.m + 4 m^T S m + 2 |m|^2 tr(S) - 3 n |m|^4 about the shift.
    pub fn centred_fourth(&self) -> Result<f64, TchError> {
        let (q4, q3) = self
            .fourth
            .as_ref()
            .ok_or_else(|| Self::missing("fourth moments"))?;
        let s = self.shifted_second()?;
        let m = self.shifted_mean()?;
        let v = |t: Tensor| t.f_double_value(&[]);
        let m2 = v(m.f_dot(&m)?)?;
        let n = self.total() as f64;
        Ok(v(q4.shallow_clone())? - 4.0 * v(q3.f_dot(&m)?)?
            + 4.0 * v(m.f_dot(&s.f_mv(&m)?)?)?
            + 2.0 * m2 * v(s.f_trace()?)?
            - 3.0 * n * m2 * m2)
    }

    /// Bytes held by the tensors (the bounds documented in the README).
    pub fn bytes(&self) -> usize {
        let numel = |t: &Tensor| t.size().iter().product::<i64>() as usize;
        let parts = [
            Some(&self.shift),
            Some(&self.sums),
            self.class_second.as_ref(),
            self.total_second.as_ref(),
            self.class_squares.as_ref(),
        ];
        let fourth = self.fourth.as_ref().map_or(0, |(a, b)| numel(a) + numel(b));
        8 * (parts.into_iter().flatten().map(numel).sum::<usize>() + fourth)
    }

    /// False as soon as a NaN or an infinity has reached the sums.
    pub fn all_finite(&self) -> Result<bool, TchError> {
        Ok(self.sums.f_isfinite()?.f_all()?.f_int64_value(&[])? != 0)
    }
}

/// `a += &b` is `a.merge(&b)`. It panics only if the two stores differ in shape or shift, which
/// no input can cause: stores are made by the pipeline, one shape and shift per (model, layer).
impl AddAssign<&ClassMoments> for ClassMoments {
    fn add_assign(&mut self, other: &ClassMoments) {
        if let Err(e) = self.merge(other) {
            panic!("{e}");
        }
    }
}

trait CopyLike {
    fn f_copy_like(&self) -> Result<Tensor, TchError>;
}

impl CopyLike for Tensor {
    /// A deep copy (tch's `copy` is not fallible).
    fn f_copy_like(&self) -> Result<Tensor, TchError> {
        let mut out = Tensor::f_empty_like(self)?;
        out.f_copy_(self)?;
        Ok(out)
    }
}
