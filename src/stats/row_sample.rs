//! The feature rows of a fixed subsample of the images (`dataset::sample_flags`), for the
//! metrics that need the samples themselves, not moments: k-NN's leave-one-out accuracy and its
//! kin. Rows are kept as the network made them (f32; f64 features stay f64), in host memory,
//! with each image's label and its position in the listing, so parts gathered by shards or
//! devices concatenate and sort into the same matrix a single run keeps. Unlike the per-class
//! rows (`spill.rs`), these are never spilled to disk: `sample.max_images` bounds them, and the
//! memory check counts them among what must stay in memory.

use tch::{Device, Kind, TchError, Tensor};

use super::batch_labels::BatchLabels;
use super::staging::Staging;
use crate::device::{start_download, to_pageable};

pub struct RowSample {
    chunks: Vec<Tensor>,
    labels: Vec<i64>,
    ids: Vec<u32>,
    /// The most rows the sample was drawn for (`sample.max_images`): samples drawn for another
    /// size are other samples.
    pub target: usize,
    staging: Staging,
}

impl RowSample {
    pub fn new(target: usize) -> RowSample {
        RowSample {
            chunks: Vec::new(),
            labels: Vec::new(),
            ids: Vec::new(),
            target,
            staging: Staging::default(),
        }
    }

    /// Keeps the rows of `features` (B, D) that the batch marks as sampled. From a GPU the
    /// copy is only started: the rows are readable after `settle` for this batch.
    pub fn update(&mut self, features: &Tensor, batch: &BatchLabels) -> Result<(), TchError> {
        let Some(sample) = &batch.sample else {
            return Ok(());
        };
        if sample.ids.is_empty() {
            return Ok(());
        }
        let kind = if features.kind() == Kind::Double {
            Kind::Double
        } else {
            Kind::Float
        };
        let rows = start_download(
            &features
                .f_index_select(0, &sample.positions)?
                .f_to_kind(kind)?,
        )?;
        if rows.staged {
            self.staging.push(batch.serial, self.chunks.len());
        }
        self.chunks.push(rows.tensor);
        self.labels.extend(&sample.labels);
        self.ids.extend(&sample.ids);
        Ok(())
    }

    /// Swaps the rows of batches up to `done`, which the device has finished, out of staging.
    pub fn settle(&mut self, done: u64) -> Result<(), TchError> {
        let chunks = &mut self.chunks;
        self.staging.settle(done, |index| {
            if let Some(c) = chunks.get_mut(index) {
                *c = to_pageable(c)?;
            }
            Ok(())
        })
    }

    pub fn merge(&mut self, other: &RowSample) -> Result<(), TchError> {
        if self.target != other.target {
            return Err(TchError::Shape(format!(
                "cannot merge samples of {} and of {} rows",
                self.target, other.target
            )));
        }
        self.chunks
            .extend(other.chunks.iter().map(Tensor::shallow_clone));
        self.labels.extend(&other.labels);
        self.ids.extend(&other.ids);
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The rows (m, D) in listing order, and their labels.
    pub fn rows(&self) -> Result<(Tensor, Vec<i64>), TchError> {
        let mut order: Vec<usize> = (0..self.ids.len()).collect();
        order.sort_by_key(|&i| self.ids[i]);
        let all = Tensor::f_cat(&self.chunks, 0)?;
        let index: Vec<i64> = order.iter().map(|&i| i as i64).collect();
        let rows = all.f_index_select(0, &Tensor::f_from_slice(&index)?)?;
        Ok((rows, order.iter().map(|&i| self.labels[i]).collect()))
    }

    /// The images' positions in the listing, in the order `rows` gives them.
    pub fn ids(&self) -> Vec<u32> {
        let mut ids = self.ids.clone();
        ids.sort_unstable();
        ids
    }

    pub fn bytes(&self) -> usize {
        self.chunks
            .iter()
            .map(|c| c.numel() * c.kind().elt_size_in_bytes())
            .sum()
    }

    /// `rows` (m, D), `labels` and `ids` (m,) and `target` (1,), for a statistics file.
    pub fn parts(&self) -> Result<Vec<(String, Tensor)>, TchError> {
        let f64s = |v: Vec<f64>| Tensor::f_from_slice(&v);
        let mut out = vec![
            ("target".to_owned(), f64s(vec![self.target as f64])?),
            (
                "labels".to_owned(),
                f64s(self.labels.iter().map(|&l| l as f64).collect())?,
            ),
            (
                "ids".to_owned(),
                f64s(self.ids.iter().map(|&i| i as f64).collect())?,
            ),
        ];
        if !self.chunks.is_empty() {
            out.push(("rows".to_owned(), Tensor::f_cat(&self.chunks, 0)?));
        }
        Ok(out)
    }

    pub fn from_parts(parts: Vec<(String, Tensor)>) -> Result<RowSample, String> {
        let mut sample = RowSample::new(0);
        let values = |t: &Tensor| -> Result<Vec<f64>, String> {
            let t = t
                .f_to_kind(Kind::Double)
                .and_then(|t| t.f_to_device(Device::Cpu))
                .map_err(|e| e.to_string())?;
            let n = t.numel();
            let mut v = vec![0f64; n];
            t.f_copy_data(&mut v, n).map_err(|e| e.to_string())?;
            Ok(v)
        };
        for (name, t) in parts {
            match name.as_str() {
                "target" => sample.target = values(&t)?.first().copied().unwrap_or(0.0) as usize,
                "labels" => sample.labels = values(&t)?.iter().map(|&v| v as i64).collect(),
                "ids" => sample.ids = values(&t)?.iter().map(|&v| v as u32).collect(),
                "rows" => sample
                    .chunks
                    .push(t.f_to_device(Device::Cpu).map_err(|e| e.to_string())?),
                other => return Err(format!("unknown array `sample.{other}`")),
            }
        }
        let rows: usize = sample.chunks.iter().map(|c| c.size()[0] as usize).sum();
        if rows != sample.ids.len() || sample.labels.len() != sample.ids.len() {
            return Err("sample rows, labels and ids differ in number".into());
        }
        Ok(sample)
    }

    pub fn shallow_copy(&self) -> RowSample {
        RowSample {
            chunks: self.chunks.iter().map(Tensor::shallow_clone).collect(),
            labels: self.labels.clone(),
            ids: self.ids.clone(),
            target: self.target,
            staging: Staging::default(),
        }
    }
}
