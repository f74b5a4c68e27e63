//! Each class's second moment, kept in whichever exact form is smaller: its feature rows, or
//! its D x D scatter.
//!
//! TransRate needs, for every class c, logdet(I + Z_c^T Z_c / a) with Z_c the class's rows
//! centred by the global mean. A (D, D) f64 scatter per class costs 8 C D^2 bytes (32 GiB for
//! a 2048-d layer at C = 1000), yet a class of n_c images has a scatter of rank at most n_c,
//! and logdet(I + Z_c^T Z_c / a) = logdet(I + Z_c Z_c^T / a): the n_c x n_c Gram matrix of its
//! rows gives the same number. So a class keeps its raw rows (f32, as the network made them, in
//! host memory) while n_c D 4 bytes is at most the scatter's D^2 8 (n_c <= 2D), and folds them
//! into a scatter (f64, on the device, about the store's shift) once they would outgrow it.
//! Device memory then holds scatters only for classes with more than 2D images, and host memory
//! at most 2D rows of any class. Merging concatenates rows or adds scatters, exactly.
//!
//! The one question metrics ask (`logdet`) is answered from either form, so no metric knows which
//! a class uses. Past `memory_budget` the pass spills row chunks to disk (`spill.rs`); every
//! reader of rows takes them back one class at a time, so host memory then holds the rows of
//! one class beyond what stays within the budget.

use std::collections::VecDeque;

use tch::{Device, Kind, TchError, Tensor};

use super::batch_labels::BatchLabels;
use super::spill::{Array, Chunk, RowChunks, SpillFile};
use crate::device::{start_download, to_pageable, upload};

/// What centring a class's rows by the global mean takes, for either form.
pub struct ClassCentre<'a> {
    pub class: usize,
    /// The global mean of the raw features, (D,) f64.
    pub mean: &'a Tensor,
    /// The store's shift and the class's sum of y = x - shift (its scatter's reference).
    pub shift: &'a Tensor,
    pub sum: &'a Tensor,
    pub n: u64,
}

/// One class's second moment.
enum Form {
    /// Raw feature rows (host memory or spilled), in arrival order, in chunks as they came: f32
    /// for features made in f32 or less (every network's), f64 for f64 features, so a row is
    /// exactly the vector the other sums were made from.
    Rows { chunks: Vec<Chunk>, n: u64 },
    /// sum of y y^T for y = x - shift, (D, D) f64 on the store's device.
    Scatter(Tensor),
}

pub struct ClassSecond {
    classes: Vec<Form>,
    dim: usize,
    /// A class folds its rows into a scatter once it holds more than this many; None: once
    /// they take more bytes than the scatter.
    fold_above: Option<u64>,
    device: Device,
    /// Rows a GPU may still be copying to the host, oldest batch first (see `settle`).
    landing: VecDeque<Landing>,
    /// Takes the GPU's way (one copy per batch, landing at `settle`) for features on the CPU
    /// too: for tests of that way on machines without a GPU.
    land_on_host: bool,
}

/// One batch's rows of its row-kept classes on their way from a GPU: one copy per batch (and
/// layer) rather than one per class, since each copy and its pinned buffer cost the host time.
struct Landing {
    serial: u64,
    /// (rows, D), pinned host memory, the classes' rows one class after another.
    rows: Tensor,
    /// (class, first row, rows) in `rows`.
    pieces: Vec<(usize, i64, i64)>,
}

/// Rows in host memory, contiguous (a copy that waits for the device, if they are on one).
fn to_host(t: &Tensor) -> Result<Tensor, TchError> {
    t.f_to_device(Device::Cpu)?.f_contiguous()
}

/// The kind rows of features of kind `kind` are kept in: f32 unless they are f64.
fn row_kind(kind: Kind) -> Kind {
    if kind == Kind::Double {
        Kind::Double
    } else {
        Kind::Float
    }
}

impl ClassSecond {
    pub fn new(classes: usize, dim: usize, device: Device) -> ClassSecond {
        ClassSecond {
            classes: (0..classes)
                .map(|_| Form::Rows {
                    chunks: Vec::new(),
                    n: 0,
                })
                .collect(),
            dim,
            fold_above: None,
            device,
            landing: VecDeque::new(),
            land_on_host: false,
        }
    }

    /// Rows beyond which a class keeps a scatter: n D b > D^2 8 for rows of b bytes, i.e. 2D
    /// f32 rows (D f64 ones), unless set.
    fn limit(&self, kind: Kind) -> u64 {
        self.fold_above
            .unwrap_or(8 * self.dim as u64 / kind.elt_size_in_bytes() as u64)
    }

    /// Folds in a batch's features, (B, D) as the network made them: a class kept as a scatter
    /// sums its rows about `shift` in f64 on the store's device; from a GPU, the rows of the
    /// row-kept classes leave in one copy that lands in host memory at `settle`.
    pub fn update_batch(
        &mut self,
        features: &Tensor,
        batch: &BatchLabels,
        shift: &Tensor,
    ) -> Result<(), TchError> {
        let on_host = features.device() == Device::Cpu && !self.land_on_host;
        let mut pieces = Vec::new();
        let mut gather = Vec::new();
        let mut offset = 0;
        for ((class, rows), &n) in batch.groups.iter().zip(&batch.counts) {
            let raw = || match rows {
                Some(idx) => features.f_index_select(0, idx),
                None => Ok(features.shallow_clone()),
            };
            match &self.classes[*class] {
                Form::Rows { .. } if !on_host => {
                    pieces.push((*class, offset, n as i64));
                    offset += n as i64;
                    gather.push(rows);
                }
                _ => self.update(*class, &raw()?, shift)?,
            }
        }
        if pieces.is_empty() {
            return Ok(());
        }
        let selected = match gather.as_slice() {
            [None] => features.shallow_clone(),
            _ => {
                let idx: Vec<&Tensor> = gather.iter().filter_map(|g| g.as_ref()).collect();
                features.f_index_select(0, &Tensor::f_cat(&idx, 0)?)?
            }
        };
        let rows = start_download(&selected.f_to_kind(row_kind(features.kind()))?)?.tensor;
        let mut over = Vec::new();
        for &(class, _, len) in &pieces {
            if let Form::Rows { n, .. } = &mut self.classes[class] {
                *n += len as u64;
                if *n > self.limit(row_kind(features.kind())) {
                    over.push(class);
                }
            }
        }
        self.landing.push_back(Landing {
            serial: batch.serial,
            rows,
            pieces,
        });
        for class in over {
            self.fold(class, shift)?;
        }
        Ok(())
    }

    /// Folds in class `class`'s rows, (n, D) as the network made them, on the host or its
    /// store's device.
    pub fn update(&mut self, class: usize, raw: &Tensor, shift: &Tensor) -> Result<(), TchError> {
        let device = self.device;
        match &mut self.classes[class] {
            Form::Scatter(s) => {
                let y = raw
                    .f_to_device(device)?
                    .f_to_kind(Kind::Double)?
                    .f_sub(shift)?;
                let _ = s.f_addmm_(&y.f_transpose(0, 1)?, &y)?;
            }
            Form::Rows { chunks, n } => {
                let kind = row_kind(raw.kind());
                chunks.push(Chunk::Memory(to_host(&raw.f_to_kind(kind)?)?));
                *n += raw.size()[0] as u64;
                let over = *n > self.limit(kind);
                if over {
                    return self.fold(class, shift);
                }
            }
        }
        Ok(())
    }

    /// Turns a row-kept class into its scatter about `shift`.
    fn fold(&mut self, class: usize, shift: &Tensor) -> Result<(), TchError> {
        let scatter = match &self.classes[class] {
            Form::Rows { chunks, .. } => {
                let mut s = Tensor::f_zeros(
                    [self.dim as i64, self.dim as i64],
                    (Kind::Double, self.device),
                )?;
                // Rows still landing are copied back from their pinned buffer, after their
                // copy in the device's queue.
                let landing = self.landing.iter().flat_map(|l| {
                    l.pieces
                        .iter()
                        .filter(|(c, _, _)| *c == class)
                        .map(move |&(_, first, len)| l.rows.f_narrow(0, first, len))
                });
                for chunk in chunks.iter().map(Chunk::load).chain(landing) {
                    // Through pinned memory: a copy from pageable memory would wait for the
                    // device's whole queue.
                    let y = upload(&chunk?, self.device)?
                        .f_to_kind(Kind::Double)?
                        .f_sub(shift)?;
                    let _ = s.f_addmm_(&y.f_transpose(0, 1)?, &y)?;
                }
                s
            }
            Form::Scatter(_) => return Ok(()),
        };
        self.classes[class] = Form::Scatter(scatter);
        Ok(())
    }

    /// Adds another store's classes (same classes, dimension and shift).
    pub fn merge(&mut self, other: &ClassSecond, shift: &Tensor) -> Result<(), TchError> {
        if self.classes.len() != other.classes.len() || self.dim != other.dim {
            return Err(TchError::Shape(
                "cannot merge per-class moments of different shapes".into(),
            ));
        }
        for class in 0..self.classes.len() {
            match &other.classes[class] {
                Form::Rows { chunks, .. } => {
                    for chunk in chunks {
                        self.add_chunk(class, chunk, shift)?;
                    }
                }
                Form::Scatter(theirs) => {
                    self.fold(class, shift)?;
                    if let Form::Scatter(mine) = &mut self.classes[class] {
                        let _ = mine.f_add_(&theirs.f_to_device(self.device)?)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// The same moments about another shift, given each class's count and sum of y about the
    /// old shift, (C,) and (C, D), and d = old shift - new shift. Rows are raw: unchanged.
    pub fn reshifted(&self, counts: &[u64], sums: &Tensor, d: &Tensor) -> Result<Self, TchError> {
        let classes = self
            .classes
            .iter()
            .enumerate()
            .map(|(c, form)| {
                Ok(match form {
                    Form::Rows { chunks, n } => Form::Rows {
                        chunks: chunks.iter().map(Chunk::share).collect(),
                        n: *n,
                    },
                    Form::Scatter(s) => {
                        let s_c = sums.f_select(0, c as i64)?;
                        let sd = s_c.f_view([-1, 1])?.f_mul(&d.f_view([1, -1])?)?;
                        let dd = d.f_view([-1, 1])?.f_mul(&d.f_view([1, -1])?)?;
                        Form::Scatter(
                            s.f_add(&sd)?
                                .f_add(&sd.f_transpose(0, 1)?)?
                                .f_add(&dd.f_mul_scalar(counts[c] as f64)?)?,
                        )
                    }
                })
            })
            .collect::<Result<Vec<_>, TchError>>()?;
        Ok(ClassSecond {
            classes,
            dim: self.dim,
            fold_above: self.fold_above,
            device: self.device,
            landing: VecDeque::new(),
            land_on_host: false,
        })
    }

    /// Files the rows of batches up to `done`, which the device has finished, with their
    /// classes, as pageable copies; a class folded meanwhile already has them in its scatter.
    pub fn settle(&mut self, done: u64) -> Result<(), TchError> {
        while self.landing.front().is_some_and(|l| l.serial <= done) {
            let Some(l) = self.landing.pop_front() else {
                break;
            };
            for (class, first, len) in l.pieces {
                if let Some(Form::Rows { chunks, .. }) = self.classes.get_mut(class) {
                    chunks.push(Chunk::Memory(to_pageable(
                        &l.rows.f_narrow(0, first, len)?,
                    )?));
                }
            }
        }
        Ok(())
    }

    /// logdet(I + P^T Z_c^T Z_c P / a), Z_c the rows of class `of.class` centred by the global
    /// mean, P the (D, k) `basis` (the identity without one).
    pub fn logdet(
        &self,
        of: &ClassCentre,
        a: f64,
        basis: Option<&Tensor>,
    ) -> Result<f64, TchError> {
        let ClassCentre {
            class,
            mean,
            shift,
            sum,
            n,
        } = *of;
        let matrix = match &self.classes[class] {
            Form::Scatter(second) => {
                // Z_c^T Z_c = S_c - s_c m^T - m s_c^T + n_c m m^T with m = mean - shift.
                let m = mean.f_sub(shift)?;
                let mut out = second.f_add_scalar(0.0)?;
                let _ = out.f_addr_(&m.f_mul_scalar(n as f64)?.f_sub(sum)?, &m)?;
                let _ = out.f_addr_(&m.f_neg()?, sum)?;
                match basis {
                    Some(p) => p.f_transpose(0, 1)?.f_matmul(&out)?.f_matmul(p)?,
                    None => out,
                }
            }
            Form::Rows { chunks, .. } => {
                let rows = self
                    .row_chunks(chunks)
                    .load()?
                    .f_to_device(self.device)?
                    .f_to_kind(Kind::Double)?;
                let mut z = rows.f_sub(mean)?;
                if let Some(p) = basis {
                    z = z.f_matmul(p)?;
                }
                // The smaller of the two Gram matrices has the same nonzero spectrum.
                if z.size()[0] < z.size()[1] {
                    z.f_matmul(&z.f_transpose(0, 1)?)?
                } else {
                    z.f_transpose(0, 1)?.f_matmul(&z)?
                }
            }
        };
        logdet_identity_plus(matrix, a)
    }

    /// Bytes of host memory (rows not spilled) and of device memory (scatters).
    pub fn bytes(&self) -> (usize, usize) {
        let mut host = 0;
        let mut device = 0;
        for form in &self.classes {
            match form {
                Form::Rows { chunks, .. } => {
                    host += chunks.iter().map(Chunk::memory_bytes).sum::<usize>()
                }
                Form::Scatter(_) => device += self.dim * self.dim * 8,
            }
        }
        (host, device)
    }

    /// Bytes of rows spilled to disk that a row-kept class still reads.
    pub fn spilled_bytes(&self) -> u64 {
        self.classes
            .iter()
            .map(|form| match form {
                Form::Rows { chunks, .. } => chunks.iter().map(Chunk::disk_bytes).sum(),
                Form::Scatter(_) => 0,
            })
            .sum()
    }

    /// (class, bytes) of every row-kept class with rows in host memory: what `spill` can move.
    pub fn rows_in_memory(&self) -> Vec<(usize, usize)> {
        self.classes
            .iter()
            .enumerate()
            .filter_map(|(c, form)| match form {
                Form::Rows { chunks, .. } => {
                    let bytes: usize = chunks.iter().map(Chunk::memory_bytes).sum();
                    (bytes > 0).then_some((c, bytes))
                }
                Form::Scatter(_) => None,
            })
            .collect()
    }

    /// Writes class `class`'s rows held in host memory to `file` as one chunk, freeing that
    /// memory; returns the bytes written. Rows still landing from a GPU are not touched: they
    /// join the class at `settle`.
    pub fn spill(
        &mut self,
        class: usize,
        file: &std::sync::Arc<SpillFile>,
    ) -> Result<u64, TchError> {
        let Some(Form::Rows { chunks, .. }) = self.classes.get_mut(class) else {
            return Ok(0);
        };
        let (memory, mut kept): (Vec<Chunk>, Vec<Chunk>) = chunks
            .drain(..)
            .partition(|c| matches!(c, Chunk::Memory(_)));
        if memory.is_empty() {
            *chunks = kept;
            return Ok(0);
        }
        let rows = memory
            .iter()
            .map(Chunk::load)
            .collect::<Result<Vec<_>, _>>()
            .and_then(|m| Tensor::f_cat(&m, 0));
        let written = rows.and_then(|r| file.append(&r));
        match written {
            Ok(spilled) => {
                // The order of a class's rows does not change its rate.
                let bytes = spilled.bytes();
                kept.push(Chunk::Disk(spilled));
                *chunks = kept;
                Ok(bytes)
            }
            Err(e) => {
                kept.extend(memory);
                *chunks = kept;
                Err(e)
            }
        }
    }

    /// Adds a chunk of another store's rows to class `class`: shared as it is while the class
    /// keeps rows, folded into its scatter otherwise.
    fn add_chunk(&mut self, class: usize, chunk: &Chunk, shift: &Tensor) -> Result<(), TchError> {
        let limit = self.limit(chunk.kind());
        match &mut self.classes[class] {
            Form::Rows { chunks, n } => {
                chunks.push(chunk.share());
                *n += chunk.rows() as u64;
                if *n > limit {
                    return self.fold(class, shift);
                }
                Ok(())
            }
            Form::Scatter(_) => self.update(class, &chunk.load()?, shift),
        }
    }

    fn row_chunks(&self, chunks: &[Chunk]) -> RowChunks {
        RowChunks {
            chunks: chunks.iter().map(Chunk::share).collect(),
            dim: self.dim as i64,
            kind: chunks.first().map_or(Kind::Float, Chunk::kind),
        }
    }

    /// Classes kept as rows, of all classes.
    pub fn row_classes(&self) -> usize {
        self.classes
            .iter()
            .filter(|f| matches!(f, Form::Rows { .. }))
            .count()
    }

    /// The arrays for a statistics file: `rows_<c>` (n_c, D) f32 or `scatter_<c>` (D, D) f64;
    /// rows are read (back from disk) only as each is written.
    pub fn parts(&self) -> Vec<(String, Array)> {
        let mut out = Vec::new();
        for (c, form) in self.classes.iter().enumerate() {
            match form {
                Form::Rows { chunks, n } if *n > 0 => {
                    out.push((format!("rows_{c}"), Array::Rows(self.row_chunks(chunks))));
                }
                Form::Rows { .. } => {}
                Form::Scatter(s) => {
                    out.push((format!("scatter_{c}"), Array::Held(s.shallow_clone())))
                }
            }
        }
        out
    }

    /// Reads `parts` back: classes without an array have no rows yet.
    pub fn from_parts(
        classes: usize,
        dim: usize,
        device: Device,
        parts: Vec<(String, Tensor)>,
    ) -> Result<Self, String> {
        let mut out = ClassSecond::new(classes, dim, device);
        for (name, t) in parts {
            let (kind, class) = name
                .split_once('_')
                .and_then(|(k, c)| Some((k.to_owned(), c.parse::<usize>().ok()?)))
                .filter(|(_, c)| *c < classes)
                .ok_or_else(|| format!("unknown array `{name}`"))?;
            let size = t.size();
            match kind.as_str() {
                "rows" if size.len() == 2 && size[1] == dim as i64 => {
                    let rows = t
                        .f_to_kind(row_kind(t.kind()))
                        .and_then(|t| t.f_to_device(Device::Cpu))
                        .map_err(|e| e.to_string())?;
                    out.classes[class] = Form::Rows {
                        n: size[0] as u64,
                        chunks: vec![Chunk::Memory(rows)],
                    };
                }
                "scatter" if size == [dim as i64, dim as i64] => {
                    out.classes[class] =
                        Form::Scatter(t.f_to_device(device).map_err(|e| e.to_string())?);
                }
                _ => return Err(format!("array `{name}` has shape {size:?}")),
            }
        }
        Ok(out)
    }

    /// A copy whose scatters live on `device` (rows stay on the host).
    pub fn to_device(&self, device: Device) -> Result<ClassSecond, TchError> {
        let classes = self
            .classes
            .iter()
            .map(|f| {
                Ok(match f {
                    Form::Rows { chunks, n } => Form::Rows {
                        chunks: chunks.iter().map(Chunk::share).collect(),
                        n: *n,
                    },
                    Form::Scatter(s) => Form::Scatter(s.f_to_device(device)?),
                })
            })
            .collect::<Result<Vec<_>, TchError>>()?;
        Ok(ClassSecond {
            classes,
            dim: self.dim,
            fold_above: self.fold_above,
            device,
            landing: VecDeque::new(),
            land_on_host: false,
        })
    }

    /// With `fold_above` = 0 every class keeps a scatter from its first image (the form before
    /// rows existed); with u64::MAX every class keeps its rows. For tests and measurements.
    pub fn set_fold_above(&mut self, fold_above: u64) {
        self.fold_above = Some(fold_above);
    }
}

/// logdet(I + M / a) for a symmetric positive semi-definite f64 matrix M, consumed. Cholesky
/// reads the lower triangle at a third of an eigendecomposition's cost; should rounding leave
/// the matrix not numerically positive definite (extreme a), its eigenvalues clipped at zero.
pub fn logdet_identity_plus(mut m: Tensor, a: f64) -> Result<f64, TchError> {
    let _ = m.f_div_scalar_(a)?;
    let _ = m.f_diagonal(0, 0, 1)?.f_add_scalar_(1.0)?;
    let (chol, info) = m.f_linalg_cholesky_ex(false, false)?;
    if info.f_int64_value(&[])? == 0 {
        return Ok(2.0
            * chol
                .f_diagonal(0, 0, 1)?
                .f_log()?
                .f_sum(Kind::Double)?
                .f_double_value(&[])?);
    }
    let _ = m.f_diagonal(0, 0, 1)?.f_sub_scalar_(1.0)?;
    let eig = m.f_linalg_eigvalsh("L")?.f_clamp_min(0.0)?;
    eig.f_log1p()?.f_sum(Kind::Double)?.f_double_value(&[])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The GPU's way (one copy per batch, filed at `settle` one batch late, classes folding
    /// while some of their rows are still landing) keeps the same moments as the direct way.
    #[test]
    fn rows_landing_late_give_the_same_rates() {
        let (classes, dim) = (3usize, 4i64);
        let mut direct = ClassSecond::new(classes, dim as usize, Device::Cpu);
        let mut landed = ClassSecond::new(classes, dim as usize, Device::Cpu);
        landed.land_on_host = true;
        // The same, spilling every settled row to disk after each batch, as the pass does
        // beyond its budget: rows still landing stay where they are.
        let mut spilled = ClassSecond::new(classes, dim as usize, Device::Cpu);
        spilled.land_on_host = true;
        let dir = tempfile::tempdir().unwrap();
        let file = crate::stats::SpillFile::new_in(dir.path()).unwrap();
        for s in [&mut direct, &mut landed, &mut spilled] {
            s.set_fold_above(5);
        }
        let shift = Tensor::zeros([dim], (Kind::Double, Device::Cpu));
        tch::manual_seed(7);
        let mut all: Vec<(Tensor, Vec<i64>)> = Vec::new();
        let batches: [&[i64]; 5] = [
            &[0, 1, 0],
            &[2, 2],
            &[0, 0, 1, 2, 0],
            &[1],
            &[0, 1, 1, 1, 2, 0],
        ];
        for (serial, labels) in batches.iter().enumerate() {
            let x = Tensor::randn([labels.len() as i64, dim], (Kind::Float, Device::Cpu));
            let batch = BatchLabels::new(labels, Device::Cpu)
                .unwrap()
                .numbered(serial as u64);
            direct.update_batch(&x, &batch, &shift).unwrap();
            landed.update_batch(&x, &batch, &shift).unwrap();
            spilled.update_batch(&x, &batch, &shift).unwrap();
            if serial > 0 {
                landed.settle(serial as u64 - 1).unwrap();
                spilled.settle(serial as u64 - 1).unwrap();
                for (class, _) in spilled.rows_in_memory() {
                    spilled.spill(class, &file).unwrap();
                }
                assert_eq!(spilled.bytes().0, 0);
            }
            all.push((x, labels.to_vec()));
        }
        landed.settle(u64::MAX).unwrap();
        spilled.settle(u64::MAX).unwrap();
        assert!(landed.landing.is_empty());
        // Class 2's 4 rows: 3 settled and spilled before the last batch, 1 landing at its end.
        assert_eq!(spilled.spilled_bytes(), 3 * 4 * 4);
        assert_eq!(spilled.bytes().0, 4 * 4);
        // Classes 0 (7 rows) and 1 (6) folded in the last batch, its rows still landing; 2 (4) did not.
        assert_eq!(landed.row_classes(), 1);
        assert_eq!(direct.row_classes(), 1);
        let x = Tensor::cat(
            &all.iter()
                .map(|(x, _)| x.shallow_clone())
                .collect::<Vec<_>>(),
            0,
        )
        .to_kind(Kind::Double);
        let labels: Vec<i64> = all.iter().flat_map(|(_, l)| l.clone()).collect();
        let mean = x.mean_dim(&[0i64][..], false, Kind::Double);
        for class in 0..classes {
            let idx: Vec<i64> = (0..labels.len() as i64)
                .filter(|&i| labels[i as usize] == class as i64)
                .collect();
            let rows = x.index_select(0, &Tensor::from_slice(&idx));
            let sum = rows.sum_dim_intlist(&[0i64][..], false, Kind::Double);
            let centre = ClassCentre {
                class,
                mean: &mean,
                shift: &shift,
                sum: &sum,
                n: idx.len() as u64,
            };
            let a = direct.logdet(&centre, 0.5, None).unwrap();
            let b = landed.logdet(&centre, 0.5, None).unwrap();
            let c = spilled.logdet(&centre, 0.5, None).unwrap();
            for x in [b, c] {
                assert!(
                    (a - x).abs() <= 1e-12 * a.abs().max(1.0),
                    "class {class}: {a} {x}"
                );
            }
        }
    }
}
