//! Per-class count and sum of feature vectors, plus the second- and fourth-order sums the metrics
//! ask for, in f64, on the device where the features are made, so each batch is folded in
//! without a host round trip.
//!
//! Centred quantities are recovered at the end as differences of sums (`S - n mu mu^T`), which
//! lose digits when features sit far from the origin (a layer whose activations average 1000
//! with spread 1 loses six). So every sum is taken about a fixed shift K, given at construction
//! (the pipeline uses the features of a blank image, which sit where the data do): the store
//! holds sums of y = x - K. Centred quantities are the same whatever K is; raw ones add K back.
//! Stores about different shifts (made on different kinds of device, whose blank-image features
//! differ in the last bits) merge after one is re-expressed about the other's (`reshifted`).

use std::ops::AddAssign;

use tch::{Kind, TchError, Tensor};

mod persist;

use super::batch_labels::BatchLabels;
use super::class_second::{ClassCentre, ClassSecond};
use super::needs::Needs;
use super::row_sample::RowSample;
use super::spread::Spread;

pub struct ClassMoments {
    counts: Vec<u64>,
    /// (D,): K.
    shift: Tensor,
    /// (C, D): sum of y over each class.
    sums: Tensor,
    /// Each class's second moment, as rows or as a scatter (`ClassSecond`).
    class_second: Option<ClassSecond>,
    /// (D, D): sum of y y^T.
    total_second: Option<Tensor>,
    /// (C, D): sum of y * y over each class.
    class_squares: Option<Tensor>,
    /// (): sum of |y|^4, and (D,): sum of |y|^2 y.
    fourth: Option<(Tensor, Tensor)>,
    /// The raw rows of the sampled images (k-NN).
    sample: Option<RowSample>,
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
            // Per-class second moments bring the total and the diagonals with them, so the
            // metrics that need only those never read a class's rows.
            class_second: if class_second {
                let dim = d as usize;
                Some(ClassSecond::new(classes, dim, shift.device()))
            } else {
                None
            },
            total_second: if needs.total_second || class_second {
                Some(zeros(&[d, d], &shift)?)
            } else {
                None
            },
            class_squares: if needs.class_squares || class_second {
                Some(zeros(&[c, d], &shift)?)
            } else {
                None
            },
            fourth: if needs.fourth {
                Some((zeros(&[], &shift)?, zeros(&[d], &shift)?))
            } else {
                None
            },
            sample: (needs.sample > 0).then(|| RowSample::new(needs.sample)),
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
        if let Some(sample) = &mut self.sample {
            sample.update(features, batch)?;
        }
        let y = x.f_sub(&self.shift)?;
        let _ = self.sums.f_index_add_(0, &batch.labels, &y)?;
        for ((class, _), n) in batch.groups.iter().zip(&batch.counts) {
            self.counts[*class] += n;
        }
        if let Some(second) = &mut self.class_second {
            second.update_batch(features, batch, &self.shift)?;
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
            && self.sample.is_some() == other.sample.is_some()
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
        let device = self.sums.device();
        // Stores made on different devices (a CPU shard and a GPU shard, two GPU models) may
        // have shifts that differ in the last bits; the other store is re-expressed about ours.
        let moved;
        let other = if self.shift.f_equal(&other.shift.f_to_device(device)?)? {
            other
        } else {
            moved = other.reshifted(&self.shift)?;
            &moved
        };
        let add = |mine: &mut Tensor, theirs: &Tensor| -> Result<(), TchError> {
            let _ = mine.f_add_(&theirs.f_to_device(device)?)?;
            Ok(())
        };
        add(&mut self.sums, &other.sums)?;
        if let (Some(mine), Some(theirs)) = (&mut self.class_second, &other.class_second) {
            mine.merge(theirs, &self.shift)?;
        }
        if let (Some(mine), Some(theirs)) = (&mut self.sample, &other.sample) {
            mine.merge(theirs)?;
        }
        for (mine, theirs) in [
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

    /// The same statistics summed about another shift K' (exact up to rounding): with
    /// d = K - K', y' = y + d, so every sum gains terms in d and the lower sums.
    pub fn reshifted(&self, new_shift: &Tensor) -> Result<ClassMoments, TchError> {
        let device = self.sums.device();
        let new_shift = new_shift.f_to_device(device)?.f_to_kind(Kind::Double)?;
        let d = self.shift.f_sub(&new_shift)?;
        let counts = self.counts_tensor()?;
        // (C, D): n_c d, the change of each class sum.
        let nd = counts.f_view([-1, 1])?.f_mul(&d.f_view([1, -1])?)?;
        let s = self
            .sums
            .f_sum_dim_intlist(&[0i64][..], false, Kind::Double)?;
        let n = self.total() as f64;
        let outer = |a: &Tensor, b: &Tensor| a.f_view([-1, 1])?.f_mul(&b.f_view([1, -1])?);
        // The shifted sums of y y^T about the old shift, before anything changes.
        let fourth = match &self.fourth {
            Some((q4, q3)) => {
                let big_s = self.shifted_second()?;
                let v = |t: Tensor| t.f_double_value(&[]);
                let d2 = v(d.f_dot(&d)?)?;
                let ds = v(d.f_dot(&s)?)?;
                let tr = v(big_s.f_trace()?)?;
                let sd = big_s.f_mv(&d)?;
                let dsd = v(d.f_dot(&sd)?)?;
                let q4_new = v(q4.shallow_clone())?
                    + 4.0 * v(d.f_dot(q3)?)?
                    + 4.0 * dsd
                    + 2.0 * d2 * tr
                    + 4.0 * d2 * ds
                    + n * d2 * d2;
                let q3_new = q3
                    .f_add(&sd.f_mul_scalar(2.0)?)?
                    .f_add(&s.f_mul_scalar(d2)?)?
                    .f_add(&d.f_mul_scalar(tr + 2.0 * ds + n * d2)?)?;
                Some((
                    Tensor::f_from_slice(&[q4_new])?
                        .f_to_device(device)?
                        .f_view([])?,
                    q3_new,
                ))
            }
            None => None,
        };
        let class_second = match &self.class_second {
            Some(sec) => Some(sec.reshifted(&self.counts, &self.sums, &d)?),
            None => None,
        };
        let total_second = match &self.total_second {
            Some(t) => {
                let sd = outer(&s, &d)?;
                Some(
                    t.f_add(&sd)?
                        .f_add(&sd.f_transpose(0, 1)?)?
                        .f_add(&outer(&d, &d)?.f_mul_scalar(n)?)?,
                )
            }
            None => None,
        };
        let class_squares = match &self.class_squares {
            Some(q) => Some(
                q.f_add(&self.sums.f_mul(&d.f_view([1, -1])?)?.f_mul_scalar(2.0)?)?
                    .f_add(&nd.f_mul(&d.f_view([1, -1])?)?)?,
            ),
            None => None,
        };
        Ok(ClassMoments {
            sample: self.sample.as_ref().map(RowSample::shallow_copy),
            counts: self.counts.clone(),
            shift: new_shift,
            sums: self.sums.f_add(&nd)?,
            class_second,
            total_second,
            class_squares,
            fourth,
        })
    }

    fn counts_tensor(&self) -> Result<Tensor, TchError> {
        let n: Vec<f64> = self.counts.iter().map(|&n| n as f64).collect();
        Tensor::f_from_slice(&n)?.f_to_device(self.sums.device())
    }

    /// Whether these statistics hold everything `needs` asks for.
    pub fn covers(&self, needs: &Needs) -> bool {
        (!needs.class_second || self.class_second.is_some())
            && (!needs.total_second || self.total_second.is_some())
            && (!needs.class_squares || self.class_squares.is_some())
            && (!needs.fourth || self.fourth.is_some())
            && (needs.sample == 0
                || self
                    .sample
                    .as_ref()
                    .is_some_and(|s| s.target == needs.sample))
    }

    /// A copy on `device`.
    pub fn to_device(&self, device: tch::Device) -> Result<ClassMoments, TchError> {
        let mv = |t: &Tensor| t.f_to_device(device);
        let opt = |t: &Option<Tensor>| t.as_ref().map(mv).transpose();
        Ok(ClassMoments {
            counts: self.counts.clone(),
            shift: mv(&self.shift)?,
            sums: mv(&self.sums)?,
            class_second: self
                .class_second
                .as_ref()
                .map(|c| c.to_device(device))
                .transpose()?,
            sample: self.sample.as_ref().map(RowSample::shallow_copy),
            total_second: opt(&self.total_second)?,
            class_squares: opt(&self.class_squares)?,
            fourth: match &self.fourth {
                Some((a, b)) => Some((mv(a)?, mv(b)?)),
                None => None,
            },
        })
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
        match &self.total_second {
            Some(total) => total.f_copy_like(),
            None => Err(Self::missing("second moments")),
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

    /// logdet(I + P^T Z_c^T Z_c P / a) for Z_c the rows of class `class` centred by the GLOBAL
    /// mean and P the (D, k) `basis` (all D directions without one), from the class's rows or
    /// its scatter, whichever it keeps (`ClassSecond`).
    pub fn class_logdet(
        &self,
        class: usize,
        a: f64,
        basis: Option<&Tensor>,
    ) -> Result<f64, TchError> {
        let second = self
            .class_second
            .as_ref()
            .ok_or_else(|| Self::missing("per-class second moments"))?;
        let (mean, sum) = (self.mean()?, self.sums.f_select(0, class as i64)?);
        let centre = ClassCentre {
            class,
            mean: &mean,
            shift: &self.shift,
            sum: &sum,
            n: self.counts[class],
        };
        second.logdet(&centre, a, basis)
    }

    /// With `rows` = 0 every class keeps a D x D scatter from its first image; with u64::MAX
    /// every class keeps its rows; by default a class folds its rows into a scatter past 2D of
    /// them. For parity tests and measurements.
    pub fn set_fold_above(&mut self, rows: u64) {
        if let Some(second) = &mut self.class_second {
            second.set_fold_above(rows);
        }
    }

    /// Makes the host rows of batches up to `done` (finished by the device) readable; see
    /// `staging`.
    pub fn settle(&mut self, done: u64) -> Result<(), TchError> {
        if let Some(second) = &mut self.class_second {
            second.settle(done)?;
        }
        if let Some(sample) = &mut self.sample {
            sample.settle(done)?;
        }
        Ok(())
    }

    /// The per-class second moments, where the pass spills their rows from (`spill.rs`).
    pub fn class_second_mut(&mut self) -> Option<&mut ClassSecond> {
        self.class_second.as_mut()
    }

    /// Bytes of per-class rows spilled to disk.
    pub fn spilled_bytes(&self) -> u64 {
        self.class_second
            .as_ref()
            .map_or(0, ClassSecond::spilled_bytes)
    }

    /// Bytes of feature rows kept in host memory (`ClassSecond`, not spilled, and the sample).
    pub fn host_bytes(&self) -> usize {
        self.class_second.as_ref().map_or(0, |c| c.bytes().0)
            + self.sample.as_ref().map_or(0, RowSample::bytes)
    }

    /// Rows of the image sample kept, if these statistics keep one.
    pub fn sample_len(&self) -> Option<usize> {
        self.sample.as_ref().map(RowSample::len)
    }

    /// The sampled images' raw feature rows (m, D) in listing order, and their labels.
    pub fn sample_rows(&self) -> Result<(Tensor, Vec<i64>), TchError> {
        self.sample
            .as_ref()
            .ok_or_else(|| Self::missing("the sampled feature rows"))?
            .rows()
    }

    /// The sampled images' positions in the listing, in the order `sample_rows` gives them.
    pub fn sample_ids(&self) -> Result<Vec<u32>, TchError> {
        Ok(self
            .sample
            .as_ref()
            .ok_or_else(|| Self::missing("the sampled feature rows"))?
            .ids())
    }

    /// How much the features vary, per image: total and within-class scatter traces and the
    /// raw mean squared norm, from whichever second-order sums these statistics keep (None
    /// when they keep none: a sample-only store, whose rows say it instead).
    pub fn spread(&self) -> Result<Option<Spread>, TchError> {
        let squares = match (&self.total_second, &self.class_squares) {
            (Some(s), _) => s.f_trace()?.f_double_value(&[])?,
            (None, Some(sq)) => sq.f_sum(Kind::Double)?.f_double_value(&[])?,
            (None, None) => return Ok(None),
        };
        let n: Vec<f64> = self.counts.iter().map(|&n| n.max(1) as f64).collect();
        let n = Tensor::f_from_slice(&n)?.f_to_device(self.sums.device())?;
        let between = self
            .sums
            .f_square()?
            .f_sum_dim_intlist(&[1i64][..], false, Kind::Double)?
            .f_div(&n)?
            .f_sum(Kind::Double)?
            .f_double_value(&[])?;
        let total_sum = self
            .sums
            .f_sum_dim_intlist(&[0i64][..], false, Kind::Double)?;
        let count = self.total().max(1) as f64;
        let mean_shift = total_sum.f_dot(&total_sum)?.f_double_value(&[])? / count;
        let cross = 2.0 * total_sum.f_dot(&self.shift)?.f_double_value(&[])?;
        let shift2 = self.shift.f_dot(&self.shift)?.f_double_value(&[])?;
        Ok(Some(Spread {
            total: (squares - mean_shift) / count,
            within: (squares - between) / count,
            mean_square: (squares + cross) / count + shift2,
        }))
    }

    /// The population variance of each feature within each class, (C, D), clipped at zero;
    /// zero rows for classes without images.
    pub fn class_variances(&self) -> Result<Tensor, TchError> {
        let squares = match &self.class_squares {
            Some(sq) => sq.shallow_clone(),
            None => return Err(Self::missing("per-class sums of squares")),
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

    /// Bytes held on the statistics' device: the sums, and the scatters of the classes that
    /// keep one (the bounds documented in docs/metrics.md). Rows are in `host_bytes`.
    pub fn bytes(&self) -> usize {
        let numel = |t: &Tensor| t.size().iter().product::<i64>() as usize;
        let parts = [
            Some(&self.shift),
            Some(&self.sums),
            self.total_second.as_ref(),
            self.class_squares.as_ref(),
        ];
        let fourth = self.fourth.as_ref().map_or(0, |(a, b)| numel(a) + numel(b));
        let scatters = self.class_second.as_ref().map_or(0, |c| c.bytes().1);
        8 * (parts.into_iter().flatten().map(numel).sum::<usize>() + fourth) + scatters
    }

    /// Whether every class sum is finite (false as soon as a NaN or an infinity has reached
    /// them), as a 0-d bool tensor on the store's device: a check that can be queued without
    /// waiting for it.
    pub fn finite(&self) -> Result<Tensor, TchError> {
        self.sums.f_isfinite()?.f_all()
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
